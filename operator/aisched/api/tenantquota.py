"""TenantQuota: how much of the cluster a tenant may use (cluster-scoped).

A tenant is a set of namespaces. `guaranteed` is what the tenant can always get back (by
reclaiming what others borrowed); `max` is what it may reach by borrowing idle capacity from
tenants of the same cohort.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field

from aisched.api import keys
from aisched.api.meta import (
    LIST_MAP,
    LIST_SET,
    QUALIFIED_NAME_PATTERN,
    Condition,
    DNSLabel,
    Resource,
    Rule,
    SpecModel,
    StatusModel,
)
from aisched.api.quantity import NonNegativeQuantity, Quantity

__all__ = [
    "AgingSpec",
    "PreemptionSpec",
    "QueueingSpec",
    "QueueingStrategy",
    "ResourceQuota",
    "TenantQuota",
    "TenantQuotaSpec",
    "TenantQuotaStatus",
]

MAX_RESOURCES: Final = 32
_RESOURCE_NAME: Final = re.compile(QUALIFIED_NAME_PATTERN)
MAX_NAMESPACES: Final = 256


class ResourceQuota(SpecModel):
    """The quota of one resource: what the tenant is guaranteed and the most it may use."""

    guaranteed: NonNegativeQuantity | None = None
    max: NonNegativeQuantity | None = None

    __rules__ = (
        Rule(
            path="guaranteed",
            message="must not exceed max",
            cel="!has(self.guaranteed) || !has(self.max)"
            " || quantity(string(self.guaranteed)).compareTo(quantity(string(self.max))) <= 0",
            check=lambda q: q.guaranteed is None or q.max is None or q.guaranteed <= q.max,
            detail=lambda q: f"{q.guaranteed} > {q.max}",
        ),
    )

    def limit(self) -> Quantity | None:
        """The most the tenant may use: `max`, else `guaranteed` (no borrowing), else unlimited."""
        return self.max if self.max is not None else self.guaranteed


class PreemptionSpec(SpecModel):
    """What the tenant's jobs may do to others' when they cannot be placed."""

    #: Take back capacity that other tenants of the cohort borrowed beyond their guarantee.
    reclaim_within_cohort: Literal["Never", "Any", "LowerPriority"] = "Any"
    #: Evict the tenant's own preemptible jobs of lower priority.
    within_tenant: Literal["Never", "LowerPriority"] = "LowerPriority"
    #: A job that has run less than this is not preempted again (stops thrashing).
    min_runtime_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 300


QueueingStrategy = Literal["StrictFIFO", "BestEffortFIFO"]


class AgingSpec(SpecModel):
    """How a waiting job's priority rises so it cannot starve behind higher-priority ones.

    Every `intervalSeconds` of waiting adds `step` to the job's queue priority, up to `maxBoost`
    in all, and never to the next band of `bandWidth` (a job at 0 ages at most to bandWidth - 1).
    Aging orders the queue and protects a reservation; preemption still uses the real priority.
    """

    interval_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] | None = None
    step: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_boost: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None
    band_width: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None


class QueueingSpec(SpecModel):
    """The order in which the tenant's jobs start (unset fields take the cluster's defaults).

    `StrictFIFO`: the first job in the queue blocks every later one. `BestEffortFIFO`: a later job
    may start only where it does not delay the first, whose nodes are reserved when `reservation`.
    """

    strategy: QueueingStrategy | None = None
    reservation: bool | None = None
    aging: AgingSpec = Field(default_factory=AgingSpec)


class TenantQuotaSpec(SpecModel):
    """Which namespaces form the tenant, its cohort, weight and per-resource quota."""

    namespaces: Annotated[list[DNSLabel], Field(max_length=MAX_NAMESPACES), LIST_SET] = Field(
        default_factory=list
    )
    cohort: DNSLabel | None = None
    weight: Annotated[float, Field(gt=0, le=1000)] = 1.0
    resources: Annotated[dict[str, ResourceQuota], Field(max_length=MAX_RESOURCES)] = Field(
        default_factory=dict
    )
    preemption: PreemptionSpec = Field(default_factory=PreemptionSpec)
    queueing: QueueingSpec = Field(default_factory=QueueingSpec)

    __rules__ = (
        Rule(
            path="namespaces",
            message="must not list a namespace twice",
            cel=None,  # the API server enforces it through list-type set
            check=lambda s: len(set(s.namespaces)) == len(s.namespaces),
        ),
        Rule(
            path="resources",
            message="keys must be resource names such as nvidia.com/gpu, cpu or memory",
            cel=None,  # a regex over unbounded map keys has no bounded CEL cost; checked by aisched
            check=lambda s: all(_RESOURCE_NAME.fullmatch(k) for k in s.resources),
            detail=lambda s: ", ".join(repr(k) for k in s.resources if not _RESOURCE_NAME.fullmatch(k)),
        ),
    )

    def gpu_quota(self) -> ResourceQuota | None:
        return self.resources.get(keys.GPU_RESOURCE)


class TenantQuotaStatus(StatusModel):
    """The tenant's usage as aisched last accounted it."""

    used: dict[str, str] = Field(default_factory=dict)
    borrowed: dict[str, str] = Field(default_factory=dict)
    used_gpus: float | None = Field(default=None, alias="usedGPUs")
    guaranteed_gpus: float | None = Field(default=None, alias="guaranteedGPUs")
    borrowed_gpus: float | None = Field(default=None, alias="borrowedGPUs")
    dominant_share: float | None = None
    dominant_resource: str | None = None
    admitted_jobs: Annotated[int, Field(ge=0)] = 0
    pending_jobs: Annotated[int, Field(ge=0)] = 0
    conditions: Annotated[list[Condition], LIST_MAP("type")] = Field(default_factory=list)
    observed_generation: int | None = None
    last_update_time: datetime | None = None


class TenantQuota(Resource):
    """A tenant's quota; tenants in one cohort lend each other what they do not use."""

    KIND: ClassVar[str] = "TenantQuota"
    PLURAL: ClassVar[str] = "tenantquotas"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("tq",)
    NAMESPACED: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str | int], ...]] = (
        {"name": "Cohort", "type": "string", "jsonPath": ".spec.cohort"},
        {"name": "Used GPUs", "type": "number", "jsonPath": ".status.usedGPUs"},
        {"name": "Guaranteed GPUs", "type": "number", "jsonPath": ".status.guaranteedGPUs"},
        {"name": "Pending", "type": "integer", "jsonPath": ".status.pendingJobs"},
    )

    kind: Literal["TenantQuota"] = "TenantQuota"
    spec: TenantQuotaSpec
    status: TenantQuotaStatus | None = None
