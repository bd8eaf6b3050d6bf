"""One node as the view reads it from the cache: its GPUs, what each pod holds on which, its totals.

A pod's hold is placed by what it names (a GPU mask, UUIDs, a MIG instance's first slot); a pod
whose devices are unknown (bound by someone else) is drawn where it is counted, on the first
free GPUs, marked inexact, as the cache charges it. Odd data (a GPU index the node has not, two
pods on one whole GPU, a MIG profile its GPU lacks) is drawn as far as it goes and said in the
node's `problems`; a node whose reading fails outright keeps its name and the error.

The totals (GPUs used, free, unhealthy, thousandths held per owner) are read for every node; the
`Gpu` and `Holder` values only for the nodes drawn, which keeps a big cluster's view cheap.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, NamedTuple

from aisched.api.mig import MIG_MEMORY_SLOTS, mig_profiles_for
from aisched.cache import PodUsage
from aisched.observability.logging import get_logger
from aisched.topology import resources
from aisched.topology.gpu import GPU, GPUTopology
from aisched.topology.node import NodeInfo
from aisched.view.model import MILLI, NO_DOMAIN, Gpu, Holder, Node

__all__ = ["NodeReading", "OwnerOf", "job_name", "owner_name", "read_node"]

log = get_logger(__name__)

_SLOT_MILLI: Final = MILLI // MIG_MEMORY_SLOTS

#: (owner, tenant) of what a pod naming tenant `named` (or None) in `namespace` holds.
OwnerOf = Callable[[str | None, str], tuple[str, str | None]]


def owner_name(tenant: str | None, namespace: str) -> str:
    """Whom GPUs are coloured by: the tenant, else the namespace (which no tenant name can equal:
    tenant names hold no spaces)."""
    return tenant if tenant else f"namespace {namespace}"


def job_name(gang: str, pod: str) -> str:
    """What a person calls the job of gang key `gang`: the gang's name (an AIJob's name, a
    PodGroup's, ...), else the pod's own name (a lone pod, an elastic job's surplus pod)."""
    _, marker, name = gang.partition("/gang:")
    if marker and name and not name.startswith("surplus_"):
        return name
    return pod.partition("/")[2] or pod


@dataclass(slots=True)
class NodeReading:
    """A node's totals, and the node as drawn (its `gpus` empty unless it is drawn)."""

    node: Node
    gpus: int = 0
    gpus_used: int = 0
    gpus_free: int = 0
    gpus_unhealthy: int = 0
    #: Thousandths of a GPU held, in all and per owner.
    used: int = 0
    owners: Counter[str] = field(default_factory=Counter)


def read_node(
    info: NodeInfo,
    pods: list[PodUsage],
    *,
    owner_of: OwnerOf,
    reserved: Iterable[str] = (),
    spare: Iterable[str] = (),
    draw: bool,
) -> NodeReading:
    """`info` with the `pods` on it, held for the gangs `reserved` (to start there) and `spare` (in
    case it frees first); its GPUs drawn one by one if `draw`. Never raises: a node that cannot be
    read is returned with its name and the error."""
    try:
        reading = _read(info, pods, owner_of=owner_of, draw=draw)
    except Exception as exc:  # one node's odd data must not take the whole view down
        log.warning("view_node_unreadable", node=info.name, error=repr(exc))
        return NodeReading(node=_unreadable(info, exc))
    reserved, spare = tuple(reserved), tuple(spare)
    if reserved or spare:
        reading.node = replace(reading.node, reserved_for=reserved, spare_for=spare)
    return reading


def _unreadable(info: NodeInfo, error: Exception) -> Node:
    """What is known of a node whose reading failed: its name, rack and block, and the error."""
    labels = info.labels if isinstance(info.labels, Mapping) else {}
    return Node(
        name=str(info.name),
        rack=str(labels.get(info.domains.rack) or NO_DOMAIN),
        block=str(labels.get(info.domains.block) or NO_DOMAIN),
        model="",
        problems=(f"could not be read: {type(error).__name__}: {error}",),
    )


class _Hold(NamedTuple):
    """What one pod holds of one GPU (thousandths; a share's memory; a MIG profile and slots)."""

    usage: PodUsage
    milli: int
    memory: int = 0
    mig: str | None = None
    slots: int = 0
    exact: bool = True


class _Cells:
    """One node's GPUs as they fill with holds."""

    def __init__(self, gpus: tuple[GPU, ...]) -> None:
        self.gpus = gpus
        self.holds: list[list[_Hold]] = [[] for _ in gpus]
        self.index_of = {g.uuid: g.index for g in gpus}
        self.problems: list[str] = []

    def used(self, index: int) -> int:
        return sum(h.milli for h in self.holds[index])

    def add(self, index: int, hold: _Hold) -> None:
        if not 0 <= index < len(self.gpus):
            self.problems.append(f"{hold.usage.key} holds GPU {index}, which this node does not have")
            return
        self.holds[index].append(hold)

    def first_free(self) -> int | None:
        """The first GPU nothing holds, healthy ones first (where a pod of unknown devices is drawn)."""
        free = [g.index for g in self.gpus if not self.holds[g.index] and not g.mig_enabled]
        healthy = [i for i in free if self.gpus[i].healthy]
        found = healthy or free
        return found[0] if found else None

    def best_fit(self, milli: int) -> int | None:
        """The fullest GPU a share of `milli` still fits on (as the scheduler counts such a share)."""
        fits = [
            (MILLI - self.used(g.index) - milli, g.index)
            for g in self.gpus
            if not g.mig_enabled and self.used(g.index) + milli <= MILLI
        ]
        return min(fits)[1] if fits else None


def _read(info: NodeInfo, pods: list[PodUsage], *, owner_of: OwnerOf, draw: bool) -> NodeReading:
    topology = info.gpu_topology()
    cells = _Cells(topology.gpus)
    unplaced: list[_Hold] = []
    for usage in sorted(pods, key=lambda u: u.key) if draw else pods:
        _hold(usage, cells, topology, unplaced)
    for hold in unplaced:  # whole GPUs of unknown devices, drawn on free ones
        for _ in range(hold.usage.gpus):
            index = cells.first_free()
            if index is None:
                cells.problems.append(f"{hold.usage.key} holds more GPUs than are free to draw it on")
                break
            cells.add(index, hold)
    allocatable = info.allocatable.get(resources.GPU, 0)
    if topology.known and allocatable != topology.count:
        cells.problems.append(f"{topology.count} GPUs published, {allocatable} allocatable")
    reading = NodeReading(node=Node(name=info.name, rack="", block="", model=""), gpus=topology.count)
    drawn = []
    for gpu, holds in zip(topology.gpus, cells.holds, strict=True):
        used = _used(gpu, holds)
        reading.used += used
        if not gpu.healthy:
            reading.gpus_unhealthy += 1
        if holds:
            reading.gpus_used += 1
            if len(holds) > 1 and any(h.milli == MILLI and h.mig is None for h in holds):
                cells.problems.append(f"GPU {gpu.index} is held by {len(holds)} pods, one of them whole")
        elif gpu.healthy and not (gpu.mig_enabled and gpu.mig_mask):
            reading.gpus_free += 1
        for hold in holds:
            reading.owners[owner_of(hold.usage.tenant, hold.usage.namespace)[0]] += hold.milli
        if draw:
            drawn.append(_gpu(gpu, holds, used, owner_of))
    reading.node = Node(
        name=info.name,
        rack=info.rack or NO_DOMAIN,
        block=info.block or NO_DOMAIN,
        model=info.gpu_model or "",
        ready=info.ready,
        schedulable=not info.unschedulable,
        cooling=info.cooling,
        wired=topology.known,
        gpus=tuple(drawn),
        pods=len(pods),
        problems=tuple(cells.problems),
    )
    return reading


def _hold(usage: PodUsage, cells: _Cells, topology: GPUTopology, unplaced: list[_Hold]) -> None:
    """Put what `usage` holds on its node's GPUs (or, devices unknown, in `unplaced`)."""
    if usage.mig is not None:
        _hold_mig(usage, cells, topology)
        return
    if not (usage.gpus or usage.shares_gpu):
        return
    indices = _indices(usage, cells)
    if usage.shares_gpu:
        index = indices[0] if len(indices) == 1 else None
        milli = usage.gpu_milli
        if not milli and index is not None and 0 <= index < topology.count:
            size = topology.gpus[index].memory_bytes
            milli = min(MILLI, math.ceil(usage.gpu_memory * MILLI / size)) if size else 0
        exact = index is not None
        if index is None:
            index = cells.best_fit(milli)
        if index is None:
            cells.problems.append(f"{usage.key} shares a GPU that cannot be told")
            return
        cells.add(index, _Hold(usage, milli, memory=usage.gpu_memory, exact=exact))
    elif indices:
        whole = _Hold(usage, MILLI)
        for index in indices:
            cells.add(index, whole)
    else:
        unplaced.append(_Hold(usage, MILLI, exact=False))


def _indices(usage: PodUsage, cells: _Cells) -> list[int]:
    """The GPU indices `usage` names, by mask or by UUID (all UUIDs known, else none)."""
    mask = usage.gpu_mask
    if mask is not None:
        return [i for i in range(mask.bit_length()) if mask >> i & 1]
    if usage.gpu_uuids and all(u in cells.index_of for u in usage.gpu_uuids):
        return [cells.index_of[u] for u in usage.gpu_uuids]
    return []


def _hold_mig(usage: PodUsage, cells: _Cells, topology: GPUTopology) -> None:
    assert usage.mig is not None
    name, start = usage.mig
    indices = _indices(usage, cells)
    index = indices[0] if len(indices) == 1 else None
    on_gpu = index is not None and 0 <= index < topology.count
    model = topology.gpus[index].model if on_gpu and index is not None else topology.model
    profile = mig_profiles_for(model).get(name)
    if profile is None:
        cells.problems.append(f"{usage.key} holds MIG {name}, a profile {model or 'this GPU'} does not offer")
    milli = profile.memory_slots * _SLOT_MILLI if profile is not None else 0
    slots = profile.slots_at(start) if profile is not None and start is not None else 0
    if index is None:
        mig = [g.index for g in topology.gpus if g.mig_enabled]
        if not mig:
            cells.problems.append(f"{usage.key} holds MIG {name} on a node with no MIG-enabled GPU")
            return
        index = mig[0]
    cells.add(index, _Hold(usage, milli, mig=name, slots=slots, exact=bool(slots) and on_gpu))


def _used(gpu: GPU, holds: list[_Hold]) -> int:
    """Thousandths of `gpu` its holds take: a MIG GPU's by the slots held (each slot once)."""
    if not gpu.mig_enabled:
        return min(MILLI, sum(h.milli for h in holds))
    slots = 0
    unknown = 0
    for hold in holds:
        slots |= hold.slots
        if not hold.slots:
            unknown += hold.milli
    return min(MILLI, slots.bit_count() * _SLOT_MILLI + unknown)


def _gpu(gpu: GPU, holds: list[_Hold], used: int, owner_of: OwnerOf) -> Gpu:
    holders = []
    for hold in holds:
        usage = hold.usage
        owner, tenant = owner_of(usage.tenant, usage.namespace)
        holders.append(
            Holder(
                pod=usage.key,
                gang=usage.gang_key,
                job=job_name(usage.gang_key, usage.key),
                owner=owner,
                tenant=tenant,
                milli=hold.milli,
                memory=hold.memory,
                mig=hold.mig,
                slots=hold.slots,
                assumed=usage.assumed,
                exact=hold.exact,
            )
        )
    return Gpu(
        index=gpu.index,
        uuid=gpu.uuid,
        model=gpu.model,
        memory=gpu.memory_bytes,
        healthy=gpu.healthy,
        holders=tuple(holders),
        used=used,
        mig=gpu.mig_enabled,
        foreign_slots=gpu.mig_mask if gpu.mig_enabled else 0,
    )
