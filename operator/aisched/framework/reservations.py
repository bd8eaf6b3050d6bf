"""Reservations: nodes held for a waiting gang that cannot start yet (which gangs hold them:
`scheduler.queueing`).

A `Reservation` says where the holder will start (`nodes`) and from when (`start`, on the
scheduler's clock; None when nothing estimates it: the nodes are held as they free up). A holder
whose pods each need half of the largest node or more, and whose start no enforced runtime limit
promises, also holds every other node it could start on (`spare`): which node drains first is
then anyone's guess, and it starts on whichever is ready first (one held behind holders that
keep every node it could use has only spares). A gang that comes after the holder (`order`) may
use a held node only if it will be gone before the holder starts: its own estimated end is known
and no later than `start` (EASY backfill). Gangs ahead of the holder (a higher priority, or
earlier submission at the same queue priority) ignore it. `ReservationBook` keeps the live ones,
ranking holders by their queue priority now (aged), as the gangs compared with them are; the
planner computes each against those ahead of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from aisched.framework.cycle_state import StateKey
from aisched.framework.types import Gang

__all__ = [
    "RESERVATION_SCOPE",
    "Order",
    "Reservation",
    "ReservationBook",
    "ReservationScope",
    "order_of",
]

#: The queue-order key of a gang: (-queue priority, creation time, sequence, key).
Order = tuple[int, float, int, str]


def order_of(gang: Gang, priority: int | None = None) -> Order:
    """`gang`'s place in queue order, at `priority` (its queue priority) or its own."""
    created, sequence, key = gang.submitted
    return (-(gang.priority if priority is None else priority), created, sequence, key)


@dataclass(frozen=True, slots=True)
class Reservation:
    gang: str
    queue: str
    order: Order
    nodes: tuple[str, ...]
    #: When the holder is expected to start; None: as soon as the nodes free (no estimate).
    start: float | None
    #: When it is expected to end (start + its estimated run time), None when either is unknown.
    end: float | None
    #: When the holder first held a reservation (kept when it is re-planned).
    since: float
    #: The best guess of the start when `start` is not promised (the planner's, from run times
    #: guessed for pods without an estimate); a hold that outlives it is planned again.
    guess: float | None = None
    #: GPUs the holder will take on each of `nodes`, and how many of `nodes` have that free now.
    wants: tuple[int, ...] = ()
    ready_nodes: int = 0
    #: What it was planned against: the holders ahead of it, and its number of members.
    ahead: tuple[str, ...] = ()
    members: int = 0
    #: The other nodes it could start on, held too while its start is not promised by enforced
    #: limits and its pods each need half of the largest node or more (nodes must drain for it,
    #: and none knows which drains first).
    spare: tuple[str, ...] = ()

    @property
    def gpus(self) -> int:
        return sum(self.wants)

    @property
    def held(self) -> tuple[str, ...]:
        """Every node it keeps from the gangs behind it: where it plans to start, and the spares."""
        return self.nodes + self.spare if self.spare else self.nodes

    def blocks(self, order: Order, start: float, end: float | None, *, holder: Order | None = None) -> bool:
        """Whether a gang at `order`, running from `start` to `end` (None: unknown), may not use
        this reservation's nodes; `holder` is the holder's order now (default: as it was held)."""
        if order <= (self.order if holder is None else holder) or order[3] == self.gang:
            return False  # the holder itself, or a gang ahead of it
        if self.start is None or end is None:
            return True
        return end > self.start and (self.end is None or start < self.end)

    def describe(self, fmt: str = "%H:%M:%SZ") -> str:
        """`reserved: 3 of 4 nodes held since 10:02:11Z, expected start 10:14:00Z` (UTC)."""
        since = time.strftime(fmt, time.gmtime(self.since))
        if not self.nodes:  # held behind holders that keep every node it could use
            return (
                f"reserved: the {len(self.spare)} nodes it could start on held since {since}, behind"
                f" {len(self.ahead)} gang(s) ahead that hold them; start unknown until one of those starts"
            )
        text = f"reserved: {self.ready_nodes} of {len(self.nodes)} nodes held since {since}"
        if self.spare:
            text += f" (and {len(self.spare)} more it could start on, until one is ready)"
        if self.start is not None:
            text += f", expected start {time.strftime(fmt, time.gmtime(self.start))}"
        else:
            text += ", start unknown (no run-time estimate for the jobs on them)"
        return text


@dataclass(frozen=True, slots=True)
class ReservationScope:
    """Which reservations a cycle honours and from when: the planner's what-if for a gang that
    would start at `start` (None: at an unknown time) behind `reservations`; without it a cycle
    honours the book, now."""

    reservations: tuple[Reservation, ...]
    start: float | None


RESERVATION_SCOPE = StateKey[ReservationScope]("reservation-scope")


class ReservationBook:
    """The reservations in force, by holder."""

    def __init__(self) -> None:
        self._by_gang: dict[str, Reservation] = {}
        self._on_release: list[Callable[[Reservation], None]] = []
        self._priority_of: Callable[[str], int | None] | None = None

    def rank_by(self, priority_of: Callable[[str], int | None]) -> None:
        """Order gangs by `priority_of(key)`, their queue's priority now (aged; None for a gang
        the queue does not know), rather than by the priority they had when they were held: a
        holder and the gangs it is compared with are ranked alike, however long each waited."""
        self._priority_of = priority_of

    def order_for(self, gang: Gang) -> Order:
        """`gang`'s place in the order holders are ranked by."""
        priority = self._priority_of(gang.key) if self._priority_of is not None else None
        return order_of(gang, priority)

    def order_now(self, reservation: Reservation) -> Order:
        """The order `reservation`'s holder has now."""
        if self._priority_of is None:
            return reservation.order
        priority = self._priority_of(reservation.gang)
        if priority is None:
            return reservation.order
        return (-priority, *reservation.order[1:])

    def subscribe(self, on_release: Callable[[Reservation], None]) -> Callable[[], None]:
        """Call `on_release(reservation)` whenever one is dropped; returns the unsubscribe."""
        self._on_release.append(on_release)
        return lambda: self._on_release.remove(on_release)

    def hold(self, reservation: Reservation) -> Reservation:
        """Hold (or re-plan) `reservation`; a re-planned one keeps its `since`."""
        old = self._by_gang.get(reservation.gang)
        if old is not None:
            reservation = replace(reservation, since=old.since)
            if old == reservation:
                return old
        self._by_gang[reservation.gang] = reservation
        return reservation

    def release(self, gang: str) -> bool:
        """Drop `gang`'s reservation (it started, changed or is gone); whether it had one."""
        dropped = self._by_gang.pop(gang, None)
        if dropped is None:
            return False
        for listener in list(self._on_release):
            listener(dropped)
        return True

    def get(self, gang: str) -> Reservation | None:
        return self._by_gang.get(gang)

    def ahead_of(self, order: Order) -> list[Reservation]:
        """The reservations of gangs ahead of `order`, first first."""
        ranked = ((self.order_now(r), r) for r in self._by_gang.values())
        return [r for at, r in sorted(ranked, key=lambda pair: pair[0]) if at < order]

    def gpus(self) -> int:
        return sum(r.gpus for r in self._by_gang.values())

    def __iter__(self) -> Iterator[Reservation]:
        return iter(list(self._by_gang.values()))

    def __len__(self) -> int:
        return len(self._by_gang)

    def __bool__(self) -> bool:
        return bool(self._by_gang)
