"""Gang-aware preemption: which running gangs a waiting gang may evict, and the fewest that make room.

Pure: the caller (`scheduler.evaluator.Evaluator`, the one caller) supplies the running gangs
(`Workload`, always whole: a gang is evicted entirely or not at all) and a `fits` test that says
whether the waiting gang would be placed were a set of them gone (a dry run on clones).

Who may be evicted (`candidates`):
- **Reclaim**: a tenant refused capacity it is guaranteed, because other tenants of its cohort
  borrow it, may evict gangs of those borrowing tenants (its TenantQuota's `reclaimWithinCohort`:
  `Any`, `LowerPriority`, or `Never`).
- **Priority within a tenant**: a gang may evict lower-priority gangs of its own tenant (the
  tenant's `withinTenant: LowerPriority`); gangs of no tenant likewise among themselves.
- Never a gang that is not `preemptible`, nor one that has run less than its tenant's
  `minRuntimeSeconds` (no thrash: a gang just placed is not evicted again at once).
They are tried cheapest first: a borrower's gang whose eviction would leave its tenant below its
own guarantee last (that tenant could then reclaim in turn: no ping-pong), then lowest priority,
then least work lost (GPUs × time running).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from aisched.framework.nomination import Workload
from aisched.quota import GPU_MILLI, QuotaLedger

__all__ = ["DEFAULT_MIN_RUNTIME", "Workload", "candidates", "choose_victims"]

#: Minimum runtime before a gang of no tenant may be preempted (TenantQuota's default).
DEFAULT_MIN_RUNTIME: Final = 300.0


def candidates(
    *,
    tenant: str | None,
    priority: int,
    reclaim: bool,
    workloads: Sequence[Workload],
    ledger: QuotaLedger,
    now: float,
) -> list[Workload]:
    """The running gangs a gang of `tenant` and `priority` may evict, cheapest first.

    `reclaim` is whether the tenant is refused what it is guaranteed (see the module docstring).
    """
    own = ledger.tenant(tenant) if tenant is not None else None
    allowed = []
    for workload in workloads:
        if not workload.preemptible:
            continue
        victim_tenant = ledger.tenant(workload.tenant) if workload.tenant is not None else None
        minimum = victim_tenant.min_runtime_seconds if victim_tenant is not None else DEFAULT_MIN_RUNTIME
        if now - workload.started < minimum:
            continue
        if workload.tenant == tenant:
            policy = own.within_tenant if own is not None else "LowerPriority"
            if policy == "LowerPriority" and workload.priority < priority:
                allowed.append(workload)
            continue
        if not reclaim or own is None or victim_tenant is None or victim_tenant.cohort != own.cohort:
            continue
        if own.cohort is None or not ledger.borrowed(victim_tenant.name):
            continue
        policy = own.reclaim_within_cohort
        if policy == "Any" or (policy == "LowerPriority" and workload.priority < priority):
            allowed.append(workload)
    return sorted(allowed, key=lambda w: (_overshoots(w, ledger), w.priority, w.lost_work(now), w.key))


def _overshoots(workload: Workload, ledger: QuotaLedger) -> bool:
    """Whether evicting a borrower's gang would drop its tenant below its own guarantee (it would
    then be entitled to reclaim in turn): such gangs are taken last."""
    if workload.tenant is None:
        return False
    found = ledger.tenant(workload.tenant)
    if found is None or GPU_MILLI not in found.guaranteed:
        return False
    used = ledger.used(workload.tenant).get(GPU_MILLI, 0)
    return used - workload.gpu_milli < found.guaranteed[GPU_MILLI]


def choose_victims(
    ordered: Sequence[Workload], fits: Callable[[Sequence[Workload]], bool]
) -> list[Workload] | None:
    """The fewest of `ordered` (cheapest first) whose eviction lets the gang fit, or None.

    Takes victims in order until the gang fits, then gives back, most costly first, every victim
    the gang fits without (kube-scheduler's "reprieve").
    """
    chosen: list[Workload] = []
    for workload in ordered:
        chosen.append(workload)
        if fits(chosen):
            break
    else:
        return None
    for workload in reversed(list(chosen)):
        trial = [w for w in chosen if w is not workload]
        if trial and fits(trial):
            chosen = trial
    return chosen
