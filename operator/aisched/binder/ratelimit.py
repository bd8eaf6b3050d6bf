"""A token bucket that paces API calls: at most `burst + qps·t` calls in any first `t` seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["TokenBucket"]

# Float rounding can leave 0.999… tokens after an exact wait; a shortfall this small is a token.
_ROUNDING: Final = 1e-9


class TokenBucket:
    """client-go's QPS/burst limiter: starts full with `burst` tokens, refills at `qps` per second.

    Waiters are served first come, first served; only the head of the line sleeps, so a fake
    `sleep` that advances a fake `clock` keeps the clock exact however many callers wait.
    """

    def __init__(
        self,
        *,
        qps: float,
        burst: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        if qps <= 0:
            raise ValueError(f"qps must be positive, not {qps}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._line = asyncio.Lock()

    async def acquire(self) -> None:
        """Take one token, waiting until one is there."""
        async with self._line:
            self._refill()
            # A loop, not one sleep: a sleep may return early, and taking a token that is not
            # there would break the bound.
            while self._tokens < 1 - _ROUNDING:
                await self._sleep((1 - self._tokens) / self.qps)
                self._refill()
            self._tokens -= 1

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
