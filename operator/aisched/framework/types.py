"""The scheduling view of pods and gangs: what the plugins read, in snapshot units.

`PodInfo.from_manifest` is the edge where a pod's JSON becomes this view: it reads only what
scheduling needs and tolerates everything else, since it also sees pods aisched did not create.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Final, Literal, cast

from aisched.api import keys
from aisched.api.mig import MigAnnotation
from aisched.api.objects import PodView, decimal, pod_key
from aisched.api.quantity import Quantity, QuantityError
from aisched.topology import resources

__all__ = [
    "Gang",
    "GangPlacement",
    "PodInfo",
    "PodPlacement",
    "Requirement",
    "SelectorTerm",
    "Toleration",
    "TopologyLevel",
    "TopologyPolicy",
]

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
TopologyPolicy = Literal["Required", "Preferred", "None"]
TopologyLevel = Literal["nvlink", "node", "rack", "block"]
LEVELS: tuple[TopologyLevel, ...] = ("nvlink", "node", "rack", "block")
_LEVELS: dict[str, TopologyLevel] = {level: level for level in LEVELS}
_POLICIES: dict[str, TopologyPolicy] = {"Required": "Required", "Preferred": "Preferred", "None": "None"}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One node-selector requirement (`matchExpressions` / `matchFields` entry)."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SelectorTerm:
    """A node-selector term: every requirement must hold (terms are ORed)."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str = ""
    effect: str = ""  # "" tolerates every effect

    def tolerates(self, *, key: str, value: str, effect: str) -> bool:
        if self.effect and self.effect != effect:
            return False
        if not self.key:  # an empty key with Exists tolerates everything
            return self.operator == "Exists"
        if self.key != key:
            return False
        return self.operator == "Exists" or self.value == value


@dataclass(frozen=True, kw_only=True, eq=False)
class PodInfo:
    """A pod as the scheduler needs it."""

    namespace: str
    name: str
    uid: str = ""
    #: Resource → amount in snapshot units (CPU milli, memory bytes, GPUs, ...), plus one pod.
    requests: Mapping[str, int] = field(default_factory=dict)
    node_selector: tuple[tuple[str, str], ...] = ()
    affinity: tuple[SelectorTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    gpu_models: tuple[str, ...] = ()
    priority: int = 0
    #: False: never evicted to make room for another gang (an AIJob's `spec.preemptible`).
    preemptible: bool = True
    scheduler_name: str = keys.SCHEDULER_NAME
    gang: str | None = None
    gang_min_member: int | None = None
    topology_policy: TopologyPolicy = "Preferred"
    topology_level: TopologyLevel | None = None
    #: Submission order: creation time (epoch seconds), then `sequence` within the same second
    #: (an AIJob's creation revision, `aisched.io/queue-sequence`; else the pod's resourceVersion
    #: when first seen). Never the name.
    created: float = 0.0
    sequence: int = 0
    #: The longest the pod may run (`spec.activeDeadlineSeconds`), None when unbounded.
    runtime_limit: float | None = None
    #: Jobs of one class run about as long as each other (`aisched.io/job-class`).
    job_class: str | None = None
    node_name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    #: A pod sharing one GPU: the milli (1..999) of that GPU it needs; 0 for whole-GPU or no-GPU pods.
    gpu_milli: int = 0
    #: A pod sharing one GPU: the GPU memory (bytes) it needs there; 0 when it names none.
    gpu_memory: int = 0
    #: A pod asking for one MIG instance: its profile (e.g. `3g.40gb`), placed on a MIG-enabled GPU.
    mig_profile: str | None = None
    #: The TenantQuota the pod is charged to when it names one (`aisched.io/tenant`); else its
    #: namespace decides.
    tenant: str | None = None
    #: A pod an elastic job grows by (`aisched.io/elastic-surplus`): it takes idle room only.
    surplus: bool = False
    #: The trace the pod's spans join (`aisched.io/trace-context`, a W3C traceparent its AIJob
    #: copied onto it; a pod no AIJob controls joins none, so no client picks a trace or forces
    #: its sampling); unchecked here, parsed strictly where used.
    trace_context: str | None = None
    #: `namespace/name` (`api.objects.pod_key`), set once: the hot path reads it many times.
    key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", pod_key(self.namespace, self.name))

    @property
    def gpus(self) -> int:
        """Whole GPUs the pod asks for (`nvidia.com/gpu`)."""
        return self.requests.get(resources.GPU, 0)

    @property
    def shares_gpu(self) -> bool:
        """Whether the pod takes part of one GPU (milli and/or memory) rather than whole GPUs."""
        return self.gpu_milli > 0 or self.gpu_memory > 0

    @property
    def uses_gpu(self) -> bool:
        """Whether the pod needs any GPU: whole ones, a share of one, or a MIG instance."""
        return self.gpus > 0 or self.shares_gpu or self.mig_profile is not None

    @cached_property
    def template_key(self) -> tuple[object, ...]:
        """Equal for pods that every filter treats alike: they share cached masks and form one role."""
        return (
            tuple(sorted(self.requests.items())),
            self.node_selector,
            self.affinity,
            self.tolerations,
            self.gpu_models,
            self.gpu_milli,
            self.gpu_memory,
            self.mig_profile,
        )

    @classmethod
    def from_manifest(cls, pod: Mapping[str, Any], *, created: float | None = None) -> PodInfo:
        """The scheduling view of a pod's JSON; `created` defaults to its creationTimestamp.

        Unparseable quantities, and GPU requests that contradict each other (a share of a GPU or a
        MIG instance together with whole GPUs), raise `ValueError`.
        """
        view = PodView(pod)
        spec, labels, annotations = view.spec, view.labels, view.annotations
        by_aijob = view.aijob_reference(controller=True) is not None
        requests = pod_requests(spec)
        share = _gpu_share(requests, annotations)
        models = annotations.get(keys.ANNOTATION_GPU_MODELS, "")
        min_member = annotations.get(keys.ANNOTATION_GANG_MIN_MEMBER)
        policy = annotations.get(keys.ANNOTATION_TOPOLOGY_POLICY, "Preferred")
        level = annotations.get(keys.ANNOTATION_TOPOLOGY_LEVEL)
        return cls(
            namespace=view.namespace,
            name=view.name,
            uid=view.uid,
            requests=requests,
            node_selector=tuple(sorted((spec.get("nodeSelector") or {}).items())),
            affinity=_required_affinity(spec),
            tolerations=tuple(_toleration(t) for t in spec.get("tolerations") or ()),
            gpu_models=tuple(m.strip() for m in models.split(",") if m.strip()),
            priority=_priority(spec, annotations),
            preemptible=annotations.get(keys.ANNOTATION_PREEMPTIBLE) != "false",
            scheduler_name=view.scheduler_name,
            gang=labels.get(keys.LABEL_GANG) or labels.get(keys.LABEL_JOB),
            gang_min_member=decimal(min_member),
            topology_policy=_POLICIES.get(policy, "Preferred"),
            topology_level=_LEVELS.get(level) if level else None,
            created=(view.created or 0.0) if created is None else created,
            # Only the AIJob controller stamps the sequence: a pod no AIJob controls cannot.
            sequence=_sequence(annotations, view.revision, by_aijob=by_aijob),
            runtime_limit=_runtime_limit(spec),
            job_class=labels.get(keys.LABEL_JOB_CLASS) or None,
            node_name=view.node_name,
            labels=labels,
            gpu_milli=share.milli,
            gpu_memory=share.memory,
            mig_profile=share.mig_profile,
            tenant=annotations.get(keys.ANNOTATION_TENANT) or None,
            surplus=annotations.get(keys.ANNOTATION_ELASTIC_SURPLUS) == "true",
            trace_context=(annotations.get(keys.ANNOTATION_TRACE_CONTEXT) or None) if by_aijob else None,
        )


@dataclass(frozen=True, slots=True)
class _Share:
    milli: int = 0
    memory: int = 0
    mig_profile: str | None = None


def _gpu_share(requests: dict[str, int], annotations: Mapping[str, str]) -> _Share:
    """The pod's share of one GPU or MIG instance, from its annotations and `nvidia.com/mig-*` requests.

    The MIG resource is taken out of `requests`: aisched chooses the instance's memory slots
    itself, so no node needs to advertise that resource.
    """
    raw_milli = annotations.get(keys.ANNOTATION_GPU_MILLI, "").strip()
    raw_memory = annotations.get(keys.ANNOTATION_GPU_MEMORY, "").strip()
    raw_mig = annotations.get(keys.ANNOTATION_MIG, "").strip()
    milli = 0
    if raw_milli:
        milli = decimal(raw_milli) or 0
        if not 1 <= milli <= 999:
            raise ValueError(
                f"{keys.ANNOTATION_GPU_MILLI}={raw_milli!r}: must be an integer from 1 to 999"
                f" (ask for {keys.GPU_RESOURCE} for whole GPUs)"
            )
    memory = 0
    if raw_memory:
        try:
            memory = Quantity(raw_memory).value()
        except QuantityError as exc:
            raise ValueError(f"{keys.ANNOTATION_GPU_MEMORY}: {exc}") from None
        if memory <= 0:
            raise ValueError(f"{keys.ANNOTATION_GPU_MEMORY}={raw_memory!r}: must be more than zero")
    try:
        mig = MigAnnotation.parse(raw_mig).profile if raw_mig else None
    except ValueError as exc:
        raise ValueError(f"{keys.ANNOTATION_MIG}: {exc}") from None
    for name in [n for n in requests if n.startswith(keys.MIG_RESOURCE_PREFIX)]:
        count = requests.pop(name)
        if count <= 0:
            continue
        profile = name.removeprefix(keys.MIG_RESOURCE_PREFIX)
        if count > 1 or (mig is not None and mig != profile):
            raise ValueError(f"{name}: a pod may ask for one MIG instance only")
        mig = profile
    whole = requests.get(resources.GPU, 0) > 0
    if mig is not None and (milli or memory or whole):
        raise ValueError(
            f"MIG profile {mig} cannot be combined with {keys.GPU_RESOURCE},"
            f" {keys.ANNOTATION_GPU_MILLI} or {keys.ANNOTATION_GPU_MEMORY}"
        )
    if (milli or memory) and whole:
        raise ValueError(
            f"a shared GPU ({keys.ANNOTATION_GPU_MILLI}/{keys.ANNOTATION_GPU_MEMORY}) cannot be combined"
            f" with {keys.GPU_RESOURCE}: a pod takes part of one GPU or whole GPUs"
        )
    return _Share(milli=milli, memory=memory, mig_profile=mig)


_MAX_SEQUENCE_DIGITS = 19  # fits an int64, as etcd revisions do
#: Not worked out yet (a gang's tenant; a sentinel, as None is an answer).
_UNKNOWN: Final = object()


def _sequence(annotations: Mapping[str, str], revision: int | None, *, by_aijob: bool) -> int:
    """The pod's place among pods created in the same second: its AIJob's creation revision, else
    its own resourceVersion. A malformed annotation is ignored, not trusted, and so is one on a pod
    no AIJob made (a plain pod cannot move itself up its queue)."""
    raw = annotations.get(keys.ANNOTATION_QUEUE_SEQUENCE, "") if by_aijob else ""
    sequence = decimal(raw) if len(raw) <= _MAX_SEQUENCE_DIGITS else None
    return sequence if sequence is not None else revision or 0


def _runtime_limit(spec: Mapping[str, Any]) -> float | None:
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not isinstance(deadline, bool) and deadline > 0:
        return float(deadline)
    return None


def _priority(spec: Mapping[str, Any], annotations: Mapping[str, str]) -> int:
    """The pod's priority: its spec's (from a PriorityClass), else its AIJob's (the annotation)."""
    if spec.get("priority") is not None:
        return int(spec["priority"])
    raw = annotations.get(keys.ANNOTATION_PRIORITY, "")
    try:
        return int(raw)
    except ValueError:
        return 0


def pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """A pod's effective request in snapshot units, as kube-scheduler computes it.

    Sum over containers (limits standing in for missing requests), raised to the largest init
    container per resource, plus `overhead`, plus one `pods`.
    """
    total: dict[str, int] = {}
    for container in spec.get("containers") or ():
        for name, value in _container_requests(container).items():
            total[name] = total.get(name, 0) + value
    for container in spec.get("initContainers") or ():
        for name, value in _container_requests(container).items():
            total[name] = max(total.get(name, 0), value)
    for name, raw in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0) + _amount(name, raw)
    total[resources.PODS] = 1
    return total


def _container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    res: Mapping[str, Any] = container.get("resources") or {}
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    return {name: _amount(name, raw) for name, raw in merged.items()}


def _amount(name: str, raw: object) -> int:
    return _parsed_amount(name, raw if isinstance(raw, int) else str(raw))


@lru_cache(maxsize=4096)
def _parsed_amount(name: str, quantity: int | str) -> int:
    """`quantity` of resource `name` in snapshot units. Pods repeat a few templates, so each distinct
    quantity is parsed once rather than once per pod."""
    try:
        return resources.amount(name, Quantity(quantity))
    except QuantityError as exc:
        raise ValueError(f"resource {name}: {exc}") from None


def _required_affinity(spec: Mapping[str, Any]) -> tuple[SelectorTerm, ...]:
    node_affinity = ((spec.get("affinity") or {}).get("nodeAffinity")) or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return tuple(
        SelectorTerm(
            expressions=tuple(_requirement(r) for r in term.get("matchExpressions") or ()),
            fields=tuple(_requirement(r) for r in term.get("matchFields") or ()),
        )
        for term in required.get("nodeSelectorTerms") or ()
    )


def _requirement(raw: Mapping[str, Any]) -> Requirement:
    operator = raw.get("operator", "In")
    if operator not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
        raise ValueError(f"node selector operator {operator!r} is not supported")
    return Requirement(
        key=raw["key"], operator=operator, values=tuple(str(v) for v in raw.get("values") or ())
    )


def _toleration(raw: Mapping[str, Any]) -> Toleration:
    operator = raw.get("operator") or "Equal"
    return Toleration(
        key=raw.get("key") or "",
        operator="Exists" if operator == "Exists" else "Equal",
        value=raw.get("value") or "",
        effect=raw.get("effect") or "",
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class Gang:
    """Pods placed together or not at all. A lone pod is a gang of one."""

    key: str
    members: Sequence[PodInfo]
    min_member: int
    topology_policy: TopologyPolicy = "Preferred"
    topology_level: TopologyLevel | None = None
    priority: int = 0
    created: float = 0.0
    #: Submission order within `created`'s second (the members' smallest `PodInfo.sequence`).
    sequence: int = 0
    #: The nodes its members already placed run on (the survivors of a gang whose lost pods are
    #: replaced): the others go into their domain at each topology level (`scheduler.placement`).
    near: tuple[str, ...] = ()

    @classmethod
    def of(cls, pod: PodInfo) -> Gang:
        return cls(
            key=pod.key,
            members=(pod,),
            min_member=1,
            topology_policy=pod.topology_policy,
            topology_level=pod.topology_level,
            priority=pod.priority,
            created=pod.created,
            sequence=pod.sequence,
        )

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def opportunistic(self) -> bool:
        """Only an elastic job's surplus: it takes idle room, never holds nodes nor evicts."""
        return bool(self.members) and all(p.surplus for p in self.members)

    @property
    def namespace(self) -> str:
        """The namespace of its members (a gang never spans namespaces), else its key's."""
        return self.members[0].namespace if self.members else self.key.partition("/")[0]

    @property
    def tenant(self) -> str | None:
        """The tenant a member names (an AIJob's pods all name the same), if any; worked out once
        (queue orderings ask for it at every comparison). Not `cached_property`: on Python 3.11 it
        takes a lock on every first access, which shows in the core cycle's cost."""
        found = self.__dict__.get("_tenant", _UNKNOWN)
        if found is _UNKNOWN:
            found = next((m.tenant for m in self.members if m.tenant), None)
            object.__setattr__(self, "_tenant", found)
        return cast("str | None", found)

    def roles(self) -> list[list[PodInfo]]:
        """Members grouped by template (identical requests and constraints), in first-seen order."""
        if len(self.members) == 1:
            return [[self.members[0]]]
        groups: dict[tuple[object, ...], list[PodInfo]] = {}
        for pod in self.members:
            groups.setdefault(pod.template_key, []).append(pod)
        return list(groups.values())

    def total_gpus(self) -> int:
        return sum(p.gpus for p in self.members)

    @property
    def submitted(self) -> tuple[float, int, str]:
        """The gang's place in submission order: creation time, sequence, then (for a total order
        only) the key."""
        return (self.created, self.sequence, self.key)


@dataclass(frozen=True, slots=True)
class PodPlacement:
    """Where one pod goes and which GPUs it gets (`gpu_mask` bits; UUIDs for the binding).

    A pod sharing a GPU or holding a MIG instance gets one GPU in `gpu_mask`/`gpu_ids`, with the
    milli and memory granted there (`gpu_milli`, `gpu_memory`) or its instance's place
    (`mig`: GPU index and first memory slot; `mig_slots`: the memory slots it holds, bit i slot i).
    """

    pod: PodInfo
    node: str
    slot: int
    gpu_mask: int = 0
    gpu_ids: tuple[str, ...] = ()
    gpu_milli: int = 0
    gpu_memory: int = 0
    mig: tuple[int, int] | None = None
    mig_slots: int = 0

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.gpu_mask.bit_length()) if self.gpu_mask >> i & 1)


@dataclass(frozen=True, slots=True)
class GangPlacement:
    gang: Gang
    pods: tuple[PodPlacement, ...]
    #: The topology domain the gang landed in, e.g. ("rack", "r12"), for explanations and metrics.
    domain: tuple[str, str] = ("cluster", "")
