"""A tenant as the quota arithmetic sees it: integer amounts per resource, GPUs in milli-GPUs.

Quotas name resources as Kubernetes does (`nvidia.com/gpu`, `cpu`, `memory`, ...). GPUs are
accounted in thousandths so that a pod sharing one GPU (`gpu_milli`) or holding a MIG slice
counts for its fraction: a quota of `nvidia.com/gpu: 64` is 64,000 milli-GPUs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from aisched.api import keys
from aisched.api.mig import MIG_MEMORY_SLOTS, MIG_PROFILES
from aisched.api.tenantquota import QueueingSpec, TenantQuotaSpec
from aisched.topology import resources

__all__ = ["GPU_MILLI", "Request", "Tenant", "display", "gang_usage", "quota_capacity", "quota_usage"]

#: The GPU resource in quota arithmetic: thousandths of a GPU.
GPU_MILLI: Final = keys.GPU_RESOURCE
_MILLI_PER_GPU: Final = 1000


def _amount(resource: str, quantity: object) -> int:
    value = resources.amount(resource, str(quantity))
    return value * _MILLI_PER_GPU if resource == keys.GPU_RESOURCE else value


@dataclass(frozen=True)
class Tenant:
    """One TenantQuota: amounts in snapshot units (CPU milli, bytes), GPUs in milli-GPUs."""

    name: str
    namespaces: frozenset[str] = frozenset()
    cohort: str | None = None
    weight: float = 1.0
    guaranteed: Mapping[str, int] = field(default_factory=dict)
    maximum: Mapping[str, int] = field(default_factory=dict)
    #: Preemption policy (TenantQuota.spec.preemption).
    reclaim_within_cohort: str = "Any"
    within_tenant: str = "LowerPriority"
    min_runtime_seconds: int = 300
    #: How the tenant's queue is ordered (TenantQuota.spec.queueing); unset fields take the
    #: cluster's defaults (`queue.QueueingPolicy`).
    queueing: QueueingSpec = field(default_factory=QueueingSpec)

    @classmethod
    def from_spec(cls, name: str, spec: TenantQuotaSpec) -> Tenant:
        guaranteed = {
            r: _amount(r, q.guaranteed) for r, q in spec.resources.items() if q.guaranteed is not None
        }
        maximum = {r: _amount(r, q.max) for r, q in spec.resources.items() if q.max is not None}
        return cls(
            name=name,
            namespaces=frozenset(spec.namespaces),
            cohort=spec.cohort,
            weight=spec.weight,
            guaranteed=guaranteed,
            maximum=maximum,
            reclaim_within_cohort=spec.preemption.reclaim_within_cohort,
            within_tenant=spec.preemption.within_tenant,
            min_runtime_seconds=spec.preemption.min_runtime_seconds,
            queueing=spec.queueing,
        )

    def limit(self, resource: str) -> int | None:
        """The most the tenant may use of `resource`, None for no limit.

        In a cohort: `max` (borrowing up to it), else `guaranteed`. Alone: there is no one to
        borrow from, so `guaranteed` when it is set, else `max`.
        """
        if self.cohort is not None:
            return self.maximum.get(resource, self.guaranteed.get(resource))
        return self.guaranteed.get(resource, self.maximum.get(resource))

    def resources(self) -> set[str]:
        return {*self.guaranteed, *self.maximum}


class Request(Protocol):
    """What quota reads of a pod (`framework.types.PodInfo` is one)."""

    @property
    def requests(self) -> Mapping[str, int]: ...

    @property
    def gpu_milli(self) -> int: ...

    @property
    def mig_profile(self) -> str | None: ...


def quota_usage(pod: Request) -> dict[str, int]:
    """What `pod` counts against its tenant's quota: its requests, GPUs in milli-GPUs (a shared GPU
    for its milli, a MIG slice for its share of the GPU's memory slices)."""
    usage = {name: value for name, value in pod.requests.items() if name != resources.PODS}
    gpus = usage.pop(keys.GPU_RESOURCE, 0) * _MILLI_PER_GPU
    gpus += pod.gpu_milli
    named = [n for n in usage if n.startswith(keys.MIG_RESOURCE_PREFIX)]
    for name in named:
        gpus += usage.pop(name) * _mig_milli(name.removeprefix(keys.MIG_RESOURCE_PREFIX))
    if pod.mig_profile is not None and not named:  # parsed pods carry the profile, not the resource
        gpus += _mig_milli(pod.mig_profile)
    if gpus:
        usage[GPU_MILLI] = gpus
    return usage


def gang_usage(members: Iterable[Request]) -> dict[str, int]:
    """What a gang's members count against their tenant's quota together."""
    total: dict[str, int] = {}
    for member in members:
        for resource, amount in quota_usage(member).items():
            total[resource] = total.get(resource, 0) + amount
    return total


def quota_capacity(allocatable: Mapping[str, int]) -> dict[str, int]:
    """The cluster's allocatable totals (snapshot units) in quota units: GPUs in milli-GPUs."""
    out = {name: value for name, value in allocatable.items() if name != resources.PODS}
    if resources.GPU in out:
        out[GPU_MILLI] = out.pop(resources.GPU) * _MILLI_PER_GPU
    return out


def _mig_milli(profile: str) -> int:
    """A MIG profile's share of its GPU: its memory slots of 8 (e.g. 3g.40gb → 4/8 → 500)."""
    for table in MIG_PROFILES.values():
        for entry in table:
            if entry.name == profile:
                return _MILLI_PER_GPU * entry.memory_slots // MIG_MEMORY_SLOTS
    return _MILLI_PER_GPU  # an unknown profile counts as a whole GPU


def display(resource: str, amount: int) -> str:
    """`amount` of `resource` as a person reads it: GPUs as a count (8, 2.5), CPU in cores."""
    if resource == GPU_MILLI:
        return f"{amount / _MILLI_PER_GPU:g} {resource}"
    if resource == resources.CPU:
        return f"{amount / 1000:g} cpu"
    if resource == resources.MEMORY:
        return f"{amount / 2**30:.4g}Gi memory"
    return f"{amount} {resource}"
