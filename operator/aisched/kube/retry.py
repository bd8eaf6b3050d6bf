"""Retrying against the API server: how long to wait between attempts, and giving up on stop.

Which failures are worth retrying is `ApiError.transient` (and every `ApiUnavailable`) in
`aisched.kube.client`; this module only paces the attempts. No I/O, no clock: callers inject
their own `sleep`, and tests inject the random source.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable
from dataclasses import dataclass, field

__all__ = ["Backoff", "until_stopped", "woken_or_stopped"]


def _unpredictable_rng() -> random.Random:
    return random.Random(os.urandom(16))


@dataclass(frozen=True)
class Backoff:
    """Delays between failed attempts: initial × factor^attempt, capped, times 1 ± `jitter`.

    The jitter keeps clients that failed together (agents after an API server restart, the
    members of a gang) from retrying in step. `rng` is created once per Backoff, seeded from
    os.urandom; inject a seeded one for reproducible delays.
    """

    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=_unpredictable_rng, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap:
            raise ValueError(f"need 0 < initial <= cap, not initial={self.initial}, cap={self.cap}")
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, not {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter}")

    def delay(self, attempt: int) -> float:
        """The wait before retry number `attempt + 1` (`attempt` 0: after the first failure)."""
        try:
            base = min(self.cap, self.initial * self.factor ** max(attempt, 0))
        except OverflowError:  # a days-long outage: factor^attempt no longer fits a float
            base = self.cap
        return base * (1 + self.jitter * (2 * self.rng.random() - 1))


async def until_stopped(work: Awaitable[object], stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` is set first; whether `work` completed.

    On False, `work` has been cancelled and has finished unwinding (if `stop` was set already,
    it never started). On True, an exception `work` raised propagates; pass a task to read its
    result afterwards. Being cancelled cancels `work` too.
    """
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        if not stop.is_set():
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        stopping.cancel()
        await asyncio.gather(task, stopping, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()  # an exception that ended `work` surfaces here
    return True


async def woken_or_stopped(wake: asyncio.Event, stop: asyncio.Event, seconds: float | None) -> None:
    """Return once `wake` or `stop` is set, or after `seconds` (None: no limit): how a
    loop that never polls sleeps until its next deadline."""
    woken = asyncio.ensure_future(wake.wait())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({woken, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        stopping.cancel()
        await asyncio.gather(woken, stopping, return_exceptions=True)
