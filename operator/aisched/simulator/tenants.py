"""A synthetic multi-tenant AI workload for the fairness simulation: teams, their quotas, their jobs.

Pure and seeded: every draw comes from one `numpy.random.Generator` made from the seed, so a seed
names one workload exactly. Virtual seconds throughout.

Each tenant (a team) alternates on and off phases (exponential lengths): while on it submits
gangs as a Poisson stream sized so that, on average, it asks for `load` × its guarantee; while off
it submits nothing. Bursts of different teams overlap at random, so the cluster is sometimes idle,
sometimes oversubscribed, which is when quotas and preemption matter.

A gang is 1, 2, 4 or 8 pods; a single pod takes 1, 2, 4 or 8 GPUs, a multi-pod gang whole 8-GPU
nodes (data-parallel training). No gang is larger than its team's guarantee (a team is given a
guarantee that fits its largest job). Run times are log-normal (median 1 h, heavy right tail,
mean about 2 h), clipped to [5 min, 24 h].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from aisched.api import keys
from aisched.framework.types import Gang, PodInfo
from aisched.quota import GPU_MILLI, Tenant
from aisched.topology import resources
from aisched.topology.machines import MACHINES
from aisched.topology.node import NodeInfo

__all__ = [
    "COHORT",
    "Job",
    "TenantProfile",
    "default_tenants",
    "gang_of",
    "generate_jobs",
    "quota_tenants",
    "rack_cluster",
]

COHORT: Final = "research"
#: How long a gang must have run before preemption may evict it (no thrash).
MIN_RUNTIME_S: Final = 900
_POD_COUNTS: Final = (1, 2, 4, 8)
_POD_COUNT_P: Final = (0.55, 0.2, 0.15, 0.1)
_SINGLE_GPUS: Final = (1, 2, 4, 8)
_SINGLE_GPUS_P: Final = (0.35, 0.2, 0.2, 0.25)
_NODE_GPUS: Final = 8
_MEDIAN_S: Final = 3600.0
_SIGMA: Final = 1.2
_MIN_WORK_S: Final = 300.0
_MAX_WORK_S: Final = 24 * 3600.0
_HOUR: Final = 3600.0


@dataclass(frozen=True)
class TenantProfile:
    """One team: its share of the cohort and how it submits work."""

    name: str
    weight: float
    guarantee: float  # fraction of the cluster's GPUs
    maximum: float  # fraction of the cluster's GPUs it may borrow up to
    load: float = 1.6  # GPUs asked for while on, as a multiple of the guarantee
    on_hours: float = 4.0  # mean length of an on phase
    off_hours: float = 4.0  # mean length of an off phase (0: always on)


@dataclass(frozen=True)
class Job:
    """One gang: `pods` pods of `gpus_per_pod` GPUs that need `work` seconds of running."""

    key: str
    tenant: str
    arrival: float
    pods: int
    gpus_per_pod: int
    work: float

    @property
    def gpus(self) -> int:
        return self.pods * self.gpus_per_pod


def default_tenants() -> tuple[TenantProfile, ...]:
    """Four teams of one cohort, guarantees 40/30/20/10 % (the whole cluster), weights to match,
    each allowed to borrow up to 50 points of the cluster beyond its guarantee."""
    return tuple(
        TenantProfile(name=name, weight=weight, guarantee=share, maximum=min(1.0, share + 0.5))
        for name, weight, share in (
            ("alpha", 4.0, 0.4),
            ("beta", 3.0, 0.3),
            ("gamma", 2.0, 0.2),
            ("delta", 1.0, 0.1),
        )
    )


def quota_tenants(
    profiles: Sequence[TenantProfile], *, total_gpus: int, min_runtime_s: int = MIN_RUNTIME_S
) -> list[Tenant]:
    """The TenantQuotas of `profiles` on a cluster of `total_gpus`: one cohort, namespace = name."""
    return [
        Tenant(
            name=p.name,
            namespaces=frozenset({p.name}),
            cohort=COHORT,
            weight=p.weight,
            guaranteed={GPU_MILLI: round(p.guarantee * total_gpus) * 1000},
            maximum={GPU_MILLI: round(p.maximum * total_gpus) * 1000},
            min_runtime_seconds=min_runtime_s,
        )
        for p in profiles
    ]


def _shape(rng: np.random.Generator, largest: int) -> tuple[int, int]:
    pods = int(rng.choice(_POD_COUNTS, p=_POD_COUNT_P))
    gpus = int(rng.choice(_SINGLE_GPUS, p=_SINGLE_GPUS_P)) if pods == 1 else _NODE_GPUS
    while pods * gpus > largest and pods > 1:
        pods //= 2
    while pods * gpus > largest and gpus > 1:
        gpus //= 2
    return pods, gpus


def _mean_gang_gpus(largest: int) -> float:
    """The expected GPUs of `_shape`'s gangs (exact, by enumeration), to size arrival rates."""
    total = 0.0
    for pods, p_pods in zip(_POD_COUNTS, _POD_COUNT_P, strict=True):
        options = zip(_SINGLE_GPUS, _SINGLE_GPUS_P, strict=True) if pods == 1 else [(_NODE_GPUS, 1.0)]
        for gpus, p_gpus in options:
            n, g = pods, gpus
            while n * g > largest and n > 1:
                n //= 2
            while n * g > largest and g > 1:
                g //= 2
            total += p_pods * p_gpus * n * g
    return total


def generate_jobs(
    profiles: Sequence[TenantProfile], *, total_gpus: int, hours: float, seed: int
) -> list[Job]:
    """Every tenant's gangs arriving within `hours`, by arrival time (see the module docstring)."""
    rng = np.random.default_rng(seed)
    end = hours * _HOUR
    # The clipped log-normal's mean, estimated once from a fixed stream (not the workload's).
    sample = np.random.default_rng(0).lognormal(np.log(_MEDIAN_S), _SIGMA, 100_000)
    mean_work = float(np.mean(np.clip(sample, _MIN_WORK_S, _MAX_WORK_S)))
    jobs: list[Job] = []
    for profile in profiles:
        guaranteed = round(profile.guarantee * total_gpus)
        rate = profile.load * guaranteed / (_mean_gang_gpus(guaranteed) * mean_work)  # gangs per second
        always_on = profile.off_hours <= 0
        now = 0.0
        on = always_on or bool(rng.random() < profile.on_hours / (profile.on_hours + profile.off_hours))
        while now < end:
            phase_end = (
                end
                if always_on
                else now + float(rng.exponential((profile.on_hours if on else profile.off_hours) * _HOUR))
            )
            while on:
                now += float(rng.exponential(1.0 / rate))
                if now >= min(phase_end, end):
                    break
                pods, gpus = _shape(rng, guaranteed)
                work = float(np.clip(rng.lognormal(np.log(_MEDIAN_S), _SIGMA), _MIN_WORK_S, _MAX_WORK_S))
                jobs.append(
                    Job(f"{profile.name}-{len(jobs):05d}", profile.name, now, pods, gpus, round(work))
                )
            now, on = phase_end, always_on or not on
    return sorted(jobs, key=lambda j: (j.arrival, j.key))


def rack_cluster(nodes: int, *, machine: str = "dgx-h100", per_rack: int = 16) -> list[NodeInfo]:
    """`nodes` identical machines, `per_rack` to a rack."""
    kind = MACHINES[machine]
    out = []
    for i in range(nodes):
        name = f"node-{i:04d}"
        labels = {keys.LABEL_RACK: f"rack-{i // per_rack:02d}", keys.LABEL_GPU_PRODUCT: kind.gpu_model}
        allocatable = {
            resources.CPU: kind.cpu * 1000,
            resources.MEMORY: kind.memory_gib * 2**30,
            resources.PODS: 110,
            resources.GPU: kind.gpu_count,
        }
        out.append(NodeInfo(name=name, labels=labels, allocatable=allocatable, gpus=kind.topology(node=name)))
    return out


def gang_of(job: Job) -> Gang:
    """`job` as the core schedules it: a gang of its pods, in its tenant's namespace, rack-preferred."""
    per_pod = job.gpus_per_pod
    members = tuple(
        PodInfo(
            namespace=job.tenant,
            name=f"{job.key}-{i}",
            requests={
                resources.CPU: 8_000 * per_pod,
                resources.MEMORY: 64 * 2**30 * per_pod,
                resources.PODS: 1,
                resources.GPU: per_pod,
            },
            gang=job.key,
            gang_min_member=job.pods,
            created=job.arrival,
            tenant=job.tenant,
        )
        for i in range(job.pods)
    )
    return Gang(
        key=f"{job.tenant}/{job.key}",
        members=members,
        min_member=job.pods,
        topology_level="rack" if job.pods > 1 else None,
        created=job.arrival,
    )
