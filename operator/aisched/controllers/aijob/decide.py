"""What an AIJob's pods say about it, and what to do next. Pure: no I/O.

`reconcile` compares a job with its pods and returns a `Plan`: pods to create (made by
`controllers.aijob_pods`) or delete, and the status to write.

Attempts: a job's pods carry the attempt they belong to (`aisched.io/attempt`, equal to the job's
`status.restarts` when they were made). Restarting a gang writes `restarts + 1` first, then
deletes the pods; pods of an older attempt are deleted on sight and the new attempt's pods are
created only once they are gone, so two attempts never run side by side, even across a restart
of the operator between the two writes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aisched.api import keys
from aisched.api.aijob import AIJob
from aisched.api.validation import InvalidObjectError, parse
from aisched.controllers.aijob.pods import (
    ANNOTATION_ATTEMPT,
    job_pods,
    pod_name,
)

__all__ = ["CONDITION_TYPES", "VICTIM_MARGIN", "Plan", "reconcile"]

#: The AIJob's conditions, in the order `kubectl describe` shows them.
CONDITION_TYPES: Final = ("Valid", "Scheduled", "Running", "Complete", "Failed")

_TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed"})


# -- reconciling ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """What the controller does next for one job."""

    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # pod names
    status: dict[str, Any] | None = None  # the whole new status, or None when unchanged
    #: When the job must be looked at again even if nothing changes (its gang timeout), as epoch s.
    recheck_at: float | None = None
    #: Why the job changed state, for an Event (reason, message), or None.
    event: tuple[str, str] | None = None


@dataclass(frozen=True)
class _Pods:
    """The job's pods of the current attempt, sorted out by what they are doing."""

    current: dict[str, Mapping[str, Any]]
    stale: list[str]  # pods of an older attempt, or being deleted

    @classmethod
    def of(cls, pods: Sequence[Mapping[str, Any]], *, attempt: int, uid: str) -> _Pods:
        """Sort `pods` out: of this attempt of the job with `uid`, or stale (an older attempt, being
        deleted, or left by an earlier job of the same name)."""
        current: dict[str, Mapping[str, Any]] = {}
        stale = []
        for pod in pods:
            name = pod["metadata"]["name"]
            owners = {
                r.get("uid") for r in pod["metadata"].get("ownerReferences") or () if r.get("controller")
            }
            if pod["metadata"].get("deletionTimestamp") or _attempt_of(pod) < attempt or uid not in owners:
                stale.append(name)
            else:
                current[name] = pod
        return cls(current=current, stale=sorted(stale))

    def phase_of(self, name: str) -> str:
        return str((self.current[name].get("status") or {}).get("phase") or "Pending")

    def with_phase(self, *phases: str) -> list[str]:
        return sorted(n for n in self.current if self.phase_of(n) in phases)

    def bound(self) -> list[str]:
        return sorted(n for n in self.current if (self.current[n].get("spec") or {}).get("nodeName"))

    def node_count(self) -> int:
        return len({(self.current[n].get("spec") or {}).get("nodeName") for n in self.bound()})

    def unschedulable_message(self) -> str | None:
        """The scheduler's verdict on the pending pods (their PodScheduled=False), if it gave one."""
        for name in sorted(self.current):
            pod = self.current[name]
            if (pod.get("spec") or {}).get("nodeName"):
                continue
            for condition in (pod.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                    return str(condition.get("message") or condition.get("reason") or "unschedulable")
        return None

    def failure(self, name: str) -> str:
        """Why pod `name` failed, as `kubectl describe` would put it."""
        if name not in self.current:
            return f"pod {name} disappeared"
        status = self.current[name].get("status") or {}
        for container in status.get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated and terminated.get("exitCode", 0) != 0:
                detail = status.get("message") or terminated.get("reason") or "Error"
                return (
                    f"pod {name} failed: container {container.get('name')} exited with code"
                    f" {terminated.get('exitCode')} ({detail})"
                )
        reason = status.get("reason") or "Failed"
        message = status.get("message")
        return f"pod {name} failed: {reason}" + (f" ({message})" if message else "")

    def placement(self) -> list[dict[str, Any]]:
        out = []
        for name in self.bound():
            pod = self.current[name]
            meta = pod.get("metadata") or {}
            labels = meta.get("labels") or {}
            annotations = meta.get("annotations") or {}
            index = labels.get(keys.LABEL_INDEX, "0")
            entry: dict[str, Any] = {
                "pod": name,
                "role": labels.get(keys.LABEL_ROLE, ""),
                "index": int(index) if index.isdigit() else 0,
                "node": pod["spec"]["nodeName"],
                "gpus": [g for g in annotations.get(keys.ANNOTATION_GPUS, "").split(",") if g],
            }
            milli = annotations.get(keys.ANNOTATION_GPU_MILLI, "")
            if milli.isdigit():
                entry["gpuMilli"] = int(milli)
            if keys.ANNOTATION_MIG in annotations:
                entry["mig"] = annotations[keys.ANNOTATION_MIG]
            out.append(entry)
        return out


def _attempt_of(pod: Mapping[str, Any]) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_ATTEMPT, "0")
    return int(raw) if str(raw).isdigit() else 0


def _utc(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _live(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """Pods still holding resources (not ended, not being deleted)."""
    return sorted(
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("phase") not in _TERMINAL_PHASES
        and not p["metadata"].get("deletionTimestamp")
    )


class _Step:
    """One reconciliation of one job: the old status, the new one being built, and the plan."""

    def __init__(self, obj: Mapping[str, Any], now: float, tenant: str | None) -> None:
        self.obj = obj
        self.now = now
        self.old: Mapping[str, Any] = obj.get("status") or {}
        self.new: dict[str, Any] = copy.deepcopy(dict(self.old))
        self.new.setdefault("restarts", 0)
        self.new.setdefault("conditions", [])
        generation = (obj.get("metadata") or {}).get("generation")
        if isinstance(generation, int):
            self.new["observedGeneration"] = generation
        if tenant is not None:
            self.new["tenant"] = tenant
        self.plan = Plan()

    def set(self, **fields: Any) -> None:
        self.new.update(fields)

    def stamp(self, name: str) -> None:
        """Set the timestamp `name` (e.g. startTime) unless it is set already."""
        self.new.setdefault(name, _utc(self.now))

    def condition(self, kind: str, value: str, reason: str, message: str = "") -> None:
        """Set one condition, keeping its lastTransitionTime unless its status flips."""
        conditions: list[dict[str, Any]] = self.new["conditions"]
        for existing in conditions:
            if existing.get("type") == kind:
                if existing.get("status") != value:
                    existing["lastTransitionTime"] = _utc(self.now)
                existing.update(status=value, reason=reason, message=message)
                break
        else:
            conditions.append(
                {
                    "type": kind,
                    "status": value,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": _utc(self.now),
                }
            )
        conditions.sort(
            key=lambda c: CONDITION_TYPES.index(c["type"]) if c["type"] in CONDITION_TYPES else 99
        )

    def had_condition(self, kind: str, value: str, reason: str, message: str) -> bool:
        return any(
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            == (kind, value, reason, message)
            for c in self.old.get("conditions") or []
        )

    def finish(self, event: tuple[str, str] | None = None) -> Plan:
        self.plan.status = None if self.old == self.new else self.new
        if event is not None and self.plan.status is not None:
            self.plan.event = event
        return self.plan


def reconcile(
    obj: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    now: float,
    tenant: str | None = None,
    scheduler_name: str = keys.SCHEDULER_NAME,
    create_error: str | None = None,
    preempted: str | None = None,
) -> Plan:
    """The next step for the job `obj` given its `pods` (all pods labelled with its name).

    `tenant` is the TenantQuota whose namespaces hold the job, used when the job names none;
    `create_error` is why the API server refused to create the job's pods last time, if it did;
    `preempted` names the gang the job's current pods are being evicted for, if they are.
    A job being deleted gets nothing: the garbage collector takes its pods.
    """
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Plan()
    step = _Step(obj, now, tenant)
    try:
        job = parse(AIJob, obj)
    except InvalidObjectError as exc:
        return _invalid(step, pods, "; ".join(str(e) for e in exc.errors))
    if job.spec.tenant is not None:
        step.set(tenant=job.spec.tenant)
    step.set(gpus=job.spec.total_gpus())
    step.condition("Valid", "True", "SpecAccepted")
    if step.old.get("phase") in _TERMINAL_PHASES:
        step.plan.delete = _live(pods)  # finished: nothing may keep running or wait for a place
        return step.finish()

    restarts = int(step.new["restarts"])
    attempt = restarts + int(step.new.get("preemptions") or 0)  # a preemption is a new attempt too
    sorted_pods = _Pods.of(pods, attempt=attempt, uid=str(obj["metadata"].get("uid") or ""))
    if preempted is not None:
        return _preempt(step, sorted_pods, preempted)
    # Victims of a preemption are deleted by the scheduler, after their checkpoint grace period.
    victims = _victims_by_name(pods, step.now, sorted_pods.stale)
    step.plan.delete = [n for n, until in zip(sorted_pods.stale, victims, strict=True) if until is None]
    waiting = [until for until in victims if until is not None]
    if waiting:
        step.plan.recheck_at = min(waiting)  # then they are deleted here, if still there
    failed = sorted_pods.with_phase("Failed")
    wanted = {
        p["metadata"]["name"]: p for p in job_pods(obj, job, attempt=attempt, scheduler_name=scheduler_name)
    }
    missing = sorted(wanted.keys() - sorted_pods.current.keys())
    if step.old.get("phase") == "Running" and missing and not failed:
        failed = missing  # a member of a running gang vanished: the gang is broken
    if failed:
        return _fail_or_restart(step, job, sorted_pods, sorted_pods.failure(failed[0]))
    if _succeeded(job, sorted_pods):
        message = "all pods succeeded" + (f" after {restarts} restart(s)" if restarts else "")
        step.set(phase="Succeeded", message=message, placement=sorted_pods.placement())
        step.stamp("completionTime")
        step.condition("Running", "False", "Completed")
        step.condition("Complete", "True", "AllPodsSucceeded", message)
        step.plan.delete.extend(sorted_pods.with_phase("Pending", "Running"))
        return step.finish(("Completed", message))
    if missing and not sorted_pods.stale:
        step.plan.create = [wanted[name] for name in missing]
    step.set(placement=sorted_pods.placement())
    if create_error is not None and step.plan.create:
        message = f"cannot create the job's pods: {create_error}"
        step.set(
            phase="Pending" if not sorted_pods.current else step.new.get("phase", "Queued"), message=message
        )
        step.condition("Scheduled", "False", "PodCreateFailed", create_error)
        return step.finish(("PodCreateFailed", create_error))
    return _progress(step, job, sorted_pods)


def _progress(step: _Step, job: AIJob, pods: _Pods) -> Plan:
    """Status of a job neither finished nor failing: queued, scheduling or running."""
    min_member = job.spec.min_member()
    running = pods.with_phase("Running", "Succeeded")
    bound = pods.bound()
    if len(running) >= min_member:
        message = f"{len(running)} pod(s) running on {pods.node_count()} node(s)"
        step.set(phase="Running", message=message)
        step.stamp("scheduledTime")
        step.stamp("startTime")
        step.condition("Scheduled", "True", "GangPlaced", f"{len(bound)} pod(s) bound")
        step.condition("Running", "True", "PodsRunning", message)
        return step.finish(("Running", message) if step.old.get("phase") != "Running" else None)
    if len(bound) >= min_member:
        step.set(phase="Scheduling", message=f"{len(bound)} pod(s) bound, starting")
        step.stamp("scheduledTime")
        step.condition("Scheduled", "True", "GangPlaced", f"{len(bound)} pod(s) bound")
        return step.finish()
    if step.old.get("phase") in ("Restarting", "Preempted") and pods.stale:
        step.set(phase=step.old["phase"])  # the last attempt's pods are still going away
    else:
        step.set(phase="Queued" if pods.current or step.plan.create else "Pending")
    step.stamp("queuedTime")
    verdict = pods.unschedulable_message()
    event = None
    if verdict is not None:
        step.set(message=f"waiting for room for {min_member} pod(s) together: {verdict}")
        if not step.had_condition("Scheduled", "False", "Unschedulable", verdict):
            event = ("Unschedulable", verdict)
        step.condition("Scheduled", "False", "Unschedulable", verdict)
    else:
        step.set(message=f"waiting to place {min_member} pod(s) together")
        step.condition("Scheduled", "False", "Queued", step.new["message"])
    timeout = job.spec.gang.timeout_seconds
    queued_at = _epoch(step.new.get("queuedTime"))
    if timeout is not None and queued_at is not None:
        if step.now >= queued_at + timeout:
            return _give_up(step, pods, timeout, verdict)
        step.plan.recheck_at = min(queued_at + timeout, step.plan.recheck_at or float("inf"))
    return step.finish(event)


def _invalid(step: _Step, pods: Sequence[Mapping[str, Any]], message: str) -> Plan:
    """A spec the models refuse (the CRD's schema let it through): the job fails, naming the field."""
    step.set(phase="Failed", message=f"invalid spec: {message}")
    step.stamp("completionTime")
    step.condition("Valid", "False", "InvalidSpec", message)
    step.condition("Failed", "True", "InvalidSpec", message)
    step.plan.delete = _live(pods)
    return step.finish(("InvalidSpec", message))


def _succeeded(job: AIJob, pods: _Pods) -> bool:
    """Done when the master role's pods succeeded, or, without a master role, every pod did."""
    names = {r.name for r in job.spec.replicas}
    judged = {"master"} if "master" in names else names
    wanted = {
        pod_name(job.metadata.name or "", r.name, i)
        for r in job.spec.replicas
        if r.name in judged
        for i in range(r.count)
    }
    return bool(wanted) and wanted <= set(pods.with_phase("Succeeded"))


def _fail_or_restart(step: _Step, job: AIJob, pods: _Pods, why: str) -> Plan:
    """A pod failed: restart the whole gang while the policy allows, else fail the job.

    The status is written before the pods go (the controller keeps that order). A restart
    deletes every pod of the attempt (the next attempt reuses their names); a failed job only
    those still holding resources, keeping the ended ones for their logs.
    """
    restarts = int(step.new["restarts"])
    restart = job.spec.restart
    if restart.policy == "OnFailure" and restarts < restart.backoff_limit:
        message = f"restarting the gang ({restarts + 1}/{restart.backoff_limit}): {why}"
        step.set(restarts=restarts + 1)
        return _new_attempt(step, pods, "Restarting", message, why)
    limit = (
        "restart policy Never"
        if restart.policy == "Never"
        else f"backoffLimit {restart.backoff_limit} reached"
    )
    message = f"{why}; {limit}"
    step.set(phase="Failed", message=message, placement=pods.placement())
    step.stamp("completionTime")
    step.condition("Running", "False", "PodFailed", why)
    step.condition("Failed", "True", "BackoffLimitExceeded", message)
    step.plan.delete = sorted({*step.plan.delete, *pods.with_phase("Pending", "Running")})
    return step.finish(("Failed", message))


def _preempt(step: _Step, pods: _Pods, by: str) -> Plan:
    """The job's gang is evicted to make room for `by`: back to the queue (not failed), counted."""
    message = f"preempted to make room for {by}; waiting to be placed again"
    step.set(preemptions=int(step.new.get("preemptions") or 0) + 1)
    plan = _new_attempt(step, pods, "Preempted", message, message)
    plan.delete = []  # the scheduler deletes them, after their checkpoint grace period
    return plan


#: How long past its checkpoint grace period a preemption victim is left to the scheduler to delete
#: before the job's controller deletes it itself (the scheduler's term may have ended meanwhile).
VICTIM_MARGIN: Final = 60.0


def _victim_until(pod: Mapping[str, Any], now: float) -> float | None:
    """Until when `pod`, a preemption victim, is the scheduler's to delete; None when it is not
    (not a victim, or its time is up)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if keys.ANNOTATION_PREEMPTED_BY not in annotations:
        return None
    at = annotations.get(keys.ANNOTATION_PREEMPTED_AT, "")
    grace = annotations.get(keys.ANNOTATION_CHECKPOINT_GRACE, "0")
    if not at.isdigit():
        return None
    until = int(at) + (int(grace) if grace.isdigit() else 0) + VICTIM_MARGIN
    return until if now < until else None


def _victims_by_name(
    pods: Sequence[Mapping[str, Any]], now: float, names: Sequence[str]
) -> list[float | None]:
    by_name = {p["metadata"]["name"]: p for p in pods}
    return [_victim_until(by_name[n], now) if n in by_name else None for n in names]


def _new_attempt(step: _Step, pods: _Pods, phase: str, message: str, why: str) -> Plan:
    """End the current attempt (every pod goes; the next reuses their names) and queue the next.

    The caller has counted the attempt (restarts or preemptions), which is written before the
    pods go: the controller keeps that order.
    """
    step.set(phase=phase, message=message, placement=[])
    step.new.pop("scheduledTime", None)
    step.new.pop("startTime", None)
    step.new["queuedTime"] = _utc(step.now)
    step.condition("Scheduled", "False", phase, why)
    step.condition("Running", "False", phase, why)
    step.plan.delete = sorted({*step.plan.delete, *pods.current})
    return step.finish((phase, message))


def _give_up(step: _Step, pods: _Pods, timeout: int, verdict: str | None) -> Plan:
    message = f"the gang could not be placed within {timeout}s" + (f": {verdict}" if verdict else "")
    step.set(phase="Failed", message=message)
    step.stamp("completionTime")
    step.condition("Failed", "True", "GangTimeout", message)
    step.plan.delete = sorted({*step.plan.delete, *pods.current})
    step.plan.create = []
    step.plan.recheck_at = None
    return step.finish(("GangTimeout", message))
