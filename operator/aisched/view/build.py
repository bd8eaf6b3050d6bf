"""`build_view`: the cluster view from the scheduling runtime's books, read and never written.

One pass over the cache's nodes and the pods on each (O(nodes + pods)), one ranking of the queue,
the tenants and the decision log's newest entries. Only what is drawn is kept: a cluster of more
than `DETAIL_NODES` nodes is shown by its racks' totals, and one rack at a time node by node; the
queue's first `QUEUE_SHOWN` gangs and the last `DECISIONS_SHOWN` decisions.

The data is the cluster's and may be odd (a pod on a GPU index its node has not, two pods on one
whole GPU, a MIG profile its GPU lacks): what can be placed is drawn, the rest is said in the
node's `problems`. A node whose reading fails outright is drawn by its name and the error, and
every other node as usual.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aisched.api.mig import MIG_MEMORY_SLOTS, mig_profiles_for
from aisched.api.objects import ObjectView
from aisched.cache import PodUsage
from aisched.framework.reservations import Reservation
from aisched.observability.logging import get_logger
from aisched.quota.tenants import GPU_MILLI, gang_usage
from aisched.topology import resources
from aisched.topology.gpu import GPU, GPUTopology
from aisched.topology.node import NodeInfo
from aisched.view.model import (
    MILLI,
    NO_DOMAIN,
    Block,
    ClusterView,
    Gpu,
    Holder,
    Node,
    Owner,
    Queue,
    Rack,
    Summary,
    TenantUsage,
    Waiting,
)

if TYPE_CHECKING:
    from aisched.controllers.scheduling.runtime import SchedulerRuntime

__all__ = [
    "DECISIONS_SHOWN",
    "DETAIL_NODES",
    "QUEUE_SHOWN",
    "ZOOM_NODES",
    "build_view",
    "job_name",
    "natural",
    "owner_name",
]

log = get_logger(__name__)

#: Up to this many nodes, every node is drawn; beyond, racks are shown by their totals.
DETAIL_NODES: Final = 64
#: The most nodes of one zoomed rack drawn (a rack label missing from a thousand nodes makes one
#: huge "rack").
ZOOM_NODES: Final = 256
QUEUE_SHOWN: Final = 100
DECISIONS_SHOWN: Final = 50
_SLOT_MILLI: Final = MILLI // MIG_MEMORY_SLOTS
_DIGITS: Final = re.compile(r"(\d+)")

_T = TypeVar("_T")
OwnerOf = Callable[[str | None, str], tuple[str, str | None]]


def build_view(
    runtime: SchedulerRuntime,
    *,
    now: float,
    rack: str | None = None,
    jobs: Iterable[Mapping[str, Any]] = (),
) -> ClusterView:
    """The view of `runtime` at `now` (epoch seconds), zoomed into `rack` if given; `jobs` the
    AIJobs known (counted by phase)."""
    owner_of = _owners(runtime)
    reserved = _reserved_nodes(runtime.scheduler.reservations)
    nodes = [_node_or_problem(info, runtime, owner_of, reserved) for info in runtime.cache.nodes()]
    detailed = len(nodes) <= DETAIL_NODES
    blocks = _blocks(nodes, detailed=detailed, zoom=rack)
    problems: list[str] = []
    queue = _guarded(lambda: _queue(runtime, owner_of), Queue(waiting=(), total=0), "queue", problems)
    used_by = Counter[str]()
    for node in nodes:
        for gpu in node.gpus:
            for holder in gpu.holders:
                used_by[holder.owner] += holder.milli
    no_tenants: tuple[TenantUsage, ...] = ()
    tenants = _guarded(lambda: _tenants(runtime, used_by), no_tenants, "tenants", problems)
    return ClusterView(
        generated_at=now,
        summary=_summary(nodes, runtime, jobs),
        blocks=blocks,
        queue=queue,
        tenants=tenants,
        owners=tuple(Owner(name, used) for name, used in sorted(used_by.items(), key=_largest_first)),
        decisions=tuple(runtime.decisions.latest(DECISIONS_SHOWN)),
        detailed=detailed,
        rack=rack,
        rack_found=rack is None or any(r.name == rack for b in blocks for r in b.racks),
        block_label=runtime.domains.block,
        rack_label=runtime.domains.rack,
        problems=tuple(problems),
    )


def _largest_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _guarded(read: Callable[[], _T], fallback: _T, what: str, problems: list[str]) -> _T:
    """`read()`, or `fallback` with the error noted when the data defeats it."""
    try:
        return read()
    except Exception as exc:  # odd data must not take the whole page down
        log.warning("view_section_unreadable", section=what, error=repr(exc))
        problems.append(f"the {what} could not be read: {type(exc).__name__}: {exc}")
        return fallback


# -- who holds what ----------------------------------------------------------------------------------


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


def _owners(runtime: SchedulerRuntime) -> OwnerOf:
    """(owner, tenant) of what a pod naming tenant `named` in a namespace holds; looked up once
    per (named, namespace)."""
    ledger = runtime.ledger
    seen: dict[tuple[str | None, str], tuple[str, str | None]] = {}

    def owner_of(named: str | None, namespace: str) -> tuple[str, str | None]:
        found = seen.get((named, namespace))
        if found is None:
            tenant = ledger.charged_to(named, namespace)
            found = seen[(named, namespace)] = (owner_name(tenant, namespace), tenant)
        return found

    return owner_of


def _reserved_nodes(reservations: Iterable[Reservation]) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for reservation in reservations:
        for name in reservation.held:
            held.setdefault(name, []).append(reservation.gang)
    return held


# -- nodes -----------------------------------------------------------------------------------------------


def _node_or_problem(
    info: NodeInfo, runtime: SchedulerRuntime, owner_of: OwnerOf, reserved: Mapping[str, list[str]]
) -> Node:
    try:
        return _node(info, runtime.cache.pods_on(info.name), owner_of, reserved.get(info.name, ()))
    except Exception as exc:  # one node's odd data must not take the page down
        log.warning("view_node_unreadable", node=info.name, error=repr(exc))
        labels = info.labels if isinstance(info.labels, Mapping) else {}
        return Node(
            name=str(info.name),
            rack=str(labels.get(info.domains.rack) or NO_DOMAIN),
            block=str(labels.get(info.domains.block) or NO_DOMAIN),
            model="",
            problems=(f"could not be read: {type(exc).__name__}: {exc}",),
        )


class _Cells:
    """One node's GPUs as they fill with holders."""

    def __init__(self, gpus: tuple[GPU, ...]) -> None:
        self.gpus = gpus
        self.holders: list[list[Holder]] = [[] for _ in gpus]
        self.index_of = {g.uuid: g.index for g in gpus}
        self.problems: list[str] = []

    def used(self, index: int) -> int:
        return sum(h.milli for h in self.holders[index])

    def add(self, index: int, holder: Holder) -> None:
        if not 0 <= index < len(self.gpus):
            self.problems.append(f"{holder.pod} holds GPU {index}, which this node does not have")
            return
        self.holders[index].append(holder)

    def first_free(self) -> int | None:
        """The first GPU nothing holds, healthy ones first (where a pod of unknown devices is drawn)."""
        free = [g.index for g in self.gpus if not self.holders[g.index] and not g.mig_enabled]
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


def _node(info: NodeInfo, pods: list[PodUsage], owner_of: OwnerOf, reserved: Iterable[str]) -> Node:
    topology = info.gpu_topology()
    cells = _Cells(topology.gpus)
    unplaced: list[tuple[PodUsage, Holder]] = []
    for usage in sorted(pods, key=lambda u: u.key):
        _hold(usage, cells, topology, owner_of, unplaced)
    for usage, holder in unplaced:  # whole GPUs of unknown devices, drawn on free ones
        for _ in range(usage.gpus):
            index = cells.first_free()
            if index is None:
                cells.problems.append(f"{usage.key} holds more GPUs than are free to draw it on")
                break
            cells.add(index, holder)
    allocatable = info.allocatable.get(resources.GPU, 0)
    if topology.known and allocatable != topology.count:
        cells.problems.append(f"{topology.count} GPUs published, {allocatable} allocatable")
    gpus = tuple(_gpu(g, cells) for g in topology.gpus)
    for gpu in gpus:
        whole = [h for h in gpu.holders if h.milli == MILLI and not h.mig]
        if len(gpu.holders) > 1 and whole:
            cells.problems.append(f"GPU {gpu.index} is held by {len(gpu.holders)} pods, one of them whole")
    return Node(
        name=info.name,
        rack=info.rack or NO_DOMAIN,
        block=info.block or NO_DOMAIN,
        model=info.gpu_model or "",
        ready=info.ready,
        schedulable=not info.unschedulable,
        cooling=info.cooling,
        wired=topology.known,
        gpus=gpus,
        pods=len(pods),
        reserved_for=tuple(reserved),
        problems=tuple(cells.problems),
    )


def _hold(
    usage: PodUsage,
    cells: _Cells,
    topology: GPUTopology,
    owner_of: OwnerOf,
    unplaced: list[tuple[PodUsage, Holder]],
) -> None:
    """Put what `usage` holds on its node's GPUs (or, devices unknown, in `unplaced`)."""
    if not (usage.gpus or usage.shares_gpu or usage.mig is not None):
        return
    owner, tenant = owner_of(usage.tenant, usage.namespace)
    holder = Holder(
        pod=usage.key,
        gang=usage.gang_key,
        job=job_name(usage.gang_key, usage.key),
        owner=owner,
        tenant=tenant,
        milli=MILLI,
        assumed=usage.assumed,
    )
    indices = _indices(usage, cells)
    if usage.mig is not None:
        _hold_mig(usage, holder, indices, cells, topology)
    elif usage.shares_gpu:
        index = indices[0] if len(indices) == 1 else None
        milli = usage.gpu_milli
        if not milli and index is not None and cells.gpus[index].memory_bytes:
            milli = min(MILLI, math.ceil(usage.gpu_memory * MILLI / cells.gpus[index].memory_bytes))
        share = replace(holder, milli=milli, memory=usage.gpu_memory)
        if index is None:
            index = cells.best_fit(milli)
            share = replace(share, exact=False)
        if index is None:
            cells.problems.append(f"{usage.key} shares a GPU that cannot be told")
            return
        cells.add(index, share)
    elif indices:
        for index in indices:
            cells.add(index, holder)
    else:
        unplaced.append((usage, replace(holder, exact=False)))


def _indices(usage: PodUsage, cells: _Cells) -> list[int]:
    """The GPU indices `usage` names, by mask or by UUID (all UUIDs known, else none)."""
    if usage.gpu_mask is not None:
        return [i for i in range(usage.gpu_mask.bit_length()) if usage.gpu_mask >> i & 1]
    if usage.gpu_uuids and all(u in cells.index_of for u in usage.gpu_uuids):
        return [cells.index_of[u] for u in usage.gpu_uuids]
    return []


def _hold_mig(
    usage: PodUsage, holder: Holder, indices: list[int], cells: _Cells, topology: GPUTopology
) -> None:
    assert usage.mig is not None
    name, start = usage.mig
    index = indices[0] if len(indices) == 1 else None
    on_gpu = index is not None and 0 <= index < topology.count
    model = topology.gpus[index].model if on_gpu and index is not None else topology.model
    profile = mig_profiles_for(model).get(name)
    milli = profile.memory_slots * _SLOT_MILLI if profile is not None else 0
    slots = profile.slots_at(start) if profile is not None and start is not None else 0
    instance = replace(holder, milli=milli, mig=name, slots=slots, exact=bool(slots) and index is not None)
    if profile is None:
        cells.problems.append(f"{usage.key} holds MIG {name}, a profile {model or 'this GPU'} does not offer")
    if index is None:
        mig = [g.index for g in topology.gpus if g.mig_enabled]
        if not mig:
            cells.problems.append(f"{usage.key} holds MIG {name} on a node with no MIG-enabled GPU")
            return
        index = mig[0]
    cells.add(index, instance)


def _gpu(gpu: GPU, cells: _Cells) -> Gpu:
    holders = tuple(cells.holders[gpu.index])
    if gpu.mig_enabled:
        slots = 0
        for holder in holders:
            slots |= holder.slots
        known = slots.bit_count() * _SLOT_MILLI
        unknown = sum(h.milli for h in holders if not h.slots)
        used = min(MILLI, known + unknown)
    else:
        used = min(MILLI, sum(h.milli for h in holders))
    return Gpu(
        index=gpu.index,
        uuid=gpu.uuid,
        model=gpu.model,
        memory=gpu.memory_bytes,
        healthy=gpu.healthy,
        holders=holders,
        used=used,
        mig=gpu.mig_enabled,
        foreign_slots=gpu.mig_mask if gpu.mig_enabled else 0,
    )


# -- racks and blocks -----------------------------------------------------------------------------------


def natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key reading digit runs as numbers (`node-2` before `node-10`)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name) if part)


def _blocks(nodes: list[Node], *, detailed: bool, zoom: str | None) -> tuple[Block, ...]:
    grouped: dict[tuple[str, str], list[Node]] = {}
    for node in nodes:
        grouped.setdefault((node.block, node.rack), []).append(node)
    racks: dict[str, list[Rack]] = {}
    for (block, name), members in grouped.items():
        members.sort(key=lambda n: natural(n.name))
        shown = name == zoom if zoom is not None else detailed
        racks.setdefault(block, []).append(_rack(name, block, members, shown=shown))
    return tuple(
        Block(name=block, racks=tuple(sorted(found, key=lambda r: natural(r.name))))
        for block, found in sorted(racks.items(), key=lambda item: natural(item[0]))
    )


def _rack(name: str, block: str, nodes: list[Node], *, shown: bool) -> Rack:
    owners = Counter[str]()
    gpus = used_gpus = free = unhealthy = used = 0
    for node in nodes:
        for gpu in node.gpus:
            gpus += 1
            used += gpu.used
            if not gpu.healthy:
                unhealthy += 1
            if gpu.holders:
                used_gpus += 1
            elif gpu.healthy and not gpu.foreign_slots:
                free += 1
            for holder in gpu.holders:
                owners[holder.owner] += holder.milli
    drawn = tuple(nodes[:ZOOM_NODES]) if shown else None
    return Rack(
        name=name,
        block=block,
        nodes_total=len(nodes),
        nodes_ready=sum(1 for n in nodes if n.ready),
        gpus=gpus,
        gpus_used=used_gpus,
        gpus_free=free,
        gpus_unhealthy=unhealthy,
        used=used,
        owners=tuple(sorted(owners.items(), key=_largest_first)),
        nodes=drawn,
        hidden=len(nodes) - len(drawn) if drawn is not None else 0,
    )


def _summary(nodes: list[Node], runtime: SchedulerRuntime, jobs: Iterable[Mapping[str, Any]]) -> Summary:
    phases = Counter(str(ObjectView(job).status.get("phase") or "Pending") for job in jobs)
    gpus = [gpu for node in nodes for gpu in node.gpus]
    return Summary(
        nodes=len(nodes),
        nodes_ready=sum(1 for n in nodes if n.ready),
        nodes_cooling=sum(1 for n in nodes if n.cooling),
        gpus=len(gpus),
        used=sum(g.used for g in gpus),
        gpus_unhealthy=sum(1 for g in gpus if not g.healthy),
        pods=sum(n.pods for n in nodes),
        binding=len(runtime.cache.assumed()),
        reservations=len(runtime.scheduler.reservations),
        jobs=dict(sorted(phases.items())),
    )


# -- queue and tenants -------------------------------------------------------------------------------------


def _queue(runtime: SchedulerRuntime, owner_of: OwnerOf) -> Queue:
    queue = runtime.queue
    positions = queue.positions()
    aside = math.inf  # gangs out of their line (they fit nowhere even on an empty cluster) come last

    def rank(key: str) -> tuple[float, str, str]:
        found = positions.get(key)
        return (found[1], found[0], key) if found is not None else (aside, "", key)

    first = heapq.nsmallest(QUEUE_SHOWN, queue, key=rank)
    now = runtime.clock()
    waiting = []
    for key in first:
        line = queue.line_of(key)
        place = positions.get(key)
        state = queue.state(key)
        since = queue.waiting_since(key)
        gang = runtime.gangs.gang(key)
        members = gang.members if gang is not None else ()
        namespace = gang.namespace if gang is not None else key.partition("/")[0]
        owner, tenant = owner_of(gang.tenant if gang is not None else None, namespace)
        reservation = runtime.scheduler.reservations.get(key)
        waiting.append(
            Waiting(
                gang=key,
                job=job_name(key, members[0].key if members else key),
                namespace=namespace,
                owner=owner,
                tenant=tenant,
                queue=line[0] if line is not None else "",
                strategy=line[1].strategy if line is not None else "",
                position=place[1] if place is not None else 0,
                length=place[2] if place is not None else 0,
                state=state.value if state is not None else "",
                pods=len(members),
                min_member=gang.min_member if gang is not None else 0,
                gpus=gang_usage(members).get(GPU_MILLI, 0),
                priority=gang.priority if gang is not None else 0,
                waited=max(0.0, now - since) if since is not None else None,
                reason=queue.reason(key),
                reservation=reservation.describe() if reservation is not None else None,
                reserved_nodes=reservation.held if reservation is not None else (),
            )
        )
    return Queue(
        waiting=tuple(waiting),
        total=len(queue),
        states={state.value: count for state, count in queue.depth().items()},
    )


def _tenants(runtime: SchedulerRuntime, used_by: Mapping[str, int]) -> tuple[TenantUsage, ...]:
    """Every TenantQuota's GPUs, then the namespaces no tenant lists that hold GPUs."""
    ledger = runtime.ledger
    rows = []
    for tenant in ledger.tenants():
        rows.append(
            TenantUsage(
                name=tenant.name,
                owner=owner_name(tenant.name, ""),
                listed=True,
                used=ledger.used(tenant.name).get(GPU_MILLI, 0),
                guaranteed=tenant.guaranteed.get(GPU_MILLI),
                maximum=tenant.maximum.get(GPU_MILLI),
                borrowed=ledger.borrowed(tenant.name).get(GPU_MILLI, 0),
                cohort=tenant.cohort,
                weight=tenant.weight,
                namespaces=tuple(sorted(tenant.namespaces)),
            )
        )
    prefix = owner_name(None, "")
    for owner, used in sorted(used_by.items()):
        if owner.startswith(prefix):
            namespace = owner.removeprefix(prefix)
            rows.append(
                TenantUsage(name=namespace, owner=owner, listed=False, used=used, namespaces=(namespace,))
            )
    return tuple(rows)
