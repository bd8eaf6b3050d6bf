"""Admission: an AIJob's pods are made only once its tenant's quota can hold the whole job.

As Kueue holds a Job suspended until its workload is admitted, the AIJob controller creates no pod
of a job before `Admissions.check` admits it. What a job asks (`demand`) is worked out from its
spec — one pod per role, times the role's count — so a job of 10,000 pods costs what a job of one
does until it is admitted. The answers:

- **ExceedsQuota** / **ExceedsCluster** (standing): the job asks more than its tenant may ever use
  (the tenant's limit, `Tenant.limit`), or more GPUs than the cluster has of the models it allows,
  or one pod more GPUs than any such node holds. No pod is made; the job says so at once, and is
  looked at again when the TenantQuotas or the nodes change.
- **Waiting** (for now): what the tenant's admitted jobs ask, with this one, would pass the
  tenant's limit; or, under StrictFIFO, a job of the tenant submitted earlier still waits.
- **Admitted**: the job's demand is added to its tenant's admitted total, and stays there until
  the job finishes or is deleted (`release`), when the jobs waiting behind it are looked at again.
  A job that would pass the limit is admitted all the same when the tenant's admitted jobs of
  lower priority that may be preempted (and a TenantQuota whose `preemption.withinTenant` is
  `LowerPriority`) hold enough: the scheduler then preempts them to place it, as it would have
  before admission existed, and they wait again.

Admission is of one job (its uid: a job made again under the same name is asked afresh) and one
spec (`metadata.generation`): an edited spec is asked about again before any pod is made for it,
the old one counted until then, and the spec admitted is written to `status.admittedGeneration`,
from which the next term (a restart, a new leader) rebuilds the book before it admits anything.
Nothing is decided by the pods a job has: a pod naming the job as its owner admits nothing.

The admitted total is a reservation, not usage: the scheduler's Quota plugin still charges what
pods actually hold, and decides borrowing within a cohort when it places them. Plain pods (no
AIJob) are not admitted here; they wait for quota in the scheduler's queue, as before.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal

from aisched.quota import GPU_MILLI, Tenant
from aisched.quota.tenants import display

__all__ = ["Admissions", "Ask", "ClusterGpus", "Demand", "QuotaFigures", "Verdict"]

#: The quota strategy under which an earlier job blocks the later ones of its tenant.
_STRICT: Final = "StrictFIFO"
_MILLI: Final = 1000

Outcome = Literal["Admitted", "ExceedsQuota", "ExceedsCluster", "Waiting"]


@dataclass(frozen=True)
class Demand:
    """What a job asks: its total in quota units (GPUs in milli-GPUs), and its largest pod's whole
    GPUs and allowed GPU models (None: any)."""

    total: Mapping[str, int]
    pod_gpus: int = 0
    models: frozenset[str] | None = None
    #: The job's priority, and whether it may be preempted (its spec's).
    priority: int = 0
    preemptible: bool = True


@dataclass(frozen=True)
class ClusterGpus:
    """The GPUs of the nodes a job may use: all of them, and the most any one node has."""

    total: int
    largest_node: int


@dataclass(frozen=True)
class QuotaFigures:
    """A job refused admission against its tenant's GPU quota: what it asks, what the tenant's
    admitted jobs ask, and the tenant's guarantee and limit (all in GPUs)."""

    tenant: str | None
    asked: float
    admitted: float = 0.0
    guaranteed: float | None = None
    maximum: float | None = None
    cohort: str | None = None


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str = ""
    #: The figures behind a refusal (None for an admission).
    quota: QuotaFigures | None = None

    @property
    def admitted(self) -> bool:
        return self.outcome == "Admitted"

    @property
    def reason(self) -> str:
        """The reason of the job's `Admitted` condition."""
        return (
            "QuotaReserved"
            if self.admitted
            else "WaitingForQuota"
            if self.outcome == "Waiting"
            else self.outcome
        )

    @property
    def standing(self) -> bool:
        """Whether only a new TenantQuota or new nodes can change the answer."""
        return self.outcome in ("ExceedsQuota", "ExceedsCluster")


#: A job's place in its tenant's order: (creation time, queue sequence, key).
Order = tuple[float, int, str]


@dataclass(frozen=True)
class Ask:
    """One job asking to be admitted: which object it is (a job deleted and made again under the
    same name is another), which spec (`metadata.generation`: an edited spec is asked about again),
    its tenant, its place in its tenant's order, and what it asks (worked out only when needed)."""

    key: str
    uid: str
    generation: int
    tenant: str | None
    order: Order
    demand: Callable[[], Demand]


@dataclass(frozen=True)
class _Admitted:
    uid: str
    generation: int
    tenant: str | None
    demand: Demand


class _Line:
    """A tenant's jobs waiting for quota, by their order; the first found from a heap whose entries
    left by jobs gone (or moved) are dropped when they come to the top."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self._heap: list[tuple[Order, str]] = []

    def add(self, key: str, order: Order) -> None:
        if self.orders.get(key) != order:
            self.orders[key] = order
            heapq.heappush(self._heap, (order, key))

    def first(self) -> str | None:
        heap = self._heap
        while heap and self.orders.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][1] if heap else None

    def in_order(self) -> list[str]:
        return sorted(self.orders, key=self.orders.__getitem__)


class Admissions:
    """The jobs admitted, per tenant, and the jobs waiting for quota; see the module's docstring.

    Whatever frees quota or moves a line (a release, a job leaving the line, an admission under
    StrictFIFO) names the jobs to look at again in `marks`, which the controller drains."""

    def __init__(
        self,
        tenant: Callable[[str], Tenant | None],
        *,
        cluster: Callable[[frozenset[str] | None], ClusterGpus | None] = lambda models: None,
        strategy: Callable[[str], str] = lambda tenant: "BestEffortFIFO",
    ) -> None:
        """`tenant` finds a TenantQuota by name; `cluster` says what GPUs the nodes of the given
        models have (None until the nodes are known); `strategy` is a tenant's queueing strategy."""
        self._tenant = tenant
        self._cluster = cluster
        self._strategy = strategy
        self._admitted: dict[str, _Admitted] = {}
        self._of_tenant: dict[str, set[str]] = {}  # tenant -> its admitted jobs
        self._committed: dict[str, dict[str, int]] = {}  # tenant -> sum of its admitted demands
        self._lines: dict[str, _Line] = {}  # tenant -> its jobs waiting for quota
        self._line_of: dict[str, str] = {}  # waiting job -> its tenant
        #: Jobs to look at again (drained by the controller).
        self.marks: list[str] = []

    def is_admitted(self, key: str) -> bool:
        return key in self._admitted

    def committed(self, tenant: str) -> dict[str, int]:
        return dict(self._committed.get(tenant, {}))

    def check(self, ask: Ask) -> Verdict:
        """Admit `ask`, or say why not, with the figures (see the module's docstring). A job
        admitted already is asked about again only for a new spec; until the new one is admitted,
        the old one stays counted (its pods run as they were)."""
        verdict = self._check(ask)
        if verdict.admitted:
            return verdict
        return replace(verdict, quota=self.figures(ask.tenant, ask.demand()))

    def figures(self, tenant: str | None, demand: Demand) -> QuotaFigures:
        """`demand` against `tenant`'s GPU quota and what its admitted jobs ask."""
        asked = demand.total.get(GPU_MILLI, 0) / _MILLI
        found = self._tenant(tenant) if tenant is not None else None
        if tenant is None or found is None:
            return QuotaFigures(tenant=tenant, asked=asked)
        guaranteed, limit = found.guaranteed.get(GPU_MILLI), found.limit(GPU_MILLI)
        return QuotaFigures(
            tenant=tenant,
            asked=asked,
            admitted=self._committed.get(tenant, {}).get(GPU_MILLI, 0) / _MILLI,
            guaranteed=guaranteed / _MILLI if guaranteed is not None else None,
            maximum=limit / _MILLI if limit is not None else None,
            cohort=found.cohort,
        )

    def _check(self, ask: Ask) -> Verdict:
        held = self._admitted.get(ask.key)
        if held is not None and held.uid != ask.uid:
            self.release(ask.key)  # an earlier job of the same name
            held = None
        if held is not None and held.generation == ask.generation:
            return Verdict("Admitted")
        demand = ask.demand()
        tenant = ask.tenant
        if held is not None and held.tenant != tenant:
            self.release(ask.key)  # its namespace moved to another tenant: asked afresh
            held = None
        standing = self._standing(tenant, demand)
        if standing is not None:
            self._stop_waiting(ask.key)
            return standing
        found = self._tenant(tenant) if tenant is not None else None
        if tenant is None or found is None:
            self._record(ask, demand)
            return Verdict("Admitted")
        if held is None:
            self._wait(ask.key, tenant, ask.order)
            if self._strategy(tenant) == _STRICT:
                first = self._first(tenant)
                if first != ask.key:
                    return Verdict(
                        "Waiting",
                        f"waiting for quota behind job {first}, submitted earlier to tenant {tenant} "
                        "(StrictFIFO)",
                    )
        committed = dict(self._committed.get(tenant, {}))
        for resource, amount in (held.demand.total if held is not None else {}).items():
            committed[resource] = committed.get(resource, 0) - amount  # its own old spec
        yielding = (
            self._preemptible(tenant, demand.priority, but=ask.key)
            if found.within_tenant == "LowerPriority"
            else {}
        )
        for resource, amount in sorted(demand.total.items()):
            limit = found.limit(resource)
            taken = committed.get(resource, 0)
            if limit is None or amount <= 0 or taken - yielding.get(resource, 0) + amount <= limit:
                continue
            return Verdict(
                "Waiting",
                f"waiting for quota: tenant {tenant}'s admitted jobs ask {display(resource, taken)} and "
                f"this one {display(resource, amount)}, over its limit of {display(resource, limit)}",
            )
        self._record(ask, demand)
        return Verdict("Admitted")

    def admit(self, key: str, uid: str, generation: int, tenant: str | None, demand: Demand) -> None:
        """Record job `key` as admitted without asking (one an earlier term admitted)."""
        if key not in self._admitted:
            self._record(Ask(key, uid, generation, tenant, (0.0, 0, key), lambda: demand), demand)

    def _record(self, ask: Ask, demand: Demand) -> None:
        if ask.key in self._admitted:
            self._unrecord(ask.key)
        was_first = ask.tenant is not None and self._first(ask.tenant) == ask.key
        self._stop_waiting(ask.key)
        self._admitted[ask.key] = _Admitted(ask.uid, ask.generation, ask.tenant, demand)
        tenant = ask.tenant
        if tenant is None:
            return
        self._of_tenant.setdefault(tenant, set()).add(ask.key)
        committed = self._committed.setdefault(tenant, {})
        for resource, amount in demand.total.items():
            committed[resource] = committed.get(resource, 0) + amount
        if was_first and self._strategy(tenant) == _STRICT:
            self._mark_first(tenant)  # the next in line may go now

    def _unrecord(self, key: str) -> str | None:
        found = self._admitted.pop(key, None)
        if found is None or found.tenant is None:
            return None
        tenant = found.tenant
        self._of_tenant[tenant].discard(key)
        committed = self._committed.get(tenant, {})
        for resource, amount in found.demand.total.items():
            left = committed.get(resource, 0) - amount
            if left > 0:
                committed[resource] = left
            else:
                committed.pop(resource, None)
        return tenant

    def _preemptible(self, tenant: str, priority: int, *, but: str) -> dict[str, int]:
        """What the admitted jobs of `tenant` (but job `but`) below `priority` that may be preempted
        ask together (looked through only for the tenant's admitted jobs, never the waiting)."""
        out: dict[str, int] = {}
        for key in self._of_tenant.get(tenant, ()):
            demand = self._admitted[key].demand
            if key != but and demand.preemptible and demand.priority < priority:
                for resource, amount in demand.total.items():
                    out[resource] = out.get(resource, 0) + amount
        return out

    def release(self, key: str) -> None:
        """Job `key` finished, was deleted, or no longer waits: its quota goes back, and the jobs its
        going lets through are marked: all waiting ones of its tenant, or under StrictFIFO the
        first in line (also when the one leaving was that first)."""
        waited_in = self._line_of.get(key)
        was_first = waited_in is not None and self._first(waited_in) == key
        self._stop_waiting(key)
        tenant = self._unrecord(key)
        if tenant is not None:
            if self._strategy(tenant) == _STRICT:
                self._mark_first(tenant)
            else:
                self.marks.extend(self.waiting(tenant))
        elif waited_in is not None and was_first and self._strategy(waited_in) == _STRICT:
            self._mark_first(waited_in)

    def _mark_first(self, tenant: str) -> None:
        first = self._first(tenant)
        if first is not None:
            self.marks.append(first)

    def waiting(self, tenant: str) -> list[str]:
        """The jobs of `tenant` waiting for quota, first submitted first."""
        line = self._lines.get(tenant)
        return [] if line is None else line.in_order()

    def _wait(self, key: str, tenant: str, order: Order) -> None:
        if self._line_of.get(key) != tenant:
            self._stop_waiting(key)
            self._line_of[key] = tenant
        self._lines.setdefault(tenant, _Line()).add(key, order)

    def _first(self, tenant: str) -> str | None:
        """The job of `tenant` that has waited longest."""
        line = self._lines.get(tenant)
        return None if line is None else line.first()

    def _stop_waiting(self, key: str) -> None:
        tenant = self._line_of.pop(key, None)
        if tenant is None:
            return
        line = self._lines[tenant]
        del line.orders[key]
        if not line.orders:
            del self._lines[tenant]

    def _standing(self, tenant: str | None, demand: Demand) -> Verdict | None:
        found = self._tenant(tenant) if tenant is not None else None
        if found is not None:
            for resource, amount in sorted(demand.total.items()):
                limit = found.limit(resource)
                if limit is not None and amount > limit:
                    return Verdict(
                        "ExceedsQuota",
                        f"the job asks {display(resource, amount)}, more than tenant {tenant} may "
                        f"ever use ({display(resource, limit)})",
                    )
        gpus = demand.total.get(GPU_MILLI, 0)
        if not gpus:
            return None
        cluster = self._cluster(demand.models)
        if cluster is None:
            return None  # the nodes are not known yet
        which = "GPUs" if demand.models is None else f"GPUs of model {', '.join(sorted(demand.models))}"
        if gpus > cluster.total * 1000:
            return Verdict(
                "ExceedsCluster",
                f"the job asks {display(GPU_MILLI, gpus)}; the cluster has {cluster.total} {which}",
            )
        if demand.pod_gpus > cluster.largest_node:
            return Verdict(
                "ExceedsCluster",
                f"a pod asks {demand.pod_gpus} GPUs; no node has more than {cluster.largest_node} {which}",
            )
        return None
