"""The `DevicePlugin` gRPC service of one resource: what the kubelet calls on the plugin's socket.

A thin adapter: device lists come from the agent's view (`devices`), decisions from `allocation`.
A refusal aborts the call with FAILED_PRECONDITION and the reason, which the kubelet puts in the
pod's admission error. Allocate and GetPreferredAllocation wait (up to `pod_wait` seconds) for the
pod to reach the informer when it is not there yet: the kubelet may hear of a pod before the
plugin's watch does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from aisched.agent.deviceplugin.allocation import Grant, Refusal, decide, preferred
from aisched.agent.deviceplugin.book import PodBook
from aisched.agent.deviceplugin.devices import Inventory
from aisched.agent.deviceplugin.v1beta1 import api_pb2 as pb
from aisched.agent.deviceplugin.v1beta1 import api_pb2_grpc as pb_grpc
from aisched.observability.logging import get_logger

__all__ = ["Changes", "DevicePluginService"]

log = get_logger(__name__)


class Changes:
    """A change counter that coroutines can wait past (the device view, the pod book)."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Something changed; wakes every waiter. Call on the event loop."""
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait_past(self, version: int) -> None:
        """Return once `version` is no longer the current one."""
        while self.version == version:
            await self._event.wait()


def _listing(inventory: Inventory) -> pb.ListAndWatchResponse:
    return pb.ListAndWatchResponse(
        devices=[
            pb.Device(
                ID=d.id,
                health=d.health,
                topology=(
                    pb.TopologyInfo(nodes=[pb.NUMANode(ID=d.numa_node)])
                    if d.numa_node is not None and d.numa_node >= 0
                    else None
                ),
            )
            for d in inventory.devices
        ]
    )


class DevicePluginService(pb_grpc.DevicePluginServicer):
    """The kubelet-facing service of one resource (`inventory().resource`)."""

    def __init__(
        self,
        *,
        node: str,
        inventory: Callable[[], Inventory],
        devices_changed: Changes,
        book: PodBook,
        book_changed: Changes,
        pod_wait: float = 10.0,
    ) -> None:
        self._node = node
        self._inventory = inventory
        self._devices_changed = devices_changed
        self._book = book
        self._book_changed = book_changed
        self._pod_wait = pod_wait
        self.resource = book.resource
        self._log = log.bind(resource=self.resource)

    async def GetDevicePluginOptions(  # noqa: N802 - the gRPC method's name
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.DevicePluginOptions:
        return pb.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True)

    async def ListAndWatch(  # noqa: N802 - the gRPC method's name
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ListAndWatchResponse]:
        """The devices now, then again each time an ID, a health or a NUMA node changes."""
        sent: pb.ListAndWatchResponse | None = None
        while True:
            seen = self._devices_changed.version
            listing = _listing(self._inventory())
            if listing != sent:
                unhealthy = [d.ID for d in listing.devices if d.health != "Healthy"]
                self._log.info("devices_listed", devices=len(listing.devices), unhealthy=unhealthy)
                yield listing
                sent = listing
            await self._devices_changed.wait_past(seen)

    async def GetPreferredAllocation(  # noqa: N802 - the gRPC method's name
        self, request: pb.PreferredAllocationRequest, context: grpc.aio.ServicerContext
    ) -> pb.PreferredAllocationResponse:
        responses = []
        for container in request.container_requests:
            await self._until(lambda: self._book.synced and bool(self._book.waiting()))
            ids = preferred(
                available=list(container.available_deviceIDs),
                must_include=list(container.must_include_deviceIDs),
                size=container.allocation_size,
                inventory=self._inventory(),
                book=self._book,
            )
            responses.append(pb.ContainerPreferredAllocationResponse(deviceIDs=ids))
        return pb.PreferredAllocationResponse(container_responses=responses)

    async def Allocate(  # noqa: N802 - the gRPC method's name
        self, request: pb.AllocateRequest, context: grpc.aio.ServicerContext
    ) -> pb.AllocateResponse:
        responses = []
        for container in request.container_requests:
            asked = list(container.devices_ids)
            outcome = await self._await_decision(asked)
            if isinstance(outcome, Refusal):
                self._log.warning("allocation_refused", devices=asked, reason=outcome.reason)
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, outcome.reason)
                raise AssertionError("unreachable: abort raises")  # pragma: no cover
            self._book.record(outcome.pod, names=list(outcome.names), devices=[d.id for d in outcome.devices])
            self._log.info(
                "devices_allocated",
                pod=outcome.pod.key,
                devices=[d.id for d in outcome.devices],
                kubelet_chose=asked,
            )
            responses.append(
                pb.ContainerAllocateResponse(
                    envs=outcome.envs, cdi_devices=[pb.CDIDevice(name=n) for n in outcome.cdi_devices]
                )
            )
        return pb.AllocateResponse(container_responses=responses)

    async def PreStartContainer(  # noqa: N802 - the gRPC method's name
        self, request: pb.PreStartContainerRequest, context: grpc.aio.ServicerContext
    ) -> pb.PreStartContainerResponse:
        return pb.PreStartContainerResponse()

    async def _await_decision(self, asked: Sequence[str]) -> Grant | Refusal:
        """`decide`, once the pod book is synced and a pod is waiting, or `pod_wait` seconds on."""
        await self._until(lambda: self._book.synced and bool(self._book.waiting()))
        return decide(asked=asked, inventory=self._inventory(), book=self._book, node=self._node)

    async def _until(self, ready: Callable[[], bool]) -> bool:
        """Wait for `ready()` on every change of the pod book, for up to `pod_wait` seconds (the
        kubelet may hear of a pod before the informer does); whether it became true."""
        deadline = asyncio.get_running_loop().time() + self._pod_wait
        while not ready():
            seen = self._book_changed.version
            try:
                async with asyncio.timeout_at(deadline):
                    await self._book_changed.wait_past(seen)
            except TimeoutError:
                return False
        return True
