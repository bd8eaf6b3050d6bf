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
from aisched.framework.reservations import RESERVATION_SCOPE, blocked_nodes, order_of
from aisched.framework.status import Status
from aisched.framework.types import Gang, PodInfo
from aisched.topology.snapshot import Snapshot

__all__ = ["NAME", "RESERVED", "Reservation", "new"]

NAME: Final = "Reservation"
RESERVED: Final = "node(s) were reserved for a gang ahead in the queue"
_BLOCKED = StateKey[Bools]("reservation-blocked")


class Reservation:
    name = NAME
    static = False

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

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
        names = blocked_nodes(reservations, order_of(gang), start, end)
        if not names:
            return Status.success()
        mask = np.zeros(snapshot.size, dtype=bool)
        mask[[snapshot.slot_of[n] for n in names if n in snapshot.slot_of]] = True
        state.write(_BLOCKED, mask)
        return Status.success()

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        blocked = state.get(_BLOCKED, None)
        if blocked is None:
            return None
        return FilterResult.single_reason(~blocked[: snapshot.size], RESERVED)


def new(args: Mapping[str, Any], handle: Handle) -> Reservation:
    parse_args(NAME, NoArgs, args)
    return Reservation(handle)
