"""The install bundle: each kustomization renders offline with real kubectl and applies to the
emulator, and the overlays change what they say they do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aisched.emulator.runner import Emulator
from tests.support.kubectl import Kubectl, require_kubectl

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "ghcr.io/aisched/aisched:0.1.0"


@pytest.fixture
async def kubectl(tmp_path: Path) -> AsyncIterator[Kubectl]:
    require_kubectl()
    async with Emulator() as emulator:
        yield Kubectl(emulator.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")


async def _render(kubectl: Kubectl, directory: str) -> list[dict[str, Any]]:
    rendered = await kubectl.ok("kustomize", str(ROOT / directory))
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


async def test_the_default_install_renders_with_its_image_tagged_in_one_place(kubectl: Kubectl) -> None:
    docs = await _render(kubectl, "manifests")
    kinds = sorted(d["kind"] for d in docs)
    assert "CustomResourceDefinition" not in kinds, "the CRDs are applied first, from crds/"
    assert {
        "Namespace",
        "ClusterRole",
        "Deployment",
        "DaemonSet",
        "Service",
        "ValidatingAdmissionPolicy",
    } <= set(kinds)
    images = {
        c["image"]
        for d in docs
        if d["kind"] in ("Deployment", "DaemonSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {IMAGE}
    assert _one(docs, "Deployment", "aisched-scheduler")["spec"]["replicas"] == 2


async def test_the_ha_overlay_adds_replicas_kept_apart_and_a_disruption_budget(kubectl: Kubectl) -> None:
    docs = await _render(kubectl, "manifests/overlays/ha")
    scheduler = _one(docs, "Deployment", "aisched-scheduler")
    assert scheduler["spec"]["replicas"] == 3
    anti = scheduler["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    labels = scheduler["spec"]["template"]["metadata"]["labels"]
    budget = _one(docs, "PodDisruptionBudget", "aisched-scheduler")
    assert budget["spec"]["minAvailable"] == 2
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert scheduler["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE


@pytest.mark.parametrize(("directory", "replicas"), [("manifests", "2"), ("manifests/overlays/ha", "3")])
async def test_each_kustomization_applies_to_the_emulator(
    kubectl: Kubectl, directory: str, replicas: str
) -> None:
    applied = await kubectl.ok("apply", "-k", str(ROOT / directory))
    assert "deployment.apps/aisched-scheduler created" in applied
    assert (
        "validatingadmissionpolicy.admissionregistration.k8s.io/aisched-device-annotations created" in applied
    )
    got = await kubectl.ok(
        "get", "deployment", "aisched-scheduler", "-n", "aisched-system", "-o", "jsonpath={.spec.replicas}"
    )
    assert got == replicas
    again = await kubectl.ok("apply", "-k", str(ROOT / directory))
    assert "created" not in again, "applied twice, nothing is made again"


async def test_the_agent_overlay_installs_the_agent_alone_on_gpu_nodes(kubectl: Kubectl) -> None:
    docs = await _render(kubectl, "manifests/overlays/agent")
    assert all("scheduler" not in d["metadata"]["name"] for d in docs), "nothing of the scheduler's"
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        ("Namespace", "aisched-system"),
        ("Namespace", "aisched-agents"),
        ("ServiceAccount", "aisched-agent"),
        ("ClusterRole", "aisched-agent"),
        ("ClusterRoleBinding", "aisched-agent"),
        ("Role", "aisched-agent"),
        ("RoleBinding", "aisched-agent"),
        ("DaemonSet", "aisched-agent"),
    }
    agent = _one(docs, "DaemonSet", "aisched-agent")
    affinity = agent["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]} in term["matchExpressions"]
    assert agent["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    applied = await kubectl.ok("apply", "-k", str(ROOT / "manifests/overlays/agent"))
    assert "daemonset.apps/aisched-agent created" in applied
    assert "deployment" not in applied
    again = await kubectl.ok("apply", "-k", str(ROOT / "manifests/overlays/agent"))
    assert "created" not in again, "applied twice, nothing is made again"


async def test_the_device_plugin_overlay_runs_the_agent_as_the_kubelets_plugin(kubectl: Kubectl) -> None:
    docs = await _render(kubectl, "manifests/overlays/device-plugin")
    agent = _one(docs, "DaemonSet", "aisched-agent")["spec"]["template"]["spec"]
    (container,) = agent["containers"]
    assert container["command"] == ["aisched", "agent"]
    assert container["args"] == ["--device-plugin"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["device-plugins"] == "/var/lib/kubelet/device-plugins"
    volumes = {v["name"]: v for v in agent["volumes"]}
    assert volumes["device-plugins"]["hostPath"] == {
        "path": "/var/lib/kubelet/device-plugins",
        "type": "Directory",
    }
    # Root, for the kubelet's root-owned directory, and nothing more.
    assert agent["securityContext"]["runAsUser"] == 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The agent may list and watch pods (its node's, by field selector) in every install.
    role = _one(docs, "ClusterRole", "aisched-agent")
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]} in role["rules"]
    applied = await kubectl.ok("apply", "-k", str(ROOT / "manifests/overlays/device-plugin"))
    assert "daemonset.apps/aisched-agent created" in applied
