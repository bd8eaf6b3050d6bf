"""The ValidatingAdmissionPolicy guarding the device annotations aisched writes at binding
(manifests/base/60-device-policy.yaml), its CEL evaluated on the requests it must refuse and allow."""

from __future__ import annotations

import pathlib
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel

POLICY = pathlib.Path(__file__).resolve().parent.parent / "manifests" / "base" / "60-device-policy.yaml"
SCHEDULER = "system:serviceaccount:aisched-system:aisched-scheduler"


def _policy() -> dict[str, Any]:
    documents = list(yaml.safe_load_all(POLICY.read_text()))
    (policy,) = [d for d in documents if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in documents if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    return dict(policy["spec"])


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression)).evaluate(activation)


def verdict(
    operation: str, obj: dict[str, Any], old: dict[str, Any] | None, user: str = "alice"
) -> list[str]:
    """The messages of the validations `operation` fails (empty: allowed); [] also when the request
    is not matched at all."""
    spec = _policy()
    activation: dict[str, Any] = {
        "object": json_to_cel(obj),
        "oldObject": json_to_cel(old if old is not None else {}),
        "request": json_to_cel({"operation": operation, "userInfo": {"username": user}}),
    }
    if not all(bool(_evaluate(c["expression"], activation)) for c in spec["matchConditions"]):
        return []
    variables: dict[str, Any] = {}
    for variable in spec["variables"]:
        activation["variables"] = celpy.celtypes.MapType(
            {celpy.celtypes.StringType(k): v for k, v in variables.items()}
        )
        variables[variable["name"]] = _evaluate(variable["expression"], activation)
    activation["variables"] = celpy.celtypes.MapType(
        {celpy.celtypes.StringType(k): v for k, v in variables.items()}
    )
    return [v["message"] for v in spec["validations"] if not bool(_evaluate(v["expression"], activation))]


def pod(annotations: dict[str, str], node: str | None = None) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations}, "spec": {"nodeName": node} if node else {}}


BOUND = pod({"aisched.io/gpus": "GPU-1", "aisched.io/gpu-milli": "250"}, node="n1")


@pytest.mark.parametrize(
    ("operation", "obj", "old"),
    [
        ("CREATE", pod({"aisched.io/mig": "3g.40gb", "aisched.io/gpu-milli": "250"}), None),
        ("UPDATE", pod({**BOUND["metadata"]["annotations"], "team": "nlp"}, node="n1"), BOUND),
        ("UPDATE", pod({"team": "nlp"}), pod({})),
    ],
    ids=["create-asking-for-a-share", "bound-other-annotation", "pending-update"],
)
def test_what_users_do_is_allowed(operation: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    assert verdict(operation, obj, old) == []


@pytest.mark.parametrize(
    ("operation", "obj", "old"),
    [
        ("CREATE", pod({"aisched.io/gpus": "GPU-of-another-team"}), None),
        ("UPDATE", pod({"aisched.io/gpus": "GPU-2", "aisched.io/gpu-milli": "250"}, node="n1"), BOUND),
        ("UPDATE", pod({"aisched.io/gpus": "GPU-1", "aisched.io/gpu-milli": "100"}, node="n1"), BOUND),
        ("UPDATE", pod({}, node="n1"), BOUND),
    ],
    ids=["create-naming-gpus", "bound-gpus-changed", "bound-share-changed", "bound-devices-removed"],
)
def test_naming_or_changing_devices_is_refused(
    operation: str, obj: dict[str, Any], old: dict[str, Any] | None
) -> None:
    assert verdict(operation, obj, old)


def test_the_scheduler_itself_is_not_matched() -> None:
    changed = pod({"aisched.io/gpus": "GPU-2"}, node="n1")
    assert verdict("UPDATE", changed, BOUND, user=SCHEDULER) == []
    assert verdict("UPDATE", changed, BOUND)
