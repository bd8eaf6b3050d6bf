"""The real kubectl against the emulator: apply, get, watch, describe, patch, label, delete, wait."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from aisched.emulator.runner import Emulator
from tests.support.kubectl import Kubectl, require_kubectl

ROOT = Path(__file__).parents[2]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Kubectl]]:
    require_kubectl()
    async with Emulator() as emulator:
        yield emulator, Kubectl(emulator.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Kubectl]]:
    require_kubectl()
    async with Emulator(cluster=ROOT / "examples" / "clusters" / "demo.yaml") as emulator:
        yield emulator, Kubectl(emulator.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")


async def test_apply_crds_then_every_example_without_turning_validation_off(
    api: tuple[Emulator, Kubectl],
) -> None:
    _, kubectl = api
    out = await kubectl.ok("apply", "-f", str(ROOT / "crds"))
    assert "customresourcedefinition.apiextensions.k8s.io/aijobs.aisched.io created" in out
    out = await kubectl.ok("apply", "-f", str(ROOT / "examples"))
    for created in (
        "namespace/ml-research created",
        "aijob.aisched.io/llama-pretrain-ddp created",
        "tenantquota.aisched.io/research created",
        "pod/llm-eval-0 created",
    ):
        assert created in out
    again = await kubectl.ok("apply", "-f", str(ROOT / "examples"))
    assert "aijob.aisched.io/llama-pretrain-ddp unchanged" in again


async def test_get_prints_the_printer_columns(api: tuple[Emulator, Kubectl]) -> None:
    _emulator, kubectl = api
    await kubectl.ok("apply", "-f", str(ROOT / "crds"))
    await kubectl.ok(
        "apply",
        "-f",
        str(ROOT / "examples" / "00-namespaces.yaml"),
        "-f",
        str(ROOT / "examples" / "aijob-pytorch-ddp.yaml"),
    )
    await kubectl.ok(
        "patch",
        "aijob",
        "llama-pretrain-ddp",
        "-n",
        "ml-research",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running", "gpus": 16, "tenant": "research"}}),
    )
    out = await kubectl.ok("get", "aij", "-n", "ml-research")
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "GPUS", "TENANT", "QUEUE", "POSITION", "AGE"]
    assert row.split()[:4] == ["llama-pretrain-ddp", "Running", "16", "research"]
    assert len(row.split()) == 5, "a running job has no place in a queue"


async def test_a_waiting_jobs_place_and_expected_start_are_columns(api: tuple[Emulator, Kubectl]) -> None:
    _emulator, kubectl = api
    await kubectl.ok("apply", "-f", str(ROOT / "crds"))
    await kubectl.ok(
        "apply",
        "-f",
        str(ROOT / "examples" / "00-namespaces.yaml"),
        "-f",
        str(ROOT / "examples" / "aijob-pytorch-ddp.yaml"),
    )
    queue = {
        "name": "tenant/research",
        "strategy": "BestEffortFIFO",
        "position": 3,
        "length": 7,
        "estimatedStart": "2027-01-15T08:14:00Z",
    }
    status = {"phase": "Queued", "gpus": 16, "tenant": "research", "queue": queue}
    await kubectl.ok(
        "patch",
        "aijob",
        "llama-pretrain-ddp",
        "-n",
        "ml-research",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    out = await kubectl.ok("get", "aij", "-n", "ml-research")
    assert out.splitlines()[1].split()[:5] == ["llama-pretrain-ddp", "Queued", "16", "research", "3"]
    wide = await kubectl.ok("get", "aij", "-n", "ml-research", "-o", "wide")
    header, row = wide.splitlines()[:2]
    assert header.split()[4:] == ["QUEUE", "POSITION", "EST.", "START", "AGE"]
    assert row.split()[4:6] == ["3", "2027-01-15T08:14:00Z"]


async def test_an_invalid_aijob_is_refused_naming_the_field(
    api: tuple[Emulator, Kubectl], tmp_path: Path
) -> None:
    _, kubectl = api
    await kubectl.ok("apply", "-f", str(ROOT / "crds"))
    job = yaml.safe_load((ROOT / "examples" / "aijob-pytorch-ddp.yaml").read_text())
    job["metadata"]["namespace"] = "default"
    job["spec"]["gang"] = {"minMember": 20}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(job))
    result = await kubectl("apply", "-f", str(path))
    assert result.code != 0
    assert "spec.gang.minMember" in result.err
    assert "must not exceed the total number of replicas" in result.err
    assert "aijob" not in (await kubectl.ok("get", "aijobs", "-A", "-o", "name"))


async def test_get_watch_streams_new_objects(api: tuple[Emulator, Kubectl]) -> None:
    _, kubectl = api
    before = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "before"}}
    await kubectl.ok("apply", "-f", "-", stdin=json.dumps(before))
    watch = await kubectl.start("get", "configmaps", "-w", "--no-headers")
    try:
        assert watch.stdout is not None
        # kubectl prints what it listed, then watches from the list's resourceVersion.
        line = await asyncio.wait_for(watch.stdout.readline(), timeout=30)
        assert line.decode().split()[0] == "before"
        hello = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello"}, "data": {"a": "b"}}
        await kubectl.ok("apply", "-f", "-", stdin=json.dumps(hello))
        line = await asyncio.wait_for(watch.stdout.readline(), timeout=30)
        assert line.decode().split()[0] == "hello"
    finally:
        watch.terminate()
        await watch.wait()


async def test_get_events_prints_the_timestamps_kopf_posts(api: tuple[Emulator, Kubectl]) -> None:
    _, kubectl = api
    posted = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "widget-handled"},
        "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default"},
        "type": "Normal",
        "reason": "Logging",
        "message": "handled",
        "firstTimestamp": posted,
        "lastTimestamp": posted,
    }
    await kubectl.ok("create", "-f", "-", stdin=json.dumps(event))
    out = await kubectl.ok("get", "events", "--no-headers")
    assert out.split()[:4] == ["5m", "Normal", "Logging", "widget/w1"]


async def test_describe_patch_label_and_delete(api: tuple[Emulator, Kubectl]) -> None:
    _, kubectl = api
    await kubectl.ok("apply", "-f", str(ROOT / "crds"))
    await kubectl.ok("apply", "-f", str(ROOT / "examples" / "tenantquotas.yaml"))
    described = await kubectl.ok("describe", "tenantquota", "research")
    assert "Name:" in described
    assert "research" in described
    await kubectl.ok("patch", "tq", "research", "--type=merge", "-p", '{"spec":{"weight":3}}')
    assert await kubectl.ok("get", "tq", "research", "-o", "jsonpath={.spec.weight}") == "3"
    await kubectl.ok("label", "tq", "research", "team=ml")
    assert await kubectl.ok("get", "tq", "-l", "team=ml", "-o", "name") == "tenantquota.aisched.io/research\n"
    refused = await kubectl("patch", "tq", "research", "--type=merge", "-p", '{"spec":{"weight":0}}')
    assert refused.code != 0
    assert "spec.weight" in refused.err
    await kubectl.ok("delete", "tq", "research")
    assert await kubectl.ok("get", "tq", "-o", "name") == "tenantquota.aisched.io/inference\n"


async def test_wait_for_a_bound_pod_to_run_on_the_simulated_kubelet(
    cluster: tuple[Emulator, Kubectl],
) -> None:
    _emulator, kubectl = cluster
    await kubectl.ok("run", "sleeper", "--image=busybox", "--restart=Never")
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "sleeper"},
        "target": {"kind": "Node", "name": "h100-000"},
    }
    await kubectl.ok(
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/sleeper/binding",
        "-f",
        "-",
        stdin=json.dumps(binding),
    )
    await kubectl.ok("wait", "--for=jsonpath={.status.phase}=Running", "pod/sleeper", "--timeout=30s")
    nodes = await kubectl.ok("get", "nodes", "--no-headers")
    assert len(nodes.splitlines()) == 8
    topologies = await kubectl.ok("get", "gnt", "-o", "name")
    assert "gpunodetopology.aisched.io/h100-000" in topologies


async def test_server_side_apply_creates_keeps_changes_conflicts_and_forces(
    api: tuple[Emulator, Kubectl], tmp_path: Path
) -> None:
    _, kubectl = api
    await kubectl.ok("apply", "--server-side", "-f", str(ROOT / "crds"))
    quota = yaml.safe_load((ROOT / "examples" / "tenantquotas.yaml").read_text().split("\n---")[0])
    path = tmp_path / "quota.yaml"

    async def apply(weight: float, *args: str) -> tuple[str, str]:
        quota["spec"]["weight"] = weight
        path.write_text(yaml.safe_dump(quota))
        out = await kubectl.ok("apply", "--server-side", "-f", str(path), *args)
        version = await kubectl.ok(
            "get", "tq", quota["metadata"]["name"], "-o", "jsonpath={.metadata.resourceVersion}"
        )
        return out, version

    out, created = await apply(2)
    assert out == f"tenantquota.aisched.io/{quota['metadata']['name']} serverside-applied\n"
    _, unchanged = await apply(2)
    assert unchanged == created, "an unchanged apply writes nothing"
    _, changed = await apply(3)
    assert int(changed) > int(created)
    quota["spec"]["weight"] = 4
    path.write_text(yaml.safe_dump(quota))
    refused = await kubectl("apply", "--server-side", "--field-manager=other", "-f", str(path))
    assert refused.code != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.weight' in refused.err
    assert await kubectl.ok("get", "tq", quota["metadata"]["name"], "-o", "jsonpath={.spec.weight}") == "3"
    await kubectl.ok("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", str(path))
    assert await kubectl.ok("get", "tq", quota["metadata"]["name"], "-o", "jsonpath={.spec.weight}") == "4"
    owners = await kubectl.ok(
        "get", "tq", quota["metadata"]["name"], "--show-managed-fields", "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}={.fieldsV1.f:spec.f:weight}{'\\n'}{end}",
    )  # fmt: skip
    assert owners.split() == ["kubectl=", "other={}"], "the weight changed hands"


async def test_explain_prints_the_fields_of_custom_and_core_kinds(api: tuple[Emulator, Kubectl]) -> None:
    _, kubectl = api
    await kubectl.ok("apply", "-f", str(ROOT / "crds"))
    spec = await kubectl.ok("explain", "aijob.spec")
    assert "KIND:       AIJob" in spec
    assert "replicas\t<[]Object> -required-" in spec
    assert "gang\t<Object>" in spec
    quota = await kubectl.ok("explain", "tenantquota.spec")
    assert "namespaces\t<[]string>" in quota
    recursive = await kubectl.ok("explain", "aijob.spec", "--recursive")
    assert "minMember\t<integer>" in recursive, "fields of nested objects are listed"
    containers = await kubectl.ok("explain", "pods.spec.containers")
    assert "name\t<string> -required-" in containers
    assert "KIND:       Pod" in await kubectl.ok("explain", "pods.spec")
