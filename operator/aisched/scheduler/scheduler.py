"""The scheduling cycle for one gang, read top to bottom.

1. Refresh the snapshot from the cache (only nodes that changed).
2. PreFilter the gang as a whole (enough members, quota).
3. Filter and score every role, vectorised over all nodes.
4. Place the gang: every member with its node and GPUs, or none.
5. Reserve: assume the placement in the cache so the next cycle sees it taken.
6. Permit; then the caller hands the placement to the binder.
A failure at steps 2-4 goes to PostFilter (preemption), which may nominate victims and a placement
to hold for the gang (assumed like a reserved one); either way the result says why the gang did
not fit, in kube-scheduler's words, and which cluster events could change that.

`Scheduler` owns the core's state for one profile: the cache (the one book of what pods hold),
the quota ledger it keeps, the snapshot and the framework whose plugins reach all of them through
a `Handle`. The operator and the simulator build it the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from aisched.cache.cache import Cache
from aisched.framework.cycle_state import CycleState
from aisched.framework.estimates import RuntimeEstimates
from aisched.framework.events import CAPACITY_FREED, ClusterEvent
from aisched.framework.handle import Clock, PreemptionEvaluator
from aisched.framework.nomination import NO_ROOM_MADE, NOMINATION, Nomination
from aisched.framework.observe import CycleRecord, CycleTracer
from aisched.framework.profile import Profile
from aisched.framework.registry import Registry
from aisched.framework.reservations import (
    RESERVATION_SCOPE,
    Reservation,
    ReservationBook,
    ReservationScope,
    order_of,
)
from aisched.framework.runtime import Framework
from aisched.framework.status import Code, Status
from aisched.framework.types import Gang, GangPlacement
from aisched.plugins import default_registry
from aisched.quota import QuotaLedger
from aisched.scheduler import explain
from aisched.scheduler.evaluator import Evaluator
from aisched.scheduler.explain import MAX_REASONS, PlacementVerdict, PreemptionVerdict, fragmentation
from aisched.scheduler.placement import PlacementFailure, Role, place_gang
from aisched.scheduler.planner import ReservationPlanner
from aisched.scheduler.usage import placed_usage
from aisched.topology.snapshot import Snapshot

__all__ = ["PLACEMENT", "PLACEMENT_EVENTS", "ScheduleResult", "Scheduler", "finish_cycle"]

#: The rejector named when the gang placement itself (capacity, topology) found no place.
PLACEMENT: Final = "Scheduler"
#: What can let a gang in that every filter passed but that did not fit: more room, or nodes
#: relabelled into its rack or block.
PLACEMENT_EVENTS: Final = CAPACITY_FREED | {ClusterEvent.NODE_LABELS_CHANGED}


@dataclass(frozen=True)
class ScheduleResult:
    """A placement to bind, or the status that says why there is none.

    On failure, `events` are the cluster events after which the gang may fit (to park it until
    one happens), and `nomination` the room preemption is making for it, if any: its placement is
    already assumed (held), to be bound once the victims are gone.
    """

    status: Status
    placement: GangPlacement | None = None
    nomination: Nomination | None = None
    events: frozenset[ClusterEvent] = frozenset()
    #: On failure, why as fields: the nodes and reasons (None when a PreFilter turned the gang
    #: away before any node was looked at), and what preemption did about it.
    verdict: PlacementVerdict | None = None
    preemption: PreemptionVerdict | None = None

    @property
    def message(self) -> str:
        return self.status.message()


@dataclass(frozen=True)
class _Failure:
    status: Status
    rejectors: frozenset[str]
    verdict: PlacementVerdict | None = None


class _Handle:
    """The `framework.handle.Handle` a scheduler gives its plugins."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    @property
    def profile(self) -> Profile:
        return self._scheduler.profile

    @property
    def clock(self) -> Clock:
        return self._scheduler.clock

    @property
    def cache(self) -> Cache:
        return self._scheduler.cache

    @property
    def snapshot(self) -> Snapshot:
        return self._scheduler.snapshot

    @property
    def ledger(self) -> QuotaLedger:
        return self._scheduler.ledger

    @property
    def preemption(self) -> PreemptionEvaluator:
        return self._scheduler.evaluator

    @property
    def reservations(self) -> ReservationBook:
        return self._scheduler.reservations

    @property
    def estimates(self) -> RuntimeEstimates:
        return self._scheduler.estimates


class Scheduler:
    """Runs cycles for one profile against one cache. Synchronous and pure: no I/O; time only
    from `clock` (pods' start times, for preemption)."""

    def __init__(
        self,
        *,
        profile: Profile | None = None,
        registry: Registry | None = None,
        cache: Cache | None = None,
        ledger: QuotaLedger | None = None,
        clock: Clock = lambda: 0.0,
        tracing: CycleTracer | None = None,
    ) -> None:
        """`tracing` records each cycle (its span and plugin timings: `observability.tracing`;
        the operator's runtime gives one); None records nothing (the simulator, the benchmarks)."""
        self.profile = profile if profile is not None else Profile()
        self.clock = clock
        self.tracing = tracing
        self.cache = cache if cache is not None else Cache()
        self.ledger = ledger if ledger is not None else QuotaLedger()
        self.cache.subscribe(self.ledger.pod_changed)
        self.estimates = RuntimeEstimates(clock)
        self.cache.subscribe(self.estimates.pod_changed)
        self.reservations = ReservationBook()
        self.snapshot = Snapshot()
        self.evaluator = Evaluator(self)
        self.planner = ReservationPlanner(self)
        registry = registry if registry is not None else default_registry()
        self.framework = Framework(self.profile, registry, _Handle(self))

    # -- the cycle ---------------------------------------------------------------------------

    def schedule(self, gang: Gang, *, cycle: CycleRecord | None = None) -> ScheduleResult:
        """Try to place `gang` now; on success the placement is already assumed in the cache.

        The cycle's span is `cycle` when the caller opened it (to add what it decides after, and
        end it), else one of its own, ended here."""
        if cycle is not None:
            return self._schedule(gang, cycle)
        own = self.tracing.cycle(gang) if self.tracing is not None else None
        if own is None:
            return self._schedule(gang, None)
        try:
            result = self._schedule(gang, own)
        except Exception as exc:
            own.finish(result="error", reason=f"{type(exc).__name__}: {exc}")
            raise
        finish_cycle(own, result)
        return result

    def _schedule(self, gang: Gang, cycle: CycleRecord | None) -> ScheduleResult:
        # 1. Snapshot.
        snapshot = self.cache.update_snapshot(self.snapshot)
        state = CycleState(quota=self.ledger, observer=cycle.observer if cycle is not None else None)
        # 2-4. PreFilter, Filter and Score, Place.
        outcome = self._place(state, gang, snapshot)
        if isinstance(outcome, _Failure):
            return self._failed(state, gang, snapshot, outcome)
        # 5. Reserve (and give up any nodes held for it: it has its own now).
        self.assume(outcome)
        status = self.framework.reserve(state, outcome, snapshot)
        if not status.ok:
            self.forget(outcome)
            return ScheduleResult(status, events=self.framework.events_for({status.plugin}))
        # 6. Permit.
        status = self.framework.permit(state, outcome)
        if not status.ok:
            self.framework.unreserve(state, outcome, snapshot)
            self.forget(outcome)
            return ScheduleResult(status, events=self.framework.events_for({status.plugin}))
        self.reservations.release(gang.key)
        return ScheduleResult(status, outcome)

    def dry_run(
        self, gang: Gang, *, snapshot: Snapshot, quota: QuotaLedger, scope: ReservationScope | None = None
    ) -> GangPlacement | None:
        """Where `gang` would go on `snapshot` (a clone) judged against `quota` (a what-if copy),
        honouring `scope`'s reservations if given: steps 2-4 only, nothing assumed, no
        PostFilter. The what-if of preemption and of reservations."""
        state = CycleState(quota=quota)
        if scope is not None:
            state.write(RESERVATION_SCOPE, scope)
        outcome = self._place(state, gang, snapshot)
        return None if isinstance(outcome, _Failure) else outcome

    def dry_run_without(
        self, gang: Gang, keys: Sequence[str], *, scope: ReservationScope | None = None
    ) -> GangPlacement | None:
        """Where `gang` would go were the pods `keys` gone: `dry_run` on a clone of the snapshot with
        their rows rewritten, against a ledger copy with their charges released. The what-if of
        preemption (victims gone) and of reservations (pods ended)."""
        snapshot = self.snapshot.clone()
        self.cache.write_without(snapshot, keys)
        return self.dry_run(gang, snapshot=snapshot, quota=self.ledger.without(keys), scope=scope)

    # -- reservations --------------------------------------------------------------------------

    def reserve(self, gang: Gang, *, queue: str, priority: int) -> Reservation | None:
        """Hold the nodes `gang` (turned away, first in its queue) will start on; None (and
        nothing held) when it fits nowhere even on an empty cluster.

        A reservation it already holds is kept while it still stands: the same members, queue
        order and reservations ahead, every node still there, and its expected start not passed.
        Its nodes drain as they were chosen to, instead of the hold hopping between nodes (and
        each check costs nothing). Otherwise it is planned afresh from the cluster as it is now."""
        held = self.reservations.get(gang.key)
        if held is not None and self._stands(held, gang, priority):
            ready = self.planner.ready_nodes(held.nodes, held.wants)
            return (
                held
                if ready == held.ready_nodes
                else self.reservations.hold(replace(held, ready_nodes=ready))
            )
        planned = self.planner.plan(gang, queue=queue, priority=priority)
        if planned is None:
            self.reservations.release(gang.key)
            return None
        return self.reservations.hold(planned)

    def _stands(self, held: Reservation, gang: Gang, priority: int) -> bool:
        order = order_of(gang, priority)
        if held.members != len(gang.members) or held.order != order:
            return False
        expected = held.start if held.start is not None else held.guess
        if expected is not None and self.clock() >= expected:
            return False  # overdue: the estimates (or the guess) were wrong, look again
        if any(node not in self.snapshot.slot_of for node in held.nodes):
            return False
        ahead = tuple(r.gang for r in self.reservations.ahead_of(order) if r.gang != gang.key)
        return ahead == held.ahead

    def release(self, gang_key: str) -> bool:
        """Drop the reservation of `gang_key` (gone, placed elsewhere, or no longer first)."""
        return self.reservations.release(gang_key)

    def _place(self, state: CycleState, gang: Gang, snapshot: Snapshot) -> GangPlacement | _Failure:
        # 2. PreFilter.
        status = self.framework.pre_filter(state, gang, snapshot)
        if not status.ok:
            return _Failure(status, frozenset({status.plugin}))
        # 3. Filter and score each role.
        roles = []
        tie_break = self.framework.tie_break(snapshot)
        for pods in gang.roles():
            feasibility = self.framework.filter(state, pods[0], snapshot)
            if not feasibility.mask.any():
                # Unresolvable when no node passes the static filters: no eviction can help.
                turned = feasibility.reasons()
                failure = self._unschedulable(snapshot, turned, (), unresolvable=not feasibility.static.any())
                scattered, free = fragmentation(snapshot, pods, feasibility.static)
                verdict = PlacementVerdict.of(
                    nodes=snapshot.node_count,
                    feasible=0,
                    reasons=turned,
                    fragmentation=scattered,
                    free_gpus=free,
                )
                return _Failure(failure, frozenset(feasibility.rejectors()), verdict)
            score = self.framework.score(state, pods[0], snapshot, feasibility.mask)
            roles.append(Role(pods, feasibility, score, tie_break))
        # 4. Place.
        outcome = place_gang(snapshot, gang, roles, picker=self.framework.gpu_picker)
        if isinstance(outcome, PlacementFailure):
            feasible = np.logical_and.reduce([r.feasibility.mask for r in roles])
            reasons: Counter[str] = Counter()
            rejectors = {PLACEMENT}
            for role in roles:
                reasons.update(role.feasibility.reasons())
                rejectors |= role.feasibility.rejectors()
            count = int(np.count_nonzero(feasible))
            failure = self._unschedulable(snapshot, reasons, outcome.reasons, feasible=count)
            scattered, free = "", None
            for role in roles:
                said, role_free = fragmentation(snapshot, role.pods, role.feasibility.static)
                scattered = scattered or said
                free = role_free if free is None else free
            verdict = PlacementVerdict.of(
                nodes=snapshot.node_count,
                feasible=count,
                reasons=reasons,
                topology=outcome.reasons,
                fragmentation=scattered,
                free_gpus=free,
            )
            return _Failure(failure, frozenset(rejectors), verdict)
        return outcome

    def _failed(self, state: CycleState, gang: Gang, snapshot: Snapshot, failure: _Failure) -> ScheduleResult:
        """PostFilter a failed gang: preemption may nominate a placement, which is held (assumed)."""
        status = failure.status
        if status.code is Code.UNSCHEDULABLE:
            status = self.framework.post_filter(state, gang, snapshot, status)
            refused = state.get(NO_ROOM_MADE, "")
        elif status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            refused = "preemption cannot help: no node could take the gang even if it were empty"
        else:
            refused = "preemption is not tried after an error"
        nomination = state.get(NOMINATION, None)
        if nomination is not None:
            self.assume(nomination.placement)
            self.reservations.release(gang.key)
            victims = tuple(v.key for v in nomination.victims)
            preemption = PreemptionVerdict(nominated=True, victims=victims[:MAX_REASONS])
        else:
            preemption = PreemptionVerdict(nominated=False, reason=refused)
        return ScheduleResult(
            status,
            nomination=nomination,
            events=self._events(failure.rejectors),
            verdict=failure.verdict,
            preemption=preemption,
        )

    def _events(self, rejectors: frozenset[str]) -> frozenset[ClusterEvent]:
        plugins = rejectors - {PLACEMENT}
        events = self.framework.events_for(plugins) if plugins else frozenset()
        return events | PLACEMENT_EVENTS if PLACEMENT in rejectors else events

    # -- the cache's side ----------------------------------------------------------------------

    def assume(self, placement: GangPlacement) -> None:
        """Account `placement` in the cache (and so the ledger) until it is bound or forgotten."""
        now = self.clock()
        self.cache.assume(
            (placed_usage(p, gang=placement.gang.key, started=now), p.slot) for p in placement.pods
        )

    def forget(self, placement: GangPlacement) -> list[str]:
        """Undo an assumed placement whose binding failed (the whole gang); the keys dropped."""
        return self.cache.forget(p.pod.key for p in placement.pods)

    def bound(self, keys: Iterable[str]) -> None:
        """Assumed pods are bound now (the simulator's binding; the operator learns it from watches)."""
        for key in keys:
            found = self.cache.pod(key)
            if found is not None and found.assumed:
                self.cache.set_pod(replace(found, assumed=False))

    @staticmethod
    def _unschedulable(
        snapshot: Snapshot,
        reasons: Counter[str],
        gang_reasons: tuple[str, ...] | list[str],
        *,
        feasible: int = 0,
        unresolvable: bool = False,
    ) -> Status:
        text = explain.summary(
            nodes=snapshot.node_count, feasible=feasible, reasons=reasons, gang_reasons=gang_reasons
        )
        code = Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE
        return Status(code, (text,), PLACEMENT)


def finish_cycle(cycle: CycleRecord, result: ScheduleResult) -> None:
    """End `cycle`'s span with what `result` says: scheduled, error or unschedulable, and whom a
    nomination preempts (worded only when the span records)."""
    if not cycle.recording:
        cycle.finish(result="")
        return
    if result.placement is not None:
        nodes = len({p.node for p in result.placement.pods})
        cycle.finish(result="scheduled", reason=f"{len(result.placement.pods)} pod(s) on {nodes} node(s)")
        return
    victims = tuple(v.key for v in result.nomination.victims) if result.nomination is not None else ()
    outcome = "error" if result.status.code is Code.ERROR else "unschedulable"
    feasible = result.verdict.feasible if result.verdict is not None else None
    cycle.finish(result=outcome, reason=result.message, feasible=feasible, victims=victims)
