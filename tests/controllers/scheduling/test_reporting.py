"""Why a pod waits, told as kube-scheduler tells it: PodScheduled=False on the pod and one
FailedScheduling Event per verdict, written off the loop and never repeated for the same verdict.

First the reporter alone over an in-memory client, then the runtime against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

from aisched.controllers.scheduling.reporting import FailureReporter, pod_scheduled_condition
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, KubeClient, PatchType
from tests.binder.fakes import FakeClock
from tests.controllers.scheduling.test_runtime import (
    EVENTS,
    PODS,
    WAIT,
    Harness,
    advance,
    create,
    delete,
    failed_scheduling_events,
    harness,
    is_bound,
    pod,
    started,
    unschedulable,
    wait_bound,
    wait_pods,
)

VERDICT: Final = "0/8 nodes are available: 8 Insufficient nvidia.com/gpu."
OTHER_VERDICT: Final = "0/8 nodes are available: 8 GPU model not allowed."


# -- the reporter alone -----------------------------------------------------------------------------


class MemoryClient:
    """Takes the reporter's writes as the API server would, without one: a patched pod comes back
    with the next resourceVersion. `errors[kind]` are raised, in order, instead of the next calls on
    pod statuses ("status") or on Events ("events"): conditions and Events have writers of their own,
    so only the order within a kind is known."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, JsonObject]] = []
        self.errors: dict[str, list[Exception]] = {"status": [], "events": []}
        self.revision = 100

    async def post(self, path: str, body: JsonObject) -> JsonObject:
        self.calls.append(("POST", path, body))
        self._fail(path)
        return body

    async def patch(self, path: str, body: JsonObject, *, patch: PatchType = "merge") -> JsonObject:
        assert patch == "strategic"
        self.calls.append(("PATCH", path, body))
        self._fail(path)
        self.revision += 1
        return {"metadata": {"resourceVersion": str(self.revision)}}

    def _fail(self, path: str) -> None:
        errors = self.errors[_kind(path)]
        if errors:
            raise errors.pop(0)

    def writes(self, method: str, kind: str) -> list[JsonObject]:
        """The bodies of the `method` calls on pod statuses ("status") or on Events ("events")."""
        return [body for m, path, body in self.calls if m == method and _kind(path) == kind]


def _kind(path: str) -> str:
    return "status" if path.endswith("/status") else "events"


def pending(
    name: str = "trainer",
    *,
    uid: str = "uid-1",
    version: str = "10",
    carries: tuple[str, str, str] | None = None,
) -> JsonObject:
    """A pending pod's object as the informer holds it; `carries` its PodScheduled condition
    (status, reason, message)."""
    status: dict[str, Any] = {"phase": "Pending"}
    if carries is not None:
        condition_status, reason, message = carries
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": condition_status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    return {
        "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": version},
        "spec": {"schedulerName": "aisched"},
        "status": status,
    }


@contextlib.asynccontextmanager
async def writing(reporter: FailureReporter) -> AsyncIterator[FailureReporter]:
    """`reporter` with its writers running; everything noted gets written before the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(reporter.run(stop))
    try:
        yield reporter
        async with asyncio.timeout(WAIT):
            await reporter.wait_idle()
    finally:
        stop.set()
        async with asyncio.timeout(WAIT):
            await task


async def idle(reporter: FailureReporter) -> None:
    async with asyncio.timeout(WAIT):
        await reporter.wait_idle()


async def test_a_verdict_repeated_every_cycle_is_written_once_as_condition_and_once_as_event() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock())
    async with writing(reporter):
        reporter.report(pending(), message=VERDICT)
        await idle(reporter)
        # Later cycles, the informer not having caught up with the patch yet, then having.
        reporter.report(pending(), message=VERDICT)
        reporter.report(pending(version="101", carries=("False", "Unschedulable", VERDICT)), message=VERDICT)

    (patch,) = client.writes("PATCH", "status")
    (condition,) = patch["status"]["conditions"]
    assert condition["type"] == "PodScheduled"
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        "Unschedulable",
        VERDICT,
    )
    assert condition["lastTransitionTime"]
    assert patch["metadata"] == {"resourceVersion": "10"}  # refused if the pod changed since
    (event,) = client.writes("POST", "events")
    assert event["kind"] == "Event"
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "FailedScheduling", VERDICT)
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "default",
        "name": "trainer",
        "uid": "uid-1",
        "resourceVersion": "10",
    }
    assert event["source"] == {"component": "aisched"}
    assert event["reportingComponent"] == "aisched"
    assert event["count"] == 1
    assert event["metadata"]["name"].startswith("trainer.")
    assert len(client.calls) == 2


async def test_a_new_verdict_patches_the_condition_again_and_creates_a_second_event() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock())
    async with writing(reporter):
        reporter.report(pending(), message=VERDICT)
        await idle(reporter)
        reporter.report(
            pending(version="101", carries=("False", "Unschedulable", VERDICT)), message=OTHER_VERDICT
        )

    _, second = client.writes("PATCH", "status")
    assert second["status"]["conditions"][0]["message"] == OTHER_VERDICT
    assert "lastTransitionTime" not in second["status"]["conditions"][0]  # still False: no transition
    assert second["metadata"] == {"resourceVersion": "101"}
    assert [e["message"] for e in client.writes("POST", "events")] == [VERDICT, OTHER_VERDICT]


async def test_a_pod_that_already_carries_the_verdict_is_not_patched() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock())
    async with writing(reporter):
        reporter.report(pending(carries=("False", "Unschedulable", VERDICT)), message=VERDICT)

    assert client.writes("PATCH", "status") == []
    assert len(client.writes("POST", "events")) == 1  # Events are remembered only in memory


async def test_a_repeated_event_is_updated_with_its_count_only_after_the_interval() -> None:
    clock = FakeClock()
    client = MemoryClient()
    reporter = FailureReporter(client, clock=clock, event_interval=600.0)
    async with writing(reporter):
        reporter.report(pending(), message=VERDICT)
        await idle(reporter)
        reporter.report(pending(), message=VERDICT)
        clock.now += 599.0
        reporter.report(pending(), message=VERDICT)
        await idle(reporter)
        assert client.writes("PATCH", "events") == []
        clock.now += 2.0
        reporter.report(pending(), message=VERDICT)

    (created,) = client.writes("POST", "events")
    (update,) = client.writes("PATCH", "events")
    assert update["count"] == 4
    assert update["lastTimestamp"]
    patched_paths = [path for m, path, _ in client.calls if m == "PATCH" and "/events/" in path]
    assert patched_paths == [f"{EVENTS}/{created['metadata']['name']}"]


async def test_an_event_gone_when_it_is_updated_is_created_again_with_its_count() -> None:
    clock = FakeClock()
    client = MemoryClient()
    reporter = FailureReporter(client, clock=clock, event_interval=600.0)
    async with writing(reporter):
        reporter.report(pending(), message=VERDICT)
        await idle(reporter)
        clock.now += 601.0
        client.errors["events"] = [ApiError(status=404, reason="NotFound", message="expired", body={})]
        reporter.report(pending(), message=VERDICT)

    first, second = client.writes("POST", "events")
    assert second["count"] == 2
    assert second["metadata"]["name"] != first["metadata"]["name"]


async def test_a_failed_write_is_counted_and_made_on_the_next_report() -> None:
    client = MemoryClient()
    client.errors["status"] = [ApiUnavailable("connection reset")]
    client.errors["events"] = [
        ApiError(status=503, reason="ServiceUnavailable", message="etcd is sad", body={})
    ]
    reporter = FailureReporter(client, clock=FakeClock())
    async with writing(reporter):
        reporter.report(pending(), message=VERDICT)
        await idle(reporter)
        assert reporter.failures == 2
        assert (reporter.conditions_written, reporter.events_created) == (0, 0)
        reporter.report(pending(), message=VERDICT)

    assert (reporter.conditions_written, reporter.events_created) == (1, 1)
    assert len(client.writes("PATCH", "status")) == 2
    assert len(client.writes("POST", "events")) == 2


async def test_a_bug_in_a_write_is_logged_and_the_writers_go_on() -> None:
    client = MemoryClient()
    client.errors = {"status": [RuntimeError("a bug")], "events": [RuntimeError("another bug")]}
    reporter = FailureReporter(client, clock=FakeClock(), writers=1)
    async with writing(reporter):
        reporter.report(pending("first", uid="uid-1"), message=VERDICT)
        await idle(reporter)
        reporter.report(pending("second", uid="uid-2"), message=VERDICT)

    assert reporter.failures == 2
    # The second pod's; the first pod's condition and Event both hit a bug.
    assert (reporter.conditions_written, reporter.events_created) == (1, 1)
    assert sorted(b["involvedObject"]["name"] for b in client.writes("POST", "events")) == ["first", "second"]


async def test_forgetting_a_pod_drops_what_is_remembered_and_waiting_for_it() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock())
    reporter.report(pending(), message=VERDICT)  # noted before the writers run
    assert "default/trainer" in reporter
    reporter.forget("default/trainer")
    async with writing(reporter):
        pass

    assert client.calls == []
    assert len(reporter) == 0
    assert len(reporter.events) == 0


async def test_a_placed_pod_gets_no_condition_but_its_event_stays_remembered() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock())
    reporter.report(pending(), message=VERDICT)
    reporter.placed(["default/trainer"])
    async with writing(reporter):
        pass
    async with writing(reporter):  # rolled back, and judged the same again
        reporter.report(pending(), message=VERDICT)

    assert len(client.writes("PATCH", "status")) == 1
    assert len(client.writes("POST", "events")) == 1


async def test_a_pod_remembers_at_most_messages_per_pod_verdicts() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock(), messages_per_pod=2)
    async with writing(reporter):
        for message in ("one", "two", "three", "three", "one"):
            reporter.report(pending(), message=message)
            await idle(reporter)

    # "one" was the oldest of three, forgotten, so it counts as new again; "three" did not.
    assert [e["message"] for e in client.writes("POST", "events")] == ["one", "two", "three", "one"]


async def test_a_recreated_pod_is_reported_afresh() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock())
    async with writing(reporter):
        reporter.report(pending(uid="uid-1"), message=VERDICT)
        await idle(reporter)
        reporter.report(pending(uid="uid-2", version="200"), message=VERDICT)

    assert [e["involvedObject"]["uid"] for e in client.writes("POST", "events")] == ["uid-1", "uid-2"]
    assert len(reporter.events) == 1, "the first pod's Event is forgotten with it"


async def test_the_condition_never_lands_on_a_pod_that_changed_since_it_was_judged(kube: KubeClient) -> None:
    judged = await kube.post(PODS, pod("late", gpus=1))
    await kube.post(
        f"{PODS}/late/binding",
        {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "late"}, "target": {"name": "node-a"}},
    )
    reporter = FailureReporter(kube, clock=FakeClock())
    async with writing(reporter):
        reporter.report(judged, message=VERDICT)

    assert reporter.conditions_written == 0
    assert reporter.failures == 1
    condition = pod_scheduled_condition(await kube.get(f"{PODS}/late"))
    assert condition is not None
    assert condition["status"] == "True"


# -- the runtime against the emulator ---------------------------------------------------------------


async def test_an_impossible_pod_is_marked_unschedulable_with_one_event_however_many_cycles_run(
    kube: KubeClient,
) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, pod("huge", gpus=9), pod("small", gpus=1))
        await wait_bound(kube, ["small"])
        marked = (await wait_pods(kube, ["huge"], unschedulable()))["huge"]
        condition = pod_scheduled_condition(marked)
        assert condition is not None
        assert condition["message"] == VERDICT

        # More cycles for the same verdict: each deletion of a bound pod wakes the parked gang.
        for i in range(3):
            await create(kube, pod(f"filler-{i}", gpus=1))
            await wait_bound(kube, [f"filler-{i}"])
            await delete(kube, f"filler-{i}")
            advance(h, 61.0)  # past the gang's backoff, well inside the Events' 10 minutes
            await until_cycles(h, "unschedulable", 2 + i)
        await h.runtime.reporter.wait_idle()

        assert await unbound_with_condition_unchanged(kube, "huge", condition)
        assert h.client.status_patches == ["huge"]
        (event,) = await failed_scheduling_events(kube, "huge")
        assert (event["type"], event["message"], event["count"]) == ("Warning", VERDICT, 1)
        assert event["involvedObject"]["uid"] == marked["metadata"]["uid"]
        assert event["source"]["component"] == event["reportingComponent"] == "aisched"
        assert await failed_scheduling_events(kube, "small") == []


async def until_cycles(h: Harness, result: str, count: int) -> None:
    await h.metrics.until(lambda: h.metrics.cycles[result] >= count)


async def unbound_with_condition_unchanged(kube: KubeClient, name: str, condition: object) -> bool:
    now = await kube.get(f"{PODS}/{name}")
    return not is_bound(now) and pod_scheduled_condition(now) == condition


async def test_the_event_of_a_repeated_verdict_is_counted_up_after_ten_minutes(kube: KubeClient) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, pod("huge", gpus=9), pod("filler", gpus=1))
        await wait_pods(kube, ["huge"], unschedulable())
        await wait_bound(kube, ["filler"])
        await h.runtime.reporter.wait_idle()
        (first,) = await failed_scheduling_events(kube, "huge")

        await delete(kube, "filler")
        advance(h, 601.0)
        await h.metrics.until(lambda: h.metrics.cycles["unschedulable"] >= 2)
        await h.runtime.reporter.wait_idle()

        (event,) = await failed_scheduling_events(kube, "huge")
        assert event["metadata"]["name"] == first["metadata"]["name"]
        assert event["count"] == 2
        assert h.runtime.reporter.events_updated == 1
        assert h.client.status_patches == ["huge"]


async def test_a_pod_bound_after_waiting_shows_pod_scheduled_true_and_is_forgotten(
    kube: KubeClient,
) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, *(pod(f"ddp-{i}", gpus=2, gang="ddp", min_member=3) for i in range(2)))
        waiting = await wait_pods(kube, ["ddp-0", "ddp-1"], unschedulable())
        for member in waiting.values():
            condition = pod_scheduled_condition(member)
            assert condition is not None
            assert "waiting for the rest" in condition["message"]

        await create(kube, pod("ddp-2", gpus=2, gang="ddp", min_member=3))
        bound = await wait_bound(kube, ["ddp-0", "ddp-1", "ddp-2"])
        for member in bound.values():
            condition = pod_scheduled_condition(member)
            assert condition is not None
            assert condition["status"] == "True"
        for i in range(3):
            await h.client.until_handled("MODIFIED", "/api/v1/pods", f"ddp-{i}")
        await h.runtime.reporter.wait_idle()
        assert len(h.runtime.reporter) == 0


async def test_a_deleted_pending_pod_is_forgotten_by_the_reporter(kube: KubeClient) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, pod("huge", gpus=9))
        await wait_pods(kube, ["huge"], unschedulable())
        assert "default/huge" in h.runtime.reporter
        await delete(kube, "huge")
        await h.client.until_handled("DELETED", "/api/v1/pods", "huge")
        assert "default/huge" not in h.runtime.reporter


async def test_a_fresh_runtime_does_not_patch_a_verdict_the_pod_already_carries(kube: KubeClient) -> None:
    first = harness(kube)
    async with started(first.runtime):
        await create(kube, pod("huge", gpus=9))
        await wait_pods(kube, ["huge"], unschedulable())
        await first.runtime.reporter.wait_idle()
    assert first.client.status_patches == ["huge"]

    second = harness(kube)
    async with started(second.runtime):
        await second.metrics.until(lambda: second.metrics.cycles["unschedulable"] >= 1)
        await second.runtime.reporter.wait_idle()
    assert second.client.status_patches == []
    assert second.runtime.reporter.conditions_written == 0
