"""Gangs that other job frameworks declare: which gang a pod belongs to, read from the labels,
annotations, fields and owners those frameworks put on the pods they create, and how many pods
that gang needs, read from the object that says so.

- coscheduling: label `scheduling.x-k8s.io/pod-group`; PodGroup `spec.minMember`.
- Volcano: annotation `scheduling.k8s.io/group-name`; PodGroup `spec.minMember`.
- Kubernetes PodGroup (1.36): `spec.schedulingGroup.podGroupName`; PodGroup
  `spec.schedulingPolicy.gang.minCount`.
- Kubernetes Workload (1.35): `spec.workloadRef` (name, podGroup, podGroupReplicaKey); the
  Workload's `spec.podGroups[].policy.gang.minCount`, one gang per replica key.
- LeaderWorkerSet: labels `leaderworkerset.sigs.k8s.io/name` and `.../group-index`; one gang per
  group (leader and workers) of the LeaderWorkerSet's `leaderWorkerTemplate.size`. None under
  `startupPolicy: LeaderReady` or exclusive topology, where the workers are only made once the
  leader runs or is placed: a gang would wait for them forever.
- JobSet: label `jobset.sigs.k8s.io/jobset-name`; the sum over replicated jobs of replicas times
  each Job's pods. A JobSet that starts its replicated jobs in order (`startupPolicyOrder:
  InOrder`, or `dependsOn`) is one gang per replicated job (`.../replicatedjob-name`) instead.
- KubeRay: a RayCluster as the pod's controller owner; the head plus each worker group's desired
  replicas (its minReplicas under in-tree autoscaling, as KubeRay sizes its own gangs) times its
  hosts.
- Indexed Job: a Job as controller owner and the `batch.kubernetes.io/job-completion-index`
  annotation; min(parallelism, completions).

The first that matches decides; aisched's own `aisched.io/gang` label comes before them all.
A basic (not gang) policy, a Job that is not Indexed, and a pod none of these name are scheduled
one by one. Every object is looked up in the pod's own namespace, so a pod joins only gangs of
the namespace it was made in, whose tenant it is charged to: no label reaches another tenant.

Gang ids hold a `:`, which no label value may, so they never meet an `aisched.io/gang` label.
Pure: no I/O. Sizes are read from objects the API server holds and are still checked here, each
error naming its field: an operator with a CRD installed without a schema sends what it likes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aisched.api.objects import ObjectView, decimal

__all__ = [
    "FRAMEWORKS",
    "NAMES",
    "Framework",
    "FrameworkGang",
    "SizeRef",
    "Sizes",
    "framework_gang",
    "frameworks",
    "trimmed",
]

_INT32_MAX: Final = 2**31 - 1

#: Sizes read from one object: a part (a Workload's pod group; "" for the whole object) -> the pods
#: its gang needs, or None for a part that is not a gang.
Sizes = Mapping[str, int | None]


@dataclass(frozen=True, slots=True)
class Framework:
    """A kind of object that says how many pods its gangs need."""

    #: The name settings use to turn it on or off.
    name: str
    #: `Kind.group`, as gang ids and messages name it.
    kind: str
    #: The collection an informer lists and watches.
    path: str
    #: Its sizes, raising ValueError (naming the field) for one that cannot be read.
    sizes: Callable[[Mapping[str, Any]], Sizes]
    #: What its parts are called, in messages.
    part: str = "part"


@dataclass(frozen=True, slots=True)
class SizeRef:
    """Where the size of a pod's gang is written: object `name` of `kind`, in `namespace`."""

    kind: str
    namespace: str
    name: str
    part: str = ""

    def __str__(self) -> str:
        within = f" (pod group {self.part})" if self.part else ""
        return f"{self.kind} {self.namespace}/{self.name}{within}"


@dataclass(frozen=True, slots=True)
class FrameworkGang:
    """The gang a framework put a pod in: its id within the namespace, the object to read its
    size from (`ref`), and the finer part it belongs to when that object splits its pods into
    several gangs (`sub`: a JobSet's replicated job)."""

    gang: str
    ref: SizeRef
    sub: str = ""


def _count(value: object, field: str, *, default: int | None = None) -> int:
    """A non-negative int32 at `field`; `default` when absent."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT32_MAX:
        raise ValueError(f"{field}: must be an integer from 0 to {_INT32_MAX}, not {value!r}")
    return value


def _map(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{field}: must be an object")
    return value


def _list(value: object, field: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{field}: must be a list")
    return value


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(obj.get("spec"), "spec")


def _whole(size: int) -> Sizes:
    return {"": max(1, min(size, _INT32_MAX))}


def _min_member(obj: Mapping[str, Any]) -> Sizes:
    """coscheduling's and Volcano's PodGroup: `spec.minMember` (absent or 0: one pod at a time)."""
    return _whole(_count(_spec(obj).get("minMember"), "spec.minMember", default=1))


def _gang_policy(policy: Mapping[str, Any], field: str) -> int | None:
    """A Kubernetes scheduling policy: `gang.minCount`, or None for `basic`."""
    gang = policy.get("gang")
    if gang is None:
        if "basic" in policy:
            return None
        raise ValueError(f"{field}: must set gang or basic")
    count = _count(_map(gang, f"{field}.gang").get("minCount"), f"{field}.gang.minCount")
    if count < 1:
        raise ValueError(f"{field}.gang.minCount: must be a positive integer")
    return count


def _k8s_podgroup(obj: Mapping[str, Any]) -> Sizes:
    """scheduling.k8s.io/v1alpha2 PodGroup: `spec.schedulingPolicy`."""
    policy = _map(_spec(obj).get("schedulingPolicy"), "spec.schedulingPolicy")
    return {"": _gang_policy(policy, "spec.schedulingPolicy")}


def _workload(obj: Mapping[str, Any]) -> Sizes:
    """scheduling.k8s.io/v1alpha1 Workload: each of `spec.podGroups` by name."""
    sizes: dict[str, int | None] = {}
    for i, item in enumerate(_list(_spec(obj).get("podGroups"), "spec.podGroups")):
        field = f"spec.podGroups[{i}]"
        group = _map(item, field)
        name = group.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{field}.name: must be a non-empty string")
        sizes[name] = _gang_policy(_map(group.get("policy"), f"{field}.policy"), f"{field}.policy")
    return sizes


def _pods_per_job(job_spec: Mapping[str, Any], field: str) -> int:
    """The pods a Job runs at once: its parallelism (default 1), at most its completions."""
    parallelism = _count(job_spec.get("parallelism"), f"{field}.parallelism", default=1)
    completions = job_spec.get("completions")
    if completions is None:
        return parallelism
    return min(parallelism, _count(completions, f"{field}.completions"))


def _jobset(obj: Mapping[str, Any]) -> Sizes:
    """jobset.x-k8s.io JobSet: every replicated job's replicas times the pods of each of its Jobs;
    one gang per replicated job when the JobSet starts them in order (a later one is created only
    once those before it are ready, so one gang of all would never fill)."""
    spec = _spec(obj)
    startup = _map(spec.get("startupPolicy"), "spec.startupPolicy")
    in_order = startup.get("startupPolicyOrder") == "InOrder"
    parts: dict[str, int | None] = {}
    for i, item in enumerate(_list(spec.get("replicatedJobs"), "spec.replicatedJobs")):
        field = f"spec.replicatedJobs[{i}]"
        replicated = _map(item, field)
        name = replicated.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{field}.name: must be a non-empty string")
        replicas = _count(replicated.get("replicas"), f"{field}.replicas", default=1)
        template = _map(replicated.get("template"), f"{field}.template")
        job_spec = _map(template.get("spec"), f"{field}.template.spec")
        parts[name] = max(1, min(replicas * _pods_per_job(job_spec, f"{field}.template.spec"), _INT32_MAX))
        in_order = in_order or bool(replicated.get("dependsOn"))
    if in_order:
        return parts
    return _whole(sum(n or 0 for n in parts.values()))


def _raycluster(obj: Mapping[str, Any]) -> Sizes:
    """ray.io RayCluster: the head and each worker group's desired replicas (replicas within
    [minReplicas, maxReplicas]; none for a suspended group), times its hosts per replica, as
    KubeRay sizes its own gangs."""
    spec = _spec(obj)
    autoscaling = spec.get("enableInTreeAutoscaling") is True
    total = 1 if spec.get("headGroupSpec") is not None else 0
    for i, item in enumerate(_list(spec.get("workerGroupSpecs"), "spec.workerGroupSpecs")):
        field = f"spec.workerGroupSpecs[{i}]"
        group = _map(item, field)
        if group.get("suspend") is True:
            continue
        low = _count(group.get("minReplicas"), f"{field}.minReplicas", default=0)
        high = _count(group.get("maxReplicas"), f"{field}.maxReplicas", default=_INT32_MAX)
        replicas = _count(group.get("replicas"), f"{field}.replicas", default=low)
        hosts = _count(group.get("numOfHosts"), f"{field}.numOfHosts", default=1)
        total += (low if autoscaling else max(low, min(replicas, high))) * hosts
    return _whole(total)


def _leaderworkerset(obj: Mapping[str, Any]) -> Sizes:
    """leaderworkerset.x-k8s.io LeaderWorkerSet: each group's `leaderWorkerTemplate.size`; no gang
    when the workers are made only after the leader is ready (`startupPolicy: LeaderReady`) or
    placed (the exclusive-topology annotation)."""
    spec = _spec(obj)
    annotations = _map(_map(obj.get("metadata"), "metadata").get("annotations"), "metadata.annotations")
    if spec.get("startupPolicy") == "LeaderReady" or ANNOTATION_LWS_EXCLUSIVE in annotations:
        return {"": None}
    template = _map(spec.get("leaderWorkerTemplate"), "spec.leaderWorkerTemplate")
    return _whole(_count(template.get("size"), "spec.leaderWorkerTemplate.size", default=1))


def _indexed_job(obj: Mapping[str, Any]) -> Sizes:
    """batch/v1 Job: an Indexed one's pods at once; a NonIndexed one is no gang."""
    spec = _spec(obj)
    if spec.get("completionMode") != "Indexed":
        return {"": None}
    return _whole(_pods_per_job(spec, "spec"))


COSCHEDULING: Final = Framework(
    "coscheduling",
    "PodGroup.scheduling.x-k8s.io",
    "/apis/scheduling.x-k8s.io/v1alpha1/podgroups",
    _min_member,
)
VOLCANO: Final = Framework(
    "volcano",
    "PodGroup.scheduling.volcano.sh",
    "/apis/scheduling.volcano.sh/v1beta1/podgroups",
    _min_member,
)
PODGROUP: Final = Framework(
    "podgroup",
    "PodGroup.scheduling.k8s.io",
    "/apis/scheduling.k8s.io/v1alpha2/podgroups",
    _k8s_podgroup,
)
WORKLOAD: Final = Framework(
    "workload",
    "Workload.scheduling.k8s.io",
    "/apis/scheduling.k8s.io/v1alpha1/workloads",
    _workload,
    "pod group",
)
LEADERWORKERSET: Final = Framework(
    "leaderworkerset",
    "LeaderWorkerSet.leaderworkerset.x-k8s.io",
    "/apis/leaderworkerset.x-k8s.io/v1/leaderworkersets",
    _leaderworkerset,
)
JOBSET: Final = Framework(
    "jobset",
    "JobSet.jobset.x-k8s.io",
    "/apis/jobset.x-k8s.io/v1alpha2/jobsets",
    _jobset,
    "replicated job",
)
RAYCLUSTER: Final = Framework("raycluster", "RayCluster.ray.io", "/apis/ray.io/v1/rayclusters", _raycluster)
JOB: Final = Framework("job", "Job.batch", "/apis/batch/v1/jobs", _indexed_job)
#: Every framework whose objects are read, in the order a pod's conventions are tried.
FRAMEWORKS: Final = (COSCHEDULING, VOLCANO, PODGROUP, WORKLOAD, LEADERWORKERSET, JOBSET, RAYCLUSTER, JOB)
NAMES: Final = frozenset(f.name for f in FRAMEWORKS)

LABEL_COSCHEDULING: Final = "scheduling.x-k8s.io/pod-group"
ANNOTATION_VOLCANO: Final = "scheduling.k8s.io/group-name"
LABEL_LWS_NAME: Final = "leaderworkerset.sigs.k8s.io/name"
LABEL_LWS_GROUP: Final = "leaderworkerset.sigs.k8s.io/group-index"
ANNOTATION_LWS_EXCLUSIVE: Final = "leaderworkerset.sigs.k8s.io/exclusive-topology"
LABEL_JOBSET: Final = "jobset.sigs.k8s.io/jobset-name"
LABEL_JOBSET_PART: Final = "jobset.sigs.k8s.io/replicatedjob-name"
ANNOTATION_JOB_INDEX: Final = "batch.kubernetes.io/job-completion-index"


#: Where a framework's object holds the pods' templates, the bulk of it and never read here.
_POD_TEMPLATE_KEYS: Final = frozenset({"template", "leaderTemplate", "workerTemplate"})
#: The deepest a pod template sits in a spec (a JobSet's: replicatedJobs[].template.spec.template);
#: below this a spec is kept as it is, so an object nested thousands deep costs no recursion.
_TEMPLATE_DEPTH: Final = 8


def trimmed(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a framework's object: its metadata (without managedFields) and its spec
    without the pod templates in it, which are most of a Job, a JobSet or a RayCluster: an
    informer of every Job in a cluster holds no pod spec."""
    meta = obj.get("metadata")
    kept = {k: v for k, v in meta.items() if k != "managedFields"} if isinstance(meta, Mapping) else {}
    out: dict[str, Any] = {"metadata": kept, "spec": _without_pod_templates(obj.get("spec"), _TEMPLATE_DEPTH)}
    for key in ("apiVersion", "kind"):
        if key in obj:
            out[key] = obj[key]
    return out


def _without_pod_templates(value: Any, depth: int) -> Any:
    if depth <= 0:
        return value
    if isinstance(value, Mapping):
        return {
            k: _without_pod_templates(v, depth - 1)
            for k, v in value.items()
            if not (k in _POD_TEMPLATE_KEYS and _is_pod_template(v))
        }
    if isinstance(value, list):
        return [_without_pod_templates(v, depth - 1) for v in value]
    return value


def _is_pod_template(value: Any) -> bool:
    spec = value.get("spec") if isinstance(value, Mapping) else None
    return isinstance(spec, Mapping) and "containers" in spec


def frameworks(names: frozenset[str] = NAMES) -> tuple[Framework, ...]:
    """The frameworks of `names` whose objects are read, in the order they are tried."""
    return tuple(f for f in FRAMEWORKS if f.name in names)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _by_object(framework: Framework, namespace: str, name: str, *parts: str, sub: str = "") -> FrameworkGang:
    """A gang whose size object `name` says (for `parts[0]` of it); later parts split it further."""
    ref = SizeRef(framework.kind, namespace, name, parts[0] if parts else "")
    path = "/".join((name, *(p for p in parts if p)))
    return FrameworkGang(gang=f"{framework.kind}:{path}", ref=ref, sub=sub)


def framework_gang(pod: Mapping[str, Any], names: frozenset[str] = NAMES) -> FrameworkGang | None:
    """The gang the frameworks of `names` put `pod` in (see the module's table), or None."""
    view = ObjectView(pod)
    labels, annotations, spec, namespace = view.labels, view.annotations, view.spec, view.namespace
    if COSCHEDULING.name in names and (group := _text(labels.get(LABEL_COSCHEDULING))):
        return _by_object(COSCHEDULING, namespace, group)
    if VOLCANO.name in names and (group := _text(annotations.get(ANNOTATION_VOLCANO))):
        return _by_object(VOLCANO, namespace, group)
    scheduling_group = spec.get("schedulingGroup")
    if (
        PODGROUP.name in names
        and isinstance(scheduling_group, Mapping)
        and (group := _text(scheduling_group.get("podGroupName")))
    ):
        return _by_object(PODGROUP, namespace, group)
    ref = spec.get("workloadRef")
    if WORKLOAD.name in names and isinstance(ref, Mapping):
        workload, group = _text(ref.get("name")), _text(ref.get("podGroup"))
        if workload and group:
            return _by_object(WORKLOAD, namespace, workload, group, _text(ref.get("podGroupReplicaKey")))
    if LEADERWORKERSET.name in names and (lws := _text(labels.get(LABEL_LWS_NAME))):
        index = decimal(labels.get(LABEL_LWS_GROUP))
        if index is not None:
            return _by_object(LEADERWORKERSET, namespace, lws, "", str(index))
    if JOBSET.name in names and (jobset := _text(labels.get(LABEL_JOBSET))):
        return _by_object(JOBSET, namespace, jobset, sub=_text(labels.get(LABEL_JOBSET_PART)))
    owner = view.controller_reference()
    if owner is None or not (owner_name := _text(owner.get("name"))):
        return None
    group_version = _text(owner.get("apiVersion"))
    if RAYCLUSTER.name in names and owner.get("kind") == "RayCluster" and group_version.startswith("ray.io/"):
        return _by_object(RAYCLUSTER, namespace, owner_name)
    if (
        JOB.name in names
        and owner.get("kind") == "Job"
        and group_version == "batch/v1"
        and ANNOTATION_JOB_INDEX in annotations
    ):
        return _by_object(JOB, namespace, owner_name)
    return None
