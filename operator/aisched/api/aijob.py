"""AIJob: a distributed training or inference job, scheduled as one gang (namespaced).

An AIJob lists roles (`spec.replicas`: master, workers, ...), each with a count and a pod
template; aisched creates the pods and places them all at once or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field

from aisched.api import keys
from aisched.api.meta import (
    DNS_SUBDOMAIN_PATTERN,
    LIST_MAP,
    LIST_SET,
    Condition,
    DNSLabel,
    Resource,
    Rule,
    SpecModel,
    StatusModel,
)
from aisched.api.mig import (
    MIG_COMPUTE_SLICES,
    MIG_PROFILE_NAMES,
    MIG_PROFILES,
    mig_compute_slices,
    mig_profiles_for,
)
from aisched.api.pod import PodTemplateSpec
from aisched.api.quantity import NonNegativeQuantity
from aisched.api.tenantquota import QueueingStrategy

__all__ = [
    "AIJob",
    "AIJobQueueStatus",
    "AIJobSpec",
    "AIJobStatus",
    "CheckpointSpec",
    "ElasticSpec",
    "GPUSpec",
    "GangSpec",
    "Phase",
    "PodPlacement",
    "ReplicaSpec",
    "RestartSpec",
    "TopologySpec",
]

MAX_ROLES: Final = 16
MAX_REPLICAS_PER_ROLE: Final = 10_000
INT32_MAX: Final = 2**31 - 1
MAX_RUNTIME_LIMIT_SECONDS: Final = 365 * 24 * 3600

Phase = Literal[
    "Pending", "Queued", "Scheduling", "Running", "Restarting", "Preempted", "Succeeded", "Failed"
]
TopologyLevel = Literal["nvlink", "node", "rack", "block"]
GPUModel = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)]
MigProfileName = Literal[MIG_PROFILE_NAMES]  # type: ignore[valid-type]


class ReplicaSpec(SpecModel):
    """One role of the job: `count` identical pods made from `template`."""

    name: DNSLabel
    count: Annotated[int, Field(ge=1, le=MAX_REPLICAS_PER_ROLE)]
    template: PodTemplateSpec


class GangSpec(SpecModel):
    """How many pods must be placed together, and how long the job may wait for that."""

    min_member: Annotated[int, Field(ge=1)] | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] | None = None


class ElasticSpec(SpecModel):
    """A role that may run with fewer or more pods than its `count`."""

    role: DNSLabel = "worker"
    min_replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS_PER_ROLE)]
    max_replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS_PER_ROLE)]

    __rules__ = (
        Rule(
            path="minReplicas",
            message="must not exceed maxReplicas",
            cel="self.minReplicas <= self.maxReplicas",
            check=lambda e: e.min_replicas <= e.max_replicas,
            detail=lambda e: f"{e.min_replicas} > {e.max_replicas}",
        ),
    )


class TopologySpec(SpecModel):
    """Where the gang may be spread: confined to one domain (`Required`) or as close as possible."""

    policy: Literal["Required", "Preferred", "None"] = "Preferred"
    level: TopologyLevel | None = None

    __rules__ = (
        Rule(
            path="level",
            message="is required when policy is Required (one of nvlink, node, rack, block)",
            cel="!has(self.policy) || self.policy != 'Required' || has(self.level)",
            check=lambda t: t.policy != "Required" or t.level is not None,
        ),
    )


def _mig_profile_offered(gpu: GPUSpec) -> bool:
    if gpu.mig_profile is None or not gpu.models:
        return True
    return any(gpu.mig_profile in mig_profiles_for(model) for model in gpu.models)


_MIG_BY_MODEL_CEL: Final = " || ".join(
    f"(m == '{model}' && self.migProfile in [{', '.join(repr(p.name) for p in profiles)}])"
    for model, profiles in MIG_PROFILES.items()
)


class GPUSpec(SpecModel):
    """Which GPUs the job's pods may use, and how much of one GPU a pod takes when it shares."""

    models: Annotated[list[GPUModel], Field(max_length=16), LIST_SET] = Field(default_factory=list)
    memory: NonNegativeQuantity | None = None
    milli: Annotated[int, Field(ge=1, le=999)] | None = None
    mig_profile: MigProfileName | None = None

    __rules__ = (
        Rule(
            path="memory",
            message="must be more than zero",
            cel="!has(self.memory) || quantity(string(self.memory)).compareTo(quantity('0')) > 0",
            check=lambda g: g.memory is None or g.memory.decimal > 0,
        ),
        Rule(
            path="migProfile",
            message="cannot be combined with milli or memory: a MIG instance is already a GPU slice",
            cel="!has(self.migProfile) || (!has(self.milli) && !has(self.memory))",
            check=lambda g: g.mig_profile is None or (g.milli is None and g.memory is None),
        ),
        Rule(
            path="migProfile",
            message="is not offered by any of the allowed GPU models",
            cel=f"!has(self.migProfile) || !has(self.models) || size(self.models) == 0"
            f" || self.models.exists(m, {_MIG_BY_MODEL_CEL})",
            check=_mig_profile_offered,
            detail=lambda g: f"{g.mig_profile} on {', '.join(g.models)}",
        ),
    )

    def shares_gpu(self) -> bool:
        """Whether each pod takes a part of one GPU rather than whole GPUs."""
        return self.milli is not None or self.memory is not None or self.mig_profile is not None


class RestartSpec(SpecModel):
    """What happens when a pod of a running job fails, or a fault under it ends it, up to
    `backoffLimit` times: `OnFailure` restarts the whole gang; `Replace` replaces only the lost pods,
    beside the survivors (which keep running), and bumps the job's rendezvous epoch so an elastic
    launcher re-forms its group; the whole gang restarts when the replacements find no room within
    the gang timeout (300 s without one). `Never` fails the job."""

    policy: Literal["Never", "OnFailure", "Replace"] = "OnFailure"
    backoff_limit: Annotated[int, Field(ge=0, le=100)] = 3


class CheckpointSpec(SpecModel):
    """How aisched tells a job to save its state before it is preempted.

    `Signal` sends `signal` to the containers and waits `gracePeriodSeconds`; `Annotation` sets
    `aisched.io/checkpoint-requested` on the pods and waits the same; `None` just deletes the pods.
    """

    method: Literal["None", "Signal", "Annotation"] = "None"
    signal: Literal["SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2"] | None = None
    grace_period_seconds: Annotated[int, Field(ge=0, le=3600)] = 30

    __rules__ = (
        Rule(
            path="signal",
            message="is required when method is Signal, and only then",
            cel="(has(self.method) && self.method == 'Signal') == has(self.signal)",
            check=lambda c: (c.method == "Signal") == (c.signal is not None),
        ),
    )


def _total(spec: AIJobSpec) -> int:
    return sum(r.count for r in spec.replicas)


def _elastic_role(spec: AIJobSpec) -> ReplicaSpec | None:
    if spec.elastic is None:
        return None
    return next((r for r in spec.replicas if r.name == spec.elastic.role), None)


def _templates_request_no_gpu_devices(spec: AIJobSpec) -> bool:
    if spec.gpu is None or not spec.gpu.shares_gpu():
        return True
    return not any(
        name in _DEVICE_RESOURCES
        for r in spec.replicas
        for c in [*r.template.spec.containers, *r.template.spec.init_containers]
        for name in [*c.resources.requests, *c.resources.limits]
    )


_ELASTIC_ROLE_CEL: Final = "(has(self.elastic.role) ? self.elastic.role : 'worker')"
# Device resources are tested by map membership, never by iterating keys: a key's length has no
# schema bound, so comparing keys would give the rule an unbounded estimated cost.
_DEVICE_RESOURCES: Final = (
    keys.GPU_RESOURCE,
    *(keys.MIG_RESOURCE_PREFIX + name for name in MIG_PROFILE_NAMES),
)


def _no_device_in(resource_list: str) -> str:
    held = " || ".join(f"'{name}' in {resource_list}" for name in _DEVICE_RESOURCES)
    return f"(!has({resource_list}) || !({held}))"


_NO_DEVICE_CEL: Final = (
    f"!has(c.resources) || ({_no_device_in('c.resources.limits')} && {_no_device_in('c.resources.requests')})"
)


class AIJobSpec(SpecModel):
    """What the job runs and how it wants to be placed."""

    replicas: Annotated[list[ReplicaSpec], Field(min_length=1, max_length=MAX_ROLES), LIST_MAP("name")]
    gang: GangSpec = Field(default_factory=GangSpec)
    elastic: ElasticSpec | None = None
    topology: TopologySpec = Field(default_factory=TopologySpec)
    gpu: GPUSpec | None = None
    priority: Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX)] = 0
    preemptible: bool = True
    tenant: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)] | None = None
    restart: RestartSpec = Field(default_factory=RestartSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    #: The longest the job's pods may run (each pod's `activeDeadlineSeconds`): the kubelet ends
    #: them after that, and the scheduler counts on it when it reserves nodes for a waiting job.
    runtime_limit_seconds: Annotated[int, Field(ge=1, le=MAX_RUNTIME_LIMIT_SECONDS)] | None = None

    __rules__ = (
        Rule(
            path="replicas",
            message="role names must be unique",
            cel=None,  # the API server enforces it through the list-map on `name`
            check=lambda s: len({r.name for r in s.replicas}) == len(s.replicas),
        ),
        Rule(
            path="gang.minMember",
            message="must not exceed the total number of replicas",
            cel="!has(self.gang) || !has(self.gang.minMember)"
            " || self.gang.minMember <= self.replicas.map(r, r.count).sum()",
            check=lambda s: s.gang.min_member is None or s.gang.min_member <= _total(s),
            detail=lambda s: f"{s.gang.min_member} > {_total(s)}",
        ),
        Rule(
            path="elastic.role",
            message="must name one of spec.replicas",
            cel=f"!has(self.elastic) || self.replicas.exists(r, r.name == {_ELASTIC_ROLE_CEL})",
            check=lambda s: s.elastic is None or _elastic_role(s) is not None,
            detail=lambda s: f"{s.elastic.role!r} is not among {', '.join(r.name for r in s.replicas)}",
        ),
        Rule(
            path="elastic",
            message="the elastic role's count must lie between minReplicas and maxReplicas",
            cel=f"!has(self.elastic) || self.replicas.all(r, r.name != {_ELASTIC_ROLE_CEL}"
            " || (self.elastic.minReplicas <= r.count && r.count <= self.elastic.maxReplicas))",
            check=lambda s: (
                (role := _elastic_role(s)) is None
                or s.elastic is None
                or s.elastic.min_replicas <= role.count <= s.elastic.max_replicas
            ),
        ),
        Rule(
            path="gpu",
            message=f"a shared or MIG GPU request (milli, memory, migProfile) cannot be combined with"
            f" {keys.GPU_RESOURCE} or {keys.MIG_RESOURCE_PREFIX}* in the pod templates",
            cel="!has(self.gpu) || !(has(self.gpu.milli) || has(self.gpu.memory) || has(self.gpu.migProfile))"
            f" || self.replicas.all(r, r.template.spec.containers.all(c, {_NO_DEVICE_CEL})"
            " && (!has(r.template.spec.initContainers)"
            f" || r.template.spec.initContainers.all(c, {_NO_DEVICE_CEL})))",
            check=_templates_request_no_gpu_devices,
        ),
        Rule(
            path="replicas",
            message=f"pod templates must leave schedulerName unset or set it to {keys.SCHEDULER_NAME}",
            cel="self.replicas.all(r, !has(r.template.spec.schedulerName)"
            f" || r.template.spec.schedulerName == '{keys.SCHEDULER_NAME}')",
            check=lambda s: all(
                r.template.spec.scheduler_name in (None, keys.SCHEDULER_NAME) for r in s.replicas
            ),
        ),
    )

    def total_replicas(self) -> int:
        """All pods the job asks for."""
        return _total(self)

    def min_member(self) -> int:
        """Pods that must be placed together.

        `gang.minMember` if given; else every pod, with an elastic role counted at its minimum.
        """
        if self.gang.min_member is not None:
            return self.gang.min_member
        role = _elastic_role(self)
        if role is not None and self.elastic is not None:
            return _total(self) - role.count + self.elastic.min_replicas
        return _total(self)

    def total_gpus(self) -> float:
        """The GPUs the job asks for, a shared GPU counted by the part each pod takes: four pods of
        250 milli are one GPU, a MIG instance of c compute slices is c/7 of one. A share of GPU
        memory alone names no part of the GPU's compute and counts nothing. Two decimals at most."""
        pods = sum(r.count for r in self.replicas)
        if self.gpu is not None and self.gpu.milli is not None:
            return pods * self.gpu.milli / 1000
        if self.gpu is not None and self.gpu.mig_profile is not None:
            return round(pods * mig_compute_slices(self.gpu.mig_profile) / MIG_COMPUTE_SLICES, 2)
        if self.gpu is not None and self.gpu.shares_gpu():
            return 0
        return sum(r.count * r.template.spec.gpus() for r in self.replicas)


class PodPlacement(StatusModel):
    """Where one pod of the job was placed and which devices it got."""

    pod: str
    role: str
    index: Annotated[int, Field(ge=0)]
    node: str
    gpus: list[str] = Field(default_factory=list)
    gpu_milli: int | None = None
    mig: str | None = None


class AIJobQueueStatus(StatusModel):
    """Where a waiting job stands in its queue, refreshed every few seconds while it waits."""

    #: The queue: `tenant/<TenantQuota name>`, or `namespace/<namespace>` for one no tenant lists.
    name: str
    strategy: QueueingStrategy
    #: 1-based place in the queue, and how many jobs wait in it; both 0 while the job is too newly
    #: queued to have been ranked (the scheduler ranks its queues about once a second).
    position: Annotated[int, Field(ge=0)]
    length: Annotated[int, Field(ge=0)]
    #: Nodes held for the job while it waits at the front of its queue, and how many of them
    #: already have room for it.
    reserved_nodes: Annotated[int, Field(ge=0)] | None = None
    ready_nodes: Annotated[int, Field(ge=0)] | None = None
    #: Other nodes it could start on, held too while it waits for nodes to drain (all of them
    #: when gangs ahead hold the nodes it would start on).
    spare_nodes: Annotated[int, Field(ge=0)] | None = None
    held_since: datetime | None = None
    #: When the job is expected to start on the held nodes; only when the jobs running there
    #: have a known end (their runtime limits), never a guess.
    estimated_start: datetime | None = None


_Text = Annotated[str, Field(max_length=1024)]


class NodeReasonCount(StatusModel):
    """How many nodes one reason turned away (each node counted under the first filter that did)."""

    reason: Annotated[str, Field(max_length=256)]
    nodes: Annotated[int, Field(ge=0)]


class QuotaReason(StatusModel):
    """The job against its tenant's GPU quota: what it asks, what the tenant uses (pods placed)
    or has admitted (jobs let in), its guarantee and limit, and what would let the job through."""

    tenant: str | None = None
    cohort: str | None = None
    resource: str = "nvidia.com/gpu"
    asked: Annotated[float, Field(ge=0)] = 0
    in_use: Annotated[float, Field(ge=0)] | None = None
    admitted: Annotated[float, Field(ge=0)] | None = None
    guaranteed: Annotated[float, Field(ge=0)] | None = None
    max: Annotated[float, Field(ge=0)] | None = None
    borrowed: Annotated[float, Field(ge=0)] | None = None
    #: Whether the quota is what holds the job back now.
    blocking: bool = False
    message: _Text = ""
    would_free: _Text = ""


class PlacementReason(StatusModel):
    """Why the gang found no place in its last attempt: nodes, the reasons that turned them away,
    the topology asked that no domain had, and free GPUs too scattered to use."""

    nodes: Annotated[int, Field(ge=0)] = 0
    feasible_nodes: Annotated[int, Field(ge=0)] = 0
    reasons: Annotated[list[NodeReasonCount], Field(max_length=16)] = Field(default_factory=list)
    topology: Annotated[list[_Text], Field(max_length=16)] = Field(default_factory=list)
    fragmentation: _Text = ""
    free_gpus: Annotated[int, Field(ge=0)] | None = Field(default=None, alias="freeGPUs")
    message: Annotated[str, Field(max_length=4096)] = ""


class PreemptionReason(StatusModel):
    """Whether the scheduler preempts others to place the job: whom, or why no one."""

    would_preempt: bool = False
    victims: Annotated[list[Annotated[str, Field(max_length=512)]], Field(max_length=16)] = Field(
        default_factory=list
    )
    message: _Text = ""


class PendingReason(StatusModel):
    """Why a waiting job waits, as fields (what `aisched explain` shows): the stage it waits at
    (`Admission`: for its tenant's quota, before its pods are made; `Scheduling`: for a place for
    its pods), a summary, and the quota, placement, queue and preemption answers that apply."""

    stage: Literal["Admission", "Scheduling"]
    summary: Annotated[str, Field(max_length=4096)] = ""
    quota: QuotaReason | None = None
    placement: PlacementReason | None = None
    queue: AIJobQueueStatus | None = None
    preemption: PreemptionReason | None = None


class AIJobStatus(StatusModel):
    """What aisched last observed of the job."""

    phase: Phase = "Pending"
    message: str = ""
    tenant: str | None = None
    #: The GPUs the job asks for, shared ones by their part (`AIJobSpec.total_gpus`).
    gpus: Annotated[float, Field(ge=0)] | None = None
    conditions: Annotated[list[Condition], LIST_MAP("type")] = Field(default_factory=list)
    placement: list[PodPlacement] = Field(default_factory=list)
    restarts: Annotated[int, Field(ge=0)] = 0
    preemptions: Annotated[int, Field(ge=0)] = 0
    #: Times lost pods were replaced while the others kept running (`restart.policy: Replace`); the
    #: pods' rendezvous epoch.
    replacements: Annotated[int, Field(ge=0)] = 0
    #: The pods being replaced now (their names, and the uids of the lost pods, which may still be
    #: seen while they go), and since when their replacements were made (cleared once they all run).
    replacing: Annotated[
        list[Annotated[str, Field(max_length=253)]], Field(max_length=MAX_REPLICAS_PER_ROLE)
    ] = Field(default_factory=list)
    replacing_uids: Annotated[
        list[Annotated[str, Field(max_length=128)]], Field(max_length=MAX_REPLICAS_PER_ROLE)
    ] = Field(default_factory=list)
    replacing_since: datetime | None = None
    #: An elastic job: its elastic role's pods running now, and how often that number changed (each
    #: change an Event with its reason).
    elastic_replicas: Annotated[int, Field(ge=0)] | None = None
    resizes: Annotated[int, Field(ge=0)] = 0
    observed_generation: int | None = None
    #: The spec (`metadata.generation`) its tenant's quota admitted: its pods are made for that
    #: spec; an edited one is admitted again before any pod is made for it.
    admitted_generation: int | None = None
    #: The job's place in submission order among jobs created in the same second: its creation
    #: revision, recorded the first time aisched handles the job and stamped on every pod it makes
    #: (`aisched.io/queue-sequence`). It lives in the status, which a client creating or updating
    #: the job cannot set: only aisched, through the status subresource, writes it.
    queue_sequence: Annotated[int, Field(ge=0)] | None = None
    #: The job's place in its queue while it waits for its pods to be placed.
    queue: AIJobQueueStatus | None = None
    #: Why it waits, as fields, while it waits (cleared once its pods are placed).
    pending_reason: PendingReason | None = None
    #: The W3C traceparent of the job's trace (`observability.tracing`): recorded by aisched, which
    #: alone writes the status, so a client cannot choose which trace (or sampling) the job's
    #: spans join; the `aisched.io/trace-context` annotation and the job's pods carry a copy.
    trace_context: Annotated[str, Field(max_length=55)] | None = None
    queued_time: datetime | None = None
    scheduled_time: datetime | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None


class AIJob(Resource):
    """A distributed AI job; its pods are placed as one gang."""

    KIND: ClassVar[str] = "AIJob"
    PLURAL: ClassVar[str] = "aijobs"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("aij",)
    NAMESPACED: ClassVar[bool] = True
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str | int], ...]] = (
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "GPUs", "type": "number", "jsonPath": ".status.gpus"},
        {"name": "Tenant", "type": "string", "jsonPath": ".status.tenant"},
        {"name": "Queue Position", "type": "integer", "jsonPath": ".status.queue.position"},
        {"name": "Est. Start", "type": "string", "jsonPath": ".status.queue.estimatedStart", "priority": 1},
    )

    kind: Literal["AIJob"] = "AIJob"
    spec: AIJobSpec
    status: AIJobStatus | None = None
