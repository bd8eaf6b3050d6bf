"""`build_view`: the cluster view from the scheduling runtime's books, read and never written.

One pass over the cache's nodes and the pods on each (O(nodes + pods); `nodes` reads each one),
one ranking of the queue, the tenants and the decision log's newest entries. Only what is drawn
is kept: a cluster of more than `DETAIL_NODES` nodes is shown by its racks' totals, and one rack
at a time node by node; the queue's first `QUEUE_SHOWN` gangs and the last `DECISIONS_SHOWN`
decisions. A section the data defeats (the queue, the tenants) is left empty and said in the
view's `problems`; the rest is shown as usual.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aisched.api.objects import ObjectView
from aisched.framework.reservations import Reservation
from aisched.observability.logging import get_logger
from aisched.queue import job_of
from aisched.quota.tenants import GPU_MILLI, gang_usage
from aisched.view.model import (
    NO_DOMAIN,
    Block,
    ClusterView,
    Owner,
    Queue,
    Rack,
    Summary,
    TenantUsage,
    Waiting,
)
from aisched.view.nodes import NodeReading, OwnerOf, job_name, owner_name, read_node

if TYPE_CHECKING:
    from aisched.controllers.scheduling.runtime import SchedulerRuntime

__all__ = ["DECISIONS_SHOWN", "DETAIL_NODES", "QUEUE_SHOWN", "ZOOM_NODES", "build_view", "natural"]

log = get_logger(__name__)

#: Up to this many nodes, every node is drawn; beyond, racks are shown by their totals.
DETAIL_NODES: Final = 64
#: The most nodes of one zoomed rack drawn (a rack label missing from a thousand nodes makes one
#: huge "rack").
ZOOM_NODES: Final = 256
QUEUE_SHOWN: Final = 100
DECISIONS_SHOWN: Final = 50
_DIGITS: Final = re.compile(r"(\d+)")

_T = TypeVar("_T")


def build_view(
    runtime: SchedulerRuntime,
    *,
    now: float,
    rack: str | None = None,
    jobs: Iterable[Mapping[str, Any]] = (),
) -> ClusterView:
    """The view of `runtime` at `now` (epoch seconds), zoomed into `rack` if given; `jobs` the
    AIJobs known (counted by phase)."""
    cache = runtime.cache
    owner_of = _owners(runtime)
    reserved = _reserved_nodes(runtime.scheduler.reservations)
    detailed = cache.node_count <= DETAIL_NODES
    readings = []
    for info in cache.nodes():
        planned, spare = reserved.get(info.name, ((), ()))
        draw = (info.rack or NO_DOMAIN) == rack if rack is not None else detailed
        readings.append(
            read_node(
                info, cache.pods_on(info.name), owner_of=owner_of, reserved=planned, spare=spare, draw=draw
            )
        )
    blocks = _blocks(readings, zoom=rack, detailed=detailed)
    problems: list[str] = []
    queue = _guarded(lambda: _queue(runtime, owner_of), Queue(waiting=(), total=0), "queue", problems)
    used_by = Counter[str]()
    for reading in readings:
        used_by.update(reading.owners)
    no_tenants: tuple[TenantUsage, ...] = ()
    tenants = _guarded(lambda: _tenants(runtime, used_by), no_tenants, "tenants", problems)
    return ClusterView(
        generated_at=now,
        summary=_summary(readings, runtime, jobs),
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


def _reserved_nodes(reservations: Iterable[Reservation]) -> dict[str, tuple[list[str], list[str]]]:
    """node -> (gangs planned to start there, gangs holding it as a spare while nodes drain)."""
    held: dict[str, tuple[list[str], list[str]]] = {}
    for reservation in reservations:
        for name in reservation.nodes:
            held.setdefault(name, ([], []))[0].append(reservation.gang)
        for name in reservation.spare:
            held.setdefault(name, ([], []))[1].append(reservation.gang)
    return held


# -- racks and blocks -----------------------------------------------------------------------------------


def natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key reading digit runs as numbers (`node-2` before `node-10`)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name) if part)


def _blocks(readings: list[NodeReading], *, zoom: str | None, detailed: bool) -> tuple[Block, ...]:
    grouped: dict[tuple[str, str], list[NodeReading]] = {}
    for reading in readings:
        grouped.setdefault((reading.node.block, reading.node.rack), []).append(reading)
    racks: dict[str, list[Rack]] = {}
    for (block, name), members in grouped.items():
        drawn = name == zoom if zoom is not None else detailed
        racks.setdefault(block, []).append(_rack(name, block, members, drawn=drawn))
    return tuple(
        Block(name=block, racks=tuple(sorted(found, key=lambda r: natural(r.name))))
        for block, found in sorted(racks.items(), key=lambda item: natural(item[0]))
    )


def _rack(name: str, block: str, readings: list[NodeReading], *, drawn: bool) -> Rack:
    """A rack's totals, with its nodes if they are `drawn` (at most `ZOOM_NODES` of them)."""
    owners = Counter[str]()
    for reading in readings:
        owners.update(reading.owners)
    nodes = None
    hidden = 0
    if drawn:
        nodes = sorted((r.node for r in readings), key=lambda n: natural(n.name))
        hidden = max(0, len(nodes) - ZOOM_NODES)
        nodes = nodes[:ZOOM_NODES]
    return Rack(
        name=name,
        block=block,
        nodes_total=len(readings),
        nodes_ready=sum(1 for r in readings if r.node.ready),
        gpus=sum(r.gpus for r in readings),
        gpus_used=sum(r.gpus_used for r in readings),
        gpus_free=sum(r.gpus_free for r in readings),
        gpus_unhealthy=sum(r.gpus_unhealthy for r in readings),
        used=sum(r.used for r in readings),
        owners=tuple(sorted(owners.items(), key=_largest_first)),
        nodes=tuple(nodes) if nodes is not None else None,
        hidden=hidden,
    )


def _summary(
    readings: list[NodeReading], runtime: SchedulerRuntime, jobs: Iterable[Mapping[str, Any]]
) -> Summary:
    phases = Counter(str(ObjectView(job).status.get("phase") or "Pending") for job in jobs)
    return Summary(
        nodes=len(readings),
        nodes_ready=sum(1 for r in readings if r.node.ready),
        nodes_cooling=sum(1 for r in readings if r.node.cooling),
        gpus=sum(r.gpus for r in readings),
        used=sum(r.used for r in readings),
        gpus_unhealthy=sum(r.gpus_unhealthy for r in readings),
        pods=sum(r.node.pods for r in readings),
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
                job=job_of(gang) if gang is not None else job_name(key, key),
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
