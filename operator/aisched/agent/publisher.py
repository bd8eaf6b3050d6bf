"""Publishing: this node's GPUNodeTopology, its liveness Lease, and GPU labels on the Node.

The API server may be down or slow: every write is retried with capped exponential backoff and
jitter (never a tight loop), and each attempt sends the latest desired state, so nothing is
lost and nothing stale is written after a newer view exists. Given a `stop` event, retrying gives
up as soon as it is set (`PublishStopped`), so that the agent exits promptly during an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, TypeVar

from aisched import __version__
from aisched.api import keys
from aisched.api.gpunodetopology import GPUNodeTopology, GPUNodeTopologyStatus
from aisched.api.meta import API_VERSION, GROUP, VERSION
from aisched.api.objects import ObjectView, rfc3339
from aisched.kube.client import ApiError, ApiUnavailable, KubeClient, resource_path
from aisched.kube.retry import Backoff, until_stopped
from aisched.observability.logging import get_logger

__all__ = ["PublishStopped", "Publisher", "lease_name"]

log = get_logger(__name__)
T = TypeVar("T")

LEASE_DURATION_SECONDS: Final = 40
# A refusal is retried as if this many attempts had failed already: at the default backoff's cap.
_REFUSAL_ATTEMPT: Final = 8


def lease_name(node: str) -> str:
    return f"aisched-agent-{node}"


class PublishStopped(Exception):  # noqa: N818 - an outcome the caller asked for, not a failure
    """Publishing was given up because the agent is stopping."""

    def __init__(self, what: str) -> None:
        super().__init__(f"gave up publishing {what}: the agent is stopping")
        self.what = what


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event | None, what: str) -> T:
    """`await work`, unless `stop` is set first: then cancel it and raise PublishStopped."""
    if stop is None:
        return await work
    task = asyncio.ensure_future(work)
    if not await until_stopped(task, stop):
        raise PublishStopped(what)
    return task.result()


class Publisher:
    """Writes what the agent knows to the API server, retrying until it gets through."""

    def __init__(
        self,
        client: KubeClient,
        *,
        node: str,
        namespace: str,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.node = node
        self.namespace = namespace
        self._now = now
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self.published_fingerprint: str | None = None

    async def retrying(
        self, what: str, attempt: Callable[[], Awaitable[T]], *, stop: asyncio.Event | None = None
    ) -> T:
        """Run `attempt` until it succeeds; back off on outages, conflicts and server errors.

        With `stop`: raise PublishStopped once it is set (the attempt in flight, or the wait
        before the next, is cancelled).
        """
        failures = 0
        while True:
            if stop is not None and stop.is_set():
                raise PublishStopped(what)
            try:
                return await _unless_stopped(attempt(), stop, what)
            except ApiUnavailable as exc:
                reason = f"API server unreachable: {exc}"
            except ApiError as exc:
                # A 409 is retried at the normal pace too: each attempt re-reads the object, so a
                # conflict (a stale resourceVersion, a create that raced) resolves itself. A refusal
                # (RBAC, validation) will not fix itself quickly: retry it slowly, loudly.
                if not (exc.transient or exc.status == 409):
                    failures = max(failures, _REFUSAL_ATTEMPT)
                reason = f"{exc.status} {exc.reason}: {exc.message}"
            delay = self._backoff.delay(failures)
            log.bind(node=self.node).warning(
                "publish_retry", what=what, reason=reason, delay_s=round(delay, 2)
            )
            failures += 1
            await _unless_stopped(self._sleep(delay), stop, what)

    # -- GPUNodeTopology ---------------------------------------------------------------------

    def _topology_path(self, *, subresource: str | None = None) -> str:
        plural = GPUNodeTopology.PLURAL
        return resource_path(
            group=GROUP, version=VERSION, plural=plural, name=self.node, subresource=subresource
        )

    def _node_path(self) -> str:
        return resource_path(group="", version="v1", plural="nodes", name=self.node)

    async def _node_uid(self) -> str:
        """The Node's uid, read afresh: a Node deleted and re-registered has a new one."""
        node = await self.client.get(self._node_path())
        return ObjectView(node).uid

    async def publish_topology(
        self, desired: Callable[[], GPUNodeTopologyStatus], *, stop: asyncio.Event | None = None
    ) -> bool:
        """Make the object's status equal `desired()`, creating the object if it is missing;
        False when its fingerprint already matched."""
        return await self.retrying("gpunodetopology", lambda: self._publish_topology(desired()), stop=stop)

    async def _publish_topology(self, status: GPUNodeTopologyStatus) -> bool:
        try:
            current = await self.client.get(self._topology_path())
        except ApiError as exc:
            if exc.status != 404:
                raise
            current = await self.client.post(
                resource_path(group=GROUP, version=VERSION, plural=GPUNodeTopology.PLURAL),
                await self._new_object(),
            )
        if ObjectView(current).status.get("fingerprint") == status.fingerprint:
            self.published_fingerprint = status.fingerprint
            return False
        body = dict(current)
        body["status"] = status.model_copy(
            update={"agent_version": __version__, "last_update_time": self._now()}
        ).to_dict()
        await self.client.put(self._topology_path(subresource="status"), body)
        self.published_fingerprint = status.fingerprint
        log.bind(node=self.node).info(
            "topology_published", gpus=len(status.gpus), fingerprint=status.fingerprint
        )
        return True

    async def _new_object(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": GPUNodeTopology.KIND,
            "metadata": {
                "name": self.node,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": await self._node_uid()}
                ],
            },
            "spec": {"nodeName": self.node},
        }

    # -- Node labels ---------------------------------------------------------------------

    async def label_node(
        self, status: GPUNodeTopologyStatus, *, stop: asyncio.Event | None = None
    ) -> dict[str, str]:
        """Add the GPU product, count and memory labels the Node lacks; returns what was added.

        Product and memory come from the first healthy GPU (a lost one tells neither); with no
        healthy GPU, no labels are added.
        """
        return await self.retrying("node-labels", lambda: self._label_node(status), stop=stop)

    async def _label_node(self, status: GPUNodeTopologyStatus) -> dict[str, str]:
        first = next((gpu for gpu in status.gpus if gpu.health == "Healthy"), None)
        if first is None:
            return {}
        path = self._node_path()
        node = await self.client.get(path)
        existing = ObjectView(node).labels
        wanted = {
            keys.LABEL_GPU_PRODUCT: first.model,
            keys.LABEL_GPU_COUNT: str(len(status.gpus)),
            keys.LABEL_GPU_MEMORY: str(first.memory.value() // 2**20),
        }
        missing = {k: v for k, v in wanted.items() if k not in existing}
        if missing:
            await self.client.patch(path, {"metadata": {"labels": missing}}, patch="merge")
            log.bind(node=self.node).info("node_labelled", labels=missing)
        return missing

    # -- Lease -----------------------------------------------------------------------------

    async def renew_lease(self, *, stop: asyncio.Event | None = None) -> None:
        """Create or renew `aisched-agent-<node>`: the scheduler's sign that this agent is alive."""
        await self.retrying("lease", self._renew_lease, stop=stop)

    def _lease_path(self, *, name: str | None = None) -> str:
        return resource_path(
            group="coordination.k8s.io", version="v1", plural="leases", namespace=self.namespace, name=name
        )

    async def _renew_lease(self) -> None:
        now = rfc3339(self._now(), micro=True)
        try:
            lease = await self.client.get(self._lease_path(name=lease_name(self.node)))
        except ApiError as exc:
            if exc.status != 404:
                raise
            await self.client.post(
                self._lease_path(),
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": lease_name(self.node), "namespace": self.namespace},
                    "spec": {
                        "holderIdentity": self.node,
                        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                        "acquireTime": now,
                        "renewTime": now,
                    },
                },
            )
            return
        lease.setdefault("spec", {})["renewTime"] = now
        lease["spec"]["holderIdentity"] = self.node
        await self.client.put(self._lease_path(name=lease_name(self.node)), lease)
