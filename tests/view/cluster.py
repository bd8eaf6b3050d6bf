"""A scheduling runtime with no API server behind it, fed directly: nodes and bound pods into its
cache, pending pods through its pods informer's handler, cycles run by hand. What the view tests
build their views from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Final

from aisched.cache import PodUsage
from aisched.controllers.scheduling import SchedulerRuntime
from aisched.kube.client import JsonObject
from aisched.kube.informer import index_key
from aisched.quota import Tenant
from aisched.topology import resources
from aisched.topology.node import NodeInfo
from tests.binder.fakes import FakeClock
from tests.controllers.scheduling.test_framework_gang_book import Inert
from tests.support.core import GiB, node

__all__ = ["WALL", "Cluster", "Unreadable", "held", "node", "pending", "unhealthy"]

#: The wall clock the views are dated by.
WALL: Final = 1_800_000_000.0


class Cluster:
    """A runtime and its clocks; `clock` the monotonic one the queue runs on."""

    def __init__(self, *nodes: NodeInfo, tenants: Iterable[Tenant] = ()) -> None:
        self.clock = FakeClock(100.0)
        self.wall = FakeClock(WALL)
        self.runtime = SchedulerRuntime(Inert(), clock=self.clock, wall=self.wall)
        for info in nodes:
            self.runtime.cache.set_node(info)
        if tenants:
            self.runtime.set_tenants(tenants)

    def bind(self, *usages: PodUsage) -> None:
        for usage in usages:
            self.runtime.cache.set_pod(usage)

    def submit(self, *pods: JsonObject) -> None:
        """The pods informer delivers pending `pods`: they join their gangs and the queue."""
        for obj in pods:
            self.runtime.pods._index[index_key(obj)] = obj
            self.runtime.watch.pods.on_add(obj)

    def cycle(self) -> None:
        """The loop pops the next gang and runs one scheduling cycle on it."""
        gang = self.runtime.queue.pop()
        assert gang is not None, "nothing to schedule"
        self.runtime._cycle(gang)


def held(
    pod: str,
    on: str,
    *,
    gpus: int = 0,
    mask: int | None = None,
    gang: str = "",
    tenant: str | None = None,
    **fields: Any,
) -> PodUsage:
    """A bound pod `namespace/name` on node `on` holding `gpus` whole GPUs (by `mask` if given)."""
    requests = {resources.CPU: 1000, resources.MEMORY: GiB, resources.PODS: 1}
    if gpus:
        requests[resources.GPU] = gpus
    return PodUsage(key=pod, node=on, requests=requests, gpu_mask=mask, gang=gang, tenant=tenant, **fields)


def pending(
    name: str,
    *,
    namespace: str = "ml",
    gpus: int = 8,
    gang: str | None = None,
    members: int | None = None,
    created: str = "2026-12-01T00:00:00Z",
) -> JsonObject:
    """A pending pod of aisched asking for `gpus` GPUs, in gang `gang` of `members` if given."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "resourceVersion": "7",
        "creationTimestamp": created,
        "labels": {"aisched.io/gang": gang} if gang else {},
        "annotations": {"aisched.io/gang-min-member": str(members)} if members else {},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "schedulerName": "aisched",
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": gpus}}}],
        },
        "status": {"phase": "Pending"},
    }


def unhealthy(info: NodeInfo, *indices: int) -> NodeInfo:
    """`info` with the GPUs `indices` reported unhealthy by its agent."""
    topology = info.gpu_topology()
    gpus = tuple(replace(g, healthy=False) if g.index in indices else g for g in topology.gpus)
    return replace(info, gpus=replace(topology, gpus=gpus))


class Unreadable:
    """A GPU topology every read of which fails: data nobody foresaw."""

    def __getattr__(self, name: str) -> object:
        raise ValueError(f"cannot read {name}")
