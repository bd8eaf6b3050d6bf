"""Reservation (PreFilter, Filter): nodes held for a gang ahead in the queues are off limits.

A gang may use a node held for a gang ahead of it only when it will be gone before that gang
starts (EASY backfill): its runtime limit, which the kubelet enforces, ends it in time. Learned
estimates plan reservations but never admit a backfill. The gang a
reservation is held for, and gangs ahead of it, are not restricted. In a planner's what-if
(`RESERVATION_SCOPE`) the cycle honours the planned reservations from the planned start instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from aisched.framework.cycle_state import CycleState, StateKey
from aisched.framework.events import CAPACITY_FREED, ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import Bools, FilterResult
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.reservations import RESERVATION_SCOPE
from aisched.framework.reservations import Reservation as Held
from aisched.framework.status import Status
from aisched.framework.types import Gang, PodInfo
from aisched.topology.snapshot import Snapshot

__all__ = ["NAME", "RESERVED", "Reservation", "new"]

NAME: Final = "Reservation"
RESERVED: Final = "node(s) were reserved for a gang ahead in the queue"
_BLOCKED = StateKey[Bools]("reservation-blocked")
#: Held-node masks kept at most (one per reservation, dropped when the cluster's nodes change).
_MASKS_KEPT: Final = 1024


class Reservation:
    name = NAME
    static = False

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        #: Per holder: the reservation a mask was made for, and the mask of the nodes it holds.
        self._masks: dict[str, tuple[Held, Bools]] = {}
        self._generation: tuple[object, int] | None = None

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return CAPACITY_FREED | {ClusterEvent.RESERVATION_RELEASED}

    def pre_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot) -> Status:
        scope = state.get(RESERVATION_SCOPE, None)
        if scope is None:
            book = self.handle.reservations
            if not book:  # the common case: nothing held, nothing to do
                return Status.success()
            reservations = tuple(book)
        else:
            reservations = scope.reservations
        if not reservations:
            return Status.success()
        known = self.handle.clock() if scope is None else scope.start
        # Only an enforced limit lets a gang onto another's held node: a learned estimate is a
        # namespace's own history, which its users steer.
        duration = self.handle.estimates.gang_limit(gang)
        start = self.handle.clock() if known is None else known
        end = None if duration is None or known is None else start + duration
        book = self.handle.reservations
        order = book.order_for(gang)
        blocking = [r for r in reservations if r.blocks(order, start, end, holder=book.order_now(r))]
        if not blocking:
            return Status.success()
        mask = np.zeros(snapshot.size, dtype=bool)
        for reservation in blocking:
            mask |= self._held(reservation, snapshot)[: snapshot.size]
        state.write(_BLOCKED, mask)
        return Status.success()

    def _held(self, reservation: Held, snapshot: Snapshot) -> Bools:
        """The slots `reservation` holds, made once per reservation while the nodes stay the same
        (a holder with spares may hold thousands of nodes, and every cycle behind it asks)."""
        generation = (snapshot.lineage, snapshot.static_generation)
        if generation != self._generation or len(self._masks) > _MASKS_KEPT:
            self._masks.clear()
            self._generation = generation
        kept = self._masks.get(reservation.gang)
        if kept is not None and kept[0] is reservation and kept[1].shape[0] >= snapshot.size:
            return kept[1]
        mask = np.zeros(snapshot.size, dtype=bool)
        slot_of = snapshot.slot_of
        mask[[slot_of[n] for n in reservation.held if n in slot_of]] = True
        self._masks[reservation.gang] = (reservation, mask)
        return mask

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        blocked = state.get(_BLOCKED, None)
        if blocked is None:
            return None
        return FilterResult.single_reason(~blocked[: snapshot.size], RESERVED)


def new(args: Mapping[str, Any], handle: Handle) -> Reservation:
    parse_args(NAME, NoArgs, args)
    return Reservation(handle)
