"""What an AIJob's pods say about it, and what to do next. Pure: no I/O.

`reconcile` compares a job with its pods (`members`) and returns a `Plan`: pods to create (made by
`pods`) or delete, and the status to write (built as an `AIJobStatus` by `status`).

Attempts: a job's pods carry the attempt they belong to (`aisched.io/attempt`, equal to the job's
`status.restarts` plus `status.preemptions` when they were made). Restarting a gang writes
`restarts + 1` first, then deletes the pods; pods of an older attempt are deleted on sight and the
new attempt's pods are created only once they are gone, so two attempts never run side by side,
even across a restart of the operator between the two writes.

Submission order: the first reconciliation of a job records its creation revision as
`status.queueSequence` (the resourceVersion it is first seen with; 0 where the server's versions
are not numbers), and every pod of every attempt carries that number. The status is written
before the first pods are created, and read back ever after, so the number survives restarts of
the operator and later changes to the job.

Place in the queue: while the job's pods wait, the controller passes in where the scheduler says
its gang stands (`queue`), which becomes `status.queue` and ends the status message; it is cleared
whenever the job is not waiting. The verdict on the pods may end with the scheduler's own note on
the gang's queue and reservation, written when it was last tried: the fresher `queue` replaces it
in the message, and the Scheduled condition leaves it out (it says why the cluster turns the gang
away; a reservation re-planned is no new reason, nor a new Event).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aisched.api import keys
from aisched.api.aijob import MAX_REPLICAS_PER_ROLE, AIJob, AIJobStatus, Phase
from aisched.api.objects import TERMINAL_PHASES, ObjectView
from aisched.api.validation import InvalidObjectError, parse
from aisched.controllers.aijob.admission import Ask, Verdict
from aisched.controllers.aijob.members import JobPods, live, victim_until
from aisched.controllers.aijob.pods import (
    job_demand,
    job_pods,
    pod_name,
    pod_names,
    role_sizes,
    surplus_names,
)
from aisched.controllers.aijob.status import (
    StatusDraft,
    admission_reason,
    pending_reason,
    queue_status,
    read_status,
)
from aisched.quota.tenancy import Tenancy
from aisched.scheduler.queueing import QueueStatus, without_queue_note

__all__ = [
    "CREATE_BATCH",
    "INADMISSIBLE_RECHECK",
    "REPLACE_TIMEOUT",
    "SURPLUS_WAITING",
    "Admit",
    "Plan",
    "reconcile",
]

#: The most pods one reconciliation makes: a large job is made in batches, the other jobs' turns
#: in between (the controller comes back for the rest at once).
CREATE_BATCH: Final = 100
#: How often a job not admitted is looked at again (seconds), besides when TenantQuotas change or
#: quota is freed: nodes may have come meanwhile.
INADMISSIBLE_RECHECK: Final = 60.0
#: How long replacements of lost pods may wait for room beside the others before the whole gang
#: restarts, for a job without a gang timeout (seconds).
REPLACE_TIMEOUT: Final = 300
#: The most surplus pods of an elastic job waiting for room at once.
SURPLUS_WAITING: Final = 8
#: The job's ask → the admission's verdict (`Admissions.check`).
Admit = Callable[[Ask], Verdict]
#: Namespaces listed by no TenantQuota run unlimited: the rule when none is given.
_OPEN: Final = Tenancy()


@dataclass
class Plan:
    """What the controller does next for one job."""

    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # pod names
    status: AIJobStatus | None = None  # the whole new status, or None when unchanged
    #: When the job must be looked at again even if nothing changes (its gang timeout), as epoch s.
    recheck_at: float | None = None
    #: Why the job changed state, for an Event (reason, message), or None.
    event: tuple[str, str] | None = None
    #: The job's pods wait in the scheduler's queue: its place there changes with no news of the
    #: job's own, so the controller looks again now and then.
    waiting: bool = False
    #: More pods are to be made than `create` holds (one batch per reconciliation): come back.
    more: bool = False
    #: The job's admission was asked (a job not asked any more, refused or invalid, leaves its line).
    asked: bool = False
    #: Annotations to write on pods that keep running (the survivors' new rendezvous epoch).
    annotate: dict[str, dict[str, str]] = field(default_factory=dict)


class _Step(StatusDraft):
    """One reconciliation of one job: its status being built, and the plan."""

    def __init__(self, obj: Mapping[str, Any], now: float, trace_context: str | None = None) -> None:
        super().__init__(read_status(obj), now=now)
        if trace_context is not None and self.new.trace_context is None:
            self.set(trace_context=trace_context)
        self.set(queue=None, pending_reason=None)  # set again only while the job waits
        view = ObjectView(obj)
        generation = view.generation
        if generation is not None:
            self.set(observed_generation=generation)
        if self.new.queue_sequence is None:
            self.set(queue_sequence=view.revision or 0)
        self.created = view.created or now
        self.plan = Plan()

    def finish(self, event: tuple[str, str] | None = None) -> Plan:
        self.plan.status = self.changed()
        if event is not None and self.plan.status is not None:
            self.plan.event = event
        return self.plan


def reconcile(
    obj: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    now: float,
    tenancy: Tenancy = _OPEN,
    admit: Admit | None = None,
    scheduler_name: str = keys.SCHEDULER_NAME,
    create_error: str | None = None,
    preempted: str | None = None,
    queue: QueueStatus | None = None,
    shrunk: str | None = None,
    trace_context: str | None = None,
) -> Plan:
    """The next step for the job `obj` given its `pods` (all pods labelled with its name).

    `tenancy` says which tenant the job belongs to (its namespace's; `spec.tenant` may only choose
    among those); `admit` admits the job's spec, or says why it must wait (see
    `controllers.aijob.admission`; without it every job is admitted): no pod is made for a spec
    not admitted, and a job with no pod is answered before anything costs in proportion to the
    pods it asks for;
    `create_error` is why the API server refused to create the job's pods last time, if it did;
    `preempted` names the gang the job's current pods are being evicted for, if they are;
    `queue` is where the scheduler says the job's gang waits now, if it does;
    `shrunk` why an elastic job's surplus pod went lately, if one was evicted;
    `trace_context` the job's trace, recorded in its status the first time it is given.
    A job being deleted gets nothing: the garbage collector takes its pods.
    """
    view = ObjectView(obj)
    if view.deleting:
        return Plan()
    step = _Step(obj, now, trace_context)
    try:
        job = parse(AIJob, obj)
    except InvalidObjectError as exc:
        return _invalid(step, pods, "; ".join(str(e) for e in exc.errors))
    choice = tenancy.choose(job.spec.tenant, view.namespace)
    if choice.refused is not None and step.old.phase not in TERMINAL_PHASES:
        return _not_allowed(step, job, pods, choice.refused)
    if choice.tenant is not None:
        step.set(tenant=choice.tenant)
    step.set(gpus=job.spec.total_gpus())
    step.condition("Valid", "True", "SpecAccepted")
    if step.old.phase in TERMINAL_PHASES:
        step.plan.delete = live(pods)  # finished: nothing may keep running or wait for a place
        return step.finish()

    restarts = step.new.restarts
    attempt = restarts + step.new.preemptions  # a preemption is a new attempt too
    sorted_pods = JobPods.of(pods, attempt=attempt, uid=view.uid)
    if preempted is not None:
        return _preempt(step, sorted_pods, preempted)
    # Victims of a preemption are deleted by the scheduler, after their checkpoint grace period.
    held = {name: victim_until(pod, step.now) for name, pod in sorted_pods.stale.items()}
    step.plan.delete = [name for name, until in held.items() if until is None]
    waiting = [until for until in held.values() if until is not None]
    if waiting:
        step.plan.recheck_at = min(waiting)  # then they are deleted here, if still there
    admitted = _admitted(step, obj, job, choice.tenant, admit)
    if isinstance(admitted, Verdict):  # a spec its quota does not admit
        if not sorted_pods.current and not sorted_pods.stale:
            return _not_admitted(step, job, admitted)
        # Edited past its quota: what runs keeps running, nothing more is made.
        step.condition("Admitted", "False", admitted.reason, f"the edited spec: {admitted.message}")
    elif admitted is not None:
        return admitted
    current = sorted_pods.current.keys()
    missing = [name for name in pod_names(job) if name not in current]
    failed = _failed(step, sorted_pods, missing)
    if failed:
        return _fail_or_restart(step, job, sorted_pods, failed)
    if _succeeded(job, sorted_pods):
        message = "all pods succeeded" + (f" after {restarts} restart(s)" if restarts else "")
        step.set(phase="Succeeded", message=message, placement=sorted_pods.placement())
        step.stamp("completion_time")
        step.condition("Running", "False", "Completed")
        step.condition("Complete", "True", "AllPodsSucceeded", message)
        step.plan.delete.extend(sorted_pods.with_phase("Pending", "Running"))
        return step.finish(("Completed", message))
    if missing and not sorted_pods.stale and not isinstance(admitted, Verdict):
        _make(step, obj, job, missing, scheduler_name=scheduler_name)
    elif job.spec.elastic is not None and not missing and not isinstance(admitted, Verdict):
        _elastic(step, obj, job, sorted_pods, scheduler_name=scheduler_name, shrunk=shrunk)
    step.set(placement=sorted_pods.placement())
    if create_error is not None and step.plan.create:
        message = f"cannot create the job's pods: {create_error}"
        step.set(phase="Pending" if not sorted_pods.current else step.new.phase, message=message)
        step.condition("Scheduled", "False", "PodCreateFailed", create_error)
        return step.finish(("PodCreateFailed", create_error))
    return _progress(step, job, sorted_pods, queue)


def _progress(step: _Step, job: AIJob, pods: JobPods, queue: QueueStatus | None) -> Plan:
    """Status of a job neither finished nor failing: queued (in `queue`, if the scheduler says
    where), scheduling or running."""
    if step.new.replacing:
        replacing = _replacing(step, job, pods)
        if replacing is not None:
            return replacing
    min_member = job.spec.min_member()
    running = [n for n in pods.with_phase("Running", "Succeeded") if not _is_surplus(pods, n)]
    bound = [n for n in pods.bound() if not _is_surplus(pods, n)]
    if len(running) >= min_member:
        message = f"{len(running)} pod(s) running on {pods.node_count()} node(s)"
        step.set(phase="Running", message=message)
        step.stamp("scheduled_time")
        step.stamp("start_time")
        step.condition("Scheduled", "True", "GangPlaced", f"{len(bound)} pod(s) bound")
        step.condition("Running", "True", "PodsRunning", message)
        return step.finish(("Running", message) if step.old.phase != "Running" else None)
    if len(bound) >= min_member:
        step.set(phase="Scheduling", message=f"{len(bound)} pod(s) bound, starting")
        step.stamp("scheduled_time")
        step.condition("Scheduled", "True", "GangPlaced", f"{len(bound)} pod(s) bound")
        return step.finish()
    if step.old.phase in ("Restarting", "Preempted") and pods.stale:
        step.set(phase=step.old.phase)  # the last attempt's pods are still going away
    else:
        step.set(phase="Queued" if pods.current or step.plan.create else "Pending")
    step.stamp("queued_time")
    step.plan.waiting = bool(pods.current)
    if queue is not None:
        step.set(queue=queue_status(queue))
    made, total = len(pods.current), len(pod_names(job))
    if made < total and step.plan.more:  # the gang is still being made: what the scheduler
        # last said of it ("has 3530 of its 10000 members") is out of date; the count here is not
        message = f"making the job's pods: {made} of {total} made"
        step.condition("Scheduled", "False", "CreatingPods", "the job's pods are being made")
        step.set(message=message)
        return _within_timeout(step, job, pods, None) or step.finish()
    verdict = (queue.verdict if queue is not None else "") or pods.unschedulable_message()
    event = None
    if verdict is not None:
        cause = without_queue_note(verdict)
        said = verdict if queue is None else f"{cause.rstrip('.')}; {_place(queue)}"
        step.set(message=f"waiting for room for {min_member} pod(s) together: {said}")
        if queue is not None:
            step.set(pending_reason=pending_reason(queue, summary=cause))
        if not step.had_condition("Scheduled", "False", "Unschedulable", cause):
            event = ("Unschedulable", cause)
        step.condition("Scheduled", "False", "Unschedulable", cause)
    else:
        message = f"waiting to place {min_member} pod(s) together"
        step.condition("Scheduled", "False", "Queued", message)
        step.set(message=message if queue is None else f"{message}; {_place(queue)}")
        if queue is not None:
            step.set(pending_reason=pending_reason(queue, summary=message))
    return _within_timeout(step, job, pods, verdict) or step.finish(event)


def _within_timeout(step: _Step, job: AIJob, pods: JobPods, verdict: str | None) -> Plan | None:
    """Give the job up once it waited out its gang timeout (the plan), else note when to look again."""
    timeout = job.spec.gang.timeout_seconds
    queued_at = step.new.queued_time.timestamp() if step.new.queued_time is not None else None
    if timeout is None or queued_at is None:
        return None
    if step.now >= queued_at + timeout:
        return _give_up(step, pods, timeout, verdict)
    step.plan.recheck_at = min(queued_at + timeout, step.plan.recheck_at or float("inf"))
    return None


def _place(queue: QueueStatus) -> str:
    """`position 3 of 7 in tenant/a (BestEffortFIFO); reserved: 3 of 4 nodes held since ...`."""
    where = f"in {queue.queue} ({queue.strategy})"
    text = f"position {queue.position} of {queue.length} {where}" if queue.position else f"queued {where}"
    return text if queue.reservation is None else f"{text}; {queue.reservation.describe()}"


def _admitted(
    step: _Step, obj: Mapping[str, Any], job: AIJob, tenant: str | None, admit: Admit | None
) -> Verdict | Plan | None:
    """None when the job's spec is admitted (or nothing admits), else the verdict refusing it; the
    plan of a job whose pods cannot be worked out."""
    if admit is None:
        return None
    view = ObjectView(obj)
    step.plan.asked = True
    try:
        verdict = admit(_ask(step, obj, job, view, tenant))
    except ValueError as exc:  # a pod it would make cannot be read as the scheduler reads it
        return _invalid(step, [], str(exc))
    if not verdict.admitted:
        return verdict
    step.condition("Admissible", "True", "Admissible")
    step.condition("Admitted", "True", "QuotaReserved", "the tenant's quota holds the whole job")
    step.set(admitted_generation=view.generation or 0)
    return None


def _ask(step: _Step, obj: Mapping[str, Any], job: AIJob, view: ObjectView, tenant: str | None) -> Ask:
    """What the job asks of its tenant's quota: its demand is worked out only if it is needed."""
    return Ask(
        key=view.key,
        uid=view.uid,
        generation=view.generation or 0,
        tenant=tenant,
        order=(step.created, step.new.queue_sequence or 0, view.key),
        demand=lambda: job_demand(obj, job),
    )


def _make(
    step: _Step, obj: Mapping[str, Any], job: AIJob, missing: list[str], *, scheduler_name: str
) -> None:
    """Plan the next batch of the missing pods (`plan.more` when more remain)."""
    batch = missing[:CREATE_BATCH]
    step.plan.create = job_pods(
        obj,
        job,
        attempt=step.new.restarts + step.new.preemptions,
        sequence=step.new.queue_sequence or 0,
        scheduler_name=scheduler_name,
        only=set(batch),
        epoch=step.new.replacements,
        trace_context=step.new.trace_context,
    )
    step.plan.more = len(batch) < len(missing)
    if step.new.replacing and set(batch) & set(step.new.replacing):
        step.stamp("replacing_since")  # the replacements' time to find room starts now


def _not_allowed(step: _Step, job: AIJob, pods: Sequence[Mapping[str, Any]], refused: str) -> Plan:
    """The job may not run as the tenant it names (or at all, in its namespace): nothing is made for
    it until a TenantQuota allows it (the job is looked at again whenever TenantQuotas change).
    Pods it already has are left alone: a TenantQuota edited under a running job does not kill it."""
    field = "spec.tenant" if job.spec.tenant else "metadata.namespace"
    message = f"{field}: {refused}"
    event = None if step.had_condition("Valid", "False", "TenantNotAllowed", message) else message
    step.condition("Valid", "False", "TenantNotAllowed", message)
    if not live(pods):
        step.set(phase="Pending", message=f"refused: {message}")
    return step.finish(("TenantNotAllowed", event) if event is not None else None)


def _not_admitted(step: _Step, job: AIJob, verdict: Verdict) -> Plan:
    """No pod is made: the job can never be admitted as it stands (a standing condition, looked at
    again when TenantQuotas or nodes change), or waits for its tenant's quota. Its gang timeout
    counts from when it was queued, admitted or not."""
    step.set(
        phase="Pending",
        queue=None,
        pending_reason=admission_reason(verdict.quota, outcome=verdict.outcome, message=verdict.message),
    )
    event = None
    if verdict.standing:
        step.set(message=f"cannot be admitted: {verdict.message}")
        if not step.had_condition("Admissible", "False", verdict.outcome, verdict.message):
            event = ("Inadmissible", verdict.message)
        step.condition("Admissible", "False", verdict.outcome, verdict.message)
        step.condition("Admitted", "False", verdict.reason, verdict.message)
    else:
        step.set(message=verdict.message)
        if not any(c.type == "Admitted" and c.reason == "WaitingForQuota" for c in step.old.conditions):
            event = ("WaitingForQuota", verdict.message)  # once: its figures move as others come and go
        step.condition("Admissible", "True", "Admissible")
        step.condition("Admitted", "False", verdict.reason, verdict.message)
    step.stamp("queued_time")
    # Looked at again when TenantQuotas change or quota is freed, and now and then anyway (new
    # nodes; a line that moved while this job's news was lost).
    step.plan.recheck_at = step.now + INADMISSIBLE_RECHECK
    return _within_timeout(step, job, JobPods.of([], attempt=0, uid=""), verdict.message) or step.finish(
        event
    )


def _invalid(step: _Step, pods: Sequence[Mapping[str, Any]], message: str) -> Plan:
    """A spec the models refuse (the CRD's schema let it through): the job fails, naming the field."""
    step.set(phase="Failed", message=f"invalid spec: {message}")
    step.stamp("completion_time")
    step.condition("Valid", "False", "InvalidSpec", message)
    step.condition("Failed", "True", "InvalidSpec", message)
    step.plan.delete = live(pods)
    return step.finish(("InvalidSpec", message))


def _succeeded(job: AIJob, pods: JobPods) -> bool:
    """Done when the master role's pods succeeded, or, without a master role, every pod did."""
    names = {r.name for r in job.spec.replicas}
    judged = {"master"} if "master" in names else names
    wanted = {
        pod_name(job.metadata.name or "", r.name, i)
        for r in job.spec.replicas
        if r.name in judged
        for i in range(role_sizes(job.spec, r.name)[0])
    }
    return bool(wanted) and wanted <= set(pods.with_phase("Succeeded"))


def _failed(step: _Step, pods: JobPods, missing: list[str]) -> list[str]:
    """The pods that failed (not the lost ones being replaced, still seen while they go, nor an
    elastic job's surplus, which may come and go); or, in a running gang, those that vanished (not
    the names being made again): the gang is broken."""
    lost = set(step.new.replacing_uids)
    failed = [
        name for name in pods.failed() if pods.current[name].uid not in lost and not _is_surplus(pods, name)
    ]
    if failed or step.old.phase != "Running":
        return failed
    replacing = set(step.new.replacing)
    return [name for name in missing if name not in replacing]


def _fail_or_restart(step: _Step, job: AIJob, pods: JobPods, failed: list[str]) -> Plan:
    """Pods `failed`: replace them or restart the whole gang while the policy allows, else fail
    the job.

    The status is written before the pods go (the controller keeps that order). A restart
    deletes every pod of the attempt (the next attempt reuses their names); a failed job only
    those still holding resources, keeping the ended ones for their logs.
    """
    why = pods.failure(failed[0])
    restarts = step.new.restarts
    restart = job.spec.restart
    recoveries = restarts + step.new.replacements
    if restart.policy == "Replace" and recoveries < restart.backoff_limit:
        replaced = _replace(step, job, pods, failed)
        if replaced is not None:
            return replaced
    if restart.policy in ("OnFailure", "Replace") and recoveries < restart.backoff_limit:
        message = f"restarting the gang ({recoveries + 1}/{restart.backoff_limit}): {why}"
        step.set(restarts=restarts + 1)
        return _new_attempt(step, pods, "Restarting", message, why)
    limit = (
        "restart policy Never"
        if restart.policy == "Never"
        else f"backoffLimit {restart.backoff_limit} reached"
    )
    return _fail(step, pods, why, limit)


def _fail(step: _Step, pods: JobPods, why: str, limit: str) -> Plan:
    """The job has failed for good: the pods still holding resources go, the ended ones stay."""
    message = f"{why}; {limit}"
    step.set(phase="Failed", message=message, placement=pods.placement())
    step.stamp("completion_time")
    step.condition("Running", "False", "PodFailed", why)
    step.condition("Failed", "True", "BackoffLimitExceeded", message)
    step.plan.delete = sorted({*step.plan.delete, *pods.with_phase("Pending", "Running")})
    return step.finish(("Failed", message))


def _elastic(
    step: _Step,
    obj: Mapping[str, Any],
    job: AIJob,
    pods: JobPods,
    *,
    scheduler_name: str,
    shrunk: str | None,
) -> None:
    """An elastic job whose pods placed together run: its surplus pods (above the elastic role's
    minimum, up to its maximum) wait for idle room and take it (the job grows); one that ended
    (evicted to make room, or failed) goes and waits again (the job shrinks, never below its
    minimum). Every change in the role's running pods is counted, with its reason."""
    role = job.spec.elastic.role if job.spec.elastic is not None else ""
    if step.old.phase != "Running" or step.new.replacing:
        return  # grows only once the pods placed together run (and are whole)
    running = [n for n in pods.with_phase("Running") if pods.current[n].labels.get(keys.LABEL_ROLE) == role]
    mine = [n for n in pods.current if _is_surplus(pods, n)]
    # Evicted or hit by a fault: it goes, and waits for room again. One that failed by itself stays
    # (ended, holding nothing) until the job restarts, so a pod that cannot run is not made again
    # and again; one that succeeded has done its part.
    evicted = [
        n
        for n in mine
        if (pod := pods.current[n]).fault is not None
        or (pod.phase == "Failed" and keys.ANNOTATION_PREEMPTED_BY in pod.annotations)
    ]
    before = step.new.elastic_replicas
    now = len(running)
    step.set(elastic_replicas=now)
    if before is not None and now != before:
        going = [
            *evicted,
            *(
                n
                for n, pod in pods.stale.items()
                if pod.annotations.get(keys.ANNOTATION_ELASTIC_SURPLUS) == "true"
            ),
            *(n for n in mine if pods.current[n].terminal),
        ]
        why = "idle room taken" if now > before else shrunk or _shrunk(pods, going)
        step.set(resizes=step.new.resizes + 1)
        step.plan.event = ("Resized", f"{role}: {before} -> {now} running pod(s): {why}")
    step.plan.delete = sorted({*step.plan.delete, *evicted})
    # A few wait at a time, the next made as one is placed: what a job costs follows the room it
    # takes, not the maxReplicas it names.
    waiting = sum(1 for n in mine if not pods.current[n].node_name)
    free = (n for n in surplus_names(job) if n not in pods.current and n not in pods.stale)
    wanted = list(itertools.islice(free, max(0, SURPLUS_WAITING - waiting)))
    if wanted:
        _make(step, obj, job, wanted, scheduler_name=scheduler_name)


def _is_surplus(pods: JobPods, name: str) -> bool:
    """Whether the current pod `name` was made as an elastic job's surplus (its own mark, whatever
    the spec says now: an edited minReplicas or maxReplicas does not turn it into another pod)."""
    pod = pods.current.get(name)
    return pod is not None and pod.annotations.get(keys.ANNOTATION_ELASTIC_SURPLUS) == "true"


def _shrunk(pods: JobPods, going: list[str]) -> str:
    """Why the elastic role has fewer pods running: the first of the surplus pods `going`."""
    if not going:
        return "a pod stopped running"
    name = going[0]
    pod = pods.current.get(name) or pods.stale[name]
    by = pod.annotations.get(keys.ANNOTATION_PREEMPTED_BY)
    return f"pod {name} evicted to make room for {by}" if by else pods.failure(name)


def _replace(step: _Step, job: AIJob, pods: JobPods, failed: list[str]) -> Plan | None:
    """Replace the pods `failed` while the others keep running (None when none does): the lost
    ones go (their names are made again, in this attempt, beside the survivors), and every pod
    gets the next rendezvous epoch, so the job's launcher re-forms its group."""
    running = [n for n in pods.with_phase("Running") if n not in failed and not _is_surplus(pods, n)]
    lost = sorted({*step.new.replacing, *failed})
    if not running or len(lost) > MAX_REPLICAS_PER_ROLE:
        return None  # nothing left to keep, or more than the status can list: the whole gang
    why = pods.failure(failed[0])
    epoch = step.new.replacements + 1
    limit = job.spec.restart.backoff_limit
    message = (
        f"replacing {len(failed)} lost pod(s) ({step.new.restarts + epoch}/{limit}), {len(running)}"
        f" still running: {why}"
    )
    uids = {*step.new.replacing_uids, *(pods.current[n].uid for n in failed if n in pods.current)} - {""}
    step.set(replacements=epoch, replacing=lost, replacing_uids=sorted(uids), message=message)
    step.clear("replacing_since")  # counted from when the replacements are made
    step.condition("Running", "False", "Replacing", why)
    step.plan.delete = sorted({*step.plan.delete, *failed})
    # Every pod that stays, a replacement still starting included, gets the new epoch (a container
    # reads it in a downward API volume, which the kubelet keeps current).
    stay = (name for name, pod in pods.current.items() if name not in failed and not pod.terminal)
    step.plan.annotate = {name: {keys.ANNOTATION_RENDEZVOUS_EPOCH: str(epoch)} for name in stay}
    return step.finish(("Replacing", message))


def _replacing(step: _Step, job: AIJob, pods: JobPods) -> Plan | None:
    """While lost pods are replaced: done once every pod runs again; the whole gang restarts when
    the replacements found no room within the gang timeout (`REPLACE_TIMEOUT` without one)."""
    lost = step.new.replacing
    running = set(pods.with_phase("Running"))
    done = running | set(pods.with_phase("Succeeded"))
    if all(name in done for name in lost):
        message = f"{len(lost)} pod(s) replaced; {len(running)} pod(s) running on {pods.node_count()} node(s)"
        step.set(replacing=[], replacing_uids=[], phase="Running", message=message)
        step.clear("replacing_since")
        step.condition("Running", "True", "PodsRunning", message)
        return step.finish(("Replaced", message))
    since = step.new.replacing_since
    timeout = job.spec.gang.timeout_seconds or REPLACE_TIMEOUT
    if since is not None and step.now >= since.timestamp() + timeout:
        why = f"the {len(lost)} replacement pod(s) found no room beside the others within {timeout}s"
        limit = job.spec.restart.backoff_limit
        recoveries = step.new.restarts + step.new.replacements
        if recoveries >= limit:
            return _fail(step, pods, why, f"backoffLimit {limit} reached")
        step.set(restarts=step.new.restarts + 1)
        message = f"restarting the gang ({recoveries + 1}/{limit}): {why}"
        return _new_attempt(step, pods, "Restarting", message, why)
    if since is not None:
        step.plan.recheck_at = min(since.timestamp() + timeout, step.plan.recheck_at or float("inf"))
    placed = sum(1 for name in lost if name in pods.current and pods.current[name].node_name)
    verdict = pods.unschedulable_message()
    message = f"replacing {len(lost)} lost pod(s): {placed} placed, {len(running)} pod(s) running"
    step.set(phase="Running", message=message + (f"; {without_queue_note(verdict)}" if verdict else ""))
    return step.finish()


def _preempt(step: _Step, pods: JobPods, by: str) -> Plan:
    """The job's gang is evicted to make room for `by`: back to the queue (not failed), counted."""
    message = f"preempted to make room for {by}; waiting to be placed again"
    step.set(preemptions=step.new.preemptions + 1)
    plan = _new_attempt(step, pods, "Preempted", message, message)
    plan.delete = []  # the scheduler deletes them, after their checkpoint grace period
    return plan


def _new_attempt(step: _Step, pods: JobPods, phase: Phase, message: str, why: str) -> Plan:
    """End the current attempt (every pod goes; the next reuses their names) and queue the next.

    The caller has counted the attempt (restarts or preemptions), which is written before the
    pods go: the controller keeps that order.
    """
    step.set(phase=phase, message=message, placement=[], replacing=[], replacing_uids=[])
    step.clear("scheduled_time", "start_time", "replacing_since")
    step.stamp("queued_time", again=True)
    step.condition("Scheduled", "False", phase, why)
    step.condition("Running", "False", phase, why)
    step.plan.delete = sorted({*step.plan.delete, *pods.current})
    return step.finish((phase, message))


def _give_up(step: _Step, pods: JobPods, timeout: int, verdict: str | None) -> Plan:
    cause = without_queue_note(verdict) if verdict else None  # it leaves the queue now
    message = f"the gang could not be placed within {timeout}s" + (f": {cause}" if cause else "")
    step.set(phase="Failed", message=message, queue=None)
    step.plan.waiting = False
    step.stamp("completion_time")
    step.condition("Failed", "True", "GangTimeout", message)
    step.plan.delete = sorted({*step.plan.delete, *pods.current})
    step.plan.create = []
    step.plan.recheck_at = None
    return step.finish(("GangTimeout", message))
