"""The scheduling cycle for one gang, read top to bottom.

1. Refresh the snapshot from the cache (only nodes that changed).
2. PreFilter the gang as a whole (enough members; later: quota).
3. Filter and score every role, vectorised over all nodes.
4. Place the gang: every member with its node and GPUs, or none.
5. Reserve: assume the placement in the cache so the next cycle sees it taken.
6. Permit; then the caller hands the placement to the binder.
A failure at any step yields a `Status` whose message says why, in kube-scheduler's words.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from aisched.cache.cache import Cache, PodUsage
from aisched.framework.cycle_state import CycleState
from aisched.framework.runtime import Framework
from aisched.framework.status import Code, Status
from aisched.framework.types import Gang, GangPlacement, PodPlacement
from aisched.scheduler import explain
from aisched.scheduler.placement import PlacementFailure, Role, place_gang
from aisched.topology.snapshot import Snapshot

__all__ = ["ScheduleResult", "Scheduler"]


@dataclass(frozen=True)
class ScheduleResult:
    """A placement to bind, or the status that says why there is none."""

    status: Status
    placement: GangPlacement | None = None

    @property
    def message(self) -> str:
        return self.status.message()


class Scheduler:
    """Runs cycles for one profile against one cache. Synchronous and pure: no I/O, no clock."""

    def __init__(self, *, framework: Framework, cache: Cache, snapshot: Snapshot | None = None) -> None:
        self.framework = framework
        self.cache = cache
        self.snapshot = snapshot if snapshot is not None else Snapshot()

    def schedule(self, gang: Gang) -> ScheduleResult:
        """Try to place `gang` now; on success the placement is already assumed in the cache."""
        # 1. Snapshot.
        snapshot = self.cache.update_snapshot(self.snapshot)
        state = CycleState()
        # 2. PreFilter.
        status = self.framework.pre_filter(state, gang, snapshot)
        if not status.ok:
            return ScheduleResult(status)
        # 3. Filter and score each role.
        roles = []
        tie_break = self.framework.tie_break(snapshot)
        for pods in gang.roles():
            feasibility = self.framework.filter(state, pods[0], snapshot)
            if not feasibility.mask.any():
                failure = self._unschedulable(snapshot, feasibility.reasons(), (), unresolvable=True)
                return ScheduleResult(self.framework.post_filter(state, gang, snapshot, failure))
            score = self.framework.score(state, pods[0], snapshot, feasibility.mask)
            roles.append(Role(pods, feasibility, score, tie_break))
        # 4. Place.
        outcome = place_gang(snapshot, gang, roles, picker=self.framework.gpu_picker)
        if isinstance(outcome, PlacementFailure):
            feasible = np.logical_and.reduce([r.feasibility.mask for r in roles])
            reasons: Counter[str] = Counter()
            for role in roles:
                reasons.update(role.feasibility.reasons())
            failure = self._unschedulable(
                snapshot, reasons, outcome.reasons, feasible=int(np.count_nonzero(feasible))
            )
            # PostFilter (preemption) may make room for a later cycle; this one still fails.
            return ScheduleResult(self.framework.post_filter(state, gang, snapshot, failure))
        # 5. Reserve.
        self.cache.assume((_usage(p), p.slot) for p in outcome.pods)
        status = self.framework.reserve(state, outcome, snapshot)
        if not status.ok:
            self.forget(outcome)
            return ScheduleResult(status)
        # 6. Permit.
        status = self.framework.permit(state, outcome)
        if status.rejected or status.code is Code.ERROR:
            self.framework.unreserve(state, outcome, snapshot)
            self.forget(outcome)
            return ScheduleResult(status)
        return ScheduleResult(status, outcome)

    def forget(self, placement: GangPlacement) -> None:
        """Undo an assumed placement whose binding failed (the whole gang)."""
        self.cache.forget(p.pod.key for p in placement.pods)

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
        code = Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable and not reasons else Code.UNSCHEDULABLE
        return Status(code, (text,), "Scheduler")


def _usage(placed: PodPlacement) -> PodUsage:
    """What a placed pod takes from its node, as the cache accounts it."""
    profile = placed.pod.mig_profile
    return PodUsage(
        key=placed.pod.key,
        node=placed.node,
        requests=placed.pod.requests,
        gpu_mask=placed.gpu_mask,
        gpu_uuids=placed.gpu_ids,
        gpu_milli=placed.gpu_milli,
        gpu_memory=placed.gpu_memory,
        mig=(profile, placed.mig[1]) if profile is not None and placed.mig is not None else None,
        assumed=True,
    )
