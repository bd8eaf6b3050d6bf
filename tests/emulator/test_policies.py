"""ValidatingAdmissionPolicies on the emulator, through real kubectl: aisched's device policy
(manifests/base/60-device-policy.yaml) refuses a tenant naming or changing a pod's devices, as a real
API server would, and lets the scheduler's own writes through."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aisched.emulator.cel import CelEvaluator
from aisched.emulator.errors import StatusError
from aisched.emulator.policies import AdmissionPolicies, Request
from aisched.emulator.resources import BUILTIN
from aisched.emulator.runner import Emulator
from tests.support.kubectl import Kubectl, require_kubectl

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEDULER = "system:serviceaccount:aisched-system:aisched-scheduler"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Kubectl]]:
    require_kubectl()
    async with Emulator() as emulator:
        kubectl = Kubectl(emulator.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")
        await kubectl.ok("apply", "-f", str(ROOT / "manifests" / "base" / "60-device-policy.yaml"))
        yield emulator, kubectl


def _pod(name: str, annotations: dict[str, str]) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"schedulerName": "aisched", "containers": [{"name": "c", "image": "i"}]},
        }
    )


async def test_a_pod_may_not_be_created_naming_its_gpus(api: tuple[Emulator, Kubectl]) -> None:
    _, kubectl = api
    refused = await kubectl("apply", "-f", "-", stdin=_pod("forger", {"aisched.io/gpus": "GPU-1"}))
    assert refused.code != 0
    assert (
        # kubectl prints a 422 with causes so, from a real API server's policy denial as from this one
        'The pods "forger" is invalid: : '
        "ValidatingAdmissionPolicy 'aisched-device-annotations' with binding 'aisched-device-annotations' "
        "denied request: aisched.io/gpus names the GPUs aisched binds a pod to"
    ) in refused.err
    await kubectl.ok("apply", "-f", "-", stdin=_pod("sharer", {"aisched.io/gpu-milli": "250"}))


async def test_a_bound_pods_devices_are_the_schedulers(api: tuple[Emulator, Kubectl]) -> None:
    _, kubectl = api
    await kubectl.ok("apply", "-f", "-", stdin=_pod("worker", {}))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "worker", "annotations": {"aisched.io/gpus": "GPU-1"}},
        "target": {"kind": "Node", "name": "node-a"},
    }
    await kubectl.ok(
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/worker/binding",
        "-f",
        "-",
        stdin=json.dumps(binding),
    )
    changed = await kubectl("annotate", "pod", "worker", "aisched.io/gpus=GPU-2", "--overwrite")
    assert changed.code != 0
    assert "the devices of a bound pod" in changed.err
    removed = await kubectl("annotate", "pod", "worker", "aisched.io/gpus-")
    assert removed.code != 0
    await kubectl.ok("annotate", "pod", "worker", "team=nlp")  # anything else is the user's
    got = json.loads(await kubectl.ok("get", "pod", "worker", "-o", "json"))
    assert got["metadata"]["annotations"]["aisched.io/gpus"] == "GPU-1"
    assert got["metadata"]["annotations"]["team"] == "nlp"
    # The scheduler itself is not matched.
    await kubectl.ok("annotate", "pod", "worker", "aisched.io/gpus=GPU-3", "--overwrite", f"--as={SCHEDULER}")


def _book(policy_spec: dict[str, Any]) -> AdmissionPolicies:
    stored: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"): [
            {"metadata": {"name": "p"}, "spec": policy_spec}
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): [
            {"metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": ["Deny"]}}
        ],
    }
    return AdmissionPolicies(lambda key: stored.get(key, []), CelEvaluator())


PODS = next(r for r in BUILTIN if r.key == ("", "pods"))
RULES: dict[str, Any] = {
    "resourceRules": [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
    ]
}


def test_a_failing_expression_refuses_under_fail_and_is_ignored_under_ignore() -> None:
    broken = {"matchConstraints": RULES, "validations": [{"expression": "object.spec.nothing.here == 1"}]}
    request = Request(PODS, "CREATE", {"metadata": {"name": "x"}, "spec": {}}, None, sub=None, user="alice")
    with pytest.raises(StatusError) as refused:
        _book(broken).validate(request)
    assert refused.value.code == 422
    assert "denied request: expression evaluation error" in refused.value.message
    _book({**broken, "failurePolicy": "Ignore"}).validate(request)


def test_only_what_the_rules_match_is_validated() -> None:
    never: dict[str, Any] = {
        "matchConstraints": RULES,
        "validations": [{"expression": "false", "reason": "Forbidden"}],
    }
    pod = {"metadata": {"name": "x"}, "spec": {}}
    for request in (
        Request(PODS, "UPDATE", pod, pod, sub=None, user="alice"),
        Request(PODS, "CREATE", pod, None, sub="binding", user="alice"),
    ):
        _book(never).validate(request)
    with pytest.raises(StatusError) as refused:
        _book(never).validate(Request(PODS, "CREATE", pod, None, sub=None, user="alice"))
    assert (refused.value.code, refused.value.reason) == (403, "Forbidden")
    assert "failed expression: false" in refused.value.message
    excluded = {**never, "matchConstraints": {**RULES, "excludeResourceRules": RULES["resourceRules"]}}
    _book(excluded).validate(Request(PODS, "CREATE", pod, None, sub=None, user="alice"))
