"""resource.k8s.io/v1 in the emulator, driven with the real kubectl: NVIDIA-shaped DeviceClasses and
ResourceSlices of the simulated nodes, the kinds' validation, and a kubelet that starts a pod only
once its claims are allocated and reserved for it, recording which devices each container gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aisched.emulator.cluster import ClusterSpec
from aisched.emulator.runner import Emulator
from tests.support.kubectl import Kubectl, require_kubectl

NAMESPACE = "ml"
CLUSTER = ClusterSpec.model_validate(
    {
        "draDriver": True,
        "nodeGroups": [
            {"name": "h", "count": 2, "machine": "dgx-h100", "rack": "r1"},
            {"name": "m", "count": 1, "machine": "a100-mig", "rack": "r2"},
        ],
    }
)


@pytest.fixture
async def dra(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Kubectl]]:
    require_kubectl()
    async with Emulator(cluster=CLUSTER) as emulator:
        kubectl = Kubectl(emulator.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        await kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(namespace))
        yield emulator, kubectl


def claim(name: str, *, mode: str = "ExactCount", count: int = 2) -> str:
    request = {
        "name": "gpus",
        "exactly": {"deviceClassName": "gpu.nvidia.com", "allocationMode": mode, "count": count},
    }
    body = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"devices": {"requests": [request]}},
    }  # fmt: skip
    return yaml.safe_dump(body)


async def test_nodes_publish_nvidia_shaped_slices_and_the_driver_its_device_classes(
    dra: tuple[Emulator, Kubectl],
) -> None:
    _, kubectl = dra

    classes = json.loads(await kubectl.ok("get", "deviceclasses", "-o", "json"))["items"]
    slices = {
        s["spec"]["nodeName"]: s
        for s in json.loads(await kubectl.ok("get", "resourceslices", "-o", "json"))["items"]
    }

    assert sorted(c["metadata"]["name"] for c in classes) == ["gpu.nvidia.com", "mig.nvidia.com"]
    assert sorted(slices) == ["h-000", "h-001", "m-000"]
    h0 = slices["h-000"]["spec"]
    assert h0["driver"] == "gpu.nvidia.com"
    assert h0["pool"] == {"name": "h-000", "generation": 0, "resourceSliceCount": 1}
    gpus = [d for d in h0["devices"] if d["attributes"]["type"]["string"] == "gpu"]
    assert [d["name"] for d in gpus] == [f"gpu-{i}" for i in range(8)]
    first = gpus[0]["attributes"]
    assert first["productName"] == {"string": "NVIDIA H100-80GB"}
    assert first["architecture"] == {"string": "Hopper"}
    assert first["cudaComputeCapability"] == {"version": "9.0.0"}
    assert gpus[0]["capacity"]["memory"] == {"value": "81920Mi"}
    topology = json.loads(await kubectl.ok("get", "gpunodetopologies", "h-000", "-o", "json"))["status"]
    assert [d["attributes"]["uuid"]["string"] for d in gpus] == [g["uuid"] for g in topology["gpus"]]
    migs = [d for d in slices["m-000"]["spec"]["devices"] if d["attributes"]["type"]["string"] == "mig"]
    assert migs
    assert {d["attributes"]["profile"]["string"] for d in migs} >= {"3g.40gb", "1g.10gb"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (claim("bad-mode", mode="Some"), "spec.devices.requests[0].exactly.allocationMode"),
        (claim("zero", count=0), "spec.devices.requests[0].exactly.count"),
        (claim("Upper-Case-Request").replace("name: gpus", "name: GPUs"), "spec.devices.requests[0].name"),
    ],
)
async def test_an_invalid_claim_is_refused_naming_the_field(
    dra: tuple[Emulator, Kubectl], body: str, field: str
) -> None:
    _, kubectl = dra

    result = await kubectl("apply", "-f", "-", stdin=body)

    assert result.code != 0
    assert field in result.err


async def test_a_slice_must_say_its_node_or_all_nodes(dra: tuple[Emulator, Kubectl]) -> None:
    _, kubectl = dra
    body = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": "nowhere"},
        "spec": {"driver": "gpu.nvidia.com", "pool": {"name": "p", "generation": 0, "resourceSliceCount": 1}},
    }

    result = await kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))

    assert result.code != 0
    assert "spec" in result.err
    assert "oneOf" in result.err


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "train", "namespace": NAMESPACE},
        "spec": {
            "schedulerName": "aisched",
            "resourceClaims": [{"name": "gpus", "resourceClaimName": "two"}],
            "containers": [{"name": "train", "image": "x", "resources": {"claims": [{"name": "gpus"}]}}],
        },
    }


async def test_the_kubelet_starts_a_pod_only_once_its_claim_is_allocated_and_reserved_for_it(
    dra: tuple[Emulator, Kubectl],
) -> None:
    emulator, kubectl = dra
    await kubectl.ok("apply", "-f", "-", stdin=claim("two"))
    pod = json.loads(await kubectl.ok("apply", "-f", "-", "-o", "json", stdin=yaml.safe_dump(_pod())))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "train"},
        "target": {"name": "h-001"},
    }
    await kubectl.ok(
        "create",
        "--raw",
        f"/api/v1/namespaces/{NAMESPACE}/pods/train/binding",
        "-f",
        "-",
        stdin=json.dumps(binding),
    )
    await kubectl.ok(
        "wait", "--for=jsonpath={.reason}=FailedPrepareDynamicResources", "-n", NAMESPACE,
        "events", "--field-selector=involvedObject.name=train", "--timeout=30s",
    )  # fmt: skip
    assert (
        await kubectl.ok("get", "pod", "train", "-n", NAMESPACE, "-o", "jsonpath={.status.phase}")
    ) == "Pending"

    results = [
        {"request": "gpus", "driver": "gpu.nvidia.com", "pool": "h-001", "device": f"gpu-{i}"} for i in (2, 3)
    ]
    status = {
        "status": {
            "allocation": {"devices": {"results": results}},
            "reservedFor": [{"resource": "pods", "name": "train", "uid": pod["metadata"]["uid"]}],
        }
    }
    patch = ("--subresource=status", "--type=merge", "-p", json.dumps(status))
    await kubectl.ok("patch", "resourceclaim", "two", "-n", NAMESPACE, *patch)
    await kubectl.ok(
        "wait", "--for=jsonpath={.status.phase}=Running", "pod/train", "-n", NAMESPACE, "--timeout=30s"
    )

    assert emulator.kubelet.devices[f"{NAMESPACE}/train"] == {
        "train": ["gpu.nvidia.com/h-001/gpu-2", "gpu.nvidia.com/h-001/gpu-3"]
    }


async def test_a_pods_claim_is_made_from_its_template_and_released_when_the_pod_ends(
    dra: tuple[Emulator, Kubectl],
) -> None:
    emulator, kubectl = dra
    request = {"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}
    template = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": "one-gpu", "namespace": NAMESPACE},
        "spec": {"spec": {"devices": {"requests": [request]}}},
    }
    await kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(template))
    pod = _pod()
    pod["metadata"]["annotations"] = {"aisched.io/sim-duration": "1s"}
    pod["spec"]["resourceClaims"] = [{"name": "gpus", "resourceClaimTemplateName": "one-gpu"}]
    created = json.loads(await kubectl.ok("apply", "-f", "-", "-o", "json", stdin=yaml.safe_dump(pod)))
    await kubectl.ok(
        "wait", "--for=jsonpath={.status.resourceClaimStatuses[0].name}=gpus", "pod/train", "-n", NAMESPACE
    )
    made = json.loads(await kubectl.ok("get", "pod", "train", "-n", NAMESPACE, "-o", "json"))
    claim_name = made["status"]["resourceClaimStatuses"][0]["resourceClaimName"]
    generated = json.loads(
        await kubectl.ok("get", "resourceclaim", claim_name, "-n", NAMESPACE, "-o", "json")
    )
    assert claim_name.startswith("train-gpus-")
    assert generated["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert generated["metadata"]["annotations"]["resource.kubernetes.io/pod-claim-name"] == "gpus"
    assert generated["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"] == "gpu.nvidia.com"

    result = {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "h-000", "device": "gpu-5"}
    reserved = {"resource": "pods", "name": "train", "uid": created["metadata"]["uid"]}
    status = {"status": {"allocation": {"devices": {"results": [result]}}, "reservedFor": [reserved]}}
    patch = ("--subresource=status", "--type=merge", "-p", json.dumps(status))
    await kubectl.ok("patch", "resourceclaim", claim_name, "-n", NAMESPACE, *patch)
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "train"},
        "target": {"name": "h-000"},
    }
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/train/binding"
    await kubectl.ok("create", "--raw", path, "-f", "-", stdin=json.dumps(binding))
    await kubectl.ok(
        "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/train", "-n", NAMESPACE, "--timeout=30s"
    )
    assert emulator.kubelet.devices[f"{NAMESPACE}/train"] == {"train": ["gpu.nvidia.com/h-000/gpu-5"]}

    # The pod's end was written before kubectl could see it: its claim was released on that turn.
    released = json.loads(await kubectl.ok("get", "resourceclaim", claim_name, "-n", NAMESPACE, "-o", "json"))
    assert released.get("status", {}) == {}  # reserved for nobody, so deallocated
