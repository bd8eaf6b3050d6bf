"""Quota: a gang is admitted only while its tenant stays within its TenantQuota (PreFilter).

A gang whose pods may not run under the tenant they name, or whose namespace may not run jobs at
all, is refused (`aisched.quota.tenancy`): no cluster event makes it placeable, only a new
TenantQuota, so it is unresolvable and never a reason to preempt.

Within `guaranteed` always (unless others borrow it: then preemption may reclaim it), beyond it
only by a gang that may be preempted (`preemptible: false` would keep what it borrowed for good),
and only by borrowing what the other tenants of its cohort leave idle, never beyond `max`; see
`aisched.quota.ledger`. The ledger is the cycle's (`CycleState.quota`: a what-if copy in a
preemption dry run), else the handle's, which the cache keeps current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.api import keys
from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.status import Status
from aisched.framework.types import Gang
from aisched.quota import gang_usage
from aisched.quota.tenants import display
from aisched.topology.snapshot import Snapshot

__all__ = ["NAME", "Quota", "new"]

NAME: Final = "Quota"


class Quota:
    name = NAME

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return frozenset({ClusterEvent.QUOTA_CHANGED, ClusterEvent.POD_DELETED, ClusterEvent.POD_TERMINATED})

    def pre_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot) -> Status:
        ledger = state.quota if state.quota is not None else self._handle.ledger
        if not gang.members or (ledger.unlimited and gang.tenant is None):
            return Status.success()
        named = {m.tenant for m in gang.members if m.tenant}
        if len(named) > 1:
            return Status.unresolvable(
                f"annotation {keys.ANNOTATION_TENANT}: the gang's pods name different tenants "
                f"({', '.join(sorted(named))})",
                plugin=NAME,
            )
        choice = ledger.tenancy.choose(gang.tenant, gang.namespace)
        if choice.refused is not None:
            field = f"annotation {keys.ANNOTATION_TENANT}: " if gang.tenant else ""
            return Status.unresolvable(f"{field}{choice.refused}", plugin=NAME)
        tenant = choice.tenant
        if tenant is None:
            return Status.success()
        admission = ledger.admit(tenant, gang_usage(gang.members))
        if not admission.admitted:
            return Status.unschedulable(f"waiting for quota: {admission.reason}", plugin=NAME)
        if admission.borrowing and not all(m.preemptible for m in gang.members):
            borrowed = ", ".join(display(r, a) for r, a in sorted(admission.borrowing.items()))
            return Status.unschedulable(
                f"waiting for quota: tenant {tenant} would borrow {borrowed} beyond its guarantee, and a "
                "gang that may not be preempted never borrows (its lenders could not take it back)",
                plugin=NAME,
            )
        return Status.success()


def new(args: Mapping[str, Any], handle: Handle) -> Quota:
    parse_args(NAME, NoArgs, args)
    return Quota(handle)
