"""`ReservationPlanner`: where and from when a gang that does not fit now will start.

The running pods are taken away in the order they are expected to end (from their runtime limits
or learned estimates; a pod with neither is guessed to run as long again as it has run), and
the gang is dry-run placed on a clone of the snapshot without them, against a what-if copy of
the quota ledger (the preemption Evaluator's machinery): the first point in that order at which
it fits is its start, and the nodes of that placement are the ones to hold. The reservations of
gangs ahead of it are honoured over its whole expected run (conservative backfill); once a pod
whose end is only guessed has to go, the start is not promised (the nodes are held as they free
up) but the guess is kept, so that a hold that outlives it is planned again. Searching the order
takes a handful of dry runs (doubling, then bisecting), each about one cycle.

Which node drains first is only known when enforced runtime limits bound every pod that must
leave. Otherwise, for a gang whose pods each need at least half the GPUs of the cluster's largest
node (a node must largely drain for each), the hold also covers every other node the gang could
start on (`spare`): the one planned may be the one whose last pod runs for days, and a single
planned node whose freed GPUs are held while every other node is refilled by smaller gangs can
starve it. Smaller pods need only one GPU to free somewhere, and the planned node serves them as
well as any. Such a gang that cannot be planned at all, because the holders ahead of it keep
every node it could use, still holds those nodes behind them, with no planned node and no start:
otherwise the gangs behind it, planned against fewer holders, would hold and refill the nodes it
waits for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aisched.cache import PodUsage
from aisched.framework.cycle_state import CycleState
from aisched.framework.reservations import Order, Reservation, ReservationScope, order_of
from aisched.framework.types import Gang, GangPlacement

if TYPE_CHECKING:
    from aisched.scheduler.scheduler import Scheduler

__all__ = ["ReservationPlanner"]


@dataclass(frozen=True, slots=True)
class _Step:
    """The cluster after the first `gone` pods of the end order are gone: from `at` if every one
    of them has an estimate (else None), from `guess` as best guessed."""

    gone: int
    at: float | None
    guess: float


class ReservationPlanner:
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        #: Dry runs made so far (each costs about one cycle).
        self.dry_runs = 0
        #: The running pods' end order as of (clock, cache version, estimates version): the gangs
        #: planned one after another in a round share it.
        self._order: tuple[tuple[float, int, int], list[tuple[float, bool, str]]] | None = None

    def plan(self, gang: Gang, *, queue: str, priority: int) -> Reservation | None:
        """The reservation `gang` (at queue priority `priority`) should hold, or None when it would
        not fit even with every running pod gone."""
        scheduler = self._scheduler
        now = scheduler.clock()
        order = order_of(gang, priority)
        ahead = tuple(r for r in scheduler.reservations.ahead_of(order) if r.gang != gang.key)
        keys, steps = self._steps(now, ahead)
        duration = scheduler.estimates.gang_duration(gang)

        def fits(step: _Step) -> GangPlacement | None:
            self.dry_runs += 1
            return scheduler.dry_run_without(gang, keys[: step.gone], scope=ReservationScope(ahead, step.at))

        last = fits(steps[-1])
        if last is None:
            return self._behind(gang, ahead, keys, queue=queue, order=order, now=now)
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
        start, enforced = self._promised(placement, keys[: step.gone], now)
        wants: dict[str, int] = {}
        for p in placement.pods:
            wants[p.node] = wants.get(p.node, 0) + p.pod.gpus
        spare = () if enforced or not self.drains(gang) else self._could_start_on(gang, set(wants))
        return Reservation(
            gang=gang.key,
            queue=queue,
            order=order,
            nodes=tuple(wants),
            start=start,
            end=None if start is None or duration is None else start + duration,
            since=now,
            guess=step.guess,
            wants=tuple(wants.values()),
            ready_nodes=self.ready_nodes(tuple(wants), tuple(wants.values())),
            ahead=tuple(r.gang for r in ahead),
            members=len(gang.members),
            spare=spare,
        )

    def _behind(
        self,
        gang: Gang,
        ahead: tuple[Reservation, ...],
        running: list[str],
        *,
        queue: str,
        order: Order,
        now: float,
    ) -> Reservation | None:
        """The hold of a gang that drains but can be planned nowhere yet, because holders ahead of
        it whose start nothing promises keep every node it could use: no planned node and no
        start, but those nodes kept from the gangs behind it, which would otherwise plan there,
        hold, and refill the nodes it waits for. It is planned again once the earliest expected
        start of those holders passes. None for a gang that does not drain, that some node is
        left to (a gang only its own missing limit keeps from planning holds nothing, as before),
        or that would not fit on an empty cluster."""
        if not ahead or not self.drains(gang):
            return None
        unpromised = [r for r in ahead if r.start is None or r.spare]
        kept = {node for r in unpromised for node in r.held}
        could = self._could_start_on(gang, set())
        if not could or not kept.issuperset(could):
            return None
        self.dry_runs += 1
        if self._scheduler.dry_run_without(gang, running, scope=ReservationScope((), None)) is None:
            return None
        expected = [t for r in unpromised if (t := r.start if r.start is not None else r.guess) is not None]
        return Reservation(
            gang=gang.key,
            queue=queue,
            order=order,
            nodes=(),
            start=None,
            end=None,
            since=now,
            guess=min(expected) if expected else None,
            ahead=tuple(r.gang for r in ahead),
            members=len(gang.members),
            spare=could,
        )

    def fits_when_empty(self, gang: Gang) -> bool:
        """Whether `gang` would fit were every running pod gone and nothing reserved: a gang for
        which this is false can never start as the cluster is (too big, or over its quota)."""
        self.dry_runs += 1
        running = [usage.key for usage in self._scheduler.cache.pods()]
        empty = ReservationScope((), None)
        return self._scheduler.dry_run_without(gang, running, scope=empty) is not None

    def _steps(self, now: float, ahead: tuple[Reservation, ...]) -> tuple[list[str], list[_Step]]:
        """The running pods in the order they should end, and the points to try along it: after
        each distinct end time (also the ends of reservations ahead).

        A pod with an estimate ends when it says. One without is guessed to run as long again as
        it has run so far (run times are heavy-tailed: the longer a pod has run, the longer it is
        likely to run on); the guess orders the pods but is never promised: from the first guessed
        pod on, the start is unknown."""
        order = self._end_order(now)
        keys = [key for _, _, key in order]
        times = sorted(
            {end for end, _, _ in order} | {r.end for r in ahead if r.end is not None and r.end > now}
        )
        steps: list[_Step] = []
        index, guessed = 0, False
        for at in times:
            while index < len(order) and order[index][0] <= at:
                guessed = guessed or order[index][1]
                index += 1
            steps.append(_Step(index, None if guessed else at, at))
        if not steps:
            steps.append(_Step(0, now, now))
        return keys, _thin(steps)

    def _end_order(self, now: float) -> list[tuple[float, bool, str]]:
        """Every running pod as (expected end, only guessed, key), first to end first."""
        scheduler = self._scheduler
        stamp = (now, scheduler.cache.version, scheduler.estimates.version)
        if self._order is not None and self._order[0] == stamp:
            return self._order[1]
        order = [(*self._end(usage, now), usage.key) for usage in scheduler.cache.pods()]
        order.sort()
        self._order = (stamp, order)
        return order

    def _promised(self, placement: GangPlacement, gone: list[str], now: float) -> tuple[float | None, bool]:
        """When the placement's nodes are free for it as promised: the last estimated end among
        the pods that must leave them, None if one of those ends is only guessed; and whether
        enforced runtime limits bound every one of those ends (learned estimates do not)."""
        nodes = {p.node for p in placement.pods}
        start, enforced = now, True
        for key in gone:
            usage = self._scheduler.cache.pod(key)
            if usage is None or usage.node not in nodes:
                continue
            end, guessed = self._end(usage, now)
            if guessed:
                return None, False
            start = max(start, end)
            enforced = enforced and usage.runtime_limit is not None
        return start, enforced

    def drains(self, gang: Gang) -> bool:
        """Whether each pod of `gang` needs at least half the GPUs of the cluster's largest node: a
        node must largely drain for it, wherever it goes."""
        largest = self._scheduler.cache.gpu_nodes()[1]
        return largest > 0 and all(2 * pod.gpus >= largest for pod in gang.members)

    def _could_start_on(self, gang: Gang, planned: set[str]) -> tuple[str, ...]:
        """The nodes other than `planned` where a pod of `gang` could run were they empty: its
        static filters pass and their allocatable covers its requests."""
        scheduler = self._scheduler
        snapshot = scheduler.snapshot
        state = CycleState(quota=scheduler.ledger)
        could = np.zeros(snapshot.size, dtype=bool)
        for pods in gang.roles():
            pod = pods[0]
            mask = scheduler.framework.static_mask(state, pod, snapshot).copy()
            for resource, amount in pod.requests.items():
                column = snapshot.resource_index.get(resource)
                if column is not None:
                    mask &= snapshot.allocatable[column, : snapshot.size] >= amount
            could |= mask
        return tuple(n for n in snapshot.node_names(np.flatnonzero(could)) if n not in planned)

    def _end(self, usage: PodUsage, now: float) -> tuple[float, bool]:
        """When a running pod should end, and whether that is only a guess (no estimate: it is
        guessed to run as long again as it has run)."""
        end = self._scheduler.estimates.expected_end(usage, now)
        if end is None:
            return now + max(1.0, now - usage.started), True
        return end, False

    def ready_nodes(self, nodes: tuple[str, ...], wants: tuple[int, ...]) -> int:
        """Of `nodes`, those whose free GPUs already cover what the holder takes there (`wants`)."""
        snapshot = self._scheduler.snapshot
        free = snapshot.gpus_free_count()
        return sum(
            1
            for node, gpus in zip(nodes, wants, strict=True)
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
