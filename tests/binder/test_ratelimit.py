"""The token bucket: a full burst at once, then `qps` per second, never more than burst + qps·t."""

from __future__ import annotations

import asyncio

import pytest

from aisched.binder import TokenBucket
from tests.binder.fakes import FakeClock


def bucket(clock: FakeClock, *, qps: float = 10.0, burst: int = 5) -> TokenBucket:
    return TokenBucket(qps=qps, burst=burst, clock=clock, sleep=clock.sleep)


def assert_within_bound(times: list[float], *, start: float, qps: float, burst: int) -> None:
    for count, at in enumerate(sorted(times), start=1):
        assert count <= burst + qps * (at - start) + 1e-6, f"{count} calls by t={at - start}"


async def test_a_full_burst_passes_without_waiting() -> None:
    clock = FakeClock()
    limiter = bucket(clock, burst=5)

    for _ in range(5):
        await limiter.acquire()

    assert clock.now == 0.0


async def test_after_the_burst_calls_are_paced_at_qps() -> None:
    clock = FakeClock()
    limiter = bucket(clock, qps=10.0, burst=5)

    for _ in range(25):
        await limiter.acquire()

    assert clock.now == pytest.approx(2.0)


async def test_concurrent_callers_never_exceed_burst_plus_qps_times_t() -> None:
    clock = FakeClock(now=50.0)
    limiter = bucket(clock, qps=7.0, burst=3)
    times: list[float] = []

    async def call() -> None:
        await limiter.acquire()
        times.append(clock.now)

    await asyncio.gather(*(call() for _ in range(60)))

    assert len(times) == 60
    assert_within_bound(times, start=50.0, qps=7.0, burst=3)
    assert max(times) - 50.0 == pytest.approx((60 - 3) / 7.0)


async def test_idle_time_refills_the_bucket_only_up_to_burst() -> None:
    clock = FakeClock()
    limiter = bucket(clock, qps=10.0, burst=5)
    for _ in range(5):
        await limiter.acquire()
    clock.now += 3600.0  # an hour idle earns no more than one burst
    start = clock.now
    times: list[float] = []

    for _ in range(15):
        await limiter.acquire()
        times.append(clock.now)

    assert_within_bound(times, start=start, qps=10.0, burst=5)
    assert times[4] == start


@pytest.mark.parametrize(("qps", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_a_bucket_that_could_never_pass_a_call_is_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        bucket(FakeClock(), qps=qps, burst=burst)
