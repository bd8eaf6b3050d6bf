"""Bad specs are refused with the field's path and a clear message, by the models and by the CRD's CEL."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from aisched.api import AIJob, GPUNodeTopology, InvalidObjectError, TenantQuota, parse, validate_manifest
from aisched.api.crd import crd_for
from aisched.api.meta import Resource
from aisched.api.validation import FieldError
from aisched.emulator.schema import validate_custom_resource
from tests.support import objects
from tests.support.cel import rule_errors

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets `a.b[0].c` to value (a list index as [i])."""

    def mutate(body: dict[str, Any]) -> None:
        parts = path.replace("[", ".[").split(".")
        node: Any = body
        for part in parts[:-1]:
            node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
        last = parts[-1]
        if last.startswith("["):
            node[int(last[1:-1])] = value
        else:
            node[last] = value

    return mutate


def _container(body: dict[str, Any], role: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = body["spec"]["replicas"][role]["template"]["spec"]["containers"][0]
    return container


def _share_gpu_but_keep_whole_gpus(body: dict[str, Any]) -> None:
    body["spec"]["gpu"] = {"milli": 500}


def _duplicate_role(body: dict[str, Any]) -> None:
    body["spec"]["replicas"][1]["name"] = "master"


def _gpu_request_without_limit(body: dict[str, Any]) -> None:
    resources = _container(body)["resources"]
    resources["requests"]["nvidia.com/gpu"] = "0.5"
    del resources["limits"]["nvidia.com/gpu"]


def _share_by_memory_of(amount: int | str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        for role in body["spec"]["replicas"]:
            del role["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        body["spec"]["gpu"] = {"memory": amount}

    return mutate


def _mig_and_mig_resource(body: dict[str, Any]) -> None:
    _share_by_memory_of(1)(body)
    body["spec"]["gpu"] = {"migProfile": "1g.10gb"}
    _container(body, 1)["resources"]["limits"]["nvidia.com/mig-1g.10gb"] = 1


def _mig_instance_past_the_end(body: dict[str, Any]) -> None:
    body["status"]["gpus"][0]["migMode"] = "Enabled"
    body["status"]["gpus"][0]["migInstances"] = [{"profile": "3g.40gb", "start": 6, "size": 4}]


def _gpu_request_differs_from_limit(body: dict[str, Any]) -> None:
    _container(body)["resources"]["requests"]["nvidia.com/gpu"] = 4


def _fractional_gpus(body: dict[str, Any]) -> None:
    _container(body)["resources"]["limits"]["nvidia.com/gpu"] = "1500m"


def _init_container_gpu_mismatch(body: dict[str, Any]) -> None:
    body["spec"]["replicas"][0]["template"]["spec"]["initContainers"] = [
        {
            "name": "fetch",
            "image": "busybox",
            "resources": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 2}},
        }
    ]


def _init_container_fractional_gpu(body: dict[str, Any]) -> None:
    body["spec"]["replicas"][0]["template"]["spec"]["initContainers"] = [
        {"name": "fetch", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": "0.5"}}}
    ]


def _no_containers(body: dict[str, Any]) -> None:
    body["spec"]["replicas"][0]["template"]["spec"]["containers"] = []


def _negative_memory(body: dict[str, Any]) -> None:
    _container(body)["resources"]["requests"]["memory"] = "-1Gi"


def _bad_memory(body: dict[str, Any]) -> None:
    _container(body)["resources"]["requests"]["memory"] = "12 GB"


# (kind factory, mutation, expected path, expected message start, mirrored by a CEL rule)
CASES: list[tuple[str, Callable[[], dict[str, Any]], Mutation, str, str, bool]] = [
    (
        "gang larger than the job",
        objects.aijob,
        _set("spec.gang.minMember", 20),
        "spec.gang.minMember",
        "must not exceed the total number of replicas (20 > 2)",
        True,
    ),
    (
        "elastic min above max",
        objects.aijob,
        _set("spec.elastic", {"role": "worker", "minReplicas": 4, "maxReplicas": 2}),
        "spec.elastic.minReplicas",
        "must not exceed maxReplicas (4 > 2)",
        True,
    ),
    (
        "elastic role unknown",
        objects.aijob,
        _set("spec.elastic", {"role": "learner", "minReplicas": 1, "maxReplicas": 2}),
        "spec.elastic.role",
        "must name one of spec.replicas",
        True,
    ),
    (
        "elastic count outside its range",
        objects.aijob,
        _set("spec.elastic", {"minReplicas": 2, "maxReplicas": 4}),
        "spec.elastic",
        "the elastic role's count must lie between minReplicas and maxReplicas",
        True,
    ),
    (
        "Required topology without a level",
        objects.aijob,
        _set("spec.topology", {"policy": "Required"}),
        "spec.topology.level",
        "is required when policy is Required",
        True,
    ),
    (
        "unknown topology level",
        objects.aijob,
        _set("spec.topology.level", "datacenter"),
        "spec.topology.level",
        "must be 'nvlink', 'node', 'rack' or 'block'",
        False,
    ),
    (
        "unknown MIG profile",
        objects.aijob,
        _set("spec.gpu", {"migProfile": "3g.30gb"}),
        "spec.gpu.migProfile",
        "must be '1g.10gb'",
        False,
    ),
    (
        "MIG profile of another GPU model",
        objects.aijob,
        _set("spec.gpu", {"migProfile": "7g.40gb", "models": ["H100-80GB"]}),
        "spec.gpu.migProfile",
        "is not offered by any of the allowed GPU models (7g.40gb on H100-80GB)",
        True,
    ),
    (
        "MIG with milli",
        objects.aijob,
        _set("spec.gpu", {"migProfile": "1g.10gb", "milli": 200}),
        "spec.gpu.migProfile",
        "cannot be combined with milli or memory",
        True,
    ),
    (
        "shared GPU with whole GPUs in the template",
        objects.aijob,
        _share_gpu_but_keep_whole_gpus,
        "spec.gpu",
        "a shared or MIG GPU request",
        True,
    ),
    (
        "milli of a whole GPU",
        objects.aijob,
        _set("spec.gpu", {"milli": 1000}),
        "spec.gpu.milli",
        "input should be less than or equal to 999",
        False,
    ),
    (
        "two roles with one name",
        objects.aijob,
        _duplicate_role,
        "spec.replicas",
        "role names must be unique",
        False,
    ),
    (
        "zero replicas",
        objects.aijob,
        _set("spec.replicas[0].count", 0),
        "spec.replicas[0].count",
        "input should be greater than or equal to 1",
        False,
    ),
    (
        "no roles",
        objects.aijob,
        _set("spec.replicas", []),
        "spec.replicas",
        "list should have at least 1 item",
        False,
    ),
    (
        "a misspelt field",
        objects.aijob,
        _set("spec.gang.minMembers", 2),
        "spec.gang.minMembers",
        "is not a known field",
        False,
    ),
    (
        "a role name that is not a DNS label",
        objects.aijob,
        _set("spec.replicas[0].name", "Master_0"),
        "spec.replicas[0].name",
        "must be a lowercase RFC 1123 label",
        False,
    ),
    (
        "GPU request differing from its limit",
        objects.aijob,
        _gpu_request_differs_from_limit,
        "spec.replicas[0].template.spec.containers[0].resources",
        "nvidia.com/gpu must be set in limits",
        True,
    ),
    (
        "part of a GPU as nvidia.com/gpu",
        objects.aijob,
        _fractional_gpus,
        "spec.replicas[0].template.spec.containers[0].resources",
        "nvidia.com/gpu must be a whole number",
        True,
    ),
    (
        "an init container's GPU request differing from its limit",
        objects.aijob,
        _init_container_gpu_mismatch,
        "spec.replicas[0].template.spec.initContainers[0].resources",
        "nvidia.com/gpu must be set in limits",
        True,
    ),
    (
        "part of a GPU in an init container",
        objects.aijob,
        _init_container_fractional_gpu,
        "spec.replicas[0].template.spec.initContainers[0].resources",
        "nvidia.com/gpu must be a whole number",
        True,
    ),
    (
        "a template without containers",
        objects.aijob,
        _no_containers,
        "spec.replicas[0].template.spec.containers",
        "list should have at least 1 item",
        False,
    ),
    (
        "negative memory",
        objects.aijob,
        _negative_memory,
        "spec.replicas[0].template.spec.containers[0].resources.requests.memory",
        "must not be negative",
        False,
    ),
    (
        "memory that is not a quantity",
        objects.aijob,
        _bad_memory,
        "spec.replicas[0].template.spec.containers[0].resources.requests.memory",
        "'12 GB' is not a quantity",
        False,
    ),
    (
        "checkpoint by signal without a signal",
        objects.aijob,
        _set("spec.checkpoint", {"method": "Signal"}),
        "spec.checkpoint.signal",
        "is required when method is Signal",
        True,
    ),
    (
        "a signal for a checkpoint by annotation",
        objects.aijob,
        _set("spec.checkpoint", {"method": "Annotation", "signal": "SIGUSR1"}),
        "spec.checkpoint.signal",
        "is required when method is Signal, and only then",
        True,
    ),
    (
        "a GPU request without a limit",
        objects.aijob,
        _gpu_request_without_limit,
        "spec.replicas[0].template.spec.containers[0].resources",
        "nvidia.com/gpu must be set in limits",
        True,
    ),
    (
        "zero GPU memory",
        objects.aijob,
        _share_by_memory_of(0),
        "spec.gpu.memory",
        "must be more than zero",
        True,
    ),
    (
        "MIG with a MIG device resource in the template",
        objects.aijob,
        _mig_and_mig_resource,
        "spec.gpu",
        "a shared or MIG GPU request",
        True,
    ),
    (
        "a template naming another scheduler",
        objects.aijob,
        _set("spec.replicas[1].template.spec.schedulerName", "default-scheduler"),
        "spec.replicas",
        "pod templates must leave schedulerName unset or set it to aisched",
        True,
    ),
    (
        "a spec missing",
        objects.aijob,
        _set("spec", None),
        "spec",
        "is required",
        False,
    ),
    (
        "a count written as a string",
        objects.aijob,
        _set("spec.replicas[0].count", "4"),
        "spec.replicas[0].count",
        "input should be a valid integer",
        False,
    ),
    (
        "preemptible written as yes",
        objects.aijob,
        _set("spec.preemptible", "yes"),
        "spec.preemptible",
        "input should be a valid boolean",
        False,
    ),
    (
        "a fractional JSON number as a quantity",
        objects.aijob,
        _set("spec.replicas[0].template.spec.containers[0].resources.requests.cpu", 0.5),
        "spec.replicas[0].template.spec.containers[0].resources.requests.cpu",
        "must be an integer or a string",
        False,
    ),
    (
        "guaranteed above max",
        objects.tenantquota,
        _set("spec.resources", {"nvidia.com/gpu": {"guaranteed": "64", "max": 32}}),
        "spec.resources[nvidia.com/gpu].guaranteed",
        "must not exceed max (64 > 32)",
        True,
    ),
    (
        "guaranteed above max in other units",
        objects.tenantquota,
        _set("spec.resources", {"memory": {"guaranteed": "1Ti", "max": "1000Gi"}}),
        "spec.resources.memory.guaranteed",
        "must not exceed max (1Ti > 1000Gi)",
        True,
    ),
    (
        "a runtime limit of zero",
        objects.aijob,
        _set("spec.runtimeLimitSeconds", 0),
        "spec.runtimeLimitSeconds",
        "input should be greater than or equal to 1",
        False,
    ),
    (
        "a runtime limit over a year",
        objects.aijob,
        _set("spec.runtimeLimitSeconds", 365 * 24 * 3600 + 1),
        "spec.runtimeLimitSeconds",
        "input should be less than or equal to 31536000",
        False,
    ),
    (
        "a runtime limit written as text",
        objects.aijob,
        _set("spec.runtimeLimitSeconds", "1h"),
        "spec.runtimeLimitSeconds",
        "input should be a valid integer",
        False,
    ),
    (
        "an unknown queueing strategy",
        objects.tenantquota,
        _set("spec.queueing", {"strategy": "LIFO"}),
        "spec.queueing.strategy",
        "must be 'StrictFIFO' or 'BestEffortFIFO'",
        False,
    ),
    (
        "a reservation written as yes",
        objects.tenantquota,
        _set("spec.queueing", {"reservation": "yes"}),
        "spec.queueing.reservation",
        "input should be a valid boolean",
        False,
    ),
    (
        "aging by a step of zero",
        objects.tenantquota,
        _set("spec.queueing", {"aging": {"intervalSeconds": 60, "step": 0}}),
        "spec.queueing.aging.step",
        "input should be greater than or equal to 1",
        False,
    ),
    (
        "a negative aging interval",
        objects.tenantquota,
        _set("spec.queueing", {"aging": {"intervalSeconds": -1}}),
        "spec.queueing.aging.intervalSeconds",
        "input should be greater than or equal to 0",
        False,
    ),
    (
        "an aging interval over a week",
        objects.tenantquota,
        _set("spec.queueing", {"aging": {"intervalSeconds": 7 * 24 * 3600 + 1}}),
        "spec.queueing.aging.intervalSeconds",
        "input should be less than or equal to 604800",
        False,
    ),
    (
        "a negative aging boost",
        objects.tenantquota,
        _set("spec.queueing", {"aging": {"maxBoost": -1}}),
        "spec.queueing.aging.maxBoost",
        "input should be greater than or equal to 0",
        False,
    ),
    (
        "an aging band of width zero",
        objects.tenantquota,
        _set("spec.queueing", {"aging": {"bandWidth": 0}}),
        "spec.queueing.aging.bandWidth",
        "input should be greater than or equal to 1",
        False,
    ),
    (
        "a zero weight",
        objects.tenantquota,
        _set("spec.weight", 0),
        "spec.weight",
        "input should be greater than 0",
        False,
    ),
    (
        "a namespace twice",
        objects.tenantquota,
        _set("spec.namespaces", ["a", "a"]),
        "spec.namespaces",
        "must not list a namespace twice",
        False,
    ),
    (
        "a resource name with spaces",
        objects.tenantquota,
        _set("spec.resources", {"nvidia gpu": {"max": 1}}),
        "spec.resources",
        "keys must be resource names such as nvidia.com/gpu, cpu or memory ('nvidia gpu')",
        False,
    ),
    (
        "GPU indices with a gap",
        objects.gpunodetopology,
        _set("status.gpus[1].index", 2),
        "status.gpus",
        "GPU indices must be 0..n-1",
        True,
    ),
    (
        "a pair of one GPU with itself",
        objects.gpunodetopology,
        _set("status.pairs[0].b", 0),
        "status.pairs[0].b",
        "a pair names two GPUs with a < b",
        True,
    ),
    (
        "an unknown PCIe path",
        objects.gpunodetopology,
        _set("status.pairs[0].pcie", "NV18"),
        "status.pairs[0].pcie",
        "must be 'PIX'",
        False,
    ),
    (
        "a pair naming a GPU the node lacks",
        objects.gpunodetopology,
        _set("status.pairs[0].b", 5),
        "status.pairs",
        "pairs must name GPUs of this node",
        True,
    ),
    (
        "MIG instances with MIG disabled",
        objects.gpunodetopology,
        _set("status.gpus[0].migInstances", [{"profile": "3g.40gb", "start": 4, "size": 4}]),
        "status.gpus[0].migInstances",
        "MIG instances exist only on a GPU with migMode Enabled",
        True,
    ),
    (
        "a MIG instance past the last slot",
        objects.gpunodetopology,
        _mig_instance_past_the_end,
        "status.gpus[0].migInstances[0].size",
        "the instance must end within the GPU's 8 memory slots",
        True,
    ),
]

_MODELS: dict[str, type[Resource]] = {
    "AIJob": AIJob,
    "TenantQuota": TenantQuota,
    "GPUNodeTopology": GPUNodeTopology,
}


@pytest.mark.parametrize(
    ("factory", "mutate", "path", "message", "mirrored"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_a_broken_spec_is_refused_naming_the_field(
    factory: Callable[[], dict[str, Any]], mutate: Mutation, path: str, message: str, mirrored: bool
) -> None:
    body = factory()
    assert validate_manifest(body) == [], "the unbroken object must be valid"
    mutate(body)
    errors = validate_manifest(body)
    assert errors is not None
    assert any(e.path == path and e.message.startswith(message) for e in errors), errors


@pytest.mark.parametrize(
    ("factory", "mutate", "path", "message"),
    [pytest.param(*case[1:5], id=case[0]) for case in CASES if case[5]],
)
def test_the_crd_refuses_what_the_model_refuses_with_the_same_field_and_message(
    factory: Callable[[], dict[str, Any]], mutate: Mutation, path: str, message: str
) -> None:
    body = factory()
    mutate(body)
    schema = crd_for(_MODELS[body["kind"]])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    cel = rule_errors(schema, body)
    assert any(
        e.path == path and (message.startswith(e.message) or e.message.startswith(message)) for e in cel
    ), cel


@pytest.mark.parametrize("factory", [objects.aijob, objects.tenantquota, objects.gpunodetopology])
def test_the_crd_rules_accept_valid_objects(factory: Callable[[], dict[str, Any]]) -> None:
    body = factory()
    schema = crd_for(_MODELS[body["kind"]])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert rule_errors(schema, body) == []
    assert rule_errors(schema, parse(_MODELS[body["kind"]], body).to_dict()) == []


@pytest.mark.parametrize(
    ("factory", "path", "value"),
    [
        pytest.param(
            objects.tenantquota,
            "spec.queueing",
            {
                "strategy": "StrictFIFO",
                "reservation": False,
                "aging": {"intervalSeconds": 0, "step": 1, "maxBoost": 0, "bandWidth": 1},
            },
            id="StrictFIFO, aging at its lower bounds",
        ),
        pytest.param(
            objects.tenantquota,
            "spec.queueing",
            {
                "strategy": "BestEffortFIFO",
                "reservation": True,
                "aging": {
                    "intervalSeconds": 7 * 24 * 3600,
                    "step": 1_000_000,
                    "maxBoost": 1_000_000_000,
                    "bandWidth": 1_000_000_000,
                },
            },
            id="BestEffortFIFO, aging at its upper bounds",
        ),
        pytest.param(objects.tenantquota, "spec.queueing", {}, id="queueing left to the cluster"),
        pytest.param(objects.aijob, "spec.runtimeLimitSeconds", 1, id="a runtime limit of one second"),
        pytest.param(
            objects.aijob, "spec.runtimeLimitSeconds", 365 * 24 * 3600, id="a runtime limit of a year"
        ),
    ],
)
def test_queueing_and_runtime_limits_within_bounds_pass_the_models_and_the_crd(
    factory: Callable[[], dict[str, Any]], path: str, value: Any
) -> None:
    body = factory()
    _set(path, value)(body)
    assert validate_manifest(body) == []
    schema = crd_for(_MODELS[body["kind"]])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    stored, errors, dropped = validate_custom_resource(schema, body)
    assert (errors, dropped) == ([], [])
    assert _get(stored, path) == value, "stored as given"
    parse(_MODELS[body["kind"]], stored)


def _get(body: dict[str, Any], path: str) -> Any:
    node: Any = body
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def test_every_cel_rule_is_exercised_by_a_broken_spec() -> None:
    """A rule no case breaks could be wrong in CEL without any test noticing."""
    exercised = {(re.sub(r"\[[^]]*\]", "", case[3]), case[4]) for case in CASES if case[5]}
    for model in _MODELS.values():
        schema = crd_for(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for rule_path, message in _rules(schema, ""):
            if message == "must not be negative":
                continue  # the int branch of every non-negative quantity; covered in test_quantity
            assert any(
                m.startswith(message) or message.startswith(m) for p, m in exercised if p == rule_path
            ), (
                rule_path,
                message,
            )


def _rules(schema: dict[str, Any], path: str) -> list[tuple[str, str]]:
    found = [
        ((path + r.get("fieldPath", "")).lstrip("."), r["message"])
        for r in schema.get("x-kubernetes-validations", [])
    ]
    for key, sub in schema.get("properties", {}).items():
        found += _rules(sub, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _rules(schema[key], path)
    return found


def test_parse_returns_the_model_or_raises_with_every_field_error() -> None:
    body = objects.aijob()
    job = parse(AIJob, body)
    assert job.spec.total_replicas() == 2
    assert job.spec.min_member() == 2
    assert job.spec.total_gpus() == 16
    broken = copy.deepcopy(body)
    broken["spec"]["replicas"][0]["count"] = -1
    broken["spec"]["priority"] = "high"
    with pytest.raises(InvalidObjectError) as info:
        parse(AIJob, broken)
    assert info.value.name == "llama-pretrain"
    assert {e.path for e in info.value.errors} == {"spec.replicas[0].count", "spec.priority"}


def test_nulls_mean_unset_as_the_api_server_prunes_them() -> None:
    body = objects.aijob()
    body["spec"]["gang"] = None
    body["spec"]["priority"] = None
    body["spec"]["replicas"][0]["template"]["metadata"] = {"labels": None}
    job = parse(AIJob, body)
    assert job.spec.priority == 0
    assert job.spec.gang.min_member is None


@pytest.mark.parametrize("value", ["two", "0", "²", "٣", "-1", "1.5", ""])
def test_gang_min_member_annotation_must_be_a_plain_positive_integer(value: str) -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "labels": {"aisched.io/gang": "g"},
            "annotations": {"aisched.io/gang-min-member": value},
        },
        "spec": {"schedulerName": "aisched", "containers": [{"name": "c", "image": "i"}]},
    }
    assert validate_manifest(pod) == [
        FieldError("metadata.annotations[aisched.io/gang-min-member]", "must be a positive integer")
    ]


def test_defaults_fill_what_a_user_leaves_out() -> None:
    job = parse(AIJob, objects.aijob())
    assert job.spec.restart.policy == "OnFailure"
    assert job.spec.restart.backoff_limit == 3
    assert job.spec.preemptible is True
    assert job.spec.checkpoint.method == "None"
    assert job.spec.gang.min_member is None


def test_an_elastic_job_gangs_its_fixed_roles_with_the_elastic_minimum() -> None:
    body = objects.aijob(workers=4)
    body["spec"]["elastic"] = {"minReplicas": 2, "maxReplicas": 8}
    assert parse(AIJob, body).spec.min_member() == 1 + 2


def test_validate_manifest_leaves_foreign_kinds_alone_and_checks_aisched_pods() -> None:
    assert validate_manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}) is None
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"aisched.io/gang-min-member": "two"}},
        "spec": {"schedulerName": "aisched", "containers": [{"name": "c", "image": "i"}]},
    }
    assert validate_manifest(pod) == [
        FieldError("metadata.annotations[aisched.io/gang-min-member]", "must be a positive integer"),
        FieldError("metadata.labels[aisched.io/gang]", "is required when aisched.io/gang-min-member is set"),
    ]
    pod["spec"]["schedulerName"] = "default-scheduler"
    assert validate_manifest(pod) is None


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"apiVersion": "aisched.io/v1", "kind": "AIJob"}, "apiVersion", "must be aisched.io/v1alpha1"),
        (
            {"apiVersion": "aisched.io/v1alpha1", "kind": "AIJobs"},
            "kind",
            "must be one of AIJob, GPUNodeTopology",
        ),
        ({"kind": "AIJob"}, "apiVersion", "is required"),
        ({**objects.aijob(), "metadata": {"namespace": "x"}}, "metadata.name", "is required"),
        ("just a string", "", "a manifest must be a mapping"),
    ],
)
def test_malformed_manifests_are_reported(body: Any, path: str, message: str) -> None:
    errors = validate_manifest(body)
    assert errors is not None
    assert errors[0].path == path
    assert errors[0].message.startswith(message)
