"""FairShare (QueueSort): priority first, then the tenant furthest below its fair share, then
submission order (creation time, then sequence; never the name).

A tenant's place is its weighted dominant-resource share (DRF: its largest used / capacity, over
its TenantQuota weight), lowest first, so a tenant using little goes before one using much.
Shares move with every placement; `order_version` tells the queue when, so it re-sorts waiting
gangs instead of keeping an order computed from stale shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.handle import Handle
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.types import Gang
from aisched.quota import QuotaLedger

__all__ = ["NAME", "FairShare", "new"]

NAME: Final = "FairShare"


class FairShare:
    name = NAME

    def __init__(self, ledger: QuotaLedger) -> None:
        self.ledger = ledger
        # Shares computed since the ledger last changed: a sort compares the same few tenants
        # thousands of times.
        self._shares: dict[str | None, float] = {}
        self._generation = -1

    def less(self, a: Gang, b: Gang) -> bool:
        return self._key(a) < self._key(b)

    def order_version(self) -> int:
        """Changes whenever a share may have: orderings computed before are stale."""
        return self.ledger.generation

    def _key(self, gang: Gang) -> tuple[int, float, tuple[float, int, str]]:
        return (
            -gang.priority,
            self._share(self.ledger.charged_to(gang.tenant, gang.namespace)),
            gang.submitted,
        )

    def _share(self, tenant: str | None) -> float:
        if self._generation != self.ledger.generation:
            self._shares.clear()
            self._generation = self.ledger.generation
        found = self._shares.get(tenant)
        if found is None:
            found = self._shares[tenant] = self.ledger.weighted_share(tenant)
        return found


def new(args: Mapping[str, Any], handle: Handle) -> FairShare:
    parse_args(NAME, NoArgs, args)
    return FairShare(handle.ledger)
