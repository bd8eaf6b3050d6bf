from typing import Any

import pytest

from aisched.api import keys
from aisched.framework.types import (
    Gang,
    PodInfo,
    PodPlacement,
    Requirement,
    SelectorTerm,
    Toleration,
)
from tests.support.core import GiB, pod

MiB = 2**20


def manifest(
    *,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": containers or [{"name": "main"}], **spec}
    if init is not None:
        body["initContainers"] = init
    return {
        "metadata": {
            "name": "w0",
            "namespace": "ml",
            "uid": "u-1",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": body,
    }


def container(
    *, requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "resources": resources}


def requests_of(**kwargs: Any) -> dict[str, int]:
    return dict(PodInfo.from_manifest(manifest(**kwargs)).requests)


# -- requests ----------------------------------------------------------------------------------------


def test_requests_are_summed_over_containers() -> None:
    got = requests_of(
        containers=[
            container(requests={"cpu": "500m", "memory": "1Gi"}),
            container(requests={"cpu": "1.5", "memory": "512Mi", "nvidia.com/gpu": "2"}),
        ]
    )

    assert got == {"cpu": 2000, "memory": GiB + 512 * MiB, "nvidia.com/gpu": 2, "pods": 1}


def test_init_containers_raise_a_resource_to_their_largest_request() -> None:
    got = requests_of(
        containers=[container(requests={"cpu": "1", "memory": "2Gi"}), container(requests={"cpu": "1"})],
        init=[
            container(requests={"cpu": "4", "memory": "1Gi"}),
            container(requests={"cpu": "3", "example.com/fpga": "1"}),
        ],
    )

    assert got == {"cpu": 4000, "memory": 2 * GiB, "example.com/fpga": 1, "pods": 1}


def test_init_container_smaller_than_the_sum_changes_nothing() -> None:
    got = requests_of(
        containers=[container(requests={"cpu": "1"}), container(requests={"cpu": "1"})],
        init=[container(requests={"cpu": "1500m"})],
    )

    assert got["cpu"] == 2000


def test_limits_stand_in_for_missing_requests() -> None:
    got = requests_of(containers=[container(limits={"cpu": "2", "nvidia.com/gpu": "1"})])

    assert got == {"cpu": 2000, "nvidia.com/gpu": 1, "pods": 1}


def test_requests_win_over_limits_of_the_same_resource() -> None:
    got = requests_of(containers=[container(requests={"cpu": "1"}, limits={"cpu": "4", "memory": "1Gi"})])

    assert got == {"cpu": 1000, "memory": GiB, "pods": 1}


def test_overhead_is_added_after_init_containers() -> None:
    got = requests_of(
        containers=[container(requests={"cpu": "1", "memory": "1Gi"})],
        init=[container(requests={"cpu": "2"})],
        overhead={"cpu": "250m", "memory": "128Mi"},
    )

    assert got == {"cpu": 2250, "memory": GiB + 128 * MiB, "pods": 1}


def test_every_pod_takes_exactly_one_pod_slot() -> None:
    assert requests_of(containers=[{"name": "bare"}]) == {"pods": 1}
    assert requests_of(containers=[container(requests={"pods": "5"})])["pods"] == 1


@pytest.mark.parametrize(
    ("raw", "milli"),
    [("100m", 100), ("0.5", 500), ("2", 2000), (3, 3000), (0.25, 250), ("1500m", 1500)],
)
def test_cpu_is_counted_in_millicores(raw: object, milli: int) -> None:
    assert requests_of(containers=[container(requests={"cpu": raw})])["cpu"] == milli


@pytest.mark.parametrize(
    ("raw", "bytes_"),
    [
        ("1Gi", GiB),
        ("1.5Gi", GiB + 512 * MiB),
        ("100M", 100_000_000),
        ("1k", 1000),
        (4096, 4096),
        ("500m", 1),
    ],
)
def test_memory_is_counted_in_bytes_rounded_up(raw: object, bytes_: int) -> None:
    assert requests_of(containers=[container(requests={"memory": raw})])["memory"] == bytes_


@pytest.mark.parametrize(
    ("where", "resource"),
    [("requests", "cpu"), ("limits", "memory"), ("overhead", "example.com/fpga"), ("init", "nvidia.com/gpu")],
)
def test_bad_quantity_raises_value_error_naming_the_resource(where: str, resource: str) -> None:
    bad = {resource: "lots"}
    if where == "requests":
        body = manifest(containers=[container(requests=bad)])
    elif where == "limits":
        body = manifest(containers=[container(limits=bad)])
    elif where == "overhead":
        body = manifest(overhead=bad)
    else:
        body = manifest(init=[container(requests=bad)])

    with pytest.raises(ValueError, match=f"resource {resource}"):
        PodInfo.from_manifest(body)


# -- placement constraints ------------------------------------------------------------------------------


def test_node_selector_is_read_sorted() -> None:
    info = PodInfo.from_manifest(manifest(nodeSelector={"zone": "z1", "disk": "ssd"}))

    assert info.node_selector == (("disk", "ssd"), ("zone", "z1"))


def test_required_node_affinity_becomes_selector_terms() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "zone", "operator": "In", "values": ["z1", "z2"]},
                            {"key": "cores", "operator": "Gt", "values": [8]},
                        ]
                    },
                    {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]},
                    {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                ]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {"matchExpressions": [{"key": "x", "operator": "In", "values": ["y"]}]},
                }
            ],
        }
    }

    info = PodInfo.from_manifest(manifest(affinity=affinity))

    assert info.affinity == (
        SelectorTerm(
            expressions=(
                Requirement(key="zone", operator="In", values=("z1", "z2")),
                Requirement(key="cores", operator="Gt", values=("8",)),
            )
        ),
        SelectorTerm(fields=(Requirement(key="metadata.name", operator="NotIn", values=("n1",)),)),
        SelectorTerm(expressions=(Requirement(key="gpu", operator="Exists"),)),
    )


def test_pod_without_required_affinity_has_no_terms() -> None:
    assert PodInfo.from_manifest(manifest(affinity={"podAntiAffinity": {}})).affinity == ()


def test_unsupported_selector_operator_is_refused() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Matches"}]}]
            }
        }
    }

    with pytest.raises(ValueError, match="operator 'Matches' is not supported"):
        PodInfo.from_manifest(manifest(affinity=affinity))


def test_tolerations_are_read_with_kubernetes_defaults() -> None:
    info = PodInfo.from_manifest(
        manifest(
            tolerations=[
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "infer"},
                {"operator": "Exists"},
            ]
        )
    )

    assert info.tolerations == (
        Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),
        Toleration(key="dedicated", operator="Equal", value="infer"),
        Toleration(key="", operator="Exists"),
    )


def test_gpu_models_annotation_is_a_trimmed_comma_separated_list() -> None:
    info = PodInfo.from_manifest(
        manifest(annotations={keys.ANNOTATION_GPU_MODELS: " H100-80GB, A100-80GB ,,"})
    )

    assert info.gpu_models == ("H100-80GB", "A100-80GB")


def test_pod_without_gpu_models_annotation_allows_any_model() -> None:
    assert PodInfo.from_manifest(manifest()).gpu_models == ()


# -- gang and topology ---------------------------------------------------------------------------------


def test_gang_label_names_the_gang_and_annotation_its_min_member() -> None:
    info = PodInfo.from_manifest(
        manifest(
            labels={keys.LABEL_GANG: "ml/train", keys.LABEL_JOB: "other"},
            annotations={keys.ANNOTATION_GANG_MIN_MEMBER: "4"},
        )
    )

    assert info.gang == "ml/train"
    assert info.gang_min_member == 4


def test_job_label_names_the_gang_when_no_gang_label_is_set() -> None:
    assert PodInfo.from_manifest(manifest(labels={keys.LABEL_JOB: "train"})).gang == "train"


def test_pod_without_gang_labels_is_not_in_a_gang() -> None:
    info = PodInfo.from_manifest(manifest())

    assert info.gang is None
    assert info.gang_min_member is None


@pytest.mark.parametrize("raw", ["four", "-1", "2.5", ""])
def test_min_member_annotation_that_is_not_a_count_is_ignored(raw: str) -> None:
    info = PodInfo.from_manifest(manifest(annotations={keys.ANNOTATION_GANG_MIN_MEMBER: raw}))

    assert info.gang_min_member is None


def test_topology_annotations_set_policy_and_level() -> None:
    info = PodInfo.from_manifest(
        manifest(
            annotations={keys.ANNOTATION_TOPOLOGY_POLICY: "Required", keys.ANNOTATION_TOPOLOGY_LEVEL: "rack"}
        )
    )

    assert info.topology_policy == "Required"
    assert info.topology_level == "rack"


def test_topology_defaults_to_preferred_with_no_level() -> None:
    info = PodInfo.from_manifest(manifest())

    assert info.topology_policy == "Preferred"
    assert info.topology_level is None


def test_unknown_topology_policy_and_level_fall_back_to_the_defaults() -> None:
    info = PodInfo.from_manifest(
        manifest(
            annotations={keys.ANNOTATION_TOPOLOGY_POLICY: "Always", keys.ANNOTATION_TOPOLOGY_LEVEL: "Rack"}
        )
    )

    assert info.topology_policy == "Preferred"
    assert info.topology_level is None


@pytest.mark.parametrize("policy", ["Required", "Preferred", "None"])
def test_every_topology_policy_is_read(policy: str) -> None:
    info = PodInfo.from_manifest(manifest(annotations={keys.ANNOTATION_TOPOLOGY_POLICY: policy}))

    assert info.topology_policy == policy


@pytest.mark.parametrize("level", ["nvlink", "node", "rack", "block"])
def test_every_topology_level_is_read(level: str) -> None:
    info = PodInfo.from_manifest(manifest(annotations={keys.ANNOTATION_TOPOLOGY_LEVEL: level}))

    assert info.topology_level == level


# -- identity and the rest ---------------------------------------------------------------------------------


def test_identity_priority_scheduler_and_node_are_read() -> None:
    body = manifest(priority=100, schedulerName="aisched", nodeName="n1")

    info = PodInfo.from_manifest(body, created=12.5)

    assert (info.namespace, info.name, info.uid, info.key) == ("ml", "w0", "u-1", "ml/w0")
    assert info.priority == 100
    assert info.scheduler_name == "aisched"
    assert info.node_name == "n1"
    assert info.created == 12.5


def test_missing_fields_take_kubernetes_defaults() -> None:
    info = PodInfo.from_manifest({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})

    assert info.namespace == "default"
    assert info.scheduler_name == "default-scheduler"
    assert info.priority == 0
    assert info.node_name is None
    assert info.labels == {}


def test_gpus_is_the_gpu_request() -> None:
    assert pod("p", gpus=4).gpus == 4
    assert pod("p").gpus == 0


# -- templates and roles -------------------------------------------------------------------------------------


def test_pods_differing_only_in_identity_share_a_template() -> None:
    a = pod("a", gpus=8, priority=1, labels={"x": "1"})
    b = pod("b", gpus=8, priority=9, namespace="other")

    assert a.template_key == b.template_key


@pytest.mark.parametrize(
    "other",
    [
        pod("b", gpus=4),
        pod("b", gpus=8, node_selector=(("zone", "z1"),)),
        pod("b", gpus=8, tolerations=(Toleration(operator="Exists"),)),
        pod("b", gpus=8, gpu_models=("H100-80GB",)),
        pod("b", gpus=8, affinity=(SelectorTerm(),)),
    ],
)
def test_pods_differing_in_requests_or_constraints_have_different_templates(other: PodInfo) -> None:
    assert pod("a", gpus=8).template_key != other.template_key


def test_roles_group_members_by_template_in_first_seen_order() -> None:
    launcher = pod("launcher", cpu=2000)
    workers = [pod(f"w{i}", gpus=8) for i in range(3)]
    ps = pod("ps", cpu=4000)
    gang = Gang(key="ml/job", members=[workers[0], launcher, workers[1], ps, workers[2]], min_member=5)

    roles = gang.roles()

    assert [[p.name for p in role] for role in roles] == [["w0", "w1", "w2"], ["launcher"], ["ps"]]


def test_lone_pod_is_one_role_of_itself() -> None:
    p = pod("solo", gpus=1)

    assert Gang.of(p).roles() == [[p]]


def test_gang_of_a_pod_takes_its_priority_age_and_topology() -> None:
    p = pod("solo", gpus=2, priority=7, created=3.0, topology_policy="Required", topology_level="nvlink")

    gang = Gang.of(p)

    assert (gang.key, gang.min_member, gang.size) == ("ml/solo", 1, 1)
    assert (gang.priority, gang.created) == (7, 3.0)
    assert (gang.topology_policy, gang.topology_level) == ("Required", "nvlink")


def test_total_gpus_sums_the_members() -> None:
    gang = Gang(key="ml/g", members=[pod("a", gpus=8), pod("b", gpus=4), pod("c")], min_member=3)

    assert gang.total_gpus() == 12


def test_placement_gpu_indices_are_the_set_bits_of_its_mask() -> None:
    placement = PodPlacement(pod=pod("p", gpus=3), node="n", slot=0, gpu_mask=0b1010_0001)

    assert placement.gpu_indices == (0, 5, 7)
    assert PodPlacement(pod=pod("q"), node="n", slot=0).gpu_indices == ()


def test_only_a_pod_an_aijob_made_takes_its_queue_sequence_from_the_annotation() -> None:
    body = manifest(annotations={"aisched.io/queue-sequence": "3"})
    body["metadata"]["resourceVersion"] = "900"
    assert PodInfo.from_manifest(body).sequence == 900, "a plain pod cannot move itself up its queue"
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "aisched.io/v1alpha1", "kind": "AIJob", "name": "j", "uid": "u-j", "controller": True}
    ]
    assert PodInfo.from_manifest(body).sequence == 3
