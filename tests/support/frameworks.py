"""What each job framework's controller makes of one of its objects, for tests: the pods (and a
Volcano job's PodGroup), shaped as that controller shapes them (names, labels, annotations,
owner references, fields), so that aisched meets framework pods without the framework running.

Sources of the shapes: the Job controller (pkg/controller/job: `<job>-<index>-<suffix>` names,
`batch.kubernetes.io/*` labels and the completion-index annotation), JobSet
(`jobset.sigs.k8s.io/*` labels on Jobs named `<jobset>-<replicatedJob>-<index>`), KubeRay
(`ray.io/*` labels, the RayCluster as controller owner), LeaderWorkerSet (leader `<lws>-<group>`,
workers `<lws>-<group>-<worker>`, the size annotation) and Volcano's job controller (PodGroup
`<job>-<uid>`, pods `<job>-<task>-<index>` annotated with the group name).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any, Final

import yaml

from aisched.kube.client import JsonObject, KubeClient

__all__ = ["FRAMEWORK_CRDS", "ControllerOutput", "controller_output", "install_crds", "path_of"]

FRAMEWORK_CRDS: Final = Path(__file__).with_name("framework-crds.yaml")
_PLURALS: Final = {
    "Pod": "pods",
    "Job": "jobs",
    "PodGroup": "podgroups",
    "Workload": "workloads",
    "JobSet": "jobsets",
    "RayCluster": "rayclusters",
    "LeaderWorkerSet": "leaderworkersets",
    "Namespace": "namespaces",
    "CustomResourceDefinition": "customresourcedefinitions",
}

ControllerOutput = tuple[list[JsonObject], list[list[JsonObject]]]  # (other objects, pods by gang)


def path_of(obj: JsonObject, *, named: bool = False) -> str:
    """The REST collection of `obj` (with `named`: the object itself)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    scope = f"/namespaces/{namespace}" if namespace else ""
    path = f"{prefix}{scope}/{_PLURALS[kind]}"
    return f"{path}/{obj['metadata']['name']}" if named else path


async def install_crds(kube: KubeClient) -> None:
    for crd in yaml.safe_load_all(FRAMEWORK_CRDS.read_text()):
        if crd is not None:
            await kube.post(path_of(crd), crd)


def _suffix(*parts: object) -> str:
    """A stable 5-character suffix, as the controllers' generateName gives a random one."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:5]


def _owner(obj: JsonObject) -> JsonObject:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _pod(
    template: JsonObject,
    *,
    name: str,
    namespace: str,
    owner: JsonObject | None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> JsonObject:
    template = copy.deepcopy(template)
    meta = template.get("metadata") or {}
    spec = template["spec"]
    spec.setdefault("restartPolicy", "Never")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(meta.get("labels") or {}), **(labels or {})},
            "annotations": {**(meta.get("annotations") or {}), **(annotations or {})},
            "ownerReferences": [owner] if owner is not None else [],
        },
        "spec": spec,
    }


def _job_pods(job: JsonObject, *, extra_labels: dict[str, str] | None = None) -> list[JsonObject]:
    """The pods the Job controller starts for `job` (as stored: it has its uid)."""
    spec, meta = job["spec"], job["metadata"]
    name, uid = meta["name"], meta["uid"]
    parallelism = spec.get("parallelism", 1)
    count = min(parallelism, spec["completions"]) if spec.get("completions") is not None else parallelism
    indexed = spec.get("completionMode") == "Indexed"
    pods = []
    for index in range(count):
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
            **(extra_labels or {}),
        }
        annotations = {}
        pod_name = f"{name}-{_suffix(uid, index)}"
        if indexed:
            labels["batch.kubernetes.io/job-completion-index"] = str(index)
            annotations["batch.kubernetes.io/job-completion-index"] = str(index)
            pod_name = f"{name}-{index}-{_suffix(uid, index)}"
        pod = _pod(
            spec["template"],
            name=pod_name,
            namespace=meta["namespace"],
            owner=_owner(job),
            labels=labels,
            annotations=annotations,
        )
        if indexed:
            pod["spec"]["hostname"] = f"{name}-{index}"
        pods.append(pod)
    return pods


def _jobset_jobs(jobset: JsonObject) -> list[JsonObject]:
    """The Jobs the JobSet controller creates (Indexed, each owned by the JobSet)."""
    meta = jobset["metadata"]
    jobs = []
    for replicated in jobset["spec"]["replicatedJobs"]:
        for index in range(replicated.get("replicas", 1)):
            labels = {
                "jobset.sigs.k8s.io/jobset-name": meta["name"],
                "jobset.sigs.k8s.io/replicatedjob-name": replicated["name"],
                "jobset.sigs.k8s.io/replicatedjob-replicas": str(replicated.get("replicas", 1)),
                "jobset.sigs.k8s.io/job-index": str(index),
                "jobset.sigs.k8s.io/restart-attempt": "0",
            }
            spec = copy.deepcopy(replicated["template"]["spec"])
            spec["completionMode"] = "Indexed"
            template_meta = spec["template"].setdefault("metadata", {})
            template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
            template_meta["annotations"] = {**(template_meta.get("annotations") or {}), **labels}
            jobs.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": f"{meta['name']}-{replicated['name']}-{index}",
                        "namespace": meta["namespace"],
                        "labels": labels,
                        "ownerReferences": [_owner(jobset)],
                    },
                    "spec": spec,
                }
            )
    return jobs


def _raycluster_pods(cluster: JsonObject) -> list[JsonObject]:
    meta, spec = cluster["metadata"], cluster["spec"]
    name, namespace, owner = meta["name"], meta["namespace"], _owner(cluster)
    head_labels = {
        "ray.io/cluster": name,
        "ray.io/node-type": "head",
        "ray.io/group": "headgroup",
        "ray.io/is-ray-node": "yes",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    pods = [
        _pod(
            spec["headGroupSpec"]["template"],
            name=f"{name}-head-{_suffix(name, 'head')}",
            namespace=namespace,
            owner=owner,
            labels=head_labels,
        )
    ]
    for group in spec.get("workerGroupSpecs", []):
        for replica in range(group.get("replicas", 0) * group.get("numOfHosts", 1)):
            labels = {**head_labels, "ray.io/node-type": "worker", "ray.io/group": group["groupName"]}
            pods.append(
                _pod(
                    group["template"],
                    name=f"{name}-{group['groupName']}-worker-{_suffix(name, group['groupName'], replica)}",
                    namespace=namespace,
                    owner=owner,
                    labels=labels,
                )
            )
    return pods


def _lws_groups(lws: JsonObject) -> list[list[JsonObject]]:
    meta, spec = lws["metadata"], lws["spec"]
    name, namespace = meta["name"], meta["namespace"]
    template = spec["leaderWorkerTemplate"]
    size = template["size"]
    groups = []
    for group in range(spec.get("replicas", 1)):
        labels = {
            "leaderworkerset.sigs.k8s.io/name": name,
            "leaderworkerset.sigs.k8s.io/group-index": str(group),
            "leaderworkerset.sigs.k8s.io/group-key": _suffix(name, group),
        }
        annotations = {"leaderworkerset.sigs.k8s.io/size": str(size)}
        leader_set = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": f"sts-{name}"}
        worker_set = {**leader_set, "name": f"{name}-{group}", "uid": f"sts-{name}-{group}"}
        leader = _pod(
            template.get("leaderTemplate") or template["workerTemplate"],
            name=f"{name}-{group}",
            namespace=namespace,
            owner={**leader_set, "controller": True},
            labels={**labels, "leaderworkerset.sigs.k8s.io/worker-index": "0", "role": "leader"},
            annotations=annotations,
        )
        workers = [
            _pod(
                template["workerTemplate"],
                name=f"{name}-{group}-{worker}",
                namespace=namespace,
                owner={**worker_set, "controller": True},
                labels={**labels, "leaderworkerset.sigs.k8s.io/worker-index": str(worker)},
                annotations={**annotations, "leaderworkerset.sigs.k8s.io/leader-name": f"{name}-{group}"},
            )
            for worker in range(1, size)
        ]
        groups.append([leader, *workers])
    return groups


def _volcano(job: JsonObject) -> ControllerOutput:
    meta, spec = job["metadata"], job["spec"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    group = f"{name}-{uid}"
    podgroup = {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "PodGroup",
        "metadata": {"name": group, "namespace": namespace, "ownerReferences": [_owner(job)]},
        "spec": {"minMember": spec["minAvailable"], "queue": spec.get("queue", "default")},
    }
    pods = []
    for task in spec["tasks"]:
        for index in range(task.get("replicas", 1)):
            template = copy.deepcopy(task["template"])
            template["spec"]["schedulerName"] = spec.get("schedulerName", "volcano")
            pods.append(
                _pod(
                    template,
                    name=f"{name}-{task['name']}-{index}",
                    namespace=namespace,
                    owner=_owner(job),
                    labels={
                        "volcano.sh/job-name": name,
                        "volcano.sh/job-namespace": namespace,
                        "volcano.sh/task-spec": task["name"],
                        "volcano.sh/queue-name": spec.get("queue", "default"),
                    },
                    annotations={
                        "scheduling.k8s.io/group-name": group,
                        "volcano.sh/job-name": name,
                        "volcano.sh/task-spec": task["name"],
                        "volcano.sh/task-index": str(index),
                    },
                )
            )
    return [podgroup], [pods]


def controller_output(obj: JsonObject) -> ControllerOutput:
    """What the controller of stored object `obj` creates next: other objects (created first), and
    the pods by gang. Objects no controller acts on (PodGroups, Workloads, Pods) give nothing."""
    kind, group = obj["kind"], obj["apiVersion"].split("/")[0]
    if kind == "Job" and obj["apiVersion"] == "batch/v1":
        return [], [_job_pods(obj)]
    if kind == "JobSet":
        return _jobset_jobs(obj), []  # then each stored Job's pods, by the Job controller
    if kind == "RayCluster":
        return [], [_raycluster_pods(obj)]
    if kind == "LeaderWorkerSet":
        return [], _lws_groups(obj)
    if kind == "Job" and group == "batch.volcano.sh":
        return _volcano(obj)
    return [], []


def jobset_member(job: JsonObject) -> bool:
    """Whether a stored Job is one a JobSet made (its pods then form the JobSet's gang)."""
    labels: dict[str, Any] = job["metadata"].get("labels") or {}
    return "jobset.sigs.k8s.io/jobset-name" in labels
