"""`ReservationPlanner`: where and from when a gang that does not fit now will start.

The running pods are taken away in the order they are expected to end (from their runtime limits
or learned estimates; pods with no estimate last, oldest first), and the gang is dry-run placed
on a clone of the snapshot without them, against a what-if copy of the quota ledger (the
preemption Evaluator's machinery): the first point in that order at which it fits is its start,
and the nodes of that placement are the ones to hold. The reservations of gangs ahead of it are
honoured over its whole expected run (conservative backfill); once an unestimated pod has to go,
the start is unknown and the nodes are held as they free up. Searching the order takes a
handful of dry runs (doubling, then bisecting), each about one cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aisched.framework.reservations import Reservation, ReservationScope, order_of
from aisched.framework.types import Gang, GangPlacement

if TYPE_CHECKING:
    from aisched.scheduler.scheduler import Scheduler

__all__ = ["ReservationPlanner"]


@dataclass(frozen=True, slots=True)
class _Step:
    """The cluster after the first `gone` pods of the end order are gone, from `at` (None: unknown)."""

    gone: int
    at: float | None


class ReservationPlanner:
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        #: Dry runs made so far (each costs about one cycle).
        self.dry_runs = 0

    def plan(self, gang: Gang, *, queue: str, priority: int) -> Reservation | None:
        """The reservation `gang` (at queue priority `priority`) should hold, or None when it would
        not fit even with every running pod gone."""
        scheduler = self._scheduler
        now = scheduler.clock()
        order = order_of(gang, priority)
        ahead = tuple(r for r in scheduler.reservations.ahead_of(order) if r.gang != gang.key)
        keys, steps = self._steps(now, ahead)
        if not steps:
            return None
        duration = scheduler.estimates.gang_duration(gang)

        def fits(step: _Step) -> GangPlacement | None:
            self.dry_runs += 1
            gone = keys[: step.gone]
            snapshot = scheduler.snapshot.clone()
            scheduler.cache.write_without(snapshot, gone)
            scope = ReservationScope(ahead, step.at)
            return scheduler.dry_run(
                gang, snapshot=snapshot, quota=scheduler.ledger.without(gone), scope=scope
            )

        last = fits(steps[-1])
        if last is None:
            return None
        found, placement = len(steps) - 1, last
        low, probe = -1, 0  # steps[low] is known not to fit
        while probe < found:  # doubling, then bisecting, over the steps
            placed = fits(steps[probe])
            if placed is not None:
                found, placement = probe, placed
                break
            low, probe = probe, min(found, 2 * probe + 1)
        high = found
        while high - low > 1:
            middle = (low + high) // 2
            placed = fits(steps[middle])
            if placed is None:
                low = middle
            else:
                high, placement = middle, placed
        step = steps[high]
        start = step.at
        return Reservation(
            gang=gang.key,
            queue=queue,
            order=order,
            nodes=tuple(dict.fromkeys(p.node for p in placement.pods)),
            start=start,
            end=None if start is None or duration is None else start + duration,
            since=now,
            gpus=sum(p.pod.gpus for p in placement.pods),
            ready_nodes=self._ready_nodes(placement),
        )

    def _steps(self, now: float, ahead: tuple[Reservation, ...]) -> tuple[list[str], list[_Step]]:
        """The running pods in the order they should end, and the points to try along it: after
        each distinct end time (also the ends of reservations ahead), then each unestimated pod."""
        scheduler = self._scheduler
        estimates = scheduler.estimates
        known: list[tuple[float, str]] = []
        unknown: list[tuple[float, str]] = []
        for usage in scheduler.cache.pods():
            end = estimates.expected_end(usage, now)
            if end is None:
                unknown.append((usage.started, usage.key))
            else:
                known.append((end, usage.key))
        known.sort()
        unknown.sort()
        keys = [key for _, key in known] + [key for _, key in unknown]
        times = sorted(
            {end for end, _ in known} | {r.end for r in ahead if r.end is not None and r.end > now}
        )
        steps: list[_Step] = []
        index = 0
        for at in times:
            while index < len(known) and known[index][0] <= at:
                index += 1
            steps.append(_Step(index, at))
        steps.extend(_Step(len(known) + i + 1, None) for i in range(len(unknown)))
        if not steps or steps[-1].gone < len(keys):
            steps.append(_Step(len(keys), None if unknown else (times[-1] if times else now)))
        return keys, _thin(steps)

    def _ready_nodes(self, placement: GangPlacement) -> int:
        """Of the placement's nodes, those whose free GPUs already cover what it takes there."""
        snapshot = self._scheduler.snapshot
        wanted: dict[str, int] = {}
        for p in placement.pods:
            wanted[p.node] = wanted.get(p.node, 0) + p.pod.gpus
        free = snapshot.gpus_free_count()
        return sum(
            1
            for node, gpus in wanted.items()
            if (slot := snapshot.slot_of.get(node)) is not None and int(free[slot]) >= gpus
        )


def _thin(steps: list[_Step], most: int = 4096) -> list[_Step]:
    """At most `most` steps, keeping the last (a huge cluster is searched at a coarser grain)."""
    if len(steps) <= most:
        return steps
    stride = math.ceil(len(steps) / most)
    kept = steps[stride - 1 :: stride]
    if kept[-1] is not steps[-1]:
        kept.append(steps[-1])
    return kept
