"""The objects one attempt of an AIJob is made of. Pure: no I/O.

`job_pods`: one pod per replica of every role, all in one gang (the placement annotations the
scheduler reads), with the PyTorch rendezvous variables set (`WORLD_SIZE`, `RANK` with the
master first, `MASTER_ADDR`, `MASTER_PORT`); `job_service`: the headless Service through which
`MASTER_ADDR` resolves. Each pod carries the attempt it belongs to (`aisched.io/attempt`), the
job's submission sequence (`aisched.io/queue-sequence`), its class (the job's `aisched.io/job-class`
label) and its runtime limit (`spec.activeDeadlineSeconds`, from `spec.runtimeLimitSeconds`).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Final

from aisched.api import keys
from aisched.api.aijob import AIJob, AIJobSpec
from aisched.api.objects import ObjectView
from aisched.controllers.aijob.admission import Demand
from aisched.framework.types import PodInfo
from aisched.observability.tracing import context_of
from aisched.quota import quota_usage

__all__ = [
    "ANNOTATION_ATTEMPT",
    "DEFAULT_MASTER_PORT",
    "EPOCH_VARIABLE",
    "job_demand",
    "job_pods",
    "job_service",
    "master_role",
    "pod_name",
    "pod_names",
    "role_sizes",
    "surplus_names",
]

ANNOTATION_ATTEMPT: Final = "aisched.io/attempt"  # one of `keys.RESERVED_POD_KEYS`
DEFAULT_MASTER_PORT: Final = 29500
EPOCH_VARIABLE: Final = "AISCHED_RENDEZVOUS_EPOCH"
_EPOCH_ENV: Final = {
    "name": EPOCH_VARIABLE,
    "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{keys.ANNOTATION_RENDEZVOUS_EPOCH}']"}},
}

_JOB_API_VERSION: Final = "aisched.io/v1alpha1"


def master_role(spec: AIJobSpec) -> str:
    """The role whose first pod hosts the rendezvous: `master` if there is one, else the first role."""
    names = [r.name for r in spec.replicas]
    return "master" if "master" in names else names[0]


def _ordered_roles(spec: AIJobSpec) -> list[int]:
    """Indexes of `spec.replicas`, the master role first, so that the master pod gets RANK 0."""
    master = master_role(spec)
    return sorted(range(len(spec.replicas)), key=lambda i: spec.replicas[i].name != master)


def pod_name(job: str, role: str, index: int) -> str:
    return f"{job}-{role}-{index}"


def _env(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _owner(job: ObjectView) -> dict[str, Any]:
    """The owner reference that makes `job` the controller of what it is made of."""
    return {
        "apiVersion": _JOB_API_VERSION,
        "kind": "AIJob",
        "name": job.name,
        "uid": job.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_pods(
    obj: Mapping[str, Any],
    job: AIJob,
    *,
    attempt: int,
    sequence: int,
    scheduler_name: str = keys.SCHEDULER_NAME,
    only: Collection[str] | None = None,
    epoch: int = 0,
    trace_context: str | None = None,
) -> list[dict[str, Any]]:
    """The pods of `job` for `attempt` (those named in `only`, when given), built from the raw
    object `obj` (whose templates keep every field, including those the models do not describe);
    `sequence` is the job's place in submission order (its `status.queueSequence`); `epoch` its
    rendezvous epoch (`status.replacements`), which the pods of a `Replace` job carry as an
    annotation and their containers read as AISCHED_RENDEZVOUS_EPOCH (the downward API);
    `trace_context` the job's trace (`status.traceContext`), which they carry as an annotation.

    `restartPolicy` is always Never: a failed container fails its pod, and the controller restarts
    the whole gang (a kubelet restarting one container would rejoin a rendezvous nobody else is in,
    and the pod would never end for the controller to see).

    What aisched sets wins over the template: the queue sequence (a template cannot jump the
    queue), and the class, which is the job's label alone (a template's own is dropped, so that
    every pod of the gang is of one class). A template's `activeDeadlineSeconds` is kept only when
    it is shorter than the job's runtime limit.
    """
    view = ObjectView(obj)
    name, namespace = view.name, view.namespace
    spec = job.spec
    raw_roles = {r["name"]: r for r in view.spec["replicas"]}
    world_size = sum(role_sizes(spec, r.name)[1] for r in spec.replicas)  # an elastic role at its most
    master = master_role(spec)
    master_addr = f"{pod_name(name, master, 0)}.{name}.{namespace}.svc"
    owner = _owner(view)
    annotations = _placement_annotations(spec)
    annotations[ANNOTATION_ATTEMPT] = str(attempt)
    annotations[keys.ANNOTATION_QUEUE_SEQUENCE] = str(sequence)
    if trace_context is not None and context_of(trace_context) is not None:
        annotations[keys.ANNOTATION_TRACE_CONTEXT] = trace_context  # the job's trace, its spans' parent
    replaceable = spec.restart.policy == "Replace"
    if replaceable:
        annotations[keys.ANNOTATION_RENDEZVOUS_EPOCH] = str(epoch)
    job_class = view.labels.get(keys.LABEL_JOB_CLASS)
    pods = []
    first_rank = 0
    for role_index in _ordered_roles(spec):
        role = spec.replicas[role_index]
        core, span = role_sizes(spec, role.name)
        template = ObjectView(raw_roles[role.name].get("template") or {})
        indexes = range(core) if only is None else _indexes(only, name, role.name, span)
        for index in indexes:
            rank = first_rank + index
            pod_meta = copy.deepcopy(dict(template.meta))
            pod_meta.pop("name", None)
            pod_meta.pop("generateName", None)
            pod_meta["name"] = pod_name(name, role.name, index)
            pod_meta["namespace"] = namespace
            pod_meta["labels"] = {
                **(pod_meta.get("labels") or {}),
                keys.LABEL_JOB: name,
                keys.LABEL_ROLE: role.name,
                keys.LABEL_INDEX: str(index),
            }
            if job_class:
                pod_meta["labels"][keys.LABEL_JOB_CLASS] = job_class
            else:
                pod_meta["labels"].pop(keys.LABEL_JOB_CLASS, None)
            pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **annotations}
            if index >= core:  # above the elastic role's minimum: a gang of its own, taking idle room
                _surplus(pod_meta, spec.priority)
            pod_meta["ownerReferences"] = [owner]
            pod_spec = copy.deepcopy(dict(template.spec))
            pod_spec["schedulerName"] = scheduler_name
            pod_spec["restartPolicy"] = "Never"
            pod_spec["hostname"] = pod_meta["name"]
            pod_spec["subdomain"] = name
            _limit_runtime(pod_spec, spec.runtime_limit_seconds)
            _stop_with(pod_spec, spec)
            variables = {
                "WORLD_SIZE": str(world_size),
                "RANK": str(rank),
                "MASTER_ADDR": master_addr,
                "MASTER_PORT": str(DEFAULT_MASTER_PORT),
                "AISCHED_JOB_NAME": name,
                "AISCHED_ROLE": role.name,
                "AISCHED_ROLE_INDEX": str(index),
            }
            _add_env(pod_spec, variables, epoch=replaceable)
            pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec})
        first_rank += span
    return pods


def _add_env(pod_spec: dict[str, Any], variables: Mapping[str, str], *, epoch: bool) -> None:
    """Give every container `variables` (and, with `epoch`, AISCHED_RENDEZVOUS_EPOCH from the
    downward API) unless it sets them itself."""
    for container in [*pod_spec.get("containers", []), *pod_spec.get("initContainers", [])]:
        env = container.setdefault("env", [])
        present = {e.get("name") for e in env}
        env.extend(_env(k, v) for k, v in variables.items() if k not in present)
        if epoch and EPOCH_VARIABLE not in present:
            env.append(copy.deepcopy(_EPOCH_ENV))


def _indexes(names: Collection[str], job: str, role: str, count: int) -> list[int]:
    """The indexes of role `role`'s pods among `names` (read from the names: the cost is that of
    `names`, not of the role's count)."""
    prefix = f"{job}-{role}-"
    found = set()
    for name in names:
        rest = name[len(prefix) :] if name.startswith(prefix) else ""
        if rest.isdigit() and str(int(rest)) == rest and int(rest) < count:
            found.add(int(rest))
    return sorted(found)


def role_sizes(spec: AIJobSpec, role: str) -> tuple[int, int]:
    """A role's pods placed together with the job, and all it may have: its count, or for the
    elastic role its minReplicas and maxReplicas (the ones above the minimum are its surplus)."""
    found = next(r for r in spec.replicas if r.name == role)
    if spec.elastic is not None and spec.elastic.role == role:
        return spec.elastic.min_replicas, spec.elastic.max_replicas
    return found.count, found.count


def surplus_names(job: AIJob) -> Iterator[str]:
    """The names of the elastic role's pods above its minimum, in order, made as they are read (a
    caller wanting a few pays for those, not for maxReplicas); none for a job that is not elastic."""
    spec, name = job.spec, job.metadata.name or ""
    if spec.elastic is None:
        return
    core, span = role_sizes(spec, spec.elastic.role)
    for index in range(core, span):
        yield pod_name(name, spec.elastic.role, index)


def _surplus(meta: dict[str, Any], priority: int) -> None:
    """An elastic job's pod above its minimum: a gang of one (the pod's own name), a step below the
    job's priority and always preemptible, so it only ever takes idle room and goes first."""
    # A gang name no AIJob can have (`_` is in no DNS name), unique to the pod.
    meta["labels"][keys.LABEL_GANG] = f"surplus_{hashlib.sha256(meta['name'].encode()).hexdigest()[:16]}"
    meta["annotations"].update(
        {
            keys.ANNOTATION_ELASTIC_SURPLUS: "true",
            keys.ANNOTATION_GANG_MIN_MEMBER: "1",
            keys.ANNOTATION_PRIORITY: str(priority - 1),
            keys.ANNOTATION_PREEMPTIBLE: "true",
        }
    )


def pod_names(job: AIJob) -> list[str]:
    """The names of the job's pods placed together (an elastic role's up to its minimum), role by
    role (cheap: no pod is built)."""
    name, spec = job.metadata.name or "", job.spec
    return [pod_name(name, r.name, i) for r in spec.replicas for i in range(role_sizes(spec, r.name)[0])]


def job_demand(obj: Mapping[str, Any], job: AIJob) -> Demand:
    """What the job asks of its tenant's quota and of the cluster, from one pod of each role (its
    pods differ only in their index), so that it costs the same for 1 pod or 10,000.

    Raises ValueError when a pod the job would make cannot be read as the scheduler reads it."""
    name = job.metadata.name or ""
    firsts = {pod_name(name, role.name, 0): role_sizes(job.spec, role.name)[0] for role in job.spec.replicas}
    total: dict[str, int] = {}
    pod_gpus = 0
    for pod in job_pods(obj, job, attempt=0, sequence=0, only=firsts):
        info = PodInfo.from_manifest(pod)
        count = firsts[pod["metadata"]["name"]]
        for resource, amount in quota_usage(info).items():
            total[resource] = total.get(resource, 0) + amount * count
        pod_gpus = max(pod_gpus, info.gpus)
    models = frozenset(job.spec.gpu.models) if job.spec.gpu is not None and job.spec.gpu.models else None
    return Demand(
        total=total,
        pod_gpus=pod_gpus,
        models=models,
        priority=job.spec.priority,
        preemptible=job.spec.preemptible,
    )


def _limit_runtime(pod_spec: dict[str, Any], limit: int | None) -> None:
    """Bound the pod's run to the job's runtime limit, unless the template bounds it tighter."""
    if limit is None:
        return
    own = pod_spec.get("activeDeadlineSeconds")
    if isinstance(own, int) and not isinstance(own, bool) and 0 < own <= limit:
        return
    pod_spec["activeDeadlineSeconds"] = limit


def _stop_with(pod_spec: dict[str, Any], spec: AIJobSpec) -> None:
    """For `checkpoint.method: Signal`, the job's signal is each container's stop signal
    (`lifecycle.stopSignal`, Kubernetes 1.33+ with ContainerStopSignals), which the API server
    accepts only with `spec.os.name` set; and its grace period is the pods' termination grace
    period unless the template sets one. Deleting a pod then sends that signal, and SIGKILL once
    the grace period is over."""
    checkpoint = spec.checkpoint
    if checkpoint.method != "Signal" or checkpoint.signal is None:
        return
    pod_spec.setdefault("terminationGracePeriodSeconds", checkpoint.grace_period_seconds)
    if not isinstance(pod_spec.get("os"), dict) or not pod_spec["os"].get("name"):
        pod_spec["os"] = {"name": "linux"}
    for container in pod_spec.get("containers", []):
        lifecycle = container.get("lifecycle")
        container["lifecycle"] = {
            **(lifecycle if isinstance(lifecycle, dict) else {}),
            "stopSignal": checkpoint.signal,
        }


def _placement_annotations(spec: AIJobSpec) -> dict[str, str]:
    """What the scheduler reads from each pod: gang size, topology constraint, allowed GPU models."""
    out = {
        keys.ANNOTATION_GANG_MIN_MEMBER: str(spec.min_member()),
        keys.ANNOTATION_TOPOLOGY_POLICY: spec.topology.policy,
    }
    if spec.topology.level is not None:
        out[keys.ANNOTATION_TOPOLOGY_LEVEL] = spec.topology.level
    if spec.tenant is not None:
        out[keys.ANNOTATION_TENANT] = spec.tenant
    if spec.priority:
        out[keys.ANNOTATION_PRIORITY] = str(spec.priority)
    out[keys.ANNOTATION_PREEMPTIBLE] = "true" if spec.preemptible else "false"
    if spec.checkpoint.method != "None":
        out[keys.ANNOTATION_CHECKPOINT_METHOD] = spec.checkpoint.method
        out[keys.ANNOTATION_CHECKPOINT_GRACE] = str(spec.checkpoint.grace_period_seconds)
    if spec.gpu is not None and spec.gpu.models:
        out[keys.ANNOTATION_GPU_MODELS] = ",".join(spec.gpu.models)
    if spec.gpu is not None and spec.gpu.milli is not None:
        out[keys.ANNOTATION_GPU_MILLI] = str(spec.gpu.milli)
    if spec.gpu is not None and spec.gpu.memory is not None:
        out[keys.ANNOTATION_GPU_MEMORY] = str(spec.gpu.memory)
    if spec.gpu is not None and spec.gpu.mig_profile is not None:
        out[keys.ANNOTATION_MIG] = spec.gpu.mig_profile
    return out


def job_service(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The headless Service giving every pod of the job a DNS name (`<pod>.<job>.<ns>.svc`)."""
    job = ObjectView(obj)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": job.name,
            "namespace": job.namespace,
            "labels": {keys.LABEL_JOB: job.name},
            "ownerReferences": [_owner(job)],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {keys.LABEL_JOB: job.name},
            "ports": [{"name": "rendezvous", "port": DEFAULT_MASTER_PORT, "targetPort": DEFAULT_MASTER_PORT}],
        },
    }
