"""PATCH semantics: RFC 7386 merge patch, RFC 6902 JSON patch, Kubernetes strategic merge patch."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisched.emulator.patch import (
    PATCH_TYPES,
    STRATEGIC_MERGE_KEYS,
    ListStrategy,
    MergeKeyTable,
    PatchError,
    PatchTestFailed,
    UnsupportedPatch,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

# -- RFC 7386 ---------------------------------------------------------------------------------

RFC7386_APPENDIX_A: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("document", "patch", "expected"), RFC7386_APPENDIX_A)
def test_merge_patch_matches_the_rfc7386_appendix(document: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(document, patch) == expected


def test_merge_patch_matches_the_rfc7386_section_3_example() -> None:
    document = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    }
    assert merge_patch(document, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_merge_patch_result_shares_no_structure_with_the_patch() -> None:
    patch: dict[str, Any] = {"spec": {"nodeSelector": {"gpu": "a100"}}}
    result = merge_patch({}, patch)
    result["spec"]["nodeSelector"]["gpu"] = "h100"
    assert patch == {"spec": {"nodeSelector": {"gpu": "a100"}}}


# -- RFC 6902 ---------------------------------------------------------------------------------

RFC6902_APPENDIX_A: dict[str, tuple[Any, list[dict[str, Any]], Any]] = {
    "A.1 add an object member": (
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    "A.2 add an array element": (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    "A.3 remove an object member": (
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    "A.4 remove an array element": (
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    "A.5 replace a value": (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    "A.6 move a value": (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    "A.7 move an array element": (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    "A.8 test a value, success": (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    "A.10 add a nested member object": (
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    "A.11 ignore unrecognized elements": (
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    "A.14 ~ escape ordering": (
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    "A.16 add an array value": (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    "copy a value": (
        {"foo": {"bar": 1}},
        [{"op": "copy", "from": "/foo", "path": "/baz"}],
        {"foo": {"bar": 1}, "baz": {"bar": 1}},
    ),
    "add to the root replaces the document": ({"foo": 1}, [{"op": "add", "path": "", "value": [1]}], [1]),
}


@pytest.mark.parametrize(
    ("document", "operations", "expected"), RFC6902_APPENDIX_A.values(), ids=RFC6902_APPENDIX_A.keys()
)
def test_json_patch_matches_the_rfc6902_appendix(
    document: Any, operations: list[dict[str, Any]], expected: Any
) -> None:
    assert json_patch(document, operations) == expected


def test_failed_test_operation_names_the_path_rfc6902_a9() -> None:
    with pytest.raises(PatchTestFailed, match="/baz"):
        json_patch({"baz": "qux", "foo": ["a", 2, "c"]}, [{"op": "test", "path": "/baz", "value": "bar"}])


def test_test_operation_tells_strings_from_numbers_rfc6902_a15() -> None:
    with pytest.raises(PatchTestFailed, match="/~01"):
        json_patch({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}])


def test_test_operation_tells_booleans_from_numbers() -> None:
    with pytest.raises(PatchTestFailed):
        json_patch({"a": True}, [{"op": "test", "path": "/a", "value": 1}])


def test_test_operation_compares_numbers_by_value() -> None:
    assert json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}


@pytest.mark.parametrize(
    ("document", "operation"),
    [
        pytest.param(
            {"foo": "bar"},
            {"op": "add", "path": "/baz/bat", "value": "qux"},
            id="A.12 add to a missing parent",
        ),
        pytest.param({"foo": "bar"}, {"op": "remove", "path": "/baz"}, id="remove a missing member"),
        pytest.param(
            {"foo": "bar"}, {"op": "replace", "path": "/baz", "value": 1}, id="replace a missing member"
        ),
        pytest.param({"foo": [1]}, {"op": "remove", "path": "/foo/1"}, id="remove past the end"),
        pytest.param({"foo": [1]}, {"op": "remove", "path": "/foo/-"}, id="remove the end marker"),
        pytest.param({"foo": [1, 2]}, {"op": "add", "path": "/foo/01", "value": 0}, id="leading zero index"),
        pytest.param({"foo": [1]}, {"op": "add", "path": "/foo/3", "value": 0}, id="add past the end"),
        pytest.param(
            {"foo": {"a": 1}}, {"op": "move", "from": "/foo", "path": "/foo/a/b"}, id="move into a child"
        ),
        pytest.param(
            {"foo": 1}, {"op": "copy", "from": "/nope", "path": "/bar"}, id="copy from a missing path"
        ),
        pytest.param({"foo": 1}, {"op": "test", "path": "/nope", "value": 1}, id="test a missing path"),
        pytest.param({"foo": 1}, {"op": "add", "path": "/bar"}, id="add without a value"),
        pytest.param({"foo": 1}, {"op": "frobnicate", "path": "/foo"}, id="unknown op"),
        pytest.param({"foo": 1}, {"op": "add", "path": "foo", "value": 1}, id="pointer without a slash"),
        pytest.param({"foo": 1}, {"op": "add", "path": "/~2", "value": 1}, id="bad escape"),
        pytest.param({"foo": 1}, {"op": "remove", "path": ""}, id="remove the root"),
    ],
)
def test_json_patch_rejects_operations_that_cannot_apply(document: Any, operation: dict[str, Any]) -> None:
    with pytest.raises(PatchError):
        json_patch(document, [operation])


def test_json_patch_is_all_or_nothing() -> None:
    document = {"metadata": {"labels": {"a": "1"}}}
    with pytest.raises(PatchTestFailed):
        json_patch(
            document,
            [
                {"op": "add", "path": "/metadata/labels/b", "value": "2"},
                {"op": "test", "path": "/metadata/labels/a", "value": "0"},
            ],
        )
    assert document == {"metadata": {"labels": {"a": "1"}}}


def test_json_patch_unescapes_a_slash_in_an_annotation_key() -> None:
    operations = [{"op": "add", "path": "/metadata/annotations/aisched.io~1gang", "value": "g1"}]
    assert json_patch({"metadata": {"annotations": {}}}, operations) == {
        "metadata": {"annotations": {"aisched.io/gang": "g1"}}
    }


def test_json_patch_must_be_a_list() -> None:
    with pytest.raises(PatchError, match="list of operations"):
        json_patch({}, {"op": "add", "path": "/a", "value": 1})


def test_a_later_operation_does_not_write_into_an_earlier_operations_value() -> None:
    operations: list[dict[str, Any]] = [
        {"op": "add", "path": "/a", "value": {}},
        {"op": "add", "path": "/a/b", "value": 1},
    ]
    assert json_patch({}, operations) == {"a": {"b": 1}}
    assert operations[0]["value"] == {}


def test_copied_values_are_independent_of_their_source() -> None:
    result = json_patch(
        {"a": {"b": 1}},
        [{"op": "copy", "from": "/a", "path": "/c"}, {"op": "replace", "path": "/c/b", "value": 2}],
    )
    assert result == {"a": {"b": 1}, "c": {"b": 2}}


# -- strategic merge patch ----------------------------------------------------------------------


def live_pod() -> dict[str, Any]:
    """A pod as the API server stores it: defaulted, scheduled, running."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "trainer-0",
            "namespace": "default",
            "uid": "0b7c",
            "resourceVersion": "42",
            "labels": {"app": "trainer", "aisched.io/gang": "g1"},
            "finalizers": ["aisched.io/gang"],
        },
        "spec": {
            "containers": [
                {
                    "name": "trainer",
                    "image": "trainer:1",
                    "imagePullPolicy": "IfNotPresent",
                    "env": [{"name": "RANK", "value": "0"}, {"name": "WORLD", "value": "8"}],
                    "ports": [{"containerPort": 29500, "protocol": "TCP"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "resources": {"limits": {"nvidia.com/gpu": "8"}},
                },
                {"name": "metrics", "image": "exporter:2", "imagePullPolicy": "IfNotPresent"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
            ],
            "nodeName": "gpu-1",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            ],
            "containerStatuses": [
                {"name": "trainer", "ready": False, "restartCount": 0},
                {"name": "metrics", "ready": True, "restartCount": 0},
            ],
        },
    }


def smp_pod(patch: dict[str, Any]) -> dict[str, Any]:
    return strategic_merge_patch(live_pod(), patch, kind="Pod")


def test_containers_merge_by_name_keeping_other_containers_and_fields() -> None:
    result = smp_pod({"spec": {"containers": [{"name": "trainer", "image": "trainer:2"}]}})
    expected = live_pod()
    expected["spec"]["containers"][0]["image"] = "trainer:2"
    assert result == expected


def test_env_merges_by_name_within_a_container() -> None:
    result = smp_pod(
        {
            "spec": {
                "containers": [
                    {
                        "name": "trainer",
                        "env": [{"name": "WORLD", "value": "16"}, {"name": "NCCL", "value": "1"}],
                    }
                ]
            }
        }
    )
    assert result["spec"]["containers"][0]["env"] == [
        {"name": "RANK", "value": "0"},
        {"name": "WORLD", "value": "16"},
        {"name": "NCCL", "value": "1"},
    ]


def test_ports_merge_by_container_port() -> None:
    result = smp_pod(
        {
            "spec": {
                "containers": [
                    {
                        "name": "trainer",
                        "ports": [{"containerPort": 29500, "name": "rdzv"}, {"containerPort": 8080}],
                    }
                ]
            }
        }
    )
    assert result["spec"]["containers"][0]["ports"] == [
        {"containerPort": 29500, "protocol": "TCP", "name": "rdzv"},
        {"containerPort": 8080},
    ]


def test_volume_mounts_merge_by_mount_path() -> None:
    result = smp_pod(
        {
            "spec": {
                "containers": [
                    {"name": "trainer", "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}
                ]
            }
        }
    )
    assert result["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True}
    ]


def test_env_from_is_replaced_wholesale() -> None:
    pod = live_pod()
    pod["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "a"}}]
    result = strategic_merge_patch(
        pod,
        {"spec": {"containers": [{"name": "trainer", "envFrom": [{"secretRef": {"name": "b"}}]}]}},
        kind="Pod",
    )
    assert result["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "b"}}]


def test_new_list_items_go_before_the_server_only_items_like_the_api_server() -> None:
    result = smp_pod({"spec": {"containers": [{"name": "debug", "image": "busybox"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["debug", "trainer", "metrics"]


def test_patch_delete_directive_removes_a_container() -> None:
    result = smp_pod({"spec": {"containers": [{"name": "metrics", "$patch": "delete"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["trainer"]


def test_patch_replace_directive_on_a_list_replaces_it() -> None:
    result = smp_pod({"spec": {"containers": [{"$patch": "replace"}, {"name": "solo", "image": "x"}]}})
    assert result["spec"]["containers"] == [{"name": "solo", "image": "x"}]


def test_patch_replace_directive_on_a_map_replaces_it() -> None:
    result = smp_pod({"metadata": {"labels": {"$patch": "replace", "team": "ml"}}})
    assert result["metadata"]["labels"] == {"team": "ml"}
    assert result["metadata"]["name"] == "trainer-0"


def test_patch_delete_directive_on_a_map_empties_it() -> None:
    result = smp_pod({"metadata": {"labels": {"$patch": "delete"}}})
    assert result["metadata"]["labels"] == {}


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({"metadata": {"labels": {"$patch": "merge", "a": "b"}}}, id="merge on a map"),
        pytest.param(
            {"spec": {"containers": [{"name": "trainer", "$patch": "merge"}]}}, id="merge on a list item"
        ),
        pytest.param({"metadata": {"labels": {"$patch": "squash"}}}, id="unknown value on a map"),
        pytest.param(
            {"spec": {"containers": [{"name": "trainer", "$patch": "squash"}]}}, id="unknown value in a list"
        ),
        pytest.param({"spec": {"$frobnicate": ["containers"]}}, id="unknown directive key"),
    ],
)
def test_directives_the_api_server_rejects_are_rejected(patch: dict[str, Any]) -> None:
    with pytest.raises(PatchError):
        smp_pod(patch)


def test_set_element_order_reorders_containers() -> None:
    result = smp_pod({"spec": {"$setElementOrder/containers": [{"name": "metrics"}, {"name": "trainer"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["metrics", "trainer"]
    assert result["spec"]["containers"][1] == live_pod()["spec"]["containers"][0]


def test_set_element_order_places_a_patched_container_and_keeps_the_server_only_one() -> None:
    result = smp_pod(
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "debug"}, {"name": "trainer"}],
                "containers": [{"name": "debug", "image": "busybox"}],
            }
        }
    )
    assert [c["name"] for c in result["spec"]["containers"]] == ["debug", "trainer", "metrics"]


def test_set_element_order_that_contradicts_the_patch_list_is_rejected() -> None:
    with pytest.raises(PatchError, match="setElementOrder"):
        smp_pod(
            {
                "spec": {
                    "$setElementOrder/containers": [{"name": "trainer"}],
                    "containers": [{"name": "metrics", "image": "exporter:3"}],
                }
            }
        )


def test_delete_from_primitive_list_removes_finalizers() -> None:
    pod = live_pod()
    pod["metadata"]["finalizers"] = ["a", "aisched.io/gang", "b"]
    result = strategic_merge_patch(
        pod, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["aisched.io/gang", "zzz"]}}, kind="Pod"
    )
    assert result["metadata"]["finalizers"] == ["a", "b"]


def test_delete_from_primitive_list_of_a_missing_field_adds_nothing() -> None:
    pod = live_pod()
    del pod["metadata"]["finalizers"]
    result = strategic_merge_patch(
        pod, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}, kind="Pod"
    )
    assert "finalizers" not in result["metadata"]


def test_finalizers_merge_as_a_set_union() -> None:
    result = smp_pod(
        {"metadata": {"finalizers": ["aisched.io/gang", "kopf.zalando.org/KopfFinalizerMarker"]}}
    )
    assert result["metadata"]["finalizers"] == ["aisched.io/gang", "kopf.zalando.org/KopfFinalizerMarker"]


def test_labels_null_deletes_a_label_and_keeps_the_others() -> None:
    result = smp_pod({"metadata": {"labels": {"aisched.io/gang": None, "tier": "gold"}}})
    assert result["metadata"]["labels"] == {"app": "trainer", "tier": "gold"}


def test_null_for_a_missing_field_is_ignored() -> None:
    result = smp_pod({"metadata": {"annotations": None, "labels": {"nope": None}}})
    assert result == live_pod()


def test_pod_status_conditions_merge_by_type() -> None:
    result = smp_pod(
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "aisched.io/GangReady", "status": "True"},
                ]
            }
        }
    )
    assert result["status"]["conditions"] == [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "True", "reason": "ContainersNotReady"},
        {"type": "aisched.io/GangReady", "status": "True"},
    ]


def test_container_statuses_are_replaced_wholesale_as_k8s_api_declares_no_merge_key() -> None:
    result = smp_pod(
        {"status": {"containerStatuses": [{"name": "trainer", "ready": True, "restartCount": 0}]}}
    )
    assert result["status"]["containerStatuses"] == [{"name": "trainer", "ready": True, "restartCount": 0}]


def test_tolerations_are_replaced_wholesale() -> None:
    result = smp_pod({"spec": {"tolerations": [{"key": "aisched.io/reserved", "operator": "Exists"}]}})
    assert result["spec"]["tolerations"] == [{"key": "aisched.io/reserved", "operator": "Exists"}]


def test_owner_references_merge_by_uid() -> None:
    pod = live_pod()
    pod["metadata"]["ownerReferences"] = [{"uid": "u1", "kind": "AIJob", "name": "j", "controller": True}]
    result = strategic_merge_patch(
        pod,
        {
            "metadata": {
                "ownerReferences": [
                    {"uid": "u1", "controller": False},
                    {"uid": "u2", "kind": "Gang", "name": "g"},
                ]
            }
        },
        kind="Pod",
    )
    assert result["metadata"]["ownerReferences"] == [
        {"uid": "u1", "kind": "AIJob", "name": "j", "controller": False},
        {"uid": "u2", "kind": "Gang", "name": "g"},
    ]


def test_a_list_item_without_its_merge_key_is_rejected() -> None:
    with pytest.raises(PatchError, match="merge key"):
        smp_pod({"spec": {"containers": [{"image": "x"}]}})


def test_a_new_field_is_stored_without_directives_or_nulls() -> None:
    result = smp_pod(
        {
            "spec": {
                "securityContext": {
                    "runAsUser": 1000,
                    "fsGroup": None,
                    "seLinuxOptions": {"$patch": "delete"},
                }
            }
        }
    )
    assert result["spec"]["securityContext"] == {"runAsUser": 1000}


def test_retain_keys_clears_the_fields_it_does_not_list() -> None:
    deployment = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    result = strategic_merge_patch(
        deployment, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, kind="Deployment"
    )
    assert result == {"spec": {"strategy": {"type": "Recreate"}}}


def test_retain_keys_rejects_a_patched_field_it_does_not_list() -> None:
    deployment = {"spec": {"strategy": {"type": "RollingUpdate"}}}
    with pytest.raises(PatchError, match="retainKeys"):
        strategic_merge_patch(
            deployment,
            {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
            kind="Deployment",
        )


def node() -> dict[str, Any]:
    return {
        "metadata": {"name": "gpu-1"},
        "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "MemoryPressure", "status": "False"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.1"},
                {"type": "Hostname", "address": "gpu-1"},
            ],
        },
    }


def test_node_conditions_and_addresses_merge_by_type() -> None:
    result = strategic_merge_patch(
        node(),
        {
            "status": {
                "conditions": [{"type": "Ready", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
            }
        },
        kind="Node",
    )
    assert result["status"] == {
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
        "addresses": [
            {"type": "InternalIP", "address": "10.0.0.2"},
            {"type": "Hostname", "address": "gpu-1"},
        ],
    }


def test_node_taints_are_replaced_wholesale_as_k8s_api_declares_no_merge_key() -> None:
    result = strategic_merge_patch(
        node(), {"spec": {"taints": [{"key": "a", "effect": "NoExecute"}]}}, kind="Node"
    )
    assert result["spec"]["taints"] == [{"key": "a", "effect": "NoExecute"}]


def test_service_ports_merge_by_port() -> None:
    service = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}
    result = strategic_merge_patch(
        service, {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}, kind="Service"
    )
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}]


def test_deployment_template_containers_merge_by_name() -> None:
    deployment = {
        "kind": "Deployment",
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.26", "env": [{"name": "A", "value": "1"}]},
                        {"name": "log", "image": "fluentbit"},
                    ]
                },
            },
        },
    }
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "2"}]}]}}
        }
    }
    result = strategic_merge_patch(deployment, patch, kind="Deployment")
    assert result["spec"]["template"]["spec"]["containers"] == [
        {
            "name": "web",
            "image": "nginx:1.26",
            "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
        },
        {"name": "log", "image": "fluentbit"},
    ]


def test_unknown_kind_is_treated_as_a_custom_resource() -> None:
    with pytest.raises(PatchError, match="not supported for custom resources; use a merge patch"):
        strategic_merge_patch({}, {"spec": {}}, kind="AIJob")


def test_the_merge_key_table_can_be_extended_for_another_kind() -> None:
    table: dict[str, MergeKeyTable] = {
        **STRATEGIC_MERGE_KEYS,
        "GPUNodeTopology": {("spec", "gpus"): ListStrategy(merge_key="index")},
    }
    result = strategic_merge_patch(
        {"spec": {"gpus": [{"index": 0, "bus": "a"}, {"index": 1, "bus": "b"}]}},
        {"spec": {"gpus": [{"index": 1, "bus": "c"}]}},
        kind="GPUNodeTopology",
        merge_keys=table,
    )
    assert result["spec"]["gpus"] == [{"index": 0, "bus": "a"}, {"index": 1, "bus": "c"}]


# -- kubectl 1.32 client-side apply --------------------------------------------------------------

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def manifest(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"annotations": {}, "name": "web", "namespace": "default"},
        "spec": {
            "containers": [
                {"image": image, "name": "web"},
                {"command": ["sleep", "infinity"], "image": "busybox:1.36", "name": "sidecar"},
            ]
        },
    }


def last_applied(image: str) -> str:
    # kubectl stores json.Marshal of the manifest (sorted keys, compact) plus a newline.
    return json.dumps(manifest(image), sort_keys=True, separators=(",", ":")) + "\n"


def live_web_pod(image: str) -> dict[str, Any]:
    defaults = {
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {LAST_APPLIED: last_applied(image)},
            "name": "web",
            "namespace": "default",
            "uid": "9f1e",
            "resourceVersion": "7",
        },
        "spec": {
            "containers": [
                {"image": image, "name": "web", **defaults},
                {"command": ["sleep", "infinity"], "image": "busybox:1.36", "name": "sidecar", **defaults},
            ],
            "restartPolicy": "Always",
            "nodeName": "gpu-1",
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


# What `kubectl apply -f pod.yaml` (1.32) sends after the web image changes: its three-way patch,
# byte for byte as captured (json.Marshal orders keys, so the directive precedes the list).
KUBECTL_APPLY_PATCH = (
    '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\\"apiVersion\\":\\"v1\\",'
    '\\"kind\\":\\"Pod\\",\\"metadata\\":{\\"annotations\\":{},\\"name\\":\\"web\\",\\"namespace\\":\\"default\\"},'
    '\\"spec\\":{\\"containers\\":[{\\"image\\":\\"nginx:1.27\\",\\"name\\":\\"web\\"},{\\"command\\":[\\"sleep\\",'
    '\\"infinity\\"],\\"image\\":\\"busybox:1.36\\",\\"name\\":\\"sidecar\\"}]}}\\n"}},'
    '"spec":{"$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],'
    '"containers":[{"image":"nginx:1.27","name":"web"}]}}'
)


def test_kubectl_apply_image_change_patch_applies_as_the_api_server_would() -> None:
    patch = json.loads(KUBECTL_APPLY_PATCH)
    assert patch["metadata"]["annotations"][LAST_APPLIED] == last_applied("nginx:1.27")
    result = apply_patch(
        live_web_pod("nginx:1.26"),
        patch,
        content_type="application/strategic-merge-patch+json",
        kind="Pod",
        is_custom=False,
    )
    assert result == live_web_pod("nginx:1.27")


# -- dispatch ---------------------------------------------------------------------------------


def test_patch_types_name_the_function_for_each_content_type() -> None:
    assert dict(PATCH_TYPES) == {
        "application/merge-patch+json": "merge_patch",
        "application/json-patch+json": "json_patch",
        "application/strategic-merge-patch+json": "strategic_merge_patch",
    }


@pytest.mark.parametrize(
    ("content_type", "body", "containers"),
    [
        ("application/merge-patch+json", {"spec": {"containers": [{"name": "x"}]}}, ["x"]),
        ("application/merge-patch+json; charset=utf-8", {"spec": {"containers": [{"name": "x"}]}}, ["x"]),
        ("application/json-patch+json", [{"op": "remove", "path": "/spec/containers/1"}], ["trainer"]),
        (
            "application/strategic-merge-patch+json",
            {"spec": {"containers": [{"name": "x"}]}},
            ["x", "trainer", "metrics"],
        ),
    ],
)
def test_apply_patch_dispatches_on_content_type(content_type: str, body: Any, containers: list[str]) -> None:
    result = apply_patch(live_pod(), body, content_type=content_type, kind="Pod", is_custom=False)
    assert [c["name"] for c in result["spec"]["containers"]] == containers


def test_strategic_merge_patch_on_a_custom_resource_is_unsupported() -> None:
    with pytest.raises(UnsupportedPatch, match="custom resources; use a merge patch"):
        apply_patch(
            {}, {}, content_type="application/strategic-merge-patch+json", kind="AIJob", is_custom=True
        )


def test_server_side_apply_is_unsupported_and_says_so() -> None:
    with pytest.raises(UnsupportedPatch, match="server-side apply"):
        apply_patch(
            live_pod(), "{}", content_type="application/apply-patch+yaml", kind="Pod", is_custom=False
        )


def test_an_unknown_media_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedPatch, match="unknown format"):
        apply_patch(live_pod(), {}, content_type="application/json", kind="Pod", is_custom=False)


def test_a_patch_that_leaves_no_object_is_rejected() -> None:
    with pytest.raises(PatchError, match="not a JSON object"):
        apply_patch(
            live_pod(),
            [{"op": "replace", "path": "", "value": 3}],
            content_type="application/json-patch+json",
            kind="Pod",
            is_custom=False,
        )


# -- properties -------------------------------------------------------------------------------

SCALARS: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "b", "~1"])
)
KEYS = st.sampled_from(["a", "b", "c", "$patch", "name"])
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=12,
)
POINTERS = st.sampled_from(["", "/a", "/a/0", "/a/-", "/b/c", "/0", "/a/~1", "/c"])
OPERATIONS = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]), "path": POINTERS},
    optional={"from": POINTERS, "value": JSON_VALUES},
)

NAMES = st.sampled_from(["a", "b", "c"])
ENV = st.lists(
    st.fixed_dictionaries({"name": NAMES}, optional={"value": st.sampled_from(["1", "2", None])}), max_size=3
)
CONTAINER = st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "image": st.sampled_from(["x", "y", None]),
        "env": ENV,
        "$patch": st.sampled_from(["delete", "replace", "merge"]),
    },
)
POD_SPEC = st.fixed_dictionaries(
    {},
    optional={
        "containers": st.lists(CONTAINER, max_size=3),
        "$setElementOrder/containers": st.lists(st.fixed_dictionaries({"name": NAMES}), max_size=3),
        "tolerations": st.lists(st.fixed_dictionaries({"key": NAMES}), max_size=2),
        "nodeSelector": st.dictionaries(NAMES, st.sampled_from(["1", None]), max_size=2),
    },
)
POD_META = st.fixed_dictionaries(
    {},
    optional={
        "finalizers": st.lists(NAMES, max_size=3),
        "$deleteFromPrimitiveList/finalizers": st.lists(NAMES, max_size=2),
        "labels": st.dictionaries(NAMES, st.sampled_from(["1", None]), max_size=2),
    },
)
PODS: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {}, optional={"metadata": POD_META, "spec": POD_SPEC}
)


@settings(max_examples=300)
@given(document=JSON_VALUES, patch=JSON_VALUES)
def test_merge_patch_never_mutates_its_inputs(document: Any, patch: Any) -> None:
    before = copy.deepcopy((document, patch))
    merge_patch(document, patch)
    assert (document, patch) == before


@settings(max_examples=300)
@given(document=JSON_VALUES, patch=JSON_VALUES)
def test_merge_patch_is_idempotent(document: Any, patch: Any) -> None:
    once = merge_patch(document, patch)
    assert merge_patch(once, patch) == once


@settings(max_examples=300)
@given(document=JSON_VALUES, operations=st.lists(OPERATIONS, max_size=4))
def test_json_patch_never_mutates_its_inputs(document: Any, operations: list[dict[str, Any]]) -> None:
    before = copy.deepcopy((document, operations))
    with contextlib.suppress(PatchError):
        json_patch(document, operations)
    assert (document, operations) == before


@settings(max_examples=500)
@given(document=PODS, patch=PODS)
def test_strategic_merge_patch_never_mutates_its_inputs(
    document: dict[str, Any], patch: dict[str, Any]
) -> None:
    before = copy.deepcopy((document, patch))
    try:
        result = strategic_merge_patch(document, patch, kind="Pod")
    except PatchError:
        result = None
    assert (document, patch) == before
    if result is not None and "$" not in json.dumps(document):
        assert "$" not in json.dumps(result), "a directive leaked into the stored object"
