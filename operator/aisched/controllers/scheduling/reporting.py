"""Telling users why a pod waits, as kube-scheduler does: the PodScheduled=False condition on the
pod, and a FailedScheduling Event.

The scheduling loop calls `FailureReporter.report()`, which is synchronous and only notes what to
write; `run()` makes the writes in the background, a few at a time from a work queue of pod keys
(`aisched.kube.workqueue`), so a slow or failing API server never holds up a cycle. A verdict
repeated cycle after cycle costs no API call:

- the condition is patched only when its reason or message differs from what the pod carries
  (or what a write of ours has just given it, while the informer has not caught up);
- the Events are `aisched.kube.events.EventRecorder`'s: one per distinct (pod uid, message),
  a repeat only bumps its `count` and `lastTimestamp`, and at most once per `event_interval`, as
  client-go's event recorder does.

What is remembered per pod is dropped when the pod is bound or deleted (`forget`), and a pod
keeps at most `messages_per_pod` distinct messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aisched.api.objects import ObjectView, PodView, pod_key, revision, rfc3339
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, resource_path
from aisched.kube.events import EVENT_INTERVAL, EventClient, EventRecorder
from aisched.kube.workqueue import WorkQueue
from aisched.observability.logging import get_logger

__all__ = [
    "COMPONENT",
    "EVENT_INTERVAL",
    "EVENT_REASON",
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
EVENT_REASON: Final = "FailedScheduling"
COMPONENT: Final = "aisched"
_CONDITION: Final = "PodScheduled"

#: The two verbs the reporter needs, post (Events) and patch (conditions, Events).
ReportingClient = EventClient


def pod_scheduled_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's PodScheduled condition, if it carries one."""
    return PodView(pod).condition(_CONDITION)


Verdict = tuple[str, str]  # (condition reason, message)


@dataclass
class _Pod:
    namespace: str
    name: str
    uid: str
    #: The pod's resourceVersion when last reported: the condition patch's precondition, so that
    #: a verdict can never land on a pod that changed since (bound meanwhile, say).
    resource_version: str = ""
    already_false: bool = False  # PodScheduled is False already: keep its lastTransitionTime
    wanted: Verdict | None = None  # a condition to write, not started yet
    writing: Verdict | None = None  # the condition being written
    #: The condition our last write gave the pod, with the resourceVersion it got: trusted over
    #: the informer's copy while that copy is older.
    written: tuple[Verdict, int | None] | None = None

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
        messages_per_pod: int = 8,
        instance: str = "",
    ) -> None:
        """`clock` paces Event updates (seconds, monotonic); `now` stamps what is written;
        `instance` is the Events' reportingInstance (the replica; the component when empty)."""
        if writers < 1:
            raise ValueError(f"writers must be at least 1, not {writers}")
        if messages_per_pod < 1:
            raise ValueError(f"messages_per_pod must be at least 1, not {messages_per_pod}")
        self.client = client
        self.now = now
        self.writers = writers
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
        self._queue: WorkQueue[str] = WorkQueue(name="pod conditions")
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
        """`pod` (its latest object) cannot be scheduled, for `message`: note what to write."""
        view = PodView(pod)
        key, uid = view.key, view.uid
        state = self._pods.get(key)
        if state is None or state.uid != uid:  # new, or recreated under the same name
            if state is not None:
                self.events.forget(state.uid)
            state = self._pods[key] = _Pod(namespace=view.namespace, name=view.name, uid=uid)
        version = view.resource_version
        seen, known = revision(version), revision(state.resource_version)
        if seen is None or known is None or seen >= known:  # not a copy older than our own write
            state.resource_version = version
        verdict = (reason, message)
        carried = self._carried(state, pod)
        state.wanted = None if verdict == carried else verdict
        if state.wanted is not None:
            self._queue.add(key)  # a pod being written is written again after, with what is wanted
        pod_ref = {"apiVersion": "v1", "kind": "Pod", "metadata": view.meta}
        self.events.record(pod_ref, reason=EVENT_REASON, message=message, warning=True, action="Scheduling")

    def placed(self, keys: Iterable[str]) -> None:
        """These pods were just placed: drop their condition writes not started yet (their Events
        stay remembered, so a rollback that brings the same verdict back does not repeat one)."""
        for key in keys:
            state = self._pods.get(key)
            if state is not None:
                state.wanted = None

    def forget(self, key: str) -> None:
        """The pod is bound or deleted: nothing more to write or remember about it."""
        state = self._pods.pop(key, None)
        if state is not None:
            self.events.forget(state.uid)

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

    async def _write(self, key: str) -> None:
        state = self._pods.get(key)
        if state is None:
            return
        try:
            await self._write_condition(state)
        except Exception:  # a bug: logged and counted, not retried (the next cycle reports again)
            self.condition_failures += 1
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
        state.wanted, state.writing = None, verdict
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
        if isinstance(exc, ApiError) and exc.status in (404, 409):
            # The pod is gone, or changed since it was judged: the next cycle reports afresh.
            log.debug("report_skipped", pod=state.key, write="condition", status=exc.status)
            return
        log.warning("report_failed", pod=state.key, write="condition", error=str(exc))
