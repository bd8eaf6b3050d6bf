"""How a queue orders its gangs and what its head may hold: `QueueingPolicy`, and `QueueResolver`,
which says which queue a gang waits in.

A queue is a tenant (the TenantQuota the gang is charged to), or, for a namespace no TenantQuota
lists, that namespace. The cluster's default policy (operator settings) fills what a
TenantQuota's `spec.queueing` leaves unset.

- `StrictFIFO`: only the first gang of the queue is tried; it blocks every later one.
- `BestEffortFIFO`: every gang is tried in order, but a later one may start only where it does
  not delay the first (the scheduler holds the first's nodes when `reservation`).
Within a queue the order is the queue priority, then submission order. The queue priority is the
gang's priority raised by aging: `step` for every `interval` seconds waited, at most `max_boost`,
and never into the next band of `band_width` (a gang at 0 rises at most to band_width - 1), so a
batch job never ages past a production one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from aisched.api.tenantquota import QueueingSpec, QueueingStrategy
from aisched.framework.types import Gang
from aisched.quota import QuotaLedger

__all__ = ["CONSERVATIVE_DEPTH", "QueueResolver", "QueueingPolicy", "Strategy"]

Strategy = QueueingStrategy
#: With an estimated run time for each of them, the first this many gangs of a queue hold
#: reservations (conservative backfill); otherwise its head alone does (EASY backfill).
CONSERVATIVE_DEPTH: Final = 16


@dataclass(frozen=True, slots=True)
class QueueingPolicy:
    strategy: Strategy = "BestEffortFIFO"
    reservation: bool = True
    aging_interval: float = 60.0
    aging_step: int = 1
    aging_max_boost: int = 100
    band_width: int = 1000

    @property
    def strict(self) -> bool:
        return self.strategy == "StrictFIFO"

    def with_spec(self, spec: QueueingSpec) -> QueueingPolicy:
        """This policy with what a TenantQuota's `spec.queueing` sets."""
        aging = spec.aging
        return replace(
            self,
            strategy=spec.strategy or self.strategy,
            reservation=self.reservation if spec.reservation is None else spec.reservation,
            aging_interval=self.aging_interval if aging.interval_seconds is None else aging.interval_seconds,
            aging_step=aging.step or self.aging_step,
            aging_max_boost=self.aging_max_boost if aging.max_boost is None else aging.max_boost,
            band_width=aging.band_width or self.band_width,
        )

    def queue_priority(self, priority: int, waited: float) -> int:
        """`priority` aged by `waited` seconds."""
        if self.aging_interval <= 0 or waited < self.aging_interval or self.aging_max_boost <= 0:
            return priority
        boost = min(self.aging_max_boost, int(waited // self.aging_interval) * self.aging_step)
        ceiling = (priority // self.band_width + 1) * self.band_width - 1
        return max(priority, min(priority + boost, ceiling))


class QueueResolver:
    """Which queue a gang waits in, and that queue's policy: its tenant's (the ledger decides who is
    charged), else its namespace's with the cluster default."""

    def __init__(self, ledger: QuotaLedger, default: QueueingPolicy | None = None) -> None:
        self.ledger = ledger
        self.default = default if default is not None else QueueingPolicy()
        self._policies: dict[str, QueueingPolicy] = {}
        self._tenants: object = None

    def __call__(self, gang: Gang) -> tuple[str, QueueingPolicy]:
        tenant = self.ledger.charged_to(gang.tenant, gang.namespace)
        if tenant is None:
            return f"namespace/{gang.namespace}", self.default
        return f"tenant/{tenant}", self.policy_of(tenant)

    def policy_of(self, name: str) -> QueueingPolicy:
        """Tenant `name`'s queue policy: its TenantQuota's `spec.queueing` over the default."""
        tenants = self.ledger.tenants_version
        if tenants != self._tenants:
            self._policies.clear()
            self._tenants = tenants
        found = self._policies.get(name)
        if found is None:
            tenant = self.ledger.tenant(name)
            found = self.default if tenant is None else self.default.with_spec(tenant.queueing)
            self._policies[name] = found
        return found


QueueOf = Callable[[Gang], tuple[str, QueueingPolicy]]
