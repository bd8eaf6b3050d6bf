"""`JobIndex`: the AIJobs and TenantQuotas as Kopf delivers them, and the tenants of each namespace.

Kopf's `on.event` handlers feed it on every replica, so it lives as long as the process: a replica
that is not leading still knows every job, and the one that starts leading reads from it at once.
It only records (an older copy than the one held is dropped) and tells its subscribers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pydantic

from aisched.api.objects import ObjectView, PodView, object_key
from aisched.api.tenantquota import TenantQuotaSpec
from aisched.kube.client import JsonObject
from aisched.observability.logging import get_logger
from aisched.quota import Tenant
from aisched.quota.tenancy import ALLOW, Tenancy, TenantChoice

__all__ = ["JobIndex", "owning_job"]

log = get_logger(__name__)


def _key(obj: Mapping[str, Any]) -> str:
    return ObjectView(obj).key


def _newer_or_same(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether `new` is not older than `old` by resourceVersion (numeric where both are)."""
    if old is None:
        return True
    a, b = ObjectView(new).revision, ObjectView(old).revision
    return a is None or b is None or a >= b


def owning_job(pod: Mapping[str, Any]) -> str | None:
    """The key (`namespace/name`) of the AIJob that owns `pod`, if one does."""
    view = PodView(pod)
    ref = view.aijob_reference()
    return None if ref is None else object_key(view.namespace, str(ref.get("name")))


class JobIndex:
    """The AIJobs and the namespace → tenant map, as last seen; fed by Kopf's event handlers."""

    def __init__(self, *, unlisted: str = ALLOW) -> None:
        """`unlisted` is the rule for namespaces no TenantQuota lists (`aisched.quota.tenancy`)."""
        self.jobs: dict[str, JsonObject] = {}
        self.quotas: dict[str, JsonObject] = {}  # TenantQuota name -> object
        self.tenancy = Tenancy(unlisted=unlisted)
        self._listeners: list[Callable[[str], None]] = []
        self._quota_listeners: list[Callable[[], None]] = []

    def subscribe(self, on_job: Callable[[str], None], on_quota: Callable[[], None]) -> Callable[[], None]:
        """Call `on_job(key)` on every job change and `on_quota()` on every quota change; returns the
        function that ends the subscription."""
        self._listeners.append(on_job)
        self._quota_listeners.append(on_quota)

        def unsubscribe() -> None:
            self._listeners.remove(on_job)
            self._quota_listeners.remove(on_quota)

        return unsubscribe

    def job_event(self, kind: str | None, obj: JsonObject) -> None:
        """An AIJob was listed, added, changed (`kind` None, ADDED, MODIFIED) or deleted (DELETED)."""
        key = _key(obj)
        if kind == "DELETED":
            self.jobs.pop(key, None)
        elif _newer_or_same(obj, self.jobs.get(key)):
            self.jobs[key] = obj
        else:
            return  # an older copy than one we already hold (e.g. our own status write's answer)
        for listener in list(self._listeners):
            listener(key)

    def replace_jobs(self, objs: Iterable[JsonObject]) -> set[str]:
        """The full list of AIJobs (a fresh LIST); returns the keys that were dropped."""
        listed = {_key(o): o for o in objs}
        dropped = self.jobs.keys() - listed.keys()
        for key, obj in listed.items():
            if _newer_or_same(obj, self.jobs.get(key)):
                self.jobs[key] = obj
        for key in dropped:
            del self.jobs[key]
            for listener in list(self._listeners):
                listener(key)
        return dropped

    def tenant_event(self, kind: str | None, obj: JsonObject) -> None:
        """A TenantQuota was listed, added, changed or deleted. Only a new spec (or a quota come or
        gone) is told on: the status writes the TenantQuota controller makes as usage moves would
        otherwise re-file every queued gang and redo every job and tenant, after every binding."""
        name = ObjectView(obj).name
        old = self.quotas.get(name)
        if kind == "DELETED":
            self.quotas.pop(name, None)
        else:
            if not _newer_or_same(obj, old):
                return  # an older copy than one we hold (Kopf's news of a write we made since)
            self.quotas[name] = obj
            if old is not None and ObjectView(old).spec == ObjectView(obj).spec:
                return  # its status only
        self._quotas_changed()

    def replace_quotas(self, objs: Iterable[JsonObject]) -> None:
        """The full list of TenantQuotas (a fresh LIST), told on as one change."""
        listed = {ObjectView(o).name: o for o in objs}
        for name in list(self.quotas):
            if name not in listed:
                del self.quotas[name]
        for name, obj in listed.items():
            if _newer_or_same(obj, self.quotas.get(name)):
                self.quotas[name] = obj
        self._quotas_changed()

    def _quotas_changed(self) -> None:
        self.tenancy = Tenancy(self.tenants(), unlisted=self.tenancy.unlisted)
        for listener in list(self._quota_listeners):
            listener()
        for key in list(self.jobs):  # their status names the tenant, their admission may change
            for on_job in list(self._listeners):
                on_job(key)

    def tenant_of(self, named: str | None, namespace: str) -> TenantChoice:
        """The tenant of a job in `namespace` whose `spec.tenant` is `named`, or why it has none."""
        return self.tenancy.choose(named, namespace)

    def tenants(self) -> list[Tenant]:
        """Every TenantQuota as quota arithmetic sees it; one whose spec does not parse is left out
        (and logged), never allowed to stop the others."""
        out = []
        for name, obj in sorted(self.quotas.items()):
            try:
                spec = TenantQuotaSpec.model_validate(ObjectView(obj).spec)
            except pydantic.ValidationError as exc:
                log.warning("tenantquota_invalid", tenantquota=name, error=" ".join(str(exc).split()))
                continue
            out.append(Tenant.from_spec(name, spec))
        return out
