"""`aisched bench fairness`: quotas, fair-share ordering and preemption against priority FIFO.

One seeded multi-tenant workload (`aisched.simulator.tenants`) is run twice on the same synthetic
cluster, each time through the core's `GangQueue`, `Scheduler` and `Cache` on a virtual clock:

- **ours**: the operator's own profile (Quota PreFilter and FairShare QueueSort over the ledger
  the cache keeps; the DefaultPreemption PostFilter over the core's `Evaluator`, which dry-runs on
  clones). A nomination is carried out on the spot: victims are evicted whole and queued again at
  their first place in line; they keep their remaining work (a checkpoint), and the time they had
  run since their last start counts as GPU-hours lost (the work at risk without one); the gang
  starts in the placement the core held for it;
- **baseline**: PrioritySort, no quota (anything free may be taken), no preemption.

A round runs whenever something that could let a waiting gang in changes: an arrival, a
departure, and (ours) a running gang passing its tenant's minimum runtime, when it becomes a
preemption candidate; between those nothing can, so retrying on a timer would change nothing.
Gangs are popped in queue order and scheduled; those that fail are queued again (ours first
tries preemption). A gang shape that failed in a round is not tried again in that round, nor a
larger one of the same tenant (it would fail alike), and a round ends early once no GPU is free
and no gang can preempt (the baseline never does; ours only for a tenant below its guarantee).

Measured on a fixed virtual-time grid:
- a tenant's *weighted share* is its GPUs in use over its entitlement: the weighted max-min fair
  split of the cluster among the tenants with demand (running + pending, capped at their max),
  i.e. its guarantee when all want more than theirs, less when some want less. Jain's index of
  those shares, over tenants with demand, is averaged over the times when at least two have
  some (one tenant is trivially fair). Jain's index of plain used / guarantee over the same
  tenants is reported beside it;
- guarantee violation: GPU-hours during which a tenant with pending gangs uses less than its
  guarantee, counting min(guarantee - used, pending GPUs); and the tenant-hours of that state;
- utilisation: mean GPUs allocated / GPUs in the cluster.
Pure computation: no I/O, no wall clock, randomness from the seed only.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from aisched.cache import Cache
from aisched.framework.profile import Profile
from aisched.framework.types import Gang, GangPlacement
from aisched.queue.policy import QueueingPolicy
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant, quota_capacity
from aisched.scheduler import Scheduler
from aisched.scheduler.queueing import gang_queue
from aisched.simulator.fairness_figures import (
    FairnessBenchmark,
    Preemption,
    RunFigures,
    TenantFigures,
    fair_allocation,
    jain,
)
from aisched.simulator.tenants import (
    Job,
    default_tenants,
    gang_of,
    generate_jobs,
    quota_tenants,
    rack_cluster,
)
from aisched.topology import resources
from aisched.topology.node import NodeInfo

_UNRESERVED: Final = QueueingPolicy(reservation=False, aging_interval=0)

__all__ = [
    "FairnessBenchmark",
    "Policy",
    "Preemption",
    "RunFigures",
    "TenantFigures",
    "fair_allocation",
    "jain",
    "run_fairness_benchmark",
    "simulate",
]

Policy = Literal["ours", "baseline"]
_HOUR: Final = 3600.0
_DEPART, _ARRIVE, _RETRY = 0, 1, 2


@dataclass
class _State:
    job: Job
    gang: Gang
    left: float  # seconds of work still to do
    started: float | None = None  # last start; None while queued
    first_start: float | None = None
    epoch: int = 0  # invalidates the departure of a run that was preempted
    preempted: int = 0


class _Run:
    """One scheduler over one workload (see the module docstring)."""

    def __init__(self, *, tenants: Sequence[Tenant], nodes: Sequence[NodeInfo], policy: Policy) -> None:
        self.now = 0.0
        self.policy = policy
        self.guaranteed = {t.name: t.guaranteed.get(GPU_MILLI, 0) // 1000 for t in tenants}
        self.min_runtime = {t.name: float(t.min_runtime_seconds) for t in tenants}
        if policy == "ours":  # the operator's own profile: quota, fair share, preemption
            profile = Profile(scheduler_name="fair")
        else:
            profile = Profile(
                scheduler_name="fifo", queue_sort="PrioritySort", pre_filter=("Gang",), post_filter=()
            )
        cache = Cache()
        for node in nodes:
            cache.set_node(node)
        total = cache.allocatable_total()
        self.total_gpus = total.get(resources.GPU, 0)
        self.ledger = QuotaLedger(tenants, capacity=quota_capacity(total))
        self.scheduler = Scheduler(profile=profile, cache=cache, ledger=self.ledger, clock=lambda: self.now)
        # One line for every tenant, nothing reserved: fair share and preemption are what this
        # experiment measures.
        self.queue = gang_queue(
            self.scheduler, lambda: self.now, lambda _: ("cluster", _UNRESERVED), resort_interval=0.0
        )
        self.jobs: dict[str, _State] = {}
        self._by_gang: dict[str, _State] = {}
        self.pending = {t.name: 0 for t in tenants}
        self.peak = {t.name: 0 for t in tenants}
        self.preemptions: list[Preemption] = []
        self.lost_gpu_s = 0.0
        self.cycles = 0
        self._events: list[tuple[float, int, str, int]] = []

    @property
    def used(self) -> dict[str, int]:
        """GPUs in use by tenant, as the core's ledger counts them from the cache (one book)."""
        return {name: self.ledger.used(name).get(GPU_MILLI, 0) // 1000 for name in self.guaranteed}

    @property
    def schedule_calls(self) -> int:
        """Scheduling cycles run: real ones, and preemption's dry runs."""
        return self.cycles + self.scheduler.evaluator.dry_runs

    # -- the event loop --------------------------------------------------------------------------

    def run(self, jobs: Sequence[Job], *, end: float, sample_s: float, sampler: _Sampler) -> None:
        for job in jobs:
            if job.arrival < end:
                heapq.heappush(self._events, (job.arrival, _ARRIVE, job.key, 0))
                state = _State(job, gang_of(job), float(job.work))
                self.jobs[job.key] = self._by_gang[state.gang.key] = state
        grid = 0
        while self._events and self._events[0][0] < end:
            t = self._events[0][0]
            while grid * sample_s < t:  # the state held from the previous event until t
                sampler.sample(self)
                grid += 1
            self.now = t
            while self._events and self._events[0][0] == t:
                _, kind, key, epoch = heapq.heappop(self._events)
                if kind == _ARRIVE:
                    self._enqueue(self.jobs[key])
                elif kind == _DEPART and self.jobs[key].epoch == epoch:
                    self._finish(self.jobs[key])
            self._round()
        while grid * sample_s < end:
            sampler.sample(self)
            grid += 1

    def _round(self) -> None:
        """Pop every waiting gang in queue order and try it; the ones that fail wait again.

        A gang preemption makes room for starts at once: its victims are evicted on the spot
        (the simulation has no grace periods) and its held placement is bound.
        """
        failed: list[tuple[str, int, int]] = []
        retry: list[Gang] = []
        while not self._full() and (gang := self.queue.pop()) is not None:
            state = self._by_gang[gang.key]
            job = state.job
            if any(t == job.tenant and p <= job.pods and g <= job.gpus_per_pod for t, p, g in failed):
                retry.append(gang)
                continue
            self.cycles += 1
            result = self.scheduler.schedule(gang)
            placement = result.placement
            if result.nomination is not None:
                for victim in result.nomination.victims:
                    self._evict(self._by_gang[victim.key], by=job.key)
                placement = result.nomination.placement
            if placement is None:
                failed.append((job.tenant, job.pods, job.gpus_per_pod))
                retry.append(gang)
                continue
            self.queue.succeeded(gang)
            self._start(state, placement)
        for gang in retry:
            self.queue.add(gang)

    def _full(self) -> bool:
        """Whether no waiting gang can start: no GPU free, and none may preempt."""
        used = self.used
        if sum(used.values()) < self.total_gpus:
            return False
        if self.policy == "baseline":
            return True
        return not any(self.pending[t] and used[t] < g for t, g in self.guaranteed.items())

    # -- gangs' lives ------------------------------------------------------------------------------

    def _enqueue(self, state: _State) -> None:
        self.pending[state.job.tenant] += state.job.gpus
        self.queue.add(state.gang)

    def _start(self, state: _State, placement: GangPlacement) -> None:
        job = state.job
        self.scheduler.bound(p.pod.key for p in placement.pods)  # the simulation binds at once
        self.pending[job.tenant] -= job.gpus
        self.peak[job.tenant] = max(self.peak[job.tenant], self.used[job.tenant])
        state.started = self.now
        if state.first_start is None:
            state.first_start = self.now
        heapq.heappush(self._events, (self.now + state.left, _DEPART, job.key, state.epoch))
        if self.policy == "ours":  # it becomes a preemption candidate then: a reason to retry
            heapq.heappush(self._events, (self.now + self.min_runtime[job.tenant], _RETRY, job.key, 0))

    def _stop(self, state: _State) -> None:
        for pod in state.gang.members:
            self.scheduler.cache.remove_pod(pod.key)  # the ledger and the snapshot follow
        state.epoch += 1

    def _finish(self, state: _State) -> None:
        self._stop(state)
        state.left = 0.0
        state.started = None

    def _evict(self, state: _State, *, by: str) -> None:
        """Preempted: its pods out of the cache, queued again with the work it has left."""
        assert state.started is not None
        ran = self.now - state.started
        members = state.gang.members
        self._stop(state)
        left = sum(1 for p in members if self.scheduler.cache.pod(p.key) is not None)
        self.preemptions.append(
            Preemption(self.now, state.job.key, state.job.tenant, by, len(members) - left, left)
        )
        self.lost_gpu_s += state.job.gpus * ran
        state.left = max(0.0, state.left - ran)
        state.started = None
        state.preempted += 1
        self._enqueue(state)


class _Sampler:
    """Accumulates the grid samples of one run."""

    def __init__(self, tenants: Sequence[Tenant], *, sample_s: float) -> None:
        self.tenants = list(tenants)
        self.dt = sample_s
        self.guaranteed = [t.guaranteed.get(GPU_MILLI, 0) / 1000 for t in tenants]
        self.maximum = [t.limit(GPU_MILLI) or 0 for t in tenants]
        self.samples = 0
        self.utilisation = 0.0
        self.jain = [0.0, 0.0]  # demand-aware, plain used/guarantee
        self.jain_samples = 0
        n = len(tenants)
        self.used = [0.0] * n
        self.share = [0.0] * n
        self.share_samples = [0] * n
        self.violation_gpu_s = [0.0] * n
        self.violation_s = [0.0] * n

    def sample(self, run: _Run) -> None:
        names = [t.name for t in self.tenants]
        in_use = run.used
        used = [float(in_use[n]) for n in names]
        pending = [float(run.pending[n]) for n in names]
        self.samples += 1
        self.utilisation += sum(used) / run.total_gpus
        demand = [min(u + p, m / 1000) for u, p, m in zip(used, pending, self.maximum, strict=True)]
        fair = fair_allocation(demand, [t.weight for t in self.tenants], run.total_gpus)
        wanting = [i for i, d in enumerate(demand) if d > 0]
        for i in range(len(names)):
            self.used[i] += used[i]
            if i in wanting:
                self.share[i] += used[i] / fair[i]
                self.share_samples[i] += 1
            if pending[i] > 0 and used[i] < self.guaranteed[i]:
                self.violation_gpu_s[i] += min(self.guaranteed[i] - used[i], pending[i]) * self.dt
                self.violation_s[i] += self.dt
        if len(wanting) >= 2:
            self.jain[0] += jain([used[i] / fair[i] for i in wanting])
            self.jain[1] += jain([used[i] / self.guaranteed[i] for i in wanting])
            self.jain_samples += 1


def simulate(
    *,
    jobs: Sequence[Job],
    tenants: Sequence[Tenant],
    nodes: Sequence[NodeInfo],
    policy: Policy,
    hours: float,
    sample_s: float = 60.0,
) -> RunFigures:
    """Run `jobs` for `hours` of virtual time under `policy`; its figures (see the module docstring)."""
    run = _Run(tenants=tenants, nodes=nodes, policy=policy)
    sampler = _Sampler(tenants, sample_s=sample_s)
    run.run(jobs, end=hours * _HOUR, sample_s=sample_s, sampler=sampler)
    states = list(run.jobs.values())
    rows = []
    for i, tenant in enumerate(tenants):
        mine = [s for s in states if s.job.tenant == tenant.name]
        waits = [s.first_start - s.job.arrival for s in mine if s.first_start is not None]
        rows.append(
            TenantFigures(
                name=tenant.name,
                weight=tenant.weight,
                guaranteed_gpus=tenant.guaranteed.get(GPU_MILLI, 0) // 1000,
                max_gpus=(tenant.limit(GPU_MILLI) or 0) // 1000,
                submitted=len(mine),
                finished=sum(1 for s in mine if s.left == 0.0),
                mean_gpus=sampler.used[i] / max(sampler.samples, 1),
                peak_gpus=run.peak[tenant.name],
                mean_weighted_share=sampler.share[i] / max(sampler.share_samples[i], 1),
                violation_gpu_hours=sampler.violation_gpu_s[i] / _HOUR,
                violation_hours=sampler.violation_s[i] / _HOUR,
                preempted=sum(s.preempted for s in mine),
                mean_wait_h=sum(waits) / len(waits) / _HOUR if waits else 0.0,
            )
        )
    waits = [s.first_start - s.job.arrival for s in states if s.first_start is not None]
    return RunFigures(
        policy=policy,
        jain_index=sampler.jain[0] / max(sampler.jain_samples, 1),
        jain_index_guarantee_share=sampler.jain[1] / max(sampler.jain_samples, 1),
        guarantee_violation_gpu_hours=sum(sampler.violation_gpu_s) / _HOUR,
        guarantee_violation_tenant_hours=sum(sampler.violation_s) / _HOUR,
        utilisation=sampler.utilisation / max(sampler.samples, 1),
        preemptions=len(run.preemptions),
        gpu_hours_lost=run.lost_gpu_s / _HOUR,
        submitted=len(states),
        started=len(waits),
        finished=sum(1 for s in states if s.left == 0.0),
        mean_wait_h=sum(waits) / len(waits) / _HOUR if waits else 0.0,
        schedule_calls=run.schedule_calls,
        tenants=tuple(rows),
        preemption_log=tuple(run.preemptions),
    )


def run_fairness_benchmark(*, seed: int = 7, hours: float = 168.0, nodes: int = 64) -> FairnessBenchmark:
    """The default four-tenant workload on `nodes` 8-GPU nodes, ours then the baseline."""
    cluster = rack_cluster(nodes)
    gpus = sum(n.allocatable[resources.GPU] for n in cluster)
    profiles = default_tenants()
    tenants = quota_tenants(profiles, total_gpus=gpus)
    jobs = generate_jobs(profiles, total_gpus=gpus, hours=hours, seed=seed)
    runs = {
        policy: simulate(jobs=jobs, tenants=tenants, nodes=cluster, policy=policy, hours=hours)
        for policy in ("ours", "baseline")
    }
    return FairnessBenchmark(seed, hours, nodes, gpus, len(jobs), runs["ours"], runs["baseline"])
