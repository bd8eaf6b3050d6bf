"""`QuotaLedger`: every tenant's usage, the admission check, and weighted dominant shares.

Admission follows the cohort model Kueue uses: a cohort pools its tenants' guarantees, and
nothing is admitted beyond that pool (its guarantees less everything its tenants use). Within the
pool a tenant may use its `guaranteed` amount, and more by borrowing what the others leave idle,
never beyond its `max`. What is lent stays the lender's: a tenant refused what it is guaranteed
because others borrow it gets `reclaim=True`, and preemption takes it back.

Shares are DRF's: a tenant's share of a resource is its usage over the cluster's capacity; its
dominant share is the largest of those; fair ordering compares dominant share / weight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aisched.cache import PodUsage
from aisched.quota.tenancy import ALLOW, Tenancy
from aisched.quota.tenants import Tenant, display, quota_usage

__all__ = ["Admission", "QuotaLedger"]


@dataclass(frozen=True)
class Admission:
    """The answer to "may this tenant take this much more?": `reason` says why not."""

    admitted: bool
    reason: str = ""
    #: Resources the request would take beyond the tenant's guarantee (borrowed from its cohort).
    borrowing: Mapping[str, int] | None = None
    #: Refused only because others borrow what the tenant is guaranteed: preemption may reclaim it.
    reclaim: bool = False


class QuotaLedger:
    """Tenants, cluster capacity and what each pod charges to which tenant.

    Fed by the cache (`pod_changed` is a cache listener): a pod is charged while the cache
    accounts it, bound or assumed, so the ledger never drifts from what the snapshot shows.
    """

    def __init__(
        self,
        tenants: Iterable[Tenant] = (),
        *,
        capacity: Mapping[str, int] | None = None,
        unlisted: str = ALLOW,
    ) -> None:
        """`unlisted` is the rule for namespaces no TenantQuota lists (`aisched.quota.tenancy`)."""
        self._tenants: dict[str, Tenant] = {}
        self.tenancy = Tenancy(unlisted=unlisted)
        self._used: dict[str, dict[str, int]] = {}
        self._charges: dict[str, tuple[str, dict[str, int]]] = {}  # pod key -> (tenant, usage)
        self.capacity: dict[str, int] = dict(capacity or {})
        #: Counts every change that can move a tenant's share (for orderings that cache them).
        self.generation = 0
        #: Counts every `set_tenants` (for what caches a tenant's spec).
        self.tenants_version = 0
        self._listeners: list[Callable[[str], None]] = []
        self.set_tenants(tenants)

    def subscribe(self, on_tenant: Callable[[str], None]) -> Callable[[], None]:
        """Call `on_tenant(name)` whenever a tenant's usage changes; returns the unsubscribe."""
        self._listeners.append(on_tenant)
        return lambda: self._listeners.remove(on_tenant)

    def pod_changed(self, old: PodUsage | None, new: PodUsage | None) -> None:
        """A cache listener: charge what a pod holds now, release what it held before."""
        if old is not None and new is None:
            self.release(old.key)
            return
        if new is None or (self.unlimited and not self._charges):
            return  # no quotas in play: nothing to charge (the common case without tenants)
        tenant = self.charged_to(new.tenant, new.namespace)
        if tenant is None:
            self.release(new.key)
            return
        usage = quota_usage(new)
        if self._charges.get(new.key) != (tenant, usage):
            self.charge(new.key, tenant, usage)

    def without(self, pod_keys: Iterable[str]) -> QuotaLedger:
        """A what-if copy: usage as if pods `pod_keys` held nothing. It answers `admit`, `used`,
        `borrowed` and shares; it records no charges (its `charge_of` knows none)."""
        view = QuotaLedger(capacity=self.capacity)
        view._tenants, view.tenancy = self._tenants, self.tenancy
        view._used = {tenant: dict(used) for tenant, used in self._used.items()}
        for key in pod_keys:
            found = self._charges.get(key)
            if found is not None:
                used = view._used[found[0]]
                for resource, amount in found[1].items():
                    used[resource] = used.get(resource, 0) - amount
        return view

    # -- what it is told ---------------------------------------------------------------------

    def set_tenants(self, tenants: Iterable[Tenant]) -> None:
        """Replace the tenants (all TenantQuotas as last seen). Charges of a tenant that is gone
        stay recorded under its name, and count again if it comes back."""
        self._tenants = {t.name: t for t in tenants}
        self.generation += 1
        self.tenants_version += 1
        self.tenancy = Tenancy(self._tenants.values(), unlisted=self.tenancy.unlisted)

    def set_capacity(self, capacity: Mapping[str, int]) -> None:
        """The cluster's allocatable totals, for dominant shares."""
        if capacity != self.capacity:
            self.capacity = dict(capacity)
            self.generation += 1

    def charge(self, pod_key: str, tenant: str, usage: Mapping[str, int]) -> None:
        """Pod `pod_key` (bound or assumed) uses `usage` of `tenant`'s quota; replaces an earlier charge."""
        self.release(pod_key)
        self.generation += 1
        self._charges[pod_key] = (tenant, dict(usage))
        used = self._used.setdefault(tenant, {})
        for resource, amount in usage.items():
            used[resource] = used.get(resource, 0) + amount
        for listener in self._listeners:
            listener(tenant)

    def release(self, pod_key: str) -> None:
        """Pod `pod_key` no longer holds anything (deleted, finished, or its binding undone)."""
        found = self._charges.pop(pod_key, None)
        if found is None:
            return
        tenant, usage = found
        self.generation += 1
        used = self._used[tenant]
        for resource, amount in usage.items():
            used[resource] -= amount
            if not used[resource]:
                del used[resource]
        for listener in self._listeners:
            listener(tenant)

    # -- what it answers -----------------------------------------------------------------------

    def charge_of(self, pod_key: str) -> tuple[str, dict[str, int]] | None:
        """The tenant and usage pod `pod_key` is charged with, if it is."""
        found = self._charges.get(pod_key)
        return None if found is None else (found[0], dict(found[1]))

    @property
    def unlimited(self) -> bool:
        """Whether nothing is limited: no TenantQuota, and namespaces no one lists are allowed."""
        return not self._tenants and self.tenancy.unlisted == ALLOW

    def tenant(self, name: str) -> Tenant | None:
        return self._tenants.get(name)

    def tenants(self) -> list[Tenant]:
        return sorted(self._tenants.values(), key=lambda t: t.name)

    def charged_to(self, named: str | None, namespace: str) -> str | None:
        """The tenant a pod in `namespace` naming `named` (`aisched.io/tenant`) is charged to: its
        namespace decides (`Tenancy.charged_to`); a name it may not use is never honoured."""
        return self.tenancy.charged_to(named, namespace)

    def used(self, tenant: str) -> dict[str, int]:
        return dict(self._used.get(tenant, {}))

    def borrowed(self, tenant: str) -> dict[str, int]:
        """What `tenant` uses beyond its guarantee, per resource it has a quota for."""
        found = self._tenants.get(tenant)
        if found is None:
            return {}
        used = self._used.get(tenant, {})
        out = {}
        for resource in found.resources():
            over = used.get(resource, 0) - found.guaranteed.get(resource, 0)
            if over > 0:
                out[resource] = over
        return out

    def cohort(self, name: str | None) -> list[Tenant]:
        return [] if name is None else [t for t in self.tenants() if t.cohort == name]

    def admit(self, tenant: str, request: Mapping[str, int]) -> Admission:
        """Whether `tenant` may take `request` more now (see the module's docstring)."""
        found = self._tenants.get(tenant)
        if found is None:
            return Admission(True)
        used = self._used.get(tenant, {})
        borrowing = {}
        for resource, amount in sorted(request.items()):
            if amount <= 0 or resource not in found.resources():
                continue
            after = used.get(resource, 0) + amount
            limit = found.limit(resource)
            if limit is not None and after > limit:
                label = "max" if found.cohort is not None and resource in found.maximum else "quota"
                return Admission(
                    False,
                    f"tenant {tenant} would use {display(resource, after)}, over its {label} of "
                    f"{display(resource, limit)} (in use: {display(resource, used.get(resource, 0))})",
                )
            guaranteed = found.guaranteed.get(resource)
            if guaranteed is None or found.cohort is None:
                continue
            free = self._pool_free(found.cohort, resource)
            if amount > free:
                if after <= guaranteed:
                    lent = amount - max(free, 0)
                    return Admission(
                        False,
                        f"tenant {tenant} is within its guaranteed {display(resource, guaranteed)}, but "
                        f"{display(resource, lent)} of it is lent to other tenants of cohort {found.cohort}",
                        reclaim=True,
                    )
                need = after - max(guaranteed, used.get(resource, 0))
                return Admission(
                    False,
                    f"tenant {tenant} needs to borrow {display(resource, need)} beyond its guaranteed "
                    f"{display(resource, guaranteed)}; cohort {found.cohort} has "
                    f"{display(resource, max(free - max(guaranteed - used.get(resource, 0), 0), 0))} unused",
                )
            if after > guaranteed:
                borrowing[resource] = after - guaranteed
        return Admission(True, borrowing=borrowing or None)

    def borrowable(self, tenant: str, resource: str) -> int:
        """What `tenant` could borrow of `resource` now: its cohort's unused pooled guarantees
        beyond what is left of its own guarantee (0 for a tenant in no cohort)."""
        found = self._tenants.get(tenant)
        if found is None or found.cohort is None:
            return 0
        used = self._used.get(tenant, {}).get(resource, 0)
        own_left = max(found.guaranteed.get(resource, 0) - used, 0)
        return max(self._pool_free(found.cohort, resource) - own_left, 0)

    def _pool_free(self, cohort: str, resource: str) -> int:
        """The cohort's pooled guarantees of `resource` less everything its tenants use."""
        members = self.cohort(cohort)
        pool = sum(t.guaranteed.get(resource, 0) for t in members)
        return pool - sum(self._used.get(t.name, {}).get(resource, 0) for t in members)

    def share(self, tenant: str) -> tuple[float, str | None]:
        """`tenant`'s dominant share (largest used / capacity) and the resource it is of."""
        best, which = 0.0, None
        for resource, amount in self._used.get(tenant, {}).items():
            total = self.capacity.get(resource, 0)
            if total > 0 and amount / total > best:
                best, which = amount / total, resource
        return best, which

    def weighted_share(self, tenant: str | None) -> float:
        """Dominant share / weight: who is furthest below its fair share goes first."""
        if tenant is None:
            return 0.0
        found = self._tenants.get(tenant)
        share, _ = self.share(tenant)
        return share / (found.weight if found is not None else 1.0)
