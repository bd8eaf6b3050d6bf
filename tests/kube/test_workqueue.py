"""The controllers' work queue: dedup, one worker per key, dirty keys, delayed adds, retries with
backoff, a bounded length, an idle signal, and a clean stop. Time is a fake the tests move."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

import pytest
from structlog.testing import capture_logs

from aisched.kube.retry import Backoff
from aisched.kube.workqueue import DROPS_LOGGED_EVERY, WorkQueue

WAIT: Final = 10.0
NO_JITTER: Final = Backoff(initial=1.0, cap=8.0, factor=2.0, jitter=0.0)

K = TypeVar("K", bound=Hashable)


@dataclass
class FakeTimer:
    due: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeTimers:
    """A clock that moves only when a test moves it, firing the timers that fall due."""

    now: float = 0.0
    timers: list[FakeTimer] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None], /) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in sorted(self.pending, key=lambda t: t.due):
            if timer.due <= self.now:
                self.timers.remove(timer)
                timer.callback()

    @property
    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    @property
    def waits(self) -> list[float]:
        """How long from now each pending timer has to go."""
        return sorted(t.due - self.now for t in self.pending)


class Worker(Generic[K]):
    """A `process` that records what it sees. A key in `held` waits at the gate until the test
    opens it; a key in `failing` raises, that many times."""

    def __init__(self) -> None:
        self.seen: list[K] = []
        self.in_flight: Counter[K] = Counter()
        self.most_in_flight: Counter[K] = Counter()
        self.held: set[K] = set()
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()
        self.failing: Counter[K] = Counter()
        self.finished: defaultdict[K, asyncio.Event] = defaultdict(asyncio.Event)

    async def __call__(self, key: K) -> None:
        self.seen.append(key)
        self.in_flight[key] += 1
        self.most_in_flight[key] = max(self.most_in_flight[key], self.in_flight[key])
        try:
            if key in self.held:
                self.arrived.set()
                await self.gate.wait()
            if self.failing[key] > 0:
                self.failing[key] -= 1
                raise RuntimeError(f"{key} failed")
        finally:
            self.in_flight[key] -= 1
            self.finished[key].set()

    async def until_arrived(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.arrived.wait()
        self.arrived.clear()

    async def until_finished(self, key: K) -> None:
        async with asyncio.timeout(WAIT):
            await self.finished[key].wait()


@contextlib.asynccontextmanager
async def running(
    queue: WorkQueue[K], process: Callable[[K], Awaitable[object]], *, workers: int = 1
) -> AsyncIterator[asyncio.Event]:
    """`queue` running with `workers`; yields its stop event, set on the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(queue.run(process, stop, workers=workers))
    try:
        yield stop
    finally:
        stop.set()
        async with asyncio.timeout(WAIT):
            await task


async def idle(queue: WorkQueue[K]) -> None:
    async with asyncio.timeout(WAIT):
        await queue.wait_idle()


def queue_of(
    timers: FakeTimers | None = None, *, limit: int | None = None, name: str = "test"
) -> WorkQueue[str]:
    return WorkQueue(name=name, backoff=NO_JITTER, limit=limit, timers=timers or FakeTimers())


async def test_a_key_added_while_queued_is_processed_once_in_its_first_place() -> None:
    queue = queue_of()
    worker: Worker[str] = Worker()
    for key in ("a", "b", "a", "c", "b", "a"):
        assert queue.add(key)
    assert len(queue) == 3
    async with running(queue, worker):
        await idle(queue)
    assert worker.seen == ["a", "b", "c"]


async def test_keys_added_before_run_wait_for_it() -> None:
    queue = queue_of()
    worker: Worker[str] = Worker()
    queue.add("early")
    assert not queue.idle
    async with running(queue, worker):
        await idle(queue)
    assert worker.seen == ["early"]


@contextlib.asynccontextmanager
async def holding(key: str, *, workers: int) -> AsyncIterator[tuple[WorkQueue[str], Worker[str]]]:
    """A running queue with `workers`, one of them in the middle of processing `key` (held)."""
    queue = queue_of()
    worker: Worker[str] = Worker()
    worker.held.add(key)
    async with running(queue, worker, workers=workers):
        queue.add(key)
        await worker.until_arrived()
        yield queue, worker


async def test_a_key_is_never_processed_by_two_workers_at_once() -> None:
    async with holding("a", workers=4) as (queue, worker):
        queue.add("a")
        queue.add("b")
        await worker.until_finished("b")
        assert worker.in_flight["a"] == 1, "the second add waits for the first pass"
        worker.gate.set()
        await idle(queue)
    assert worker.most_in_flight["a"] == 1
    assert worker.seen.count("a") == 2


async def test_a_key_added_again_while_processing_is_processed_once_more_afterwards() -> None:
    async with holding("a", workers=2) as (queue, worker):
        for _ in range(3):
            assert queue.add("a")
        assert len(queue) == 0, "dirty, not queued beside the pass in flight"
        assert not queue.idle
        worker.held.clear()
        worker.gate.set()
        await idle(queue)
    assert worker.seen == ["a", "a"]


async def test_add_after_adds_when_due_and_keeps_the_earliest_due_time() -> None:
    timers = FakeTimers()
    queue = queue_of(timers)
    worker: Worker[str] = Worker()
    async with running(queue, worker):
        queue.add_after("a", 10.0)
        queue.add_after("a", 5.0)  # moved up
        queue.add_after("a", 7.0)  # later than what it waits for: stays at 5
        queue.add_after("now", 0.0)  # not positive: at once
        await idle(queue)
        assert worker.seen == ["now"]
        assert timers.waits == [5.0]
        timers.advance(4.9)
        await idle(queue)
        assert worker.seen == ["now"]
        timers.advance(0.1)
        await idle(queue)
        assert worker.seen == ["now", "a"]
        assert timers.pending == []


async def test_a_failing_key_is_retried_with_growing_backoff_and_success_resets_it() -> None:
    timers = FakeTimers()
    queue = queue_of(timers)
    worker: Worker[str] = Worker()
    worker.failing["a"] = 3
    async with running(queue, worker):
        queue.add("a")
        waits = []
        for _ in range(3):
            await idle(queue)
            waits += timers.waits
            timers.advance(timers.waits[0])
        await idle(queue)
        assert waits == [1.0, 2.0, 4.0]
        assert queue.failures("a") == 0, "forgotten on success"

        worker.failing["a"] = 1
        queue.add("a")
        await idle(queue)
        assert timers.waits == [1.0], "the backoff starts over after a success"
        assert queue.failures("a") == 1
    assert worker.seen == ["a"] * 5


async def test_an_exception_in_process_never_kills_a_worker_nor_holds_up_other_keys() -> None:
    timers = FakeTimers()
    queue = queue_of(timers)
    worker: Worker[str] = Worker()
    worker.failing.update({"a": 1, "b": 1})
    with capture_logs() as logs:
        async with running(queue, worker):
            for key in ("a", "b", "c"):
                queue.add(key)
            await idle(queue)
            assert worker.seen == ["a", "b", "c"]
            timers.advance(1.0)
            await idle(queue)
    assert worker.seen == ["a", "b", "c", "a", "b"]
    failed = [e for e in logs if e["event"] == "work_failed"]
    assert [(e["key"], e["error"], e["retry_in"]) for e in failed] == [
        ("a", "a failed", 1.0),
        ("b", "b failed", 1.0),
    ]
    assert all(e["exc_info"] for e in failed), "an unexpected failure is logged with its traceback"


async def test_an_expected_failure_is_logged_without_a_traceback() -> None:
    async def fail(key: str) -> None:
        raise ConnectionError("the API server is away")

    queue: WorkQueue[str] = WorkQueue(name="test", timers=FakeTimers(), expected=(ConnectionError,))
    with capture_logs() as logs:
        async with running(queue, fail):
            queue.add("a")
            await idle(queue)
    (failed,) = [e for e in logs if e["event"] == "work_failed"]
    assert failed["exc_info"] is False


async def test_a_bounded_queue_drops_counts_and_logs_keys_beyond_its_limit() -> None:
    queue = queue_of(limit=2)
    worker: Worker[str] = Worker()
    with capture_logs() as logs:
        assert queue.add("a")
        assert queue.add("b")
        assert queue.add("a"), "already queued: not one more"
        assert not queue.add("c")
    assert queue.dropped == 1
    assert [(e["event"], e["key"]) for e in logs] == [("work_dropped", "c")]
    async with running(queue, worker):
        await idle(queue)
        assert queue.add("c"), "room again"
        await idle(queue)
    assert worker.seen == ["a", "b", "c"]


async def test_a_burst_of_drops_is_logged_as_counts_not_a_line_per_key() -> None:
    timers = FakeTimers()
    queue = queue_of(timers, limit=2)
    worker: Worker[str] = Worker()
    with capture_logs() as logs:
        queue.add("a")
        queue.add("b")
        for i in range(1000):
            assert not queue.add(f"c{i}")
        assert [(e["key"], e["dropped"]) for e in logs] == [("c0", 1)], "the first at once, the rest summed"
        async with running(queue, worker):
            await idle(queue)
        assert [(e["key"], e["dropped"], e["total"]) for e in logs[1:]] == [("c999", 999, 1000)]
        queue.add("a")
        queue.add("b")
        timers.now += DROPS_LOGGED_EVERY
        assert not queue.add("d")
    assert [e["event"] for e in logs] == ["work_dropped"] * 3
    assert (logs[-1]["key"], logs[-1]["dropped"], logs[-1]["total"]) == ("d", 1, 1001)
    assert queue.dropped == 1001


async def test_idle_means_nothing_queued_nor_in_flight_and_delayed_keys_do_not_count() -> None:
    timers = FakeTimers()
    queue = queue_of(timers)
    worker: Worker[str] = Worker()
    worker.held.add("a")
    assert queue.idle
    queue.add_after("later", 30.0)
    assert queue.idle, "a key waiting on a timer is not work in hand"
    async with running(queue, worker):
        queue.add("a")
        assert not queue.idle
        await worker.until_arrived()
        assert len(queue) == 0
        assert not queue.idle, "in flight"
        waiting = asyncio.create_task(queue.wait_idle())
        await asyncio.sleep(0)
        assert not waiting.done()
        worker.gate.set()
        async with asyncio.timeout(WAIT):
            await waiting
        assert queue.idle
        assert timers.waits == [30.0]


async def test_stop_cancels_the_keys_in_flight_the_timers_and_what_is_queued() -> None:
    timers = FakeTimers()
    queue = queue_of(timers)
    worker: Worker[str] = Worker()
    worker.held.add("a")
    worker.failing["b"] = 1
    async with running(queue, worker, workers=2) as stop:
        queue.add("b")
        await idle(queue)  # b failed: a retry waits on a timer
        queue.add_after("c", 60.0)
        queue.add("a")
        await worker.until_arrived()
        queue.add("a")  # dirty
        stop.set()
    assert worker.in_flight["a"] == 0, "cancelled in flight"
    assert timers.pending == []
    assert (queue.idle, len(queue), queue.failures("b")) == (True, 0, 0)

    worker.held.clear()
    queue.add("d")
    async with running(queue, worker):  # and it runs again
        await idle(queue)
    assert worker.seen == ["b", "a", "d"]


async def test_a_queue_runs_once_at_a_time_with_at_least_one_worker() -> None:
    queue = queue_of()
    worker: Worker[str] = Worker()
    with pytest.raises(ValueError, match="workers"):
        await queue.run(worker, asyncio.Event(), workers=0)
    async with running(queue, worker):
        queue.add("a")
        await idle(queue)  # running
        with pytest.raises(RuntimeError, match="running already"):
            await queue.run(worker, asyncio.Event())
    with pytest.raises(ValueError, match="limit"):
        queue_of(limit=0)


async def test_by_default_delays_are_the_event_loops() -> None:
    queue: WorkQueue[str] = WorkQueue(name="test")
    worker: Worker[str] = Worker()
    async with running(queue, worker):
        queue.add_after("a", 0.001)
        await worker.until_finished("a")
    assert worker.seen == ["a"]
