"""The AIJob controller: makes each job's pods and Service and keeps its status.

A `JobController` runs for one leadership term, reading the jobs from the `controllers.index`
Kopf keeps: it learns the jobs' pods from the scheduler's pod informer (`pod_event` is a pod listener),
waits until that informer has listed everything, then reconciles every job once and after that only
the jobs something happened to, one at a time in the order they were marked, from a work queue
(`aisched.kube.workqueue`; no polling). A job whose reconciliation fails is retried with backoff; it
never stops the others.

A waiting job's place in its queue moves as the gangs ahead of it start, with no news of its own:
given the scheduler's `queue_view`, the controller looks a waiting job up once per reconciliation
and marks it again every `queue_status_every` seconds while it waits (one delayed mark per job at
most; sooner once, when it was queued too recently to have been ranked). The status is written
only when it differs, so a job whose place holds still costs a lookup per period and no write.

Admission (`controllers.aijob.admission`): the book of admitted jobs is rebuilt from the jobs'
statuses before any job is reconciled; what frees quota or moves a tenant's line marks the jobs
it lets through. Pods are created in batches (`decide.CREATE_BATCH` a reconciliation, the job
marked again for the rest) and paced across all jobs by `creates`; a deleted job's pods go in
one collection delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from aisched.api import keys
from aisched.api.aijob import AIJob, AIJobStatus
from aisched.api.objects import TERMINAL_PHASES, ObjectView, PodView
from aisched.api.validation import InvalidObjectError, parse
from aisched.binder.ratelimit import TokenBucket
from aisched.controllers.aijob.admission import Admissions
from aisched.controllers.aijob.decide import Plan, reconcile
from aisched.controllers.aijob.pods import ANNOTATION_ATTEMPT, job_demand, job_service
from aisched.controllers.aijob.status import read_status, status_patch
from aisched.controllers.index import JobIndex, owning_job
from aisched.framework.types import PodInfo
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, KubeClient, resource_path
from aisched.kube.events import EventRecorder
from aisched.kube.retry import Backoff, until_stopped
from aisched.kube.workqueue import WorkQueue
from aisched.observability.logging import get_logger
from aisched.observability.tracing import Tracing, context_of
from aisched.queue import gang_key
from aisched.scheduler.queueing import POSITIONS_EVERY, QueueStatus

__all__ = [
    "AIJOBS_PATH",
    "QUEUE_STATUS_EVERY",
    "TENANTQUOTAS_PATH",
    "JobController",
    "JobIndex",
    "QueueView",
    "owning_job",
]

log = get_logger(__name__)

AIJOBS_PATH: Final = "/apis/aisched.io/v1alpha1/aijobs"
TENANTQUOTAS_PATH: Final = "/apis/aisched.io/v1alpha1/tenantquotas"
_NOT_FOUND: Final = 404
_CONFLICT: Final = 409
_WRITES_IN_FLIGHT: Final = 16
_RETRY: Final = Backoff(initial=1.0, cap=60.0)
_WARNINGS: Final = frozenset(
    {"Failed", "Unschedulable", "InvalidSpec", "GangTimeout", "Restarting", "Replacing", "PodCreateFailed"}
)
#: How often a waiting job's place in its queue is looked up again (seconds).
QUEUE_STATUS_EVERY: Final = 10.0

#: Where the scheduler says a gang waits (`SchedulerRuntime.queue_status`), by gang key.
QueueView = Callable[[str], QueueStatus | None]


def _job_path(obj: Mapping[str, Any]) -> str:
    view = ObjectView(obj)
    return resource_path(
        group="aisched.io", version="v1alpha1", plural="aijobs", namespace=view.namespace, name=view.name
    )


class JobController:
    """Reconciles AIJobs for one leadership term; see the module's docstring."""

    def __init__(
        self,
        client: KubeClient,
        index: JobIndex,
        *,
        clock: Callable[[], float],
        pods_synced: asyncio.Event,
        events: EventRecorder | None = None,
        scheduler_name: str = keys.SCHEDULER_NAME,
        queue_view: QueueView | None = None,
        queue_status_every: float = QUEUE_STATUS_EVERY,
        admissions: Admissions | None = None,
        creates: TokenBucket | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`clock` is wall-clock time (epoch seconds: it stamps the status); `pods_synced` is set once
        the pod informer feeding `pod_event` has listed every pod; `queue_view` says where a gang
        waits in the scheduler's queue (in process: the same term's runtime), looked up again every
        `queue_status_every` seconds while a job waits; `admissions` admits each job's gang before
        its pods are made (without it every job is admitted); `creates` paces pod creation across
        all jobs; `tracing` makes each job's trace (`observability.tracing`)."""
        if queue_status_every <= 0:
            raise ValueError(f"queue_status_every must be positive, not {queue_status_every}")
        self._client = client
        self._index = index
        self._clock = clock
        self._pods_synced = pods_synced
        self._scheduler_name = scheduler_name
        self._queue_view = queue_view
        self._queue_status_every = queue_status_every
        self._create_errors: dict[str, str] = {}  # job key -> why its pods could not be created
        self._preempted: dict[str, tuple[str, str]] = {}  # job key -> (attempt, gang) evicted for
        self._shrunk: dict[str, str] = {}  # elastic job key -> why a surplus pod went, to report
        self._events = events if events is not None else EventRecorder(client, clock=clock)
        self._pods: dict[str, dict[str, JsonObject]] = {}  # job key -> pod name -> pod
        self._queue: WorkQueue[str] = WorkQueue(
            name="aijobs", backoff=_RETRY, expected=(ApiError, ApiUnavailable)
        )
        self._services: set[str] = set()  # uids of jobs whose Service exists
        self._admissions = admissions
        self._creates = creates
        self._tracing = tracing if tracing is not None else Tracing()

    # -- what it is told -----------------------------------------------------------------------

    def pod_event(self, pod: JsonObject, deleted: bool) -> None:
        """A pod listener for the scheduler's pod informer: index the pods AIJobs own."""
        job = owning_job(pod)
        if job is None:
            return
        view = PodView(pod)
        name, annotations = view.name, view.annotations
        by = annotations.get(keys.ANNOTATION_PREEMPTED_BY)
        surplus = annotations.get(keys.ANNOTATION_ELASTIC_SURPLUS) == "true"
        if by and not surplus:  # evicted for another gang: the job goes back to the queue (not a failure)
            self._preempted[job] = (annotations.get(ANNOTATION_ATTEMPT, "0"), by)
        elif by:  # an elastic job's surplus pod evicted: it shrinks, and says why
            self._shrunk[job] = f"pod {name} evicted to make room for {by}"
        if deleted:
            pods = self._pods.get(job)
            if pods is not None:
                pods.pop(name, None)
                if not pods:
                    del self._pods[job]
        else:
            self._pods.setdefault(job, {})[name] = pod
        self.mark(job)

    def mark(self, key: str) -> None:
        """Look at job `key` again soon."""
        self._queue.add(key)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile until `stop` is set."""
        unsubscribe = self._index.subscribe(self.mark, lambda: None)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._events.run(stop), name="aijob events")
                if await until_stopped(self._start(), stop):
                    await self._queue.run(self._reconcile, stop)
        finally:
            unsubscribe()

    async def _start(self) -> None:
        """Once the pods are known, every job (and every job's pods) is marked."""
        await self._pods_synced.wait()
        await self._relist()
        self._admitted_already()
        for key in [*self._index.jobs, *self._pods]:
            self.mark(key)
        log.info("job_controller_started", jobs=len(self._index.jobs))

    async def _relist(self) -> None:
        """A fresh list of AIJobs: the index may have missed deletions while no one was leading."""
        while True:
            try:
                listing = await self._client.get(AIJOBS_PATH)
            except (ApiError, ApiUnavailable) as exc:
                log.warning("aijob_list_failed", error=str(exc))
                await asyncio.sleep(_RETRY.initial)
                continue
            self._index.replace_jobs(listing.get("items") or [])
            return

    def _admitted_already(self) -> None:
        """Jobs an earlier term admitted (their status says which spec) keep their quota, recorded
        before any waiting job is looked at, so a restart never admits more than the quota holds.
        A job from before admission existed counts as admitted when it has pods."""
        if self._admissions is None:
            return
        for key, obj in self._index.jobs.items():
            status = read_status(obj)
            if status.phase in TERMINAL_PHASES:
                continue
            said = next((c for c in status.conditions if c.type == "Admitted"), None)
            if said is None and not self._pods.get(key):
                continue
            if said is not None and (said.status != "True" or status.admitted_generation is None):
                continue
            view = ObjectView(obj)
            try:
                job = parse(AIJob, obj)
                demand = job_demand(obj, job)
            except (InvalidObjectError, ValueError):
                continue  # its reconciliation says what is wrong
            generation = (
                status.admitted_generation if status.admitted_generation is not None else view.generation
            )
            tenant = self._index.tenancy.charged_to(job.spec.tenant, view.namespace)
            self._admissions.admit(key, view.uid, generation or 0, tenant, demand)

    def _admission_done(self, key: str, obj: JsonObject | None, plan: Plan) -> None:
        """Give back the quota of a job that is gone or finished (or take it out of its line when
        it is refused now), then look again at the jobs this lets through."""
        admissions = self._admissions
        if admissions is None:
            return
        phase = plan.status.phase if plan.status is not None else read_status(obj or {}).phase
        if obj is None or phase in TERMINAL_PHASES or (not plan.asked and not admissions.is_admitted(key)):
            admissions.release(key)
        marks, admissions.marks = admissions.marks, []
        for waiting in marks:
            if waiting != key:
                self.mark(waiting)

    # -- one job -------------------------------------------------------------------------------

    async def _reconcile(self, key: str) -> None:
        """Bring job `key` and its pods in line; raising, it is retried with backoff (a failing job
        never stops the others)."""
        obj = self._index.jobs.get(key)
        pods = list(self._pods.get(key, {}).values())
        if obj is None:
            self._admission_done(key, None, Plan())
            await self._orphaned(key, pods)
            return
        status = read_status(obj)
        traced = await self._traced(key, obj, status.trace_context)
        if traced is None:
            return  # the job is gone
        obj, trace_context = traced
        attempt = str(status.restarts + status.preemptions)
        marker = self._preempted.get(key)
        place = self._place(pods)
        plan = reconcile(
            obj,
            pods,
            now=self._clock(),
            tenancy=self._index.tenancy,
            admit=self._admissions.check if self._admissions is not None else None,
            scheduler_name=self._scheduler_name,
            create_error=self._create_errors.get(key),
            preempted=marker[1] if marker is not None and marker[0] == attempt else None,
            queue=place,
            shrunk=self._shrunk.pop(key, None),
            trace_context=trace_context,
        )
        if marker is not None and marker[0] != attempt:
            del self._preempted[key]  # an earlier attempt's, already counted
        # The status first: a restart must be on record before its pods go (see controllers.aijob.decide).
        if plan.status is not None and not await self._write_status(key, obj, plan.status):
            return  # the job is gone
        self._trace_change(obj, status, plan)
        if plan.event is not None:
            reason, message = plan.event
            warning = reason in _WARNINGS
            self._events.record(obj, reason=reason, message=message, warning=warning)
        if plan.create:
            if not await self._still_there(key, obj):
                return
            await self._ensure_service(obj)
        self._admission_done(key, obj, plan)
        await self._write_pods(key, obj, plan)
        if plan.more:  # the next batch, after the jobs marked meanwhile
            self._queue.add(key)
        if plan.recheck_at is not None:
            self._queue.add_after(key, plan.recheck_at - self._clock())
        if plan.waiting and self._queue_view is not None:  # its place moves without news
            just_queued = place is not None and place.position == 0  # ranked within POSITIONS_EVERY
            every = self._queue_status_every
            self._queue.add_after(key, min(every, POSITIONS_EVERY) if just_queued else every)

    async def _traced(
        self, key: str, obj: JsonObject, recorded: str | None
    ) -> tuple[JsonObject, str | None] | None:
        """`obj` and its trace: the one its status records (`recorded`), else a new root span dated from its
        creation, whose context the job's annotation gets as a copy (and the status next). A
        context a client wrote on the job is not taken: the status alone, which only aisched
        writes, says which trace the job's spans join. Nothing is written while tracing is off.
        None: the job is gone."""
        view = ObjectView(obj)
        if context_of(recorded) is not None:
            return obj, recorded
        created = view.created
        context = self._tracing.root(
            "aijob",
            start_time=int(created * 1e9) if created is not None else None,
            attributes={"aisched.job": key, "aisched.uid": view.uid},
        )
        if context is None:
            return obj, None
        patch = {"metadata": {"annotations": {keys.ANNOTATION_TRACE_CONTEXT: context}}}
        try:
            updated = await self._client.patch(_job_path(obj), patch)
        except ApiError as exc:
            if exc.status == _NOT_FOUND:
                self._index.job_event("DELETED", obj)
                return None
            raise
        self._index.job_event("MODIFIED", updated)
        return updated, context

    def _trace_change(self, obj: JsonObject, old: AIJobStatus, plan: Plan) -> None:
        """A span of the job's trace for each change of phase, admission or Event it went through."""
        new = plan.status
        names: list[str] = []
        if new is not None and new.phase != old.phase:
            names.append(new.phase)
        if new is not None and _admitted(new) and not _admitted(old):
            names.append("Admitted")
        if plan.event is not None and plan.event[0] not in names:
            names.append(plan.event[0])
        if not names:
            return
        view = ObjectView(obj)
        parent = (new or old).trace_context
        for name in names:
            attributes: dict[str, AttributeValue] = {
                "aisched.job": view.key,
                "aisched.phase": (new or old).phase,
            }
            message = (
                plan.event[1] if plan.event is not None and plan.event[0] == name else (new or old).message
            )
            if message:
                attributes["aisched.message"] = message[:1024]
            with self._tracing.span(f"aijob.{name}", parent=parent, attributes=attributes):
                pass

    def _place(self, pods: list[JsonObject]) -> QueueStatus | None:
        """Where the scheduler says the gang of the job's waiting pods stands; None when no pod
        waits (nothing is asked) or the scheduler does not have the gang queued."""
        if self._queue_view is None:
            return None
        for pod in pods:
            view = PodView(pod)
            if view.node_name or view.deleting or view.terminal:
                continue
            try:
                info = PodInfo.from_manifest(pod)
            except ValueError:  # the scheduler cannot read it either: it queues no gang for it
                return None
            return self._queue_view(gang_key(info))
        return None

    async def _write_status(self, key: str, obj: JsonObject, status: AIJobStatus) -> bool:
        """Write `status` over the job's; False when the job no longer exists."""
        patch = status_patch(ObjectView(obj).status, status)  # dropped fields (restart: startTime) as null
        try:
            updated = await self._client.patch(f"{_job_path(obj)}/status", {"status": patch})
        except ApiError as exc:
            if exc.status == _NOT_FOUND:
                self._index.job_event("DELETED", obj)  # gone meanwhile (its DELETED may never come)
                return False
            raise
        self._index.job_event("MODIFIED", updated)
        log.info("aijob_status", job=key, phase=status.phase, message=status.message)
        return True

    async def _still_there(self, key: str, obj: JsonObject) -> bool:
        """Whether the job `obj` (this uid) still exists: pods are never made for a deleted job,
        however late the news of its deletion is."""
        try:
            current = await self._client.get(_job_path(obj))
        except ApiError as exc:
            if exc.status != _NOT_FOUND:
                raise
            current = None
        if current is None or ObjectView(current).uid != ObjectView(obj).uid:
            self._index.job_event("DELETED", obj)
            return False
        return True

    async def _ensure_service(self, obj: JsonObject) -> None:
        view = ObjectView(obj)
        if view.uid in self._services:
            return
        try:
            await self._client.post(f"/api/v1/namespaces/{view.namespace}/services", job_service(obj))
        except ApiError as exc:
            if exc.status != _CONFLICT:  # AlreadyExists: made by an earlier term
                raise
        self._services.add(view.uid)

    async def _write_pods(self, key: str, obj: JsonObject | None, plan: Plan) -> None:
        """Create and delete pods as `plan` says. A refused creation that will not clear by itself
        (a foreign pod holding the name, a quota or policy refusal) is remembered, so the job's
        status says why, and retried with backoff."""
        limit = asyncio.Semaphore(_WRITES_IN_FLIGHT)
        pods_path = f"/api/v1/namespaces/{key.split('/', 1)[0]}/pods"
        uid = ObjectView(obj).uid if obj is not None else None

        async def create(pod: JsonObject) -> None:
            async with limit:
                if self._creates is not None:
                    await self._creates.acquire()
                try:
                    await self._client.post(pods_path, pod)
                except ApiError as exc:
                    if exc.status == _CONFLICT and await self._ours(pods_path, pod, uid):
                        return  # made by us already: its ADDED event is on the way
                    if not exc.transient:
                        self._create_errors[key] = f"pod {pod['metadata']['name']}: {exc}"
                    raise

        async def delete(name: str) -> None:
            async with limit:
                try:
                    await self._client.delete(f"{pods_path}/{name}")
                except ApiError as exc:
                    if exc.status != _NOT_FOUND:
                        raise

        async def annotate(name: str, annotations: dict[str, str]) -> None:
            async with limit:
                try:
                    await self._client.patch(
                        f"{pods_path}/{name}", {"metadata": {"annotations": annotations}}
                    )
                except ApiError as exc:
                    if exc.status != _NOT_FOUND:
                        raise

        results = await asyncio.gather(
            *(create(p) for p in plan.create),
            *(delete(n) for n in plan.delete),
            *(annotate(n, a) for n, a in plan.annotate.items()),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        if plan.create:
            self._create_errors.pop(key, None)

    async def _ours(self, pods_path: str, pod: JsonObject, uid: str | None) -> bool:
        """Whether the existing pod named like `pod` belongs to the job with `uid`."""
        try:
            existing = await self._client.get(f"{pods_path}/{pod['metadata']['name']}")
        except ApiError:
            return False
        return uid is not None and ObjectView(existing).owned_by(uid)

    async def _orphaned(self, key: str, pods: list[JsonObject]) -> None:
        """The job is gone: its pods go too (the garbage collector would, but not at once), in one
        collection delete by the job's label however many there are (one by one, those without it).
        A pod already going is left to finish."""
        namespace, name = key.split("/", 1)
        alive = [PodView(p) for p in pods if not PodView(p).deleting]
        unlabelled = sorted(p.name for p in alive if p.labels.get(keys.LABEL_JOB) != name)
        if len(unlabelled) < len(alive):
            try:
                await self._client.delete(
                    f"/api/v1/namespaces/{namespace}/pods",
                    params={"labelSelector": f"{keys.LABEL_JOB}={name}"},
                )
            except ApiError as exc:
                if exc.status != _NOT_FOUND:
                    raise
        if unlabelled:
            await self._write_pods(key, None, Plan(delete=unlabelled))
        if alive:
            log.info("aijob_pods_deleted", job=key, pods=len(alive))


def _admitted(status: AIJobStatus) -> bool:
    return any(c.type == "Admitted" and c.status == "True" for c in status.conditions)
