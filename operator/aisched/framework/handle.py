"""`Handle`: what a plugin may reach of the scheduler it runs in (kube-scheduler's framework.Handle).

Every plugin is built as `new(args, handle)`: shared state comes through the handle, never through
a closure or a module global, so a plugin taken from the registry always works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aisched.cache import Cache
from aisched.framework.estimates import RuntimeEstimates
from aisched.framework.nomination import Nomination
from aisched.framework.profile import Profile
from aisched.framework.reservations import ReservationBook
from aisched.framework.types import Gang
from aisched.quota import QuotaLedger
from aisched.topology.snapshot import Snapshot

__all__ = ["Clock", "Handle", "PreemptionEvaluator"]

Clock = Callable[[], float]


class PreemptionEvaluator(Protocol):
    """Finds whole gangs to evict so that a gang fits (`aisched.scheduler.evaluator.Evaluator`)."""

    def nominate(self, gang: Gang, *, max_candidates: int) -> Nomination | None:
        """The fewest cheapest victims whose eviction lets `gang` be placed, and that placement."""


class Handle(Protocol):
    """The scheduler's shared state, read by plugins; changed only by the scheduling cycle."""

    @property
    def profile(self) -> Profile:
        """The profile the plugin runs in."""

    @property
    def clock(self) -> Clock:
        """The scheduler's clock (wall seconds in the operator, virtual in the simulator)."""

    @property
    def cache(self) -> Cache:
        """The long-lived cluster state: nodes, and the pods bound or assumed on them (read only)."""

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot of the current (or last) cycle (read only)."""

    @property
    def ledger(self) -> QuotaLedger:
        """The tenants' quotas and usage, kept by the cache (read only)."""

    @property
    def preemption(self) -> PreemptionEvaluator:
        """Dry runs of the scheduling cycle without chosen running gangs, on clones."""

    @property
    def reservations(self) -> ReservationBook:
        """Nodes held for gangs at the head of their queues (read only)."""

    @property
    def estimates(self) -> RuntimeEstimates:
        """How long pods and gangs are expected to run."""
