"""Backoff between retries, and racing work against a stop event."""

from __future__ import annotations

import asyncio
import random

import pytest

from aisched.kube.retry import Backoff, until_stopped


def test_delays_grow_by_the_factor_until_the_cap() -> None:
    backoff = Backoff(initial=0.5, cap=8.0, factor=2.0, jitter=0.0)
    assert [backoff.delay(attempt) for attempt in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_days_long_outage_stays_at_the_cap_instead_of_overflowing() -> None:
    backoff = Backoff(initial=0.5, cap=30.0, jitter=0.0)
    assert backoff.delay(5_000) == 30.0


def test_jitter_varies_across_calls_and_stays_within_bounds() -> None:
    backoff = Backoff(initial=0.5, cap=8.0, factor=2.0, jitter=0.25)
    for attempt in range(8):
        base = min(8.0, 0.5 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(0.75 * base <= delay <= 1.25 * base for delay in delays)
        assert len(set(delays)) == len(delays), "the same jitter again: callers would retry in step"


def test_each_backoff_has_its_own_unpredictable_rng() -> None:
    first, second = Backoff(), Backoff()
    assert first.rng is not second.rng
    assert [first.delay(3) for _ in range(3)] != [second.delay(3) for _ in range(3)]


def test_an_injected_rng_makes_the_delays_reproducible() -> None:
    def delays(seed: int) -> list[float]:
        backoff = Backoff(initial=0.1, cap=2.0, rng=random.Random(seed))
        return [backoff.delay(attempt) for attempt in range(6)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)


@pytest.mark.parametrize(
    ("initial", "cap", "factor", "jitter"),
    [
        (0.0, 1.0, 2.0, 0.2),
        (2.0, 1.0, 2.0, 0.2),
        (0.5, 1.0, 0.5, 0.2),
        (0.5, 1.0, 2.0, -0.1),
        (0.5, 1.0, 2.0, 1.0),
    ],
)
def test_settings_that_cannot_pace_retries_are_refused(
    initial: float, cap: float, factor: float, jitter: float
) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        Backoff(initial=initial, cap=cap, factor=factor, jitter=jitter)


class Work:
    """An awaitable that runs until `finish()`, recording whether it started and was cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self._finish = asyncio.Event()
        self.cancelled = False

    def finish(self) -> None:
        self._finish.set()

    async def run(self) -> str:
        self.started.set()
        try:
            await self._finish.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "done"


async def test_until_stopped_returns_promptly_on_stop_and_cancels_the_pending_work() -> None:
    work, stop = Work(), asyncio.Event()
    racing = asyncio.create_task(until_stopped(work.run(), stop))
    await work.started.wait()

    stop.set()
    async with asyncio.timeout(1):
        assert await racing is False
    assert work.cancelled


async def test_until_stopped_returns_true_when_the_work_completes_first() -> None:
    work, stop = Work(), asyncio.Event()
    task = asyncio.ensure_future(work.run())
    racing = asyncio.create_task(until_stopped(task, stop))
    await work.started.wait()

    work.finish()
    assert await racing is True
    assert task.result() == "done"
    assert not work.cancelled


async def test_until_stopped_does_not_start_the_work_when_already_stopped() -> None:
    work, stop = Work(), asyncio.Event()
    stop.set()
    assert await until_stopped(work.run(), stop) is False
    assert not work.started.is_set()


async def test_until_stopped_raises_what_ended_the_work() -> None:
    async def refused() -> None:
        raise PermissionError("forbidden")

    with pytest.raises(PermissionError, match="forbidden"):
        await until_stopped(refused(), asyncio.Event())


async def test_cancelling_until_stopped_cancels_the_work() -> None:
    work = Work()
    racing = asyncio.create_task(until_stopped(work.run(), asyncio.Event()))
    await work.started.wait()

    racing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await racing
    assert work.cancelled
