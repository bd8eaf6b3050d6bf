"""`GangQueue`: which gang the scheduling loop tries next, and when a failed one is tried again.

Gangs wait in queues (lines): one per tenant, or per namespace without a TenantQuota
(`queue.policy`). Within a line the order is the queue priority (priority raised by aging), then
submission order; across lines the profile's QueueSort (`less`) decides which active gang goes
first. Under `StrictFIFO` only a line's first gang (its head) is ever handed out: the others
wait blocked until it is placed or gone. A parked head (or a gang holding a reservation) woken by
a cluster event is tried at once, never made to wait out a backoff: the freed room is for it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import cmp_to_key
from typing import Any, Final

from aisched.framework.events import ALL_EVENTS, ClusterEvent
from aisched.framework.reservations import Order, order_of
from aisched.framework.types import Gang
from aisched.queue.policy import QueueingPolicy, QueueOf

__all__ = ["GangQueue", "QueueState"]


class QueueState(Enum):
    ACTIVE = "active"
    BACKOFF = "backoff"
    UNSCHEDULABLE = "unschedulable"
    BLOCKED = "blocked"  # behind the head of a StrictFIFO line


_DEFAULT_LINE: Final = QueueingPolicy()
_Submitted = tuple[float, int, str]


def _single_line(gang: Gang) -> tuple[str, QueueingPolicy]:
    return "default", _DEFAULT_LINE


@dataclass
class _Line:
    """One queue: its gangs by priority level, each level a heap in submission order."""

    name: str
    policy: QueueingPolicy
    levels: dict[int, list[tuple[_Submitted, str]]] = field(default_factory=dict)
    members: dict[str, int] = field(default_factory=dict)  # key -> the level it is filed under
    version: int = 0
    #: Entries that name this line: its members and the gangs set aside from it.
    refs: int = 0

    def file(self, gang: Gang) -> None:
        level = self.members.get(gang.key)
        if level == gang.priority:
            return
        self.members[gang.key] = gang.priority
        heapq.heappush(self.levels.setdefault(gang.priority, []), (gang.submitted, gang.key))
        self.version += 1

    def drop(self, key: str) -> None:
        if self.members.pop(key, None) is not None:
            self.version += 1

    def firsts(self, n: int) -> list[tuple[int, str]]:
        """Up to `n` keys of each level, first first, as (level, key); stale heap items dropped."""
        found: list[tuple[int, str]] = []
        for level, heap in list(self.levels.items()):
            while heap and self.members.get(heap[0][1]) != level:
                heapq.heappop(heap)
            if not heap:
                del self.levels[level]
                continue
            if n == 1:
                found.append((level, heap[0][1]))
            else:
                found.extend(
                    (level, key) for _, key in heapq.nsmallest(n, heap) if self.members.get(key) == level
                )
        return found


@dataclass
class _Entry:
    gang: Gang
    state: QueueState
    attempts: int = 0
    ready_at: float = 0.0  # backoff: when it may be tried again
    hints: frozenset[ClusterEvent] = ALL_EVENTS
    version: int = 0
    reason: str = ""
    #: What the last attempt that turned the gang away found, for explaining it (opaque here).
    detail: object = None
    waiting_since: float = 0.0
    line: str = ""
    #: It fits nowhere even on an empty cluster: it waits out of its line, holding no one up.
    aside: bool = False


@dataclass
class GangQueue:
    """Gangs by key in one of three states; `pop()` returns the first active gang by `less`."""

    less: Callable[[Gang, Gang], bool]
    clock: Callable[[], float]
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    #: For an order that changes while gangs wait (fair share): a counter that moves when it does.
    #: The active gangs are then re-sorted before a pop, at most every `resort_interval` seconds.
    order_version: Callable[[], int] | None = None
    resort_interval: float = 0.05
    #: Which line a gang waits in and that line's policy (default: one BestEffortFIFO line).
    queue_of: QueueOf = _single_line
    #: Whether a gang holds a reservation: like a line's head, it is tried at once when woken.
    holds: Callable[[str], bool] = lambda _: False
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _active: list[tuple[Any, int, str, int]] = field(default_factory=list)
    _backoff: list[tuple[float, int, str, int]] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=itertools.count)
    _sorted_version: int | None = None
    _sorted_at: float = float("-inf")
    _lines: dict[str, _Line] = field(default_factory=dict)

    def __post_init__(self) -> None:
        less = self.less

        def compare(a: Gang, b: Gang) -> int:
            return -1 if less(a, b) else (1 if less(b, a) else 0)

        self._key = cmp_to_key(compare)

    # -- feeding ---------------------------------------------------------------------------

    def add(self, gang: Gang) -> None:
        """A new gang, or a new view of a known one (members added, priority changed): make it active.

        An unschedulable gang whose membership or needed size (min_member: a job framework's
        PodGroup edited) changed is tried again at once; one in backoff keeps its backoff (it is
        updated in place).
        """
        entry = self._entries.get(gang.key)
        if entry is None:
            self._entries[gang.key] = entry = _Entry(gang, QueueState.ACTIVE, waiting_since=self.clock())
            self._file(entry)
            self._push_active(entry)
            self._wake_head(self._lines[entry.line])
            return
        changed = len(gang.members) != len(entry.gang.members) or gang.min_member != entry.gang.min_member
        entry.gang = gang
        if changed or not entry.aside:
            self._file(entry)
        if entry.state is QueueState.UNSCHEDULABLE and changed:
            self._activate(entry)
        elif entry.state is QueueState.ACTIVE:
            self._push_active(entry)  # re-sort with the new view; the old heap item goes stale
        self._wake_head(self._lines[entry.line])

    def delete(self, key: str) -> None:
        """The gang is gone (deleted, or every member bound)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._leave(entry)

    def set_aside(self, key: str) -> None:
        """`key` cannot run even on an empty cluster (too big, or over its tenant's quota): it
        stays parked, but out of its line, so that under StrictFIFO it blocks no one. It goes
        back into the line when an event wakes it or it gains members."""
        entry = self._entries.get(key)
        if entry is None or entry.aside:
            return
        entry.aside = True
        line = self._lines[entry.line]
        line.drop(key)
        self._wake_head(line)

    # -- the scheduling loop's side -------------------------------------------------------------

    def pop(self) -> Gang | None:
        """The next gang to try, or None when nothing is active. Expired backoffs move first."""
        self.flush_backoff()
        self._resort_if_stale()
        for line in self._lines.values():
            if line.policy.strict and len(line.levels) > 1:
                self._wake_head(line)  # aging may have put another gang first
        while self._active:
            _, _, key, version = heapq.heappop(self._active)
            entry = self._entries.get(key)
            if entry is None or entry.version != version or entry.state is not QueueState.ACTIVE:
                continue  # stale heap item
            line = self._lines[entry.line]
            if line.policy.strict and self._head(line) != key:
                entry.state = QueueState.BLOCKED  # waits for the head of its StrictFIFO line
                entry.version += 1
                self._wake_head(line)
                continue
            entry.version += 1  # popped: in flight until done/backoff/unschedulable/add
            return entry.gang
        return None

    def backoff(self, gang: Gang, *, reason: str = "") -> float:
        """Try `gang` again after an exponential backoff (1 s, 2 s, ... up to 10 s); returns the delay."""
        entry = self._entry(gang)
        entry.attempts += 1
        delay = self._delay(entry)
        entry.state = QueueState.BACKOFF
        entry.ready_at = self.clock() + delay
        entry.reason = reason
        entry.detail = None
        entry.version += 1
        heapq.heappush(self._backoff, (entry.ready_at, next(self._counter), gang.key, entry.version))
        return delay

    def unschedulable(
        self,
        gang: Gang,
        *,
        reason: str,
        hints: frozenset[ClusterEvent] | None = None,
        detail: object = None,
    ) -> None:
        """Park `gang` until one of `hints` happens; it still waits out its backoff after that.
        `detail` is kept with `reason` (`detail(key)`)."""
        entry = self._entry(gang)
        entry.attempts += 1
        entry.state = QueueState.UNSCHEDULABLE
        entry.reason = reason
        entry.detail = detail
        entry.hints = ALL_EVENTS if hints is None else hints
        entry.ready_at = self.clock() + self._delay(entry)
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
                key = entry.gang.key
                if entry.aside:
                    self._file(entry)
                if entry.ready_at > self.clock() and not (self.is_head(key) or self.holds(key)):
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

    def gang(self, key: str) -> Gang | None:
        """The gang `key` as it was last queued, or None when it is not queued."""
        entry = self._entries.get(key)
        return entry.gang if entry is not None else None

    def detail(self, key: str) -> object:
        """What `unschedulable` was given with the gang's reason (None after a backoff)."""
        entry = self._entries.get(key)
        return entry.detail if entry is not None else None

    def line_of(self, key: str) -> tuple[str, QueueingPolicy] | None:
        """The line `key` waits in and its policy, or None when it is not queued."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        return entry.line, self._lines[entry.line].policy

    def is_head(self, key: str) -> bool:
        """Whether `key` is the first gang of its line."""
        entry = self._entries.get(key)
        return entry is not None and self._head(self._lines[entry.line]) == key

    def queue_priority(self, key: str) -> int:
        """`key`'s priority as its line orders it now (aged); its own priority if unknown."""
        entry = self._entries.get(key)
        return 0 if entry is None else self._aged(entry)

    def front(self, key: str, n: int) -> list[Gang]:
        """The first `n` gangs of `key`'s line, in line order."""
        entry = self._entries.get(key)
        if entry is None:
            return []
        line = self._lines[entry.line]
        ranked = sorted(
            (self._rank(self._entries[k]) for _, k in line.firsts(n) if k in self._entries),
        )
        return [self._entries[r[-1]].gang for r in ranked[:n]]

    def positions(self) -> dict[str, tuple[str, int, int]]:
        """Every queued gang's (line, 1-based position, line length), in line order."""
        found: dict[str, tuple[str, int, int]] = {}
        for line in self._lines.values():
            ranked = sorted(self._rank(self._entries[k]) for k in line.members if k in self._entries)
            for index, rank in enumerate(ranked, start=1):
                found[rank[-1]] = (line.name, index, len(ranked))
        return found

    def waiting_since(self, key: str) -> float | None:
        entry = self._entries.get(key)
        return entry.waiting_since if entry is not None else None

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

    def __iter__(self) -> Iterator[str]:
        """The key of every gang queued, in no particular order (set-aside gangs too)."""
        return iter(list(self._entries))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # -- internals ---------------------------------------------------------------------------

    def _entry(self, gang: Gang) -> _Entry:
        entry = self._entries.get(gang.key)
        if entry is None:
            entry = self._entries[gang.key] = _Entry(gang, QueueState.ACTIVE, waiting_since=self.clock())
        entry.gang = gang
        self._file(entry)
        return entry

    def _delay(self, entry: _Entry) -> float:
        """The backoff after `entry.attempts` failures: doubling from `initial_backoff`, capped
        (the exponent too, so a gang turned away a thousand times does not overflow)."""
        doublings = min(entry.attempts - 1, 62)
        return float(min(self.max_backoff, self.initial_backoff * 2.0**doublings))

    def _file(self, entry: _Entry) -> None:
        """File `entry` in the line its gang belongs to now (moving it if that changed)."""
        name, policy = self.queue_of(entry.gang)
        if entry.line != name and entry.line in self._lines:
            self._leave(entry)
        line = self._lines.get(name)
        if line is None:
            line = self._lines[name] = _Line(name, policy)
        if entry.line != name:
            line.refs += 1
        line.policy = policy
        entry.line = name
        entry.aside = False
        line.file(entry.gang)

    def _leave(self, entry: _Entry) -> None:
        """`entry` no longer names its line; a line no entry names goes."""
        line = self._lines[entry.line]
        line.drop(entry.gang.key)
        line.refs -= 1
        if line.refs <= 0:
            del self._lines[entry.line]
        else:
            self._wake_head(line)
        entry.line = ""

    def refile(self) -> None:
        """Every gang's line again (the tenants or their policies changed)."""
        for entry in list(self._entries.values()):
            self._file(entry)
        for line in list(self._lines.values()):
            self._wake_head(line)

    def _aged(self, entry: _Entry) -> int:
        policy = self._lines[entry.line].policy
        return policy.queue_priority(entry.gang.priority, self.clock() - entry.waiting_since)

    def _rank(self, entry: _Entry) -> Order:
        return order_of(entry.gang, self._aged(entry))

    def _head(self, line: _Line) -> str | None:
        firsts = line.firsts(1)
        if len(firsts) == 1:
            return firsts[0][1]
        ranked = [self._rank(self._entries[k]) for _, k in firsts if k in self._entries]
        return min(ranked)[-1] if ranked else None

    def _wake_head(self, line: _Line) -> None:
        """Under StrictFIFO, hand out the line's head if it waits blocked."""
        if not line.policy.strict:
            return
        head = self._head(line)
        entry = self._entries.get(head) if head is not None else None
        if entry is not None and entry.state is QueueState.BLOCKED:
            self._activate(entry)

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
