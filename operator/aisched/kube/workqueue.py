"""A keyed work queue for controllers, after client-go's `util/workqueue`.

The contract, for keys of any hashable type:

- **Dedup.** A key added while it waits in the queue is queued once, at its first place (FIFO).
- **One worker per key.** A key being processed is never handed to a second worker. Added again
  meanwhile, it is marked dirty and queued once more (once, however often it was added) when the
  first processing finishes: news that came during a pass is never lost, and never raced.
- **Delayed adds.** `add_after(key, delay)` adds the key when `delay` has passed; a key already
  waiting keeps the earliest due time of its delayed adds.
- **Retries.** When `process(key)` raises, the failure is logged and the key is added again after
  its backoff (`Backoff.delay` of the key's failures in a row: it grows with each failure); when
  it returns normally, its failures are forgotten. A failure never ends a worker.
- **Bounded length** (optional). At most `limit` keys wait in the queue; a key that would be one
  more (added, falling due or coming back dirty) is dropped and counted in `dropped`. The log says
  so without a line per key: the first drop is logged at once, those that follow within
  `DROPS_LOGGED_EVERY` seconds are summed into one line, written by the next drop after that or
  when the queue goes idle, whichever comes first.
- **Idle.** The queue is idle when no key waits and none is being processed. Keys waiting on a
  timer (delayed adds, retries) do not count: they are future work, not work in hand, so
  `wait_idle()` returns once everything added so far has been dealt with.
- **Lifecycle.** Keys may be added at any time; they are processed while `run()` runs. When its
  `stop` is set (or it is cancelled), `run()` cancels the keys in flight, ends its workers, cancels
  the timers and drops what is queued, dirty or waiting, with the failure counts: the queue is left
  empty and idle, and may be run again.

Time is the running event loop's unless a `Timers` is injected (tests move a fake one by hand).
No I/O.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Final, Generic, Protocol, TypeVar

from aisched.kube.retry import Backoff, until_stopped
from aisched.observability.logging import get_logger

__all__ = ["DROPS_LOGGED_EVERY", "LoopTimers", "Timer", "Timers", "WorkQueue"]

log = get_logger(__name__)

#: Keys dropped from a full queue are logged at most once per this many seconds (as a count).
DROPS_LOGGED_EVERY: Final = 10.0

K = TypeVar("K", bound=Hashable)


class Timer(Protocol):
    """A scheduled call that can be called off (`asyncio.TimerHandle` is one)."""

    def cancel(self) -> None: ...


class Timers(Protocol):
    """A clock and a way to call back later: the event loop's `time` and `call_later`, in short."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None], /) -> Timer: ...


class LoopTimers:
    """The running event loop's timers, looked up at each call (a queue may be built before the loop
    runs)."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None], /) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


class WorkQueue(Generic[K]):
    """Keys waiting to be processed, deduplicated, never processed twice at once; see the module's
    docstring for the contract."""

    def __init__(
        self,
        *,
        name: str,
        backoff: Backoff | None = None,
        limit: int | None = None,
        timers: Timers | None = None,
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        """`name` is for logs; `backoff` paces retries (default `Backoff()`); `expected` are the
        failures logged without a traceback (outages, not bugs)."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.name = name
        self.limit = limit
        #: Keys dropped because the queue was full.
        self.dropped = 0
        self._drops_unlogged = 0  # dropped since the last log line
        self._last_drop: str = ""
        self._drops_logged_at = -math.inf
        self._backoff = backoff if backoff is not None else Backoff()
        self._timers: Timers = timers if timers is not None else LoopTimers()
        self._expected = expected
        self._queue: dict[K, None] = {}  # insertion-ordered: the next key first
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # processing, and added again meanwhile
        self._delayed: dict[K, tuple[float, Timer]] = {}  # key -> (due time, its timer)
        self._failures: dict[K, int] = {}  # key -> failures in a row
        self._ready = asyncio.Event()  # set when a key may be waiting for a worker
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = False

    # -- adding ------------------------------------------------------------------------------------

    def add(self, key: K) -> bool:
        """Queue `key` for processing; False if it was dropped (the queue is full)."""
        if key in self._queue or key in self._dirty:
            return True
        if key in self._processing:
            self._dirty.add(key)
            return True
        return self._enqueue(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` when `delay` seconds have passed (at once if `delay` is not positive); a key
        already waiting for a later time is moved up, one waiting for an earlier time stays."""
        if delay <= 0:
            self.add(key)
            return
        due = self._timers.time() + delay
        waiting = self._delayed.get(key)
        if waiting is not None:
            if waiting[0] <= due:
                return
            waiting[1].cancel()
        self._delayed[key] = (due, self._timers.call_later(delay, functools.partial(self._due, key)))

    def forget(self, key: K) -> None:
        """Reset `key`'s failures: its next retry waits the shortest backoff (done on success)."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        """How many times in a row processing `key` has failed."""
        return self._failures.get(key, 0)

    def __len__(self) -> int:
        """How many keys wait for a worker (not those in flight, nor those waiting on a timer)."""
        return len(self._queue)

    # -- idle --------------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing in flight (delayed keys do not count)."""
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Until the queue is idle. Without `run()` running, a queued key keeps it busy."""
        await self._idle.wait()

    # -- processing --------------------------------------------------------------------------------

    async def run(
        self, process: Callable[[K], Awaitable[object]], stop: asyncio.Event, *, workers: int = 1
    ) -> None:
        """Process keys with `workers` concurrent workers until `stop` is set; then leave the queue
        empty (see the module's docstring)."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if self._running:
            raise RuntimeError(f"work queue {self.name!r} is running already")
        self._running = True
        try:
            await until_stopped(self._workers(process, workers), stop)
        finally:
            self._running = False
            self._clear()

    async def _workers(self, process: Callable[[K], Awaitable[object]], workers: int) -> None:
        async with asyncio.TaskGroup() as group:
            for number in range(workers):
                group.create_task(self._work(process), name=f"{self.name} worker {number}")

    async def _work(self, process: Callable[[K], Awaitable[object]]) -> None:
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            key = next(iter(self._queue))
            del self._queue[key]
            self._processing.add(key)
            try:
                await process(key)
            except Exception as exc:  # one key's failure must not end the worker
                self._retry(key, exc)
            else:
                self.forget(key)
            finally:
                self._done(key)

    # -- plumbing ----------------------------------------------------------------------------------

    def _enqueue(self, key: K) -> bool:
        if self.limit is not None and len(self._queue) >= self.limit:
            self.dropped += 1
            self._drops_unlogged += 1
            self._last_drop = str(key)
            if self._timers.time() - self._drops_logged_at >= DROPS_LOGGED_EVERY:
                self._log_drops()
            return False
        self._queue[key] = None
        self._ready.set()
        self._idle.clear()
        return True

    def _due(self, key: K) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def _retry(self, key: K, exc: Exception) -> None:
        attempt = self._failures.get(key, 0)
        self._failures[key] = attempt + 1
        delay = self._backoff.delay(attempt)
        log.warning(
            "work_failed",
            queue=self.name,
            key=str(key),
            error=str(exc) or repr(exc),
            retry_in=round(delay, 3),
            exc_info=not isinstance(exc, self._expected),
        )
        self.add_after(key, delay)

    def _done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self._enqueue(key)
        if not self._queue and not self._processing:
            self._idle.set()
            if self._drops_unlogged:
                self._log_drops()

    def _log_drops(self) -> None:
        """Log the keys dropped since the last such line: how many, and the last one."""
        log.warning(
            "work_dropped",
            queue=self.name,
            key=self._last_drop,
            dropped=self._drops_unlogged,
            total=self.dropped,
            limit=self.limit,
        )
        self._drops_unlogged = 0
        self._drops_logged_at = self._timers.time()

    def _clear(self) -> None:
        for _, timer in self._delayed.values():
            timer.cancel()
        self._delayed.clear()
        self._queue.clear()
        self._dirty.clear()
        self._processing.clear()
        self._failures.clear()
        self._idle.set()
        if self._drops_unlogged:
            self._log_drops()
