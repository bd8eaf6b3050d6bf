"""`GangQueue`: which gang the scheduling loop tries next, and when a failed one is tried again."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import cmp_to_key
from typing import Any

from aisched.framework.events import ALL_EVENTS, ClusterEvent
from aisched.framework.types import Gang

__all__ = ["GangQueue", "QueueState"]


class QueueState(Enum):
    ACTIVE = "active"
    BACKOFF = "backoff"
    UNSCHEDULABLE = "unschedulable"


@dataclass
class _Entry:
    gang: Gang
    state: QueueState
    attempts: int = 0
    ready_at: float = 0.0  # backoff: when it may be tried again
    hints: frozenset[ClusterEvent] = ALL_EVENTS
    version: int = 0
    reason: str = ""
    waiting_since: float = 0.0


@dataclass
class GangQueue:
    """Gangs by key in one of three states; `pop()` returns the first active gang by `less`."""

    less: Callable[[Gang, Gang], bool]
    clock: Callable[[], float]
    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    #: For an order that changes while gangs wait (fair share): a counter that moves when it does.
    #: The active gangs are then re-sorted before a pop, at most every `resort_interval` seconds.
    order_version: Callable[[], int] | None = None
    resort_interval: float = 0.05
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _active: list[tuple[Any, int, str, int]] = field(default_factory=list)
    _backoff: list[tuple[float, int, str, int]] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=itertools.count)
    _sorted_version: int | None = None
    _sorted_at: float = float("-inf")

    def __post_init__(self) -> None:
        less = self.less

        def compare(a: Gang, b: Gang) -> int:
            return -1 if less(a, b) else (1 if less(b, a) else 0)

        self._key = cmp_to_key(compare)

    # -- feeding ---------------------------------------------------------------------------

    def add(self, gang: Gang) -> None:
        """A new gang, or a new view of a known one (members added, priority changed): make it active.

        An unschedulable gang whose membership changed is tried again at once; one in backoff
        keeps its backoff (it is updated in place).
        """
        entry = self._entries.get(gang.key)
        if entry is None:
            self._entries[gang.key] = entry = _Entry(gang, QueueState.ACTIVE, waiting_since=self.clock())
            self._push_active(entry)
            return
        grew = len(gang.members) != len(entry.gang.members)
        entry.gang = gang
        if entry.state is QueueState.UNSCHEDULABLE and grew:
            self._activate(entry)
        elif entry.state is QueueState.ACTIVE:
            self._push_active(entry)  # re-sort with the new view; the old heap item goes stale

    def delete(self, key: str) -> None:
        """The gang is gone (deleted, or every member bound)."""
        self._entries.pop(key, None)

    # -- the scheduling loop's side -------------------------------------------------------------

    def pop(self) -> Gang | None:
        """The next gang to try, or None when nothing is active. Expired backoffs move first."""
        self.flush_backoff()
        self._resort_if_stale()
        while self._active:
            _, _, key, version = heapq.heappop(self._active)
            entry = self._entries.get(key)
            if entry is None or entry.version != version or entry.state is not QueueState.ACTIVE:
                continue  # stale heap item
            entry.version += 1  # popped: in flight until done/backoff/unschedulable/add
            return entry.gang
        return None

    def backoff(self, gang: Gang, *, reason: str = "") -> float:
        """Try `gang` again after an exponential backoff (1 s, 2 s, ... up to 60 s); returns the delay."""
        entry = self._entry(gang)
        entry.attempts += 1
        delay = float(min(self.max_backoff, self.initial_backoff * 2.0 ** (entry.attempts - 1)))
        entry.state = QueueState.BACKOFF
        entry.ready_at = self.clock() + delay
        entry.reason = reason
        entry.version += 1
        heapq.heappush(self._backoff, (entry.ready_at, next(self._counter), gang.key, entry.version))
        return delay

    def unschedulable(self, gang: Gang, *, reason: str, hints: frozenset[ClusterEvent] | None = None) -> None:
        """Park `gang` until one of `hints` happens; it still waits out its backoff after that."""
        entry = self._entry(gang)
        entry.attempts += 1
        entry.state = QueueState.UNSCHEDULABLE
        entry.reason = reason
        entry.hints = ALL_EVENTS if hints is None else hints
        entry.ready_at = self.clock() + min(
            self.max_backoff, self.initial_backoff * 2 ** (entry.attempts - 1)
        )
        entry.version += 1

    def succeeded(self, gang: Gang) -> None:
        """Placed: forget its attempts; it leaves the queue until it shows up again."""
        self.delete(gang.key)

    # -- cluster events ----------------------------------------------------------------------

    def on_event(self, event: ClusterEvent) -> int:
        """Wake the parked gangs `event` could help; returns how many moved."""
        moved = 0
        for entry in list(self._entries.values()):
            if entry.state is QueueState.UNSCHEDULABLE and event in entry.hints:
                moved += 1
                if entry.ready_at > self.clock():
                    entry.state = QueueState.BACKOFF
                    entry.version += 1
                    heapq.heappush(
                        self._backoff, (entry.ready_at, next(self._counter), entry.gang.key, entry.version)
                    )
                else:
                    self._activate(entry)
        return moved

    def flush_backoff(self) -> None:
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key, version = heapq.heappop(self._backoff)
            entry = self._entries.get(key)
            if entry is not None and entry.version == version and entry.state is QueueState.BACKOFF:
                self._activate(entry)

    # -- reading ---------------------------------------------------------------------------

    def state(self, key: str) -> QueueState | None:
        entry = self._entries.get(key)
        return entry.state if entry is not None else None

    def reason(self, key: str) -> str:
        entry = self._entries.get(key)
        return entry.reason if entry is not None else ""

    def depth(self) -> dict[QueueState, int]:
        counts = dict.fromkeys(QueueState, 0)
        for entry in self._entries.values():
            counts[entry.state] += 1
        return counts

    def next_ready_at(self) -> float | None:
        """When the earliest backoff ends (to sleep until then), or None."""
        while self._backoff:
            ready_at, _, key, version = self._backoff[0]
            entry = self._entries.get(key)
            if entry is not None and entry.version == version and entry.state is QueueState.BACKOFF:
                return ready_at
            heapq.heappop(self._backoff)
        return None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # -- internals ---------------------------------------------------------------------------

    def _entry(self, gang: Gang) -> _Entry:
        entry = self._entries.get(gang.key)
        if entry is None:
            entry = self._entries[gang.key] = _Entry(gang, QueueState.ACTIVE, waiting_since=self.clock())
        entry.gang = gang
        return entry

    def _resort_if_stale(self) -> None:
        if self.order_version is None:
            return
        version = self.order_version()
        now = self.clock()
        if version == self._sorted_version or now - self._sorted_at < self.resort_interval:
            return
        self._sorted_version, self._sorted_at = version, now
        self._active = [
            (self._key(entry.gang), next(self._counter), key, entry.version)
            for key, entry in self._entries.items()
            if entry.state is QueueState.ACTIVE
        ]
        heapq.heapify(self._active)

    def _activate(self, entry: _Entry) -> None:
        entry.state = QueueState.ACTIVE
        self._push_active(entry)

    def _push_active(self, entry: _Entry) -> None:
        entry.version += 1
        heapq.heappush(
            self._active, (self._key(entry.gang), next(self._counter), entry.gang.key, entry.version)
        )
