"""A fake kubelet for the device plugin: real gRPC over real unix sockets, as the kubelet does it.

It serves `Registration` on `<dir>/kubelet.sock`; on each Register it connects back to the
plugin's socket, reads its options, and keeps a ListAndWatch stream open (every listing kept, with
when it arrived). `admit()` allocates devices for one container as the kubelet's device manager
does: GetPreferredAllocation over the healthy devices no container holds, then Allocate with the
preferred ones (or the first free ones when the plugin prefers none). `restart()` is a kubelet
restart: every socket in the directory removed, `kubelet.sock` created anew.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from aisched.agent.deviceplugin.v1beta1 import api_pb2 as pb
from aisched.agent.deviceplugin.v1beta1 import api_pb2_grpc as pb_grpc


@dataclass
class Listing:
    at: float
    devices: dict[str, str]  # ID → health
    numa: dict[str, list[int]]


@dataclass
class Plugin:
    """One registered plugin as the fake kubelet knows it."""

    request: pb.RegisterRequest
    channel: grpc.aio.Channel
    stub: Any
    options: pb.DevicePluginOptions | None = None
    listings: list[Listing] = field(default_factory=list)
    watch: asyncio.Task[None] | None = None


class Admitted:
    """The outcome of one container's admission: the response, or the plugin's refusal."""

    def __init__(self, *, chose: list[str], response: pb.ContainerAllocateResponse | None, error: str | None):
        self.chose = chose
        self.response = response
        self.error = error

    @property
    def visible(self) -> list[str]:
        assert self.response is not None, self.error
        visible: str = self.response.envs["NVIDIA_VISIBLE_DEVICES"]
        return visible.split(",")

    @property
    def cdi(self) -> list[str]:
        assert self.response is not None, self.error
        return [d.name for d in self.response.cdi_devices]


class FakeKubelet(pb_grpc.RegistrationServicer):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "kubelet.sock"
        self.plugins: dict[str, Plugin] = {}  # resource → the latest registration
        self.registrations: list[pb.RegisterRequest] = []
        self.in_use: set[str] = set()
        self._server: grpc.aio.Server | None = None
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        server = grpc.aio.server()
        pb_grpc.add_RegistrationServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix://{self.socket}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        for plugin in self.plugins.values():
            await self._close(plugin)
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None

    async def restart(self) -> None:
        """Stop, remove every socket in the directory (the plugins' too), start on a new socket."""
        await self.stop()
        for path in self.directory.glob("*.sock"):
            path.unlink()
        await self.start()

    async def Register(  # noqa: N802 - the gRPC method's name
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.Empty:
        if request.version != "v1beta1":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported version {request.version}")
        old = self.plugins.pop(request.resource_name, None)
        if old is not None:
            await self._close(old)
        channel = grpc.aio.insecure_channel(f"unix://{self.directory / request.endpoint}")
        plugin = Plugin(request=request, channel=channel, stub=pb_grpc.DevicePluginStub(channel))  # type: ignore[no-untyped-call]
        self.plugins[request.resource_name] = plugin
        self.registrations.append(request)
        plugin.watch = asyncio.create_task(self._watch(plugin))
        async with self._changed:
            self._changed.notify_all()
        return pb.Empty()

    async def _close(self, plugin: Plugin) -> None:
        if plugin.watch is not None:
            plugin.watch.cancel()
            await asyncio.gather(plugin.watch, return_exceptions=True)
        await plugin.channel.close()

    async def _watch(self, plugin: Plugin) -> None:
        plugin.options = await plugin.stub.GetDevicePluginOptions(pb.Empty())
        try:
            async for listed in plugin.stub.ListAndWatch(pb.Empty()):
                plugin.listings.append(
                    Listing(
                        at=time.monotonic(),
                        devices={d.ID: d.health for d in listed.devices},
                        numa={d.ID: [n.ID for n in d.topology.nodes] for d in listed.devices},
                    )
                )
                async with self._changed:
                    self._changed.notify_all()
        except grpc.aio.AioRpcError:
            return  # the plugin went away (a restart); a new Register opens a new stream

    async def until(self, check: Any, *, seconds: float = 5.0) -> None:
        """Wait until `check()` holds, re-checked on every registration and listing."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(check)

    def devices(self, resource: str) -> dict[str, str]:
        plugin = self.plugins.get(resource)
        return plugin.listings[-1].devices if plugin is not None and plugin.listings else {}

    async def admit(self, resource: str, count: int) -> Admitted:
        """One container asking for `count` devices of `resource`, as the device manager admits it."""
        plugin = self.plugins[resource]
        free = sorted(
            d for d, health in self.devices(resource).items() if health == "Healthy" and d not in self.in_use
        )
        chose = free[:count]
        assert plugin.options is not None
        assert plugin.options.get_preferred_allocation_available
        preferred = await plugin.stub.GetPreferredAllocation(
            pb.PreferredAllocationRequest(
                container_requests=[
                    pb.ContainerPreferredAllocationRequest(available_deviceIDs=free, allocation_size=count)
                ]
            )
        )
        offered = list(preferred.container_responses[0].deviceIDs)
        if len(offered) == count and set(offered) <= set(free):
            chose = offered
        try:
            response = await plugin.stub.Allocate(
                pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=chose)])
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            return Admitted(chose=chose, response=None, error=exc.details())
        self.in_use.update(chose)
        return Admitted(chose=chose, response=response.container_responses[0], error=None)
