"""The TenantQuota controller: reports each tenant's usage, borrowing and jobs in its status.

Runs for one leadership term next to the AIJob controller. It keeps no book of its own: usage is
the `QuotaLedger` the scheduling core keeps from its cache (every pod bound or assumed, charged
once), whose changes it listens to; job counts come from the AIJobs Kopf feeds into the job index.
A tenant whose usage or jobs changed gets its status rewritten from a work queue of tenant names
(`aisched.kube.workqueue`), at most once per `min_interval`, and only when something other than
`lastUpdateTime` would change; a write that fails is retried with backoff.

"Would change" is judged on the status as the API server keeps it: a field with no value (no
dominant resource while nothing is used) is left out rather than written as null, because a merge
patch's null deletes the key, so a null written is never read back and would look changed at every
look. Fields of the status this controller does not write (conditions) are left alone.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from aisched.api.objects import ObjectView, rfc3339
from aisched.controllers.index import JobIndex
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, KubeClient, resource_path
from aisched.kube.merge import merge_patch
from aisched.kube.retry import until_stopped
from aisched.kube.workqueue import WorkQueue
from aisched.observability.logging import get_logger
from aisched.observability.metrics import Metrics
from aisched.quota import GPU_MILLI, QuotaLedger
from aisched.topology import resources

__all__ = ["QuotaController", "quota_status", "status_patch"]

log = get_logger(__name__)

_ADMITTED: Final = frozenset({"Scheduling", "Running"})
_PENDING: Final = frozenset({"Pending", "Queued", "Restarting", "Preempted"})
_NOT_FOUND: Final = 404
_STAMP: Final = "lastUpdateTime"
#: The status fields `quota_status` writes; the others are someone else's.
_FIELDS: Final = frozenset(
    {
        "used",
        "borrowed",
        "usedGPUs",
        "guaranteedGPUs",
        "borrowedGPUs",
        "dominantShare",
        "dominantResource",
        "admittedJobs",
        "pendingJobs",
        _STAMP,
    }
)


def _quantity(resource: str, amount: int) -> str:
    """`amount` (quota units: GPUs in thousandths, CPU in milli) as a Kubernetes quantity."""
    if resource in (GPU_MILLI, resources.CPU):
        return str(amount // 1000) if amount % 1000 == 0 else f"{amount}m"
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount and amount % size == 0:
            return f"{amount // size}{suffix}"
    return str(amount)


def quota_status(
    ledger: QuotaLedger, tenant: str, jobs: Mapping[str, JsonObject], *, now: float
) -> JsonObject:
    """The status of TenantQuota `tenant`: usage, borrowing, dominant share and its jobs (a field
    without a value left out)."""
    found = ledger.tenant(tenant)
    used = ledger.used(tenant)
    borrowed = ledger.borrowed(tenant)
    share, dominant = ledger.share(tenant)
    statuses = [ObjectView(job).status for job in jobs.values()]
    phases = [status.get("phase", "Pending") for status in statuses if status.get("tenant") == tenant]
    wanted = sorted({*(found.resources() if found else ()), *used})
    status: JsonObject = {
        "used": {r: _quantity(r, used.get(r, 0)) for r in wanted},
        "borrowed": {r: _quantity(r, a) for r, a in sorted(borrowed.items())},
        "usedGPUs": used.get(GPU_MILLI, 0) / 1000,
        "guaranteedGPUs": (found.guaranteed.get(GPU_MILLI, 0) if found else 0) / 1000,
        "borrowedGPUs": borrowed.get(GPU_MILLI, 0) / 1000,
        "dominantShare": round(share, 4),
        "dominantResource": dominant,
        "admittedJobs": sum(p in _ADMITTED for p in phases),
        "pendingJobs": sum(p in _PENDING for p in phases),
        _STAMP: rfc3339(now),
    }
    return {key: value for key, value in status.items() if value is not None}


def status_patch(current: Mapping[str, Any], status: Mapping[str, Any]) -> JsonObject | None:
    """The merge patch that turns the `current` status into `status` (from `quota_status`), or
    None when nothing but `lastUpdateTime` would change."""
    patch = merge_patch(
        {k: v for k, v in current.items() if k in _FIELDS and k != _STAMP},
        {k: v for k, v in status.items() if k != _STAMP},
    )
    return {**patch, _STAMP: status[_STAMP]} if patch else None


class QuotaController:
    """See the module's docstring."""

    def __init__(
        self,
        client: KubeClient,
        index: JobIndex,
        ledger: QuotaLedger,
        *,
        clock: Callable[[], float],
        pods_synced: asyncio.Event,
        min_interval: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        """`clock` is wall-clock time (it stamps lastUpdateTime); `pods_synced` is set once the
        scheduler's informer has listed every pod (before that, usage is partial)."""
        self._client = client
        self._index = index
        self.ledger = ledger
        self._clock = clock
        self._pods_synced = pods_synced
        self._min_interval = min_interval
        self._metrics = metrics
        self._queue: WorkQueue[str] = WorkQueue(name="tenantquotas", expected=(ApiError, ApiUnavailable))
        self._written: dict[str, float] = {}  # tenant -> when its status was last written

    # -- what it is told ---------------------------------------------------------------------

    def quotas_changed(self) -> None:
        """The TenantQuotas changed (Kopf): every tenant's status is redone."""
        for tenant in self._index.tenants():
            self._queue.add(tenant.name)

    def usage_changed(self, tenant: str) -> None:
        """A ledger listener: what `tenant` uses changed."""
        self._queue.add(tenant)

    def job_changed(self, key: str) -> None:
        """An AIJob changed: its tenant's job counts may have."""
        tenant = ObjectView(self._index.jobs.get(key) or {}).status.get("tenant")
        if tenant:
            self._queue.add(tenant)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the statuses current until `stop` is set."""
        unsubscribe = self._index.subscribe(self.job_changed, self.quotas_changed)
        unlisten = self.ledger.subscribe(self.usage_changed)
        try:
            if await until_stopped(self._pods_synced.wait(), stop):
                self.quotas_changed()
                await self._queue.run(self._sync, stop)
        finally:
            unsubscribe()
            unlisten()

    async def _sync(self, tenant: str) -> None:
        now = self._clock()
        wait = self._written.get(tenant, -math.inf) + self._min_interval - now
        if wait > 0:  # at most one write per tenant per interval: what comes meanwhile waits for it
            self._queue.add_after(tenant, wait)
            return
        if self.ledger.tenant(tenant) is None:
            if self._metrics is not None:
                self._metrics.forget_tenant(tenant)
            return  # pods charged to a tenant with no TenantQuota: nothing to write to
        self._written[tenant] = now
        await self._write(tenant, now)  # raising, it is retried with backoff

    async def _write(self, tenant: str, now: float) -> None:
        status: dict[str, Any] = quota_status(self.ledger, tenant, self._index.jobs, now=now)
        if self._metrics is not None:
            self._metrics.set_tenant(
                tenant,
                used=status["usedGPUs"],
                guaranteed=status["guaranteedGPUs"],
                borrowed=status["borrowedGPUs"],
                pending=status["pendingJobs"],
            )
        patch = status_patch(ObjectView(self._index.quotas.get(tenant) or {}).status, status)
        if patch is None:
            return
        path = resource_path(group="aisched.io", version="v1alpha1", plural="tenantquotas", name=tenant)
        try:
            updated = await self._client.patch(f"{path}/status", {"status": patch})
        except ApiError as exc:
            if exc.status == _NOT_FOUND:
                return
            raise
        self._index.tenant_event("MODIFIED", updated)

    async def wait_idle(self) -> None:
        """Until every tenant marked so far has been dealt with (written, or found unchanged)."""
        await self._queue.wait_idle()
