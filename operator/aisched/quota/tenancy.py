"""Which tenant a job or pod belongs to: decided by its namespace, never by what it says of itself.

A tenant is a TenantQuota, and a TenantQuota owns the namespaces it lists. An object in a
namespace belongs to the tenant listing that namespace; an AIJob's `spec.tenant` (and so the
`aisched.io/tenant` annotation on a pod) may only choose among the tenants listing its namespace,
which matters only where two TenantQuotas list the same one (the first by name is the default).
Naming any other tenant is refused: a job cannot use, or be charged to, a quota its namespace was
not given.

A namespace that no TenantQuota lists follows the cluster's `UnlistedNamespaces` setting:

- `Allow`: its jobs run unlimited and charged to no one (a cluster with a single team);
- `Deny`: its jobs are refused until a TenantQuota lists the namespace;
- a tenant's name: its jobs belong to that tenant (refused while no such TenantQuota exists).

Pure: built from the tenants as last seen, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from aisched.quota.tenants import Tenant

__all__ = ["ALLOW", "DENY", "Tenancy", "TenantChoice", "check_unlisted"]

ALLOW: Final = "Allow"
DENY: Final = "Deny"
_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def check_unlisted(value: str) -> str:
    """`value` if it is a valid `UnlistedNamespaces` setting (`Allow`, `Deny` or a TenantQuota name)."""
    if value in (ALLOW, DENY) or _NAME.fullmatch(value):
        return value
    raise ValueError(f"must be Allow, Deny or the name of a TenantQuota, not {value!r}")


@dataclass(frozen=True)
class TenantChoice:
    """The tenant an object belongs to (None: charged to no one), or why it may not run."""

    tenant: str | None = None
    #: Why the object is refused, without the field's name (the caller knows which field it read).
    refused: str | None = None


class Tenancy:
    """The namespace → tenants map and the rule for unlisted namespaces; see the module's docstring."""

    def __init__(self, tenants: Iterable[Tenant] = (), *, unlisted: str = ALLOW) -> None:
        self.unlisted = check_unlisted(unlisted)
        self._names = frozenset(t.name for t in tenants)
        listing: dict[str, list[str]] = {}
        for tenant in sorted(tenants, key=lambda t: t.name):
            for namespace in sorted(tenant.namespaces):
                listing.setdefault(namespace, []).append(tenant.name)
        self._listing: Mapping[str, tuple[str, ...]] = {ns: tuple(names) for ns, names in listing.items()}

    def tenants_of(self, namespace: str) -> tuple[str, ...]:
        """The tenants whose TenantQuotas list `namespace`, by name."""
        return self._listing.get(namespace, ())

    def choose(self, named: str | None, namespace: str) -> TenantChoice:
        """The tenant of an object in `namespace` that names `named` (None: names none)."""
        listed = self.tenants_of(namespace)
        if listed:
            if not named or named in listed:
                return TenantChoice(named or listed[0])
            return TenantChoice(refused=self._foreign(named, namespace, listed))
        if self.unlisted == ALLOW:
            if named:
                return TenantChoice(refused=self._foreign(named, namespace, ()))
            return TenantChoice(None)
        if self.unlisted == DENY:
            return TenantChoice(
                refused=f"namespace {namespace} is listed by no TenantQuota, and this cluster runs no "
                "job outside one (setting AISCHED_TENANCY__UNLISTED_NAMESPACES=Deny)"
            )
        default = self.unlisted
        if default not in self._names:
            return TenantChoice(
                refused=f"namespace {namespace} is listed by no TenantQuota and its default tenant "
                f"{default} (setting AISCHED_TENANCY__UNLISTED_NAMESPACES) has no TenantQuota"
            )
        if named and named != default:
            return TenantChoice(refused=self._foreign(named, namespace, (default,)))
        return TenantChoice(default)

    def charged_to(self, named: str | None, namespace: str) -> str | None:
        """Whom a pod that runs anyway is charged to (bound by someone else, or before its tenant
        was refused): its choice when allowed, else its namespace's own tenant, else no one."""
        choice = self.choose(named, namespace)
        if choice.refused is None:
            return choice.tenant
        return self.choose(None, namespace).tenant

    def _foreign(self, named: str, namespace: str, allowed: tuple[str, ...]) -> str:
        why = f"TenantQuota {named} does not list it"
        if named not in self._names:
            why = f"no TenantQuota is named {named}"
        which = ", ".join(allowed) if allowed else "none"
        return f"{named!r} is not a tenant of namespace {namespace}: {why} (its tenants: {which})"
