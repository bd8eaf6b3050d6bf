"""An AIJob's next status, built as the `AIJobStatus` model from the one it carries. Pure: no I/O.

`StatusDraft` starts from the job's status (`read_status`) and changes it field by field; `changed()`
is the new status, or None when nothing differs, so an unchanged job costs no write. A condition
keeps its lastTransitionTime unless its status flips; a timestamp, once stamped, stays until a new
attempt clears it. `status_patch` is the merge patch that writes the new status over the old: a
field aisched writes that the new status no longer has (a restart's startTime) goes as null; one
it does not know (written by a newer aisched) is left alone. `queue_status` is the job's place in
its queue, from what the scheduler reports of its gang.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict, Unpack

import pydantic

from aisched.api.aijob import (
    AIJobQueueStatus,
    AIJobStatus,
    NodeReasonCount,
    PendingReason,
    Phase,
    PlacementReason,
    PodPlacement,
    PreemptionReason,
    QuotaReason,
)
from aisched.api.meta import Condition
from aisched.api.objects import ObjectView, utc
from aisched.controllers.aijob.admission import QuotaFigures
from aisched.kube.merge import merge_patch
from aisched.scheduler.queueing import QueueStatus, without_queue_note

__all__ = [
    "CONDITION_TYPES",
    "StatusDraft",
    "StatusFields",
    "Timestamp",
    "admission_reason",
    "pending_reason",
    "queue_status",
    "read_status",
    "status_patch",
]

#: The AIJob's conditions, in the order `kubectl describe` shows them.
CONDITION_TYPES: Final = ("Valid", "Admissible", "Admitted", "Scheduled", "Running", "Complete", "Failed")
#: The status fields by their names on the wire.
_WIRE_NAMES: Final = frozenset(field.alias or name for name, field in AIJobStatus.model_fields.items())

Timestamp = Literal["queued_time", "scheduled_time", "start_time", "completion_time", "replacing_since"]


class StatusFields(TypedDict, total=False):
    """What `StatusDraft.set` changes (conditions and timestamps have methods of their own)."""

    phase: Phase
    message: str
    placement: list[PodPlacement]
    restarts: int
    preemptions: int
    replacements: int
    replacing: list[str]
    replacing_uids: list[str]
    elastic_replicas: int | None
    resizes: int
    tenant: str
    gpus: float
    observed_generation: int
    admitted_generation: int
    queue_sequence: int
    trace_context: str
    queue: AIJobQueueStatus | None
    pending_reason: PendingReason | None


def read_status(obj: Mapping[str, Any]) -> AIJobStatus:
    """The status the job `obj` carries. One the model cannot read (the CRD's schema keeps such out)
    counts as none: the job starts afresh, and its whole status is written again."""
    try:
        return AIJobStatus.model_validate(ObjectView(obj).status)
    except pydantic.ValidationError:
        return AIJobStatus()


def status_patch(old: Mapping[str, Any], new: AIJobStatus) -> dict[str, Any]:
    """The merge patch turning the status a job carries (`old`, as JSON) into `new`."""
    return merge_patch({k: v for k, v in old.items() if k in _WIRE_NAMES}, new.to_dict())


def queue_status(place: QueueStatus) -> AIJobQueueStatus:
    """The job's `status.queue` from its gang's `place`: the expected start only when the
    reservation promises one (the jobs on its nodes have known ends), never a guess."""
    held = place.reservation
    return AIJobQueueStatus(
        name=place.queue,
        strategy=place.strategy,
        position=place.position,
        length=place.length,
        reserved_nodes=len(held.nodes) if held is not None else None,
        ready_nodes=held.ready_nodes if held is not None else None,
        spare_nodes=len(held.spare) if held is not None and held.spare else None,
        held_since=utc(held.since) if held is not None else None,
        estimated_start=utc(held.start) if held is not None and held.start is not None else None,
    )


def pending_reason(place: QueueStatus, *, summary: str) -> PendingReason:
    """The job's `status.pendingReason` while its gang waits for a place, from what the scheduler
    reports of it: its queue, and the last attempt's verdicts when one turned it away."""
    found = place.explanation
    reason = PendingReason(stage="Scheduling", summary=summary[:4096], queue=queue_status(place))
    if found is None:
        return reason
    quota = found.quota
    quota_reason = QuotaReason(
        tenant=quota.tenant,
        cohort=quota.cohort,
        asked=quota.asked,
        in_use=quota.in_use if quota.tenant is not None else None,
        guaranteed=quota.guaranteed,
        max=quota.maximum,
        borrowed=quota.borrowed if quota.tenant is not None else None,
        blocking=quota.blocked,
        message=quota.message[:1024],
        would_free=quota.would_free[:1024],
    )
    placement = None
    if found.placement is not None:
        verdict = found.placement
        placement = PlacementReason(
            nodes=verdict.nodes,
            feasible_nodes=verdict.feasible,
            reasons=[NodeReasonCount(reason=r[:256], nodes=n) for r, n in verdict.reasons],
            topology=[t[:1024] for t in verdict.topology],
            fragmentation=verdict.fragmentation[:1024],
            free_gpus=verdict.free_gpus,
            message=without_queue_note(place.verdict)[:4096],
        )
    preemption = None
    if found.preemption is not None:
        preemption = PreemptionReason(
            would_preempt=found.preemption.nominated,
            victims=[v[:512] for v in found.preemption.victims],
            message=found.preemption.reason[:1024],
        )
    return reason.model_copy(update={"quota": quota_reason, "placement": placement, "preemption": preemption})


def admission_reason(figures: QuotaFigures | None, *, outcome: str, message: str) -> PendingReason:
    """The job's `status.pendingReason` while its tenant's quota does not admit it (no pod made);
    `outcome` is the admission's (`ExceedsQuota`, `ExceedsCluster`, `Waiting`)."""
    quota = QuotaReason(blocking=True, message=message[:1024])
    if figures is not None:
        would_free = ""
        if outcome == "ExceedsQuota":
            would_free = (
                "nothing while the TenantQuota stands: the job asks more than its tenant may ever use"
            )
        elif outcome == "ExceedsCluster":
            would_free = "nothing but more nodes: the job asks more than the cluster has"
        elif figures.maximum is not None:
            room = figures.admitted + figures.asked - figures.maximum
            would_free = (
                f"{room:g} GPU(s) of tenant {figures.tenant}'s admitted jobs finishing"
                if room > 0
                else f"the jobs submitted earlier to tenant {figures.tenant} being admitted first"
            )
        quota = quota.model_copy(
            update={
                "tenant": figures.tenant,
                "cohort": figures.cohort,
                "asked": figures.asked,
                "admitted": figures.admitted if figures.tenant is not None else None,
                "guaranteed": figures.guaranteed,
                "max": figures.maximum,
                "would_free": would_free,
            }
        )
    return PendingReason(stage="Admission", summary=message[:4096], quota=quota)


def _order(condition: Condition) -> int:
    """Where `condition` goes in the list: by `CONDITION_TYPES`, types aisched does not set last."""
    known = condition.type in CONDITION_TYPES
    return CONDITION_TYPES.index(condition.type) if known else len(CONDITION_TYPES)


class StatusDraft:
    """The status a job carries (`old`) and the next one (`new`), built at epoch second `now`."""

    def __init__(self, old: AIJobStatus, *, now: float) -> None:
        self.old = old
        self.new = old
        self.now = now
        self._stamp = utc(now)

    def set(self, **fields: Unpack[StatusFields]) -> None:
        self.new = self.new.model_copy(update=fields)

    def stamp(self, field: Timestamp, *, again: bool = False) -> None:
        """Set the timestamp `field` to now unless it is set already (or, with `again`, anyway)."""
        if again or getattr(self.new, field) is None:
            self.new = self.new.model_copy(update={field: self._stamp})

    def clear(self, *fields: Timestamp) -> None:
        self.new = self.new.model_copy(update=dict.fromkeys(fields))

    def condition(self, kind: str, value: Literal["True", "False"], reason: str, message: str = "") -> None:
        """Set one condition, keeping its lastTransitionTime unless its status flips."""
        existing = next((c for c in self.new.conditions if c.type == kind), None)
        update: dict[str, Any] = {"status": value, "reason": reason, "message": message}
        if existing is None or existing.status != value:
            update["last_transition_time"] = self._stamp
        condition = Condition(type=kind, **update) if existing is None else existing.model_copy(update=update)
        conditions = [*(c for c in self.new.conditions if c.type != kind), condition]
        self.new = self.new.model_copy(update={"conditions": sorted(conditions, key=_order)})

    def had_condition(self, kind: str, value: str, reason: str, message: str) -> bool:
        """Whether the job carried this very condition already."""
        return any(
            (c.type, c.status, c.reason, c.message) == (kind, value, reason, message)
            for c in self.old.conditions
        )

    def changed(self) -> AIJobStatus | None:
        """The new status, or None when it equals the old one (nothing to write)."""
        return None if self.new == self.old else self.new
