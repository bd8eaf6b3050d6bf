"""Events about any object: one per distinct (object, reason, message), repeats merged into its count,
updated at most once per interval, written off the caller's path and never raising into it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

import pytest

from aisched.kube.client import ApiUnavailable, JsonObject, KubeClient, PatchType
from aisched.kube.events import EventRecorder

EVENTS: Final = "/api/v1/namespaces/ml/events"
WAIT: Final = 10.0
DNS_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


class FakeClock:
    """Seconds that move only when a test moves them; `utc` is the same moment as a datetime."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


class Recording:
    """Passes the recorder's writes to the API server, noting each first. `errors` are raised, in
    order, instead of the next writes; while `gate` is clear, writes wait there once noted."""

    def __init__(self, inner: KubeClient) -> None:
        self.inner = inner
        self.calls: list[tuple[str, JsonObject]] = []
        self.errors: list[Exception] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Event()

    async def post(self, path: str, body: JsonObject) -> JsonObject:
        await self._call("POST", body)
        return await self.inner.post(path, body)

    async def patch(self, path: str, body: JsonObject, *, patch: PatchType = "merge") -> JsonObject:
        await self._call("PATCH", body)
        return await self.inner.patch(path, body, patch=patch)

    async def _call(self, method: str, body: JsonObject) -> None:
        self.calls.append((method, body))
        self.arrived.set()
        await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)

    @property
    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


def subject(uid: str = "u-1", name: str = "ddp") -> JsonObject:
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": name, "namespace": "ml", "uid": uid, "resourceVersion": "7"},
    }


class Recorders:
    """Makes recorders over a `Recording` client, their writers running until the test ends."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.runs: set[asyncio.Task[None]] = set()

    def __call__(self, kube: KubeClient, clock: FakeClock, **options: Any) -> tuple[EventRecorder, Recording]:
        client = Recording(kube)
        recorder = EventRecorder(client, clock=clock, now=clock.utc, **options)
        self.run(recorder)
        return recorder, client

    def run(self, recorder: EventRecorder) -> None:
        self.runs.add(asyncio.create_task(recorder.run(self.stop)))


@pytest.fixture
async def recorder_over() -> AsyncIterator[Recorders]:
    recorders = Recorders()
    try:
        yield recorders
    finally:
        recorders.stop.set()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*recorders.runs)


async def idle(recorder: EventRecorder) -> None:
    async with asyncio.timeout(WAIT):
        await recorder.wait_idle()


async def stored(kube: KubeClient) -> list[dict[str, Any]]:
    """The namespace's Events, as the API server holds them, by message."""
    return sorted((await kube.get(EVENTS))["items"], key=lambda e: e["message"])


@pytest.fixture
async def ml(kube: KubeClient) -> KubeClient:
    await kube.post("/api/v1/namespaces", {"metadata": {"name": "ml"}})
    return kube


async def test_repeats_before_the_first_write_lands_are_merged_into_one_event(
    ml: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(ml, clock)
    for _ in range(5):
        recorder.record(subject(), reason="Unschedulable", message="0/4 nodes are available", warning=True)
    recorder.record(subject(), reason="Running", message="2 pod(s) running")
    await idle(recorder)
    recorder.record(subject(), reason="Running", message="2 pod(s) running")  # within the interval
    await idle(recorder)

    assert client.methods == ["POST", "POST"]
    events = await stored(ml)
    assert [(e["reason"], e["type"], e["count"]) for e in events] == [
        ("Unschedulable", "Warning", 5),
        ("Running", "Normal", 1),
    ]
    first = events[0]
    assert first["involvedObject"] == {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "name": "ddp",
        "namespace": "ml",
        "uid": "u-1",
        "resourceVersion": "7",
    }
    assert first["source"] == {"component": "aisched"}
    assert first["reportingComponent"] == "aisched"
    assert first["firstTimestamp"] == first["lastTimestamp"] == "2027-01-15T08:00:00Z"
    assert first["metadata"]["name"].startswith("ddp.")
    assert (recorder.created, recorder.updated, recorder.failures) == (2, 0, 0)


async def test_repeats_while_the_create_is_in_flight_go_into_the_next_update(
    ml: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(ml, clock, interval=600.0)
    client.gate.clear()
    recorder.record(subject(), reason="Unschedulable", message="no room")
    async with asyncio.timeout(WAIT):
        await client.arrived.wait()
    for _ in range(3):
        recorder.record(subject(), reason="Unschedulable", message="no room")
    client.gate.set()
    await idle(recorder)
    assert client.methods == ["POST"]
    ((_, created),) = client.calls
    assert created["count"] == 1

    clock.now += 599.0
    recorder.record(subject(), reason="Unschedulable", message="no room")
    await idle(recorder)
    assert client.methods == ["POST"], "no update within the interval"
    clock.now += 1.0
    recorder.record(subject(), reason="Unschedulable", message="no room")
    await idle(recorder)

    assert client.methods == ["POST", "PATCH"]
    (event,) = await stored(ml)
    assert event["metadata"]["name"] == created["metadata"]["name"]
    assert event["count"] == 6
    assert event["lastTimestamp"] == "2027-01-15T08:10:00Z"
    assert event["firstTimestamp"] == "2027-01-15T08:00:00Z"
    assert recorder.updated == 1


async def test_an_event_gone_when_it_is_updated_is_created_anew_with_its_count(
    ml: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(ml, clock)
    recorder.record(subject(), reason="Unschedulable", message="no room")
    await idle(recorder)
    (first,) = await stored(ml)
    await ml.delete(f"{EVENTS}/{first['metadata']['name']}")  # expired
    clock.now += 600.0
    recorder.record(subject(), reason="Unschedulable", message="no room")
    await idle(recorder)

    assert client.methods == ["POST", "PATCH", "POST"]
    (event,) = await stored(ml)
    assert event["count"] == 2
    assert event["metadata"]["name"] != first["metadata"]["name"]
    assert recorder.failures == 0


async def test_a_failed_create_is_not_remembered_and_is_tried_on_the_next_record(
    kube: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(kube, clock)
    recorder.record(subject(), reason="Unschedulable", message="namespace ml does not exist")
    await idle(recorder)  # the POST is refused (no namespace): counted and logged, not raised
    assert (recorder.created, recorder.failures) == (0, 1)
    await kube.post("/api/v1/namespaces", {"metadata": {"name": "ml"}})
    recorder.record(subject(), reason="Unschedulable", message="namespace ml does not exist")
    await idle(recorder)

    assert client.methods == ["POST", "POST"]
    (event,) = await stored(kube)
    assert event["count"] == 2
    assert recorder.created == 1


async def test_a_bug_in_a_write_is_logged_and_the_writer_goes_on(
    ml: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(ml, clock)
    client.errors = [RuntimeError("a bug"), ApiUnavailable("connection reset")]
    for uid in ("u-1", "u-2", "u-3"):
        recorder.record(subject(uid), reason="Running", message="running")
    await idle(recorder)

    assert recorder.failures == 2
    assert [e["involvedObject"]["uid"] for e in await stored(ml)] == ["u-3"]


async def test_a_full_queue_drops_the_write_until_the_next_record(
    ml: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(ml, clock, queue_limit=1)
    recorder.record(subject("u-1"), reason="Running", message="one")
    recorder.record(subject("u-2"), reason="Running", message="two")  # no room in the queue
    await idle(recorder)
    assert [body["message"] for _, body in client.calls] == ["one"]
    assert recorder.failures == 1
    recorder.record(subject("u-2"), reason="Running", message="two")
    await idle(recorder)

    assert [(e["message"], e["count"]) for e in await stored(ml)] == [("one", 1), ("two", 2)]


async def test_memory_is_bounded_per_object_and_in_all_and_forget_drops_an_objects_events(
    ml: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(ml, clock, capacity=3, per_object=2)
    for message in ("one", "two", "three"):
        recorder.record(subject("u-1"), reason="Running", message=message)
    assert len(recorder) == 2  # "one" was the oldest of u-1's three
    recorder.record(subject("u-2"), reason="Running", message="one")
    recorder.record(subject("u-3"), reason="Running", message="one")
    assert len(recorder) == 3  # u-1's "two" was the least recently recorded of all
    await idle(recorder)
    written = len(client.calls)

    recorder.record(subject("u-1"), reason="Running", message="three")  # remembered: counted only
    recorder.forget("u-3")
    assert len(recorder) == 2
    recorder.record(subject("u-3"), reason="Running", message="one")  # forgotten: a new Event
    await idle(recorder)

    assert len(client.calls) == written + 1
    assert client.calls[-1][1]["involvedObject"]["uid"] == "u-3"


async def test_close_drops_what_is_queued_and_a_later_run_writes_again(
    ml: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(ml, clock, writers=1)
    client.gate.clear()
    recorder.record(subject("u-1"), reason="Running", message="one")
    recorder.record(subject("u-2"), reason="Running", message="two")
    async with asyncio.timeout(WAIT):
        await client.arrived.wait()
        await recorder.close()  # "one" is cut off in flight, "two" never starts
    assert recorder.created == 0
    client.gate.set()
    await idle(recorder)
    assert client.methods == ["POST"]

    recorder_over.run(recorder)
    recorder.record(subject("u-2"), reason="Running", message="two")
    await idle(recorder)
    assert [(e["message"], e["count"]) for e in await stored(ml)] == [("two", 2)]
    await recorder.close()


async def test_a_long_object_name_still_makes_a_dns_subdomain_event_name(
    ml: KubeClient, recorder_over: Recorders
) -> None:
    clock = FakeClock()
    recorder, client = recorder_over(ml, clock)
    long_name = "a" * 235 + "-" + "b" * 17  # 253 characters: cut after the dash
    recorder.record(subject(name=long_name), reason="Running", message="one")
    recorder.record(subject("u-2", name=long_name), reason="Running", message="one")
    await idle(recorder)

    names = [body["metadata"]["name"] for _, body in client.calls]
    assert len(set(names)) == 2, "the same moment never gives the same name twice"
    for name in names:
        assert len(name) <= 253
        assert DNS_SUBDOMAIN.fullmatch(name), name
        assert name.startswith("a" * 235 + ".")
    assert len(await stored(ml)) == 2
