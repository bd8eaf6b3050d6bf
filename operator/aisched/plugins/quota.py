"""Quota: a gang is admitted only while its tenant stays within its TenantQuota (PreFilter).

Within `guaranteed` always (unless others borrow it: then preemption may reclaim it), beyond it
only by borrowing what the other tenants of its cohort leave idle, never beyond `max`; see
`aisched.quota.ledger`. The plugin reads a `QuotaLedger` the operator keeps current (bound pods,
and placements assumed but not yet bound); without one, every gang is admitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.cycle_state import CycleState
from aisched.framework.status import Status
from aisched.framework.types import Gang
from aisched.quota import QuotaLedger, gang_usage
from aisched.topology.snapshot import Snapshot

__all__ = ["NAME", "Quota", "new"]

NAME: Final = "Quota"


class Quota:
    name = NAME

    def __init__(self, ledger: QuotaLedger | None = None) -> None:
        self.ledger = ledger if ledger is not None else QuotaLedger()

    def pre_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot) -> Status:
        if not gang.members:
            return Status.success()
        tenant = self.ledger.gang_tenant(gang)
        if tenant is None:
            return Status.success()
        request = gang_usage(gang.members)
        admission = self.ledger.admit(tenant, request)
        if admission.admitted:
            return Status.success()
        return Status.unschedulable(f"waiting for quota: {admission.reason}", plugin=NAME)


def new(args: Mapping[str, Any]) -> Quota:
    return Quota()
