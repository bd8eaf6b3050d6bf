"""Small builders for tests of the scheduling core: nodes, pods, gangs, a scheduler over them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aisched.api import keys
from aisched.cache import Cache
from aisched.framework.estimates import RuntimeEstimates
from aisched.framework.handle import Clock
from aisched.framework.nomination import Nomination
from aisched.framework.profile import Profile
from aisched.framework.reservations import ReservationBook
from aisched.framework.types import Gang, PodInfo, TopologyLevel, TopologyPolicy
from aisched.quota import QuotaLedger
from aisched.scheduler import Scheduler
from aisched.topology import resources
from aisched.topology.machines import MACHINES
from aisched.topology.node import NodeInfo, Taint
from aisched.topology.snapshot import Snapshot

GiB = 2**30


def node(
    name: str,
    *,
    machine: str | None = "dgx-h100",
    rack: str | None = None,
    block: str | None = None,
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Taint] = (),
    cpu: int = 200_000,
    memory: int = 1024 * GiB,
    pods: int = 110,
    gpus: int | None = None,
    extra: Mapping[str, int] | None = None,
    ready: bool = True,
    unschedulable: bool = False,
) -> NodeInfo:
    """A node; with `machine`, its GPUs and wiring come from that template (`machine=None`: no topology)."""
    all_labels = dict(labels or {})
    if rack:
        all_labels[keys.LABEL_RACK] = rack
    if block:
        all_labels[keys.LABEL_BLOCK] = block
    topology = MACHINES[machine].topology(node=name) if machine else None
    count = gpus if gpus is not None else (topology.count if topology else 0)
    if machine:
        all_labels.setdefault(keys.LABEL_GPU_PRODUCT, MACHINES[machine].gpu_model)
    allocatable = {resources.CPU: cpu, resources.MEMORY: memory, resources.PODS: pods, resources.GPU: count}
    allocatable.update(extra or {})
    return NodeInfo(
        name=name,
        labels=all_labels,
        taints=tuple(taints),
        allocatable=allocatable,
        ready=ready,
        unschedulable=unschedulable,
        gpus=topology,
    )


def pod(
    name: str,
    *,
    gpus: int = 0,
    cpu: int = 1000,
    memory: int = GiB,
    namespace: str = "ml",
    extra: Mapping[str, int] | None = None,
    **fields: Any,
) -> PodInfo:
    """A pending pod asking for `gpus` GPUs, `cpu` millicores and `memory` bytes."""
    requests = {resources.CPU: cpu, resources.MEMORY: memory, resources.PODS: 1}
    if gpus:
        requests[resources.GPU] = gpus
    requests.update(extra or {})
    return PodInfo(namespace=namespace, name=name, requests=requests, **fields)


def gang(
    name: str,
    members: list[PodInfo],
    *,
    policy: TopologyPolicy = "Preferred",
    level: TopologyLevel | None = None,
    min_member: int | None = None,
) -> Gang:
    return Gang(
        key=f"ml/{name}",
        members=members,
        min_member=len(members) if min_member is None else min_member,
        topology_policy=policy,
        topology_level=level,
    )


def scheduler(nodes: Iterable[NodeInfo], *, profile: Profile | None = None) -> Scheduler:
    """A scheduler with the default plugins over a cache holding `nodes`."""
    cache = Cache()
    for info in nodes:
        cache.set_node(info)
    return Scheduler(profile=profile, cache=cache)


class NoPreemption:
    """A preemption evaluator that never finds room, counting what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def nominate(self, gang: Gang, *, max_candidates: int) -> Nomination | None:
        self.asked.append(gang.key)
        return None


@dataclass
class FakeHandle:
    """A `framework.handle.Handle` of plain parts, for plugins and frameworks built without a
    `Scheduler` around them."""

    profile: Profile = field(default_factory=Profile)
    clock: Clock = field(default=lambda: 0.0)
    cache: Cache = field(default_factory=Cache)
    snapshot: Snapshot = field(default_factory=Snapshot)
    ledger: QuotaLedger = field(default_factory=QuotaLedger)
    preemption: NoPreemption = field(default_factory=NoPreemption)
    reservations: ReservationBook = field(default_factory=ReservationBook)
    estimates: RuntimeEstimates = field(default_factory=lambda: RuntimeEstimates(lambda: 0.0))


def handle(**parts: Any) -> FakeHandle:
    return FakeHandle(**parts)
