"""Telling users why a pod waits, as kube-scheduler does: the PodScheduled=False condition on each
pod, and a FailedScheduling Event, one per gang rather than one per pod.

The scheduling loop calls `FailureReporter.report_gang()` (or `report()` for a pod alone), which is
synchronous and only notes what to write; `run()` makes the writes in the background, so a slow or
failing API server never holds up a cycle. A verdict repeated cycle after cycle costs no API call:

- the condition is patched only when its reason or message differs from what the pod carries
  (or what a write of ours has just given it, while the informer has not caught up), and when
  only a number in the message moved (a gang assembling), at most once per `refresh`;
- the Events are `aisched.kube.events.EventRecorder`'s: a pod alone gets one per distinct
  message, as from kube-scheduler; a gang gets one, whose message follows the verdict (rewritten
  at once when it says something new, with the next update when only a number moved, as while
  the gang assembles: "has 3 of its 500 members", then 4, ...); a repeat only bumps `count` and
  `lastTimestamp`, written at most once per `event_interval`, as client-go's recorder does.

Events grow with jobs, not pods: the members of a gang share their explanation, so the gang gets
one Event per reason saying how many pods it is about, on the AIJob that owns them (their
ownerReferences name it), else on the gang's first pod by name. A pod alone is the subject of its
own Events, with the verdict as their message.

Condition writes are shared fairly between gangs: a work queue of gang keys
(`aisched.kube.workqueue`) gives each gang a turn of at most `batch` condition writes, then puts it
back at the end of the queue if more of its pods wait, and at most `writers` writes are in flight
in all. A 10,000-pod gang thus gets every pod's condition in the end, but a small gang that comes
after it waits for one turn of each gang ahead of it, never for the whole big gang.

What is remembered per pod is dropped when the pod is bound or deleted (`forget`), and a pod
keeps at most `messages_per_pod` distinct messages.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aisched.api.objects import ObjectView, PodView, pod_key, revision, rfc3339
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, resource_path
from aisched.kube.events import EVENT_INTERVAL, EventClient, EventRecorder, without_numbers
from aisched.kube.workqueue import WorkQueue
from aisched.observability.logging import get_logger

__all__ = [
    "COMPONENT",
    "EVENT_INTERVAL",
    "EVENT_REASON",
    "REASON_INVALID",
    "REASON_SCHEDULER_ERROR",
    "REASON_UNSCHEDULABLE",
    "FailureReporter",
    "ReportingClient",
    "pod_scheduled_condition",
]

log = get_logger(__name__)

#: The condition reasons kube-scheduler uses: no node fits, or the scheduler itself failed.
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_SCHEDULER_ERROR: Final = "SchedulerError"
#: A pod whose request cannot be read (an aisched annotation that does not parse): no node will do
#: until the pod is fixed, so not `Unschedulable` (which autoscalers answer with new nodes).
REASON_INVALID: Final = "InvalidRequest"
EVENT_REASON: Final = "FailedScheduling"
COMPONENT: Final = "aisched"
_CONDITION: Final = "PodScheduled"

#: The two verbs the reporter needs, post (Events) and patch (conditions, Events).
ReportingClient = EventClient


def pod_scheduled_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's PodScheduled condition, if it carries one."""
    return PodView(pod).condition(_CONDITION)


Verdict = tuple[str, str]  # (condition reason, message)


def _shape(verdict: Verdict) -> Verdict:
    """`verdict` without its numbers: what it says, not how many."""
    return verdict[0], without_numbers(verdict[1])


@dataclass
class _Pod:
    namespace: str
    name: str
    uid: str
    gang: str
    #: The pod's resourceVersion when last reported: the condition patch's precondition, so that
    #: a verdict can never land on a pod that changed since (bound meanwhile, say).
    resource_version: str = ""
    already_false: bool = False  # PodScheduled is False already: keep its lastTransitionTime
    wanted: Verdict | None = None  # a condition to write, not started yet
    writing: Verdict | None = None  # the condition being written
    #: The condition our last write gave the pod, with the resourceVersion it got: trusted over
    #: the informer's copy while that copy is older.
    written: tuple[Verdict, int | None] | None = None
    written_at: float = -math.inf  # clock() when our last condition write began

    @property
    def key(self) -> str:
        return pod_key(self.namespace, self.name)


class FailureReporter:
    """Writes scheduling failures onto pods and as Events, deduplicated, off the scheduling loop."""

    def __init__(
        self,
        client: ReportingClient,
        *,
        clock: Callable[[], float],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        event_interval: float = EVENT_INTERVAL,
        writers: int = 2,
        batch: int = 16,
        messages_per_pod: int = 8,
        refresh: float = 60.0,
        instance: str = "",
    ) -> None:
        """`clock` paces Event updates (seconds, monotonic); `now` stamps what is written; `writers`
        bounds the writes in flight and `batch` the condition writes of one gang's turn;
        a condition that would change only in its numbers is rewritten at most once per `refresh`
        seconds; `instance` is the Events' reportingInstance (the replica; the component when empty)."""
        for what, value in (("writers", writers), ("batch", batch), ("messages_per_pod", messages_per_pod)):
            if value < 1:
                raise ValueError(f"{what} must be at least 1, not {value}")
        self.client = client
        self.now = now
        self.clock = clock
        self.refresh = refresh
        self.writers = writers
        self.batch = batch
        self.events = EventRecorder(
            client,
            clock=clock,
            now=now,
            interval=event_interval,
            component=COMPONENT,
            instance=instance,
            writers=writers,
            per_object=messages_per_pod,
        )
        self._pods: dict[str, _Pod] = {}
        self._waiting: dict[str, dict[str, None]] = {}  # gang -> its pods with a condition to write
        self._queue: WorkQueue[str] = WorkQueue(name="pod conditions")  # of gang keys
        self._in_flight = asyncio.Semaphore(writers)
        #: Condition writes made so far, and those that failed (for tests and debugging).
        self.conditions_written = 0
        self.condition_failures = 0

    @property
    def events_created(self) -> int:
        return self.events.created

    @property
    def events_updated(self) -> int:
        return self.events.updated

    @property
    def failures(self) -> int:
        """Writes that failed, conditions and Events."""
        return self.condition_failures + self.events.failures

    # -- the scheduling loop's side (synchronous, never waits) -----------------------------------

    def report(self, pod: Mapping[str, Any], *, message: str, reason: str = REASON_UNSCHEDULABLE) -> None:
        """`pod` (its latest object), alone, cannot be scheduled, for `message`: note what to write."""
        self.report_gang(PodView(pod).key, [pod], message=message, reason=reason)

    def report_gang(
        self,
        gang: str,
        pods: Sequence[Mapping[str, Any]],
        *,
        message: str,
        reason: str = REASON_UNSCHEDULABLE,
        about: Mapping[str, Any] | None = None,
        count: int | None = None,
    ) -> None:
        """The pending `pods` (their latest objects) of gang `gang` cannot be scheduled, for
        `message`: note each pod's condition, and the gang's one Event. A gang told of a few
        pods at a time names the pod its Event is `about` and how many pods it is about (`count`)."""
        if not pods:
            return
        for pod in pods:
            self._note(gang, pod, (reason, message))
        alone = len(pods) == 1 and PodView(pods[0]).key == gang
        subject, text = _event_of(
            gang, [about] if about is not None else pods, message, alone=alone, count=count
        )
        self.events.record(
            subject,
            reason=EVENT_REASON,
            message=text,
            warning=True,
            action="Scheduling",
            group=None if alone else f"gang {gang}",
        )

    def _note(self, gang: str, pod: Mapping[str, Any], verdict: Verdict) -> None:
        view = PodView(pod)
        key, uid = view.key, view.uid
        state = self._pods.get(key)
        if state is None or state.uid != uid:  # new, or recreated under the same name
            if state is not None:
                self.events.forget(state.uid)
            state = self._pods[key] = _Pod(namespace=view.namespace, name=view.name, uid=uid, gang=gang)
        state.gang = gang
        version = view.resource_version
        seen, known = revision(version), revision(state.resource_version)
        if seen is None or known is None or seen >= known:  # not a copy older than our own write
            state.resource_version = version
        carried = self._carried(state, pod)
        same = verdict == carried or (
            carried is not None
            and _shape(verdict) == _shape(carried)
            and self.clock() - state.written_at < self.refresh
        )  # only a count moved (a gang assembling), and we wrote it lately: not worth a write per pod
        state.wanted = None if same else verdict
        if state.wanted is not None:  # a pod being written is written again after, with what is wanted
            self._waiting.setdefault(gang, {})[key] = None
            self._queue.add(gang)

    def placed(self, keys: Iterable[str]) -> None:
        """These pods were just placed: drop their condition writes not started yet (their Events
        stay remembered, so a rollback that brings the same verdict back does not repeat one)."""
        for key in keys:
            state = self._pods.get(key)
            if state is not None:
                state.wanted = None

    def forget(self, key: str) -> None:
        """The pod is bound, deleted or changed past the verdict: nothing more to write or
        remember about it."""
        state = self._pods.pop(key, None)
        if state is not None:
            self.events.forget(state.uid)
            waiting = self._waiting.get(state.gang)
            if waiting is not None:
                waiting.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._pods

    def __len__(self) -> int:
        return len(self._pods)

    # -- the writers -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Write until `stop` is set; writes still waiting then are dropped (a successor reports
        again what is still true)."""
        async with asyncio.TaskGroup() as writers:
            writers.create_task(self.events.run(stop), name="event writers")
            await self._queue.run(self._write, stop, workers=self.writers)

    async def wait_idle(self) -> None:
        """Until no write, condition or Event, is waiting or in flight."""
        while True:
            await self._queue.wait_idle()
            await self.events.wait_idle()
            if self._queue.idle:
                return

    async def _write(self, gang: str) -> None:
        """One turn of `gang`: the conditions of up to `batch` of its pods; the rest wait for their
        next turn, behind every other gang's."""
        waiting = self._waiting.get(gang, {})
        turn = list(itertools.islice(waiting, self.batch))
        for key in turn:
            del waiting[key]
        if not waiting:
            self._waiting.pop(gang, None)
        await asyncio.gather(*(self._write_pod(key) for key in turn))
        if gang in self._waiting:
            self._queue.add(gang)  # being processed: queued again, at the end, once this turn ends

    async def _write_pod(self, key: str) -> None:
        state = self._pods.get(key)
        if state is None:
            return
        async with self._in_flight:
            try:
                await self._write_condition(state)
            except Exception:  # a bug: logged and counted, not retried (the next cycle reports again)
                self.condition_failures += 1
                state.written_at = -math.inf
                log.exception("report_failed", pod=key)

    # -- the condition -----------------------------------------------------------------------------

    def _carried(self, state: _Pod, pod: Mapping[str, Any]) -> Verdict | None:
        """The PodScheduled=False verdict the pod has, or is about to have from a write of ours."""
        if state.writing is not None:
            return state.writing
        if state.written is not None:
            verdict, revision = state.written
            seen = ObjectView(pod).revision
            if revision is not None and seen is not None and seen < revision:
                state.already_false = True
                return verdict  # the informer has not seen our write yet
        condition = pod_scheduled_condition(pod)
        state.already_false = condition is not None and condition.get("status") == "False"
        if condition is None or condition.get("status") != "False":
            return None
        return (str(condition.get("reason") or ""), str(condition.get("message") or ""))

    async def _write_condition(self, state: _Pod) -> None:
        verdict = state.wanted
        if verdict is None:
            return
        state.wanted, state.writing, state.written_at = None, verdict, self.clock()
        reason, message = verdict
        condition: dict[str, Any] = {
            "type": _CONDITION,
            "status": "False",
            "reason": reason,
            "message": message,
        }
        if not state.already_false:
            condition["lastTransitionTime"] = rfc3339(self.now())
        # A strategic merge on `type` leaves the other conditions alone; the resourceVersion makes
        # the API server refuse the patch (409) if the pod changed since it was judged.
        body: JsonObject = {"status": {"conditions": [condition]}}
        if state.resource_version:
            body["metadata"] = {"resourceVersion": state.resource_version}
        path = resource_path(
            group="",
            version="v1",
            plural="pods",
            namespace=state.namespace,
            name=state.name,
            subresource="status",
        )
        try:
            patched = await self.client.patch(path, body, patch="strategic")
        except (ApiError, ApiUnavailable) as exc:
            self._failed(state, exc)
            return
        finally:
            state.writing = None
        self.conditions_written += 1
        written = ObjectView(patched).revision
        state.written = (verdict, written)
        state.already_false = True
        if written is not None and written > (revision(state.resource_version) or 0):
            state.resource_version = str(written)  # the newest we know: the next write's precondition
        log.debug("pod_condition_written", pod=state.key, reason=reason)

    # -- plumbing ----------------------------------------------------------------------------------

    def _failed(self, state: _Pod, exc: ApiError | ApiUnavailable) -> None:
        self.condition_failures += 1
        state.written_at = -math.inf  # not written: the next verdict is, whatever it says
        if isinstance(exc, ApiError) and exc.status in (404, 409):
            # The pod is gone, or changed since it was judged: the next cycle reports afresh.
            log.debug("report_skipped", pod=state.key, write="condition", status=exc.status)
            return
        log.warning("report_failed", pod=state.key, write="condition", error=str(exc))


def _event_of(
    gang: str, pods: Sequence[Mapping[str, Any]], message: str, *, alone: bool, count: int | None = None
) -> tuple[JsonObject, str]:
    """What the gang's Event is about and says: the AIJob that owns all of `pods` if one does,
    else the first pod by name; the verdict, with how many pods it is about unless it is about a
    pod `alone`."""
    first = min(pods, key=lambda pod: PodView(pod).name)
    view = PodView(first)
    owners = {_job_reference(pod) for pod in pods}
    job = owners.pop() if len(owners) == 1 else None
    if job is not None:
        api_version, name, uid = job
        subject: JsonObject = {
            "apiVersion": api_version,
            "kind": "AIJob",
            "metadata": {"name": name, "namespace": view.namespace, "uid": uid},
        }
    else:
        subject = {"apiVersion": "v1", "kind": "Pod", "metadata": view.meta}
    if alone:
        return subject, message
    name = gang.split("/", 1)[-1].removeprefix("gang:")
    count = len(pods) if count is None else count
    return subject, f"{count} pod{'' if count == 1 else 's'} of gang {name}: {message}"


def _job_reference(pod: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """The AIJob owning `pod` as (apiVersion, name, uid), if one does."""
    ref = PodView(pod).aijob_reference()
    if ref is None:
        return None
    return str(ref["apiVersion"]), str(ref.get("name", "")), str(ref.get("uid", ""))
