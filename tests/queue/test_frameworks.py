"""Gangs declared by other job frameworks: which gang a pod is in, read from the pod as each
framework's controller shapes it, and the gang sizes read from each framework's object."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from aisched.queue.frameworks import (
    COSCHEDULING,
    FRAMEWORKS,
    JOB,
    JOBSET,
    LEADERWORKERSET,
    NAMES,
    PODGROUP,
    RAYCLUSTER,
    VOLCANO,
    WORKLOAD,
    Framework,
    FrameworkGang,
    SizeRef,
    Sizes,
    framework_gang,
    frameworks,
    trimmed,
)

NS = "team-a"
INDEX = "batch.kubernetes.io/job-completion-index"
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP = "leaderworkerset.sigs.k8s.io/group-index"
LWS_SIZE = "leaderworkerset.sigs.k8s.io/size"
LWS_KIND = "LeaderWorkerSet.leaderworkerset.x-k8s.io"

Json = dict[str, Any]

# -- pods as each framework's controller makes them ------------------------------------------------


def owner(kind: str, api_version: str, name: str, *, controller: bool = True) -> Json:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": f"uid-{name}",
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def pod(
    *,
    namespace: str = NS,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owners: tuple[Json, ...] = (),
    **spec: Any,
) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p-0",
            "namespace": namespace,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
            "ownerReferences": list(owners),
        },
        "spec": {"schedulerName": "aisched", "containers": [{"name": "main", "image": "x"}], **spec},
    }


def coscheduling_pod(namespace: str = NS) -> Json:
    """A pod of the coscheduling plugin's PodGroup `pg-1` (owned by, say, a plain Job)."""
    return pod(
        namespace=namespace,
        labels={"scheduling.x-k8s.io/pod-group": "pg-1"},
        owners=(owner("Job", "batch/v1", "train"),),
    )


def volcano_pod(namespace: str = NS) -> Json:
    """A pod of Volcano job `vj`: its PodGroup is `vj-<uid>`, its owner a batch.volcano.sh Job."""
    return pod(
        namespace=namespace,
        labels={"volcano.sh/job-name": "vj", "volcano.sh/task-spec": "worker"},
        annotations={
            "scheduling.k8s.io/group-name": "vj-0f1e",
            "volcano.sh/job-name": "vj",
            "volcano.sh/task-index": "0",
        },
        owners=(owner("Job", "batch.volcano.sh/v1alpha1", "vj"),),
        schedulerName="volcano",
    )


def podgroup_pod(namespace: str = NS) -> Json:
    """Kubernetes 1.36: the pod names its PodGroup in `spec.schedulingGroup`."""
    return pod(namespace=namespace, schedulingGroup={"podGroupName": "pg-k8s"})


def workload_pod(namespace: str = NS, replica: str | None = "0") -> Json:
    """Kubernetes 1.35: the pod names its Workload and pod group in `spec.workloadRef`."""
    ref = {"name": "wl", "podGroup": "workers"}
    if replica is not None:
        ref["podGroupReplicaKey"] = replica
    return pod(namespace=namespace, workloadRef=ref)


def lws_pod(namespace: str = NS, *, group: str = "2", size: str = "4", worker: str = "0") -> Json:
    """A LeaderWorkerSet `lws` pod of group `group` (worker 0 is the leader), each owned by its
    StatefulSet, carrying the group's size."""
    labels = {
        LWS_NAME: "lws",
        LWS_GROUP: group,
        "leaderworkerset.sigs.k8s.io/worker-index": worker,
        "leaderworkerset.sigs.k8s.io/template-revision-hash": "abc",
    }
    statefulset = "lws" if worker == "0" else f"lws-{group}"
    return pod(
        namespace=namespace,
        labels=labels,
        annotations={LWS_SIZE: size},
        owners=(owner("StatefulSet", "apps/v1", statefulset),),
    )


def jobset_pod(namespace: str = NS) -> Json:
    """A pod of JobSet `js`: made by the Indexed Job `js-workers-0` the JobSet created, so it
    carries both the JobSet's labels and the Job's owner reference and completion index."""
    labels = {
        "jobset.sigs.k8s.io/jobset-name": "js",
        "jobset.sigs.k8s.io/replicatedjob-name": "workers",
        "jobset.sigs.k8s.io/job-index": "0",
        "batch.kubernetes.io/job-name": "js-workers-0",
        INDEX: "3",
    }
    return pod(
        namespace=namespace,
        labels=labels,
        annotations={**labels, INDEX: "3"},
        owners=(owner("Job", "batch/v1", "js-workers-0"),),
    )


def ray_pod(namespace: str = NS, api_version: str = "ray.io/v1") -> Json:
    return pod(
        namespace=namespace,
        labels={"ray.io/cluster": "rc", "ray.io/node-type": "worker", "ray.io/group": "gpu"},
        owners=(owner("RayCluster", api_version, "rc"),),
    )


def job_pod(
    namespace: str = NS, *, index: str | None = "1", controller: bool = True, api_version: str = "batch/v1"
) -> Json:
    """A pod of Indexed Job `train` (with `index` None: of a NonIndexed one)."""
    labels = {"batch.kubernetes.io/job-name": "train", "job-name": "train"}
    annotations = {}
    if index is not None:
        labels[INDEX] = index
        annotations[INDEX] = index
    return pod(
        namespace=namespace,
        labels=labels,
        annotations=annotations,
        owners=(owner("Job", api_version, "train", controller=controller),),
    )


def by_object(
    framework: Framework, gang: str, name: str, part: str = "", *, namespace: str = NS, sub: str = ""
) -> FrameworkGang:
    ref = SizeRef(framework.kind, namespace, name, part)
    return FrameworkGang(gang=f"{framework.kind}:{gang}", ref=ref, sub=sub)


# -- which gang a pod is in ------------------------------------------------------------------------

SHAPES: dict[str, tuple[Callable[..., Json], FrameworkGang]] = {
    "coscheduling": (coscheduling_pod, by_object(COSCHEDULING, "pg-1", "pg-1")),
    "volcano": (volcano_pod, by_object(VOLCANO, "vj-0f1e", "vj-0f1e")),
    "podgroup": (podgroup_pod, by_object(PODGROUP, "pg-k8s", "pg-k8s")),
    "workload": (workload_pod, by_object(WORKLOAD, "wl/workers/0", "wl", "workers")),
    "jobset": (jobset_pod, by_object(JOBSET, "js", "js", sub="workers")),
    "leaderworkerset": (lws_pod, by_object(LEADERWORKERSET, "lws/2", "lws")),
    "raycluster": (ray_pod, by_object(RAYCLUSTER, "rc", "rc")),
    "job": (job_pod, by_object(JOB, "train", "train")),
}
BY_OBJECT = sorted(SHAPES)


@pytest.mark.parametrize("shape", BY_OBJECT)
def test_each_frameworks_pod_is_in_the_gang_its_object_sizes(shape: str) -> None:
    make, expected = SHAPES[shape]
    assert framework_gang(make()) == expected


@pytest.mark.parametrize("shape", BY_OBJECT)
@pytest.mark.parametrize("namespace", ["team-a", "team-b"])
def test_the_size_object_is_always_in_the_pods_own_namespace(shape: str, namespace: str) -> None:
    found = framework_gang(SHAPES[shape][0](namespace))
    assert found is not None
    assert found.ref is not None
    assert found.ref.namespace == namespace


def test_a_namespace_written_into_a_reference_does_not_reach_another_namespace() -> None:
    workload = workload_pod()
    workload["spec"]["workloadRef"]["namespace"] = "victim"
    ray = ray_pod()
    ray["metadata"]["ownerReferences"][0]["namespace"] = "victim"
    for found in (framework_gang(workload), framework_gang(ray)):
        assert found is not None
        assert found.ref is not None
        assert found.ref.namespace == NS


@pytest.mark.parametrize("shape", BY_OBJECT)
def test_the_size_ref_names_the_kind_of_the_framework_that_reads_it(shape: str) -> None:
    found = framework_gang(SHAPES[shape][0]())
    assert found is not None
    assert found.ref is not None
    assert found.ref.kind in {f.kind for f in FRAMEWORKS}
    assert found.gang.startswith(f"{found.ref.kind}:")


def test_gang_ids_hold_a_colon_so_no_label_value_can_equal_one() -> None:
    pods = [make() for make, _ in SHAPES.values()] + [lws_pod()]
    gangs = [framework_gang(p) for p in pods]
    assert all(g is not None and ":" in g.gang for g in gangs)
    label_value = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    assert not any(g is not None and label_value.match(g.gang) for g in gangs)


def test_the_same_name_in_two_frameworks_is_two_gangs() -> None:
    cos = framework_gang(pod(labels={"scheduling.x-k8s.io/pod-group": "same"}))
    vol = framework_gang(pod(annotations={"scheduling.k8s.io/group-name": "same"}))
    assert cos is not None
    assert vol is not None
    assert cos.gang != vol.gang


def test_workload_replicas_are_separate_gangs_sized_by_the_same_pod_group() -> None:
    first, second = framework_gang(workload_pod(replica="0")), framework_gang(workload_pod(replica="1"))
    assert first is not None
    assert second is not None
    assert first.gang != second.gang
    assert first.ref == second.ref == SizeRef(WORKLOAD.kind, NS, "wl", "workers")


def test_a_workload_pod_without_a_replica_key_is_one_gang_per_pod_group() -> None:
    assert framework_gang(workload_pod(replica=None)) == by_object(WORKLOAD, "wl/workers", "wl", "workers")


@pytest.mark.parametrize("ref", [{"name": "wl"}, {"podGroup": "workers"}, {"name": "", "podGroup": "w"}])
def test_a_workload_ref_without_its_name_or_pod_group_is_no_gang(ref: Json) -> None:
    assert framework_gang(pod(workloadRef=ref)) is None


def test_leader_and_workers_of_a_leaderworkerset_group_are_one_gang_sized_by_the_leaderworkerset() -> None:
    leader, worker = framework_gang(lws_pod(worker="0")), framework_gang(lws_pod(worker="3"))
    assert leader == worker == by_object(LEADERWORKERSET, "lws/2", "lws")


def test_each_leaderworkerset_group_is_its_own_gang() -> None:
    first, second = framework_gang(lws_pod(group="0")), framework_gang(lws_pod(group="1"))
    assert first is not None
    assert second is not None
    assert first.gang != second.gang
    assert first.ref == second.ref


@pytest.mark.parametrize("size", ["0", "x", "", "\u00b2"])
def test_a_leaderworkerset_pods_own_size_annotation_is_not_what_sizes_its_gang(size: str) -> None:
    assert framework_gang(lws_pod(size=size)) == by_object(LEADERWORKERSET, "lws/2", "lws")


@pytest.mark.parametrize("index", ["x", "", "-1", "\u00b2"])
def test_a_leaderworkerset_pod_with_an_unusable_group_index_is_no_gang(index: str) -> None:
    assert framework_gang(lws_pod(group=index)) is None


def test_a_leaderworkerset_pod_without_its_group_index_is_no_gang() -> None:
    lws = lws_pod()
    del lws["metadata"]["labels"][LWS_GROUP]
    assert framework_gang(lws) is None


def test_a_jobset_pod_is_in_the_jobsets_gang_not_its_indexed_jobs() -> None:
    found = framework_gang(jobset_pod())
    assert found == by_object(JOBSET, "js", "js", sub="workers")


def test_a_raycluster_of_any_ray_io_version_is_the_gang() -> None:
    assert framework_gang(ray_pod(api_version="ray.io/v1alpha1")) == by_object(RAYCLUSTER, "rc", "rc")


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: job_pod(index=None), "a NonIndexed Job's pod has no completion index"),
        (lambda: job_pod(controller=False), "a Job that is an owner but not the controller"),
        (lambda: job_pod(api_version="batch.volcano.sh/v1alpha1"), "a Job of another API group"),
        (
            lambda: pod(owners=(owner("RayCluster", "ray.io/v1", "rc", controller=False),)),
            "a RayCluster that is not the controller",
        ),
        (lambda: pod(owners=(owner("RayCluster", "example.com/v1", "rc"),)), "another group's RayCluster"),
        (lambda: pod(owners=(owner("ReplicaSet", "apps/v1", "web-5d4"),)), "a Deployment's pod"),
        (pod, "a bare pod"),
        (lambda: pod(labels={"scheduling.x-k8s.io/pod-group": ""}), "an empty pod-group label"),
        (lambda: pod(schedulingGroup="pg"), "a schedulingGroup that is not an object"),
    ],
)
def test_pods_no_framework_names_are_no_gang(make: Callable[[], Json], why: str) -> None:
    assert framework_gang(make()) is None, why


def test_a_jobs_completion_index_label_alone_is_not_the_annotation() -> None:
    job = job_pod()
    del job["metadata"]["annotations"][INDEX]
    assert INDEX in job["metadata"]["labels"]
    assert framework_gang(job) is None


# -- turning frameworks off -------------------------------------------------------------------------

ONLY_ITS_OWN = [
    ("coscheduling", coscheduling_pod),
    ("volcano", volcano_pod),
    ("podgroup", podgroup_pod),
    ("workload", workload_pod),
    ("leaderworkerset", lws_pod),
    ("raycluster", ray_pod),
    ("job", job_pod),
]


@pytest.mark.parametrize(("name", "make"), ONLY_ITS_OWN)
def test_a_framework_turned_off_does_not_match_its_pods(name: str, make: Callable[[], Json]) -> None:
    assert framework_gang(make(), NAMES) is not None
    assert framework_gang(make(), NAMES - {name}) is None


def test_a_jobset_turned_off_leaves_its_pods_to_their_indexed_job() -> None:
    assert framework_gang(jobset_pod(), NAMES - {"jobset"}) == by_object(JOB, "js-workers-0", "js-workers-0")
    assert framework_gang(jobset_pod(), NAMES - {"jobset", "job"}) is None


def test_conventions_are_tried_in_order_and_each_turned_off_falls_through_to_the_next() -> None:
    every = job_pod()
    meta, spec = every["metadata"], every["spec"]
    meta["labels"].update({"scheduling.x-k8s.io/pod-group": "cos", "jobset.sigs.k8s.io/jobset-name": "js"})
    meta["labels"].update({LWS_NAME: "lws", LWS_GROUP: "0"})
    meta["annotations"].update({"scheduling.k8s.io/group-name": "vol"})
    spec["schedulingGroup"] = {"podGroupName": "pg"}
    spec["workloadRef"] = {"name": "wl", "podGroup": "g"}
    order = [
        ("coscheduling", f"{COSCHEDULING.kind}:cos"),
        ("volcano", f"{VOLCANO.kind}:vol"),
        ("podgroup", f"{PODGROUP.kind}:pg"),
        ("workload", f"{WORKLOAD.kind}:wl/g"),
        ("leaderworkerset", f"{LEADERWORKERSET.kind}:lws/0"),
        ("jobset", f"{JOBSET.kind}:js"),
        ("job", f"{JOB.kind}:train"),
    ]
    names = set(NAMES)
    for name, gang in order:
        found = framework_gang(every, frozenset(names))
        assert found is not None, name
        assert found.gang == gang
        names.discard(name)
    assert framework_gang(every, frozenset(names)) is None


def test_frameworks_keeps_the_order_of_trying() -> None:
    assert frameworks() == FRAMEWORKS
    assert frameworks(frozenset({"job", "leaderworkerset", "coscheduling"})) == (
        COSCHEDULING,
        LEADERWORKERSET,
        JOB,
    )
    assert frameworks(frozenset()) == ()


# -- sizes, read from each framework's object --------------------------------------------------------


def replicated(name: str, replicas: Any = None, **job: Any) -> Json:
    item: Json = {"name": name, "template": {"spec": {"template": {"spec": {}}, **job}}}
    if replicas is not None:
        item["replicas"] = replicas
    return item


def worker_group(**fields: Any) -> Json:
    return {"groupName": "g", "template": {"spec": {}}, **fields}


def raycluster(*groups: Json, head: bool = True) -> Json:
    spec: Json = {"workerGroupSpecs": list(groups)}
    if head:
        spec["headGroupSpec"] = {"template": {"spec": {}}}
    return {"spec": spec}


def policy(min_count: Any = None, *, basic: bool = False) -> Json:
    return {"basic": {}} if basic else {"gang": {"minCount": min_count}}


def lws(size: Any = 4, *, startup: str | None = None, exclusive: bool = False) -> Json:
    spec: Json = {"replicas": 2, "leaderWorkerTemplate": {"size": size}}
    if startup is not None:
        spec["startupPolicy"] = startup
    annotations = {"leaderworkerset.sigs.k8s.io/exclusive-topology": "cloud.google.com/gke-nodepool"}
    return {"metadata": {"annotations": annotations if exclusive else {}}, "spec": spec}


SIZES = [
    pytest.param(LEADERWORKERSET, lws(4), {"": 4}, id="leaderworkerset"),
    pytest.param(
        LEADERWORKERSET, lws(4, startup="LeaderCreated"), {"": 4}, id="leaderworkerset-leader-created"
    ),
    pytest.param(
        LEADERWORKERSET, lws(4, startup="LeaderReady"), {"": None}, id="leaderworkerset-leader-ready"
    ),
    pytest.param(LEADERWORKERSET, lws(4, exclusive=True), {"": None}, id="leaderworkerset-exclusive"),
    pytest.param(
        JOBSET,
        {
            "spec": {
                "startupPolicy": {"startupPolicyOrder": "InOrder"},
                "replicatedJobs": [replicated("driver"), replicated("workers", 2, parallelism=4)],
            }
        },
        {"driver": 1, "workers": 8},
        id="jobset-in-order-one-gang-per-replicated-job",
    ),
    pytest.param(
        JOBSET,
        {
            "spec": {
                "replicatedJobs": [
                    replicated("driver"),
                    {**replicated("workers", 2), "dependsOn": [{"name": "driver", "status": "Ready"}]},
                ]
            }
        },
        {"driver": 1, "workers": 2},
        id="jobset-depends-on-one-gang-per-replicated-job",
    ),
    pytest.param(
        RAYCLUSTER,
        {**raycluster(worker_group(replicas=5, minReplicas=2, maxReplicas=8, numOfHosts=2))},
        {"": 1 + 5 * 2},
        id="raycluster-desired",
    ),
    pytest.param(
        RAYCLUSTER,
        {
            "spec": {
                **raycluster(worker_group(replicas=5, minReplicas=2, maxReplicas=8, numOfHosts=2))["spec"],
                "enableInTreeAutoscaling": True,
            }
        },
        {"": 1 + 2 * 2},
        id="raycluster-autoscaling-min",
    ),
    pytest.param(COSCHEDULING, {"spec": {"minMember": 4}}, {"": 4}, id="coscheduling"),
    pytest.param(COSCHEDULING, {"spec": {}}, {"": 1}, id="coscheduling-no-minMember"),
    pytest.param(VOLCANO, {"spec": {"minMember": 0}}, {"": 1}, id="volcano-zero-is-one"),
    pytest.param(VOLCANO, {"spec": {"minMember": 16, "queue": "q"}}, {"": 16}, id="volcano"),
    pytest.param(PODGROUP, {"spec": {"schedulingPolicy": policy(8)}}, {"": 8}, id="podgroup-gang"),
    pytest.param(
        PODGROUP, {"spec": {"schedulingPolicy": policy(basic=True)}}, {"": None}, id="podgroup-basic"
    ),
    pytest.param(
        WORKLOAD,
        {
            "spec": {
                "podGroups": [
                    {"name": "leader", "policy": policy(1)},
                    {"name": "workers", "policy": policy(8)},
                    {"name": "helpers", "policy": policy(basic=True)},
                ]
            }
        },
        {"leader": 1, "workers": 8, "helpers": None},
        id="workload-by-pod-group",
    ),
    pytest.param(WORKLOAD, {"spec": {}}, {}, id="workload-no-pod-groups"),
    pytest.param(
        JOBSET,
        {
            "spec": {
                "replicatedJobs": [
                    replicated("driver", 1, parallelism=1, completions=1),
                    replicated("workers", 3, parallelism=4, completions=4),
                ]
            }
        },
        {"": 13},
        id="jobset",
    ),
    pytest.param(JOBSET, {"spec": {"replicatedJobs": [replicated("a")]}}, {"": 1}, id="jobset-defaults"),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [replicated("a", 2, parallelism=8, completions=3)]}},
        {"": 6},
        id="jobset-completions-cap-parallelism",
    ),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [replicated("a", 2, parallelism=5), replicated("b", completions=7)]}},
        {"": 11},
        id="jobset-parallelism-without-completions",
    ),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [replicated("a", 2**31 - 1, parallelism=2)]}},
        {"": 2**31 - 1},
        id="jobset-capped-at-int32",
    ),
    pytest.param(RAYCLUSTER, raycluster(), {"": 1}, id="ray-head-only"),
    pytest.param(
        RAYCLUSTER,
        raycluster(worker_group(replicas=3, minReplicas=1, maxReplicas=5, numOfHosts=2)),
        {"": 7},
        id="ray-replicas-times-hosts",
    ),
    pytest.param(
        RAYCLUSTER, raycluster(worker_group(replicas=10, maxReplicas=4)), {"": 5}, id="ray-clamped-to-max"
    ),
    pytest.param(
        RAYCLUSTER, raycluster(worker_group(replicas=0, minReplicas=2)), {"": 3}, id="ray-clamped-to-min"
    ),
    pytest.param(RAYCLUSTER, raycluster(worker_group(minReplicas=2)), {"": 3}, id="ray-replicas-default-min"),
    pytest.param(
        RAYCLUSTER,
        raycluster(worker_group(replicas=2), worker_group(replicas=4, suspend=True)),
        {"": 3},
        id="ray-suspended-group-counts-zero",
    ),
    pytest.param(
        RAYCLUSTER,
        raycluster(worker_group(replicas=2, numOfHosts=4), worker_group(replicas=1)),
        {"": 10},
        id="ray-groups-add-up",
    ),
    pytest.param(
        JOB,
        {"spec": {"completionMode": "Indexed", "parallelism": 8, "completions": 4}},
        {"": 4},
        id="job-indexed",
    ),
    pytest.param(
        JOB,
        {"spec": {"completionMode": "Indexed", "parallelism": 4, "completions": 10}},
        {"": 4},
        id="job-indexed-parallelism",
    ),
    pytest.param(JOB, {"spec": {"completionMode": "Indexed", "completions": 3}}, {"": 1}, id="job-default-1"),
    pytest.param(
        JOB,
        {"spec": {"completionMode": "NonIndexed", "parallelism": 4, "completions": 4}},
        {"": None},
        id="job-nonindexed",
    ),
    pytest.param(JOB, {"spec": {"parallelism": 4}}, {"": None}, id="job-default-nonindexed"),
]


@pytest.mark.parametrize(("framework", "obj", "expected"), SIZES)
def test_sizes_read_from_each_frameworks_object(framework: Framework, obj: Json, expected: Sizes) -> None:
    assert dict(framework.sizes(obj)) == expected


MALFORMED = [
    pytest.param(COSCHEDULING, {"spec": {"minMember": "4"}}, "spec.minMember", id="minMember-string"),
    pytest.param(VOLCANO, {"spec": {"minMember": -1}}, "spec.minMember", id="minMember-negative"),
    pytest.param(VOLCANO, {"spec": {"minMember": True}}, "spec.minMember", id="minMember-bool"),
    pytest.param(COSCHEDULING, {"spec": {"minMember": 2.0}}, "spec.minMember", id="minMember-float"),
    pytest.param(COSCHEDULING, {"spec": {"minMember": 2**31}}, "spec.minMember", id="minMember-over-int32"),
    pytest.param(COSCHEDULING, {"spec": ["minMember", 4]}, "spec", id="spec-not-an-object"),
    pytest.param(PODGROUP, {"spec": {}}, "spec.schedulingPolicy", id="podgroup-no-policy"),
    pytest.param(
        PODGROUP,
        {"spec": {"schedulingPolicy": {}}},
        "spec.schedulingPolicy",
        id="podgroup-neither-gang-nor-basic",
    ),
    pytest.param(
        PODGROUP,
        {"spec": {"schedulingPolicy": policy(0)}},
        "spec.schedulingPolicy.gang.minCount",
        id="podgroup-minCount-zero",
    ),
    pytest.param(
        PODGROUP,
        {"spec": {"schedulingPolicy": policy("4")}},
        "spec.schedulingPolicy.gang.minCount",
        id="podgroup-minCount-string",
    ),
    pytest.param(
        PODGROUP,
        {"spec": {"schedulingPolicy": {"gang": {}}}},
        "spec.schedulingPolicy.gang.minCount",
        id="podgroup-minCount-missing",
    ),
    pytest.param(
        PODGROUP,
        {"spec": {"schedulingPolicy": {"gang": 4}}},
        "spec.schedulingPolicy.gang",
        id="podgroup-gang-not-an-object",
    ),
    pytest.param(
        PODGROUP, {"spec": {"schedulingPolicy": "gang"}}, "spec.schedulingPolicy", id="podgroup-policy-string"
    ),
    pytest.param(
        WORKLOAD, {"spec": {"podGroups": {"name": "a"}}}, "spec.podGroups", id="workload-not-a-list"
    ),
    pytest.param(WORKLOAD, {"spec": {"podGroups": ["a"]}}, "spec.podGroups[0]", id="workload-item-string"),
    pytest.param(
        WORKLOAD,
        {"spec": {"podGroups": [{"policy": policy(2)}]}},
        "spec.podGroups[0].name",
        id="workload-no-name",
    ),
    pytest.param(
        WORKLOAD,
        {"spec": {"podGroups": [{"name": 7, "policy": policy(2)}]}},
        "spec.podGroups[0].name",
        id="workload-name-int",
    ),
    pytest.param(
        WORKLOAD,
        {"spec": {"podGroups": [{"name": "a", "policy": policy(2)}, {"name": "b"}]}},
        "spec.podGroups[1].policy",
        id="workload-no-policy",
    ),
    pytest.param(
        WORKLOAD,
        {"spec": {"podGroups": [{"name": "a", "policy": policy(-3)}]}},
        "spec.podGroups[0].policy.gang.minCount",
        id="workload-minCount-negative",
    ),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [replicated("a"), replicated("b", "2")]}},
        "spec.replicatedJobs[1].replicas",
        id="jobset-replicas-string",
    ),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [replicated("a", -1)]}},
        "spec.replicatedJobs[0].replicas",
        id="jobset-replicas-negative",
    ),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [replicated("a", True)]}},
        "spec.replicatedJobs[0].replicas",
        id="jobset-replicas-bool",
    ),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [replicated("a", parallelism="4")]}},
        "spec.replicatedJobs[0].template.spec.parallelism",
        id="jobset-parallelism-string",
    ),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [replicated("a", completions=-2)]}},
        "spec.replicatedJobs[0].template.spec.completions",
        id="jobset-completions-negative",
    ),
    pytest.param(
        JOBSET,
        {"spec": {"replicatedJobs": [{"name": "a", "template": "job"}]}},
        "spec.replicatedJobs[0].template",
        id="jobset-template-string",
    ),
    pytest.param(
        JOBSET, {"spec": {"replicatedJobs": {"a": {}}}}, "spec.replicatedJobs", id="jobset-jobs-not-a-list"
    ),
    pytest.param(JOBSET, {"spec": {"replicatedJobs": [3]}}, "spec.replicatedJobs[0]", id="jobset-item-int"),
    pytest.param(
        RAYCLUSTER,
        raycluster(worker_group(replicas=1), worker_group(numOfHosts="2")),
        "spec.workerGroupSpecs[1].numOfHosts",
        id="ray-hosts-string",
    ),
    pytest.param(
        RAYCLUSTER,
        raycluster(worker_group(replicas=-1)),
        "spec.workerGroupSpecs[0].replicas",
        id="ray-replicas-negative",
    ),
    pytest.param(
        RAYCLUSTER,
        raycluster(worker_group(minReplicas=True)),
        "spec.workerGroupSpecs[0].minReplicas",
        id="ray-min-bool",
    ),
    pytest.param(
        RAYCLUSTER,
        raycluster(worker_group(maxReplicas="many")),
        "spec.workerGroupSpecs[0].maxReplicas",
        id="ray-max-string",
    ),
    pytest.param(
        RAYCLUSTER,
        {"spec": {"headGroupSpec": {}, "workerGroupSpecs": {"groupName": "g"}}},
        "spec.workerGroupSpecs",
        id="ray-groups-not-a-list",
    ),
    pytest.param(
        JOB,
        {"spec": {"completionMode": "Indexed", "parallelism": "8"}},
        "spec.parallelism",
        id="job-parallelism-string",
    ),
    pytest.param(
        JOB,
        {"spec": {"completionMode": "Indexed", "completions": -1}},
        "spec.completions",
        id="job-completions-negative",
    ),
]


@pytest.mark.parametrize(("framework", "obj", "field"), MALFORMED)
def test_malformed_sizes_raise_naming_the_field(framework: Framework, obj: Json, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}: "):
        framework.sizes(obj)


# -- what an informer keeps of each framework's objects -------------------------------------------

EXAMPLE_OBJECTS = [
    doc
    for path in sorted((Path(__file__).parents[2] / "examples" / "frameworks").glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc is not None and doc["kind"] != "Pod"
]
KINDS = {f.kind: f for f in FRAMEWORKS}


def framework_of(obj: Json) -> Framework | None:
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return KINDS.get(f"{obj['kind']}.{group}")


@pytest.mark.parametrize("obj", EXAMPLE_OBJECTS, ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_what_is_kept_of_an_object_sizes_it_as_the_whole_does_without_its_pod_templates(obj: Json) -> None:
    obj = {**obj, "metadata": {**obj["metadata"], "managedFields": [{"manager": "kubectl"}]}}
    kept = trimmed(obj)
    assert "containers" not in json.dumps(kept)
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["name"] == obj["metadata"]["name"]
    framework = framework_of(obj)
    if framework is not None:
        assert framework.sizes(kept) == framework.sizes(obj)


def test_an_object_nested_thousands_deep_is_kept_without_recursing_through_it() -> None:
    deep: Json = {"leaf": 1}
    for _ in range(5000):
        deep = {"nested": deep}
    obj = {"metadata": {"name": "rc"}, "spec": {"workerGroupSpecs": [], "extra": deep}}
    kept = trimmed(obj)
    assert kept["spec"]["workerGroupSpecs"] == []
    assert RAYCLUSTER.sizes(kept) == RAYCLUSTER.sizes(obj) == {"": 1}
