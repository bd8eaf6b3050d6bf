"""The simulated kubelet: bound pods run, demo pods finish, failed and deleted nodes fail theirs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Final, cast

import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient

PODS: Final = "/api/v1/namespaces/default/pods"
NODES: Final = "/api/v1/nodes"
NODE: Final = "h100-000"


@pytest.fixture
async def kube(emulator_cluster: Emulator) -> AsyncIterator[KubeClient]:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as client:
        yield client


def _pod(name: str, **annotations: str) -> JsonObject:
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "schedulerName": "aisched",
            "containers": [{"name": "main", "image": "busybox"}, {"name": "sidecar", "image": "envoy"}],
        },
    }


async def _bind(kube: KubeClient, pod: str, node: str = NODE) -> None:
    binding = {"metadata": {"name": pod}, "target": {"kind": "Node", "name": node}}
    await kube.post(f"{PODS}/{pod}/binding", binding)


async def _run(kube: KubeClient, name: str, node: str = NODE, **annotations: str) -> str:
    """Create and bind a pod; returns the revision its creation got."""
    created = await kube.post(PODS, _pod(name, **annotations))
    await _bind(kube, name, node)
    return str(created["metadata"]["resourceVersion"])


async def _until(
    kube: KubeClient, path: str, since: str, wanted: Callable[[JsonObject], bool], **params: str
) -> JsonObject:
    """The first object the watch of `path` from `since` shows in the `wanted` state."""
    stream = cast(
        AsyncGenerator[JsonObject, None], kube.watch(path, params={"resourceVersion": since, **params})
    )
    async with contextlib.aclosing(stream), asyncio.timeout(5):
        async for event in stream:
            if event["type"] != "DELETED" and wanted(event["object"]):
                return cast(JsonObject, event["object"])
    raise AssertionError("the watch ended before the state came")


def _phase(phase: str) -> Callable[[JsonObject], bool]:
    return lambda pod: (pod.get("status") or {}).get("phase") == phase


def _ready(node: JsonObject) -> str:
    return str(next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"))


async def test_a_bound_pod_starts_running_with_an_ip_and_container_statuses(kube: KubeClient) -> None:
    since = await _run(kube, "pod")
    running = await _until(kube, PODS, since, _phase("Running"), fieldSelector="metadata.name=pod")
    status = running["status"]
    assert status["podIP"]
    assert status["hostIP"]
    assert [(c["name"], c["ready"], "running" in c["state"]) for c in status["containerStatuses"]] == [
        ("main", True, True),
        ("sidecar", True, True),
    ]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert (conditions["PodScheduled"], conditions["Ready"]) == ("True", "True")


async def test_an_unbound_pod_stays_pending(kube: KubeClient) -> None:
    since = str((await kube.post(PODS, _pod("waiting")))["metadata"]["resourceVersion"])
    await _run(kube, "bound")
    await _until(kube, PODS, since, _phase("Running"), fieldSelector="metadata.name=bound")
    assert (await kube.get(f"{PODS}/waiting"))["status"]["phase"] == "Pending"


async def test_a_pod_with_a_sim_duration_succeeds_after_it(kube: KubeClient) -> None:
    since = await _run(kube, "short", **{"aisched.io/sim-duration": "0.05"})
    done = await _until(kube, PODS, since, _phase("Succeeded"), fieldSelector="metadata.name=short")
    exits = [c["state"]["terminated"]["exitCode"] for c in done["status"]["containerStatuses"]]
    assert exits == [0, 0]


async def test_a_pod_with_a_sim_exit_code_fails_with_that_code(kube: KubeClient) -> None:
    since = await _run(kube, "crash", **{"aisched.io/sim-duration": "0.05", "aisched.io/sim-exit-code": "3"})
    failed = await _until(kube, PODS, since, _phase("Failed"), fieldSelector="metadata.name=crash")
    terminated = [c["state"]["terminated"] for c in failed["status"]["containerStatuses"]]
    assert [(t["exitCode"], t["reason"]) for t in terminated] == [(3, "Error"), (3, "Error")]


async def test_a_failed_node_is_not_ready_and_heals(emulator_cluster: Emulator, kube: KubeClient) -> None:
    emulator_cluster.kubelet.fail_node(NODE)
    assert _ready(await kube.get(f"{NODES}/{NODE}")) == "False"
    emulator_cluster.kubelet.heal_node(NODE)
    assert _ready(await kube.get(f"{NODES}/{NODE}")) == "True"


async def test_a_pod_bound_to_a_not_ready_node_waits_for_it_to_heal(
    emulator_cluster: Emulator, kube: KubeClient
) -> None:
    emulator_cluster.kubelet.fail_node(NODE)
    since = await _run(kube, "stuck")
    # A pod bound later to a healthy node runs: the kubelet has had its chance at the first one.
    await _run(kube, "elsewhere", node="h100-001")
    await _until(kube, PODS, since, _phase("Running"), fieldSelector="metadata.name=elsewhere")
    assert (await kube.get(f"{PODS}/stuck"))["status"]["phase"] == "Pending"
    emulator_cluster.kubelet.heal_node(NODE)
    await _until(kube, PODS, since, _phase("Running"), fieldSelector="metadata.name=stuck")


async def test_deleting_a_node_fails_its_pods_as_node_lost(kube: KubeClient) -> None:
    since = await _run(kube, "victim")
    await _run(kube, "survivor", node="h100-001")
    await _until(kube, PODS, since, _phase("Running"), fieldSelector="metadata.name=victim")
    await kube.delete(f"{NODES}/{NODE}")
    failed = await _until(kube, PODS, since, _phase("Failed"), fieldSelector="metadata.name=victim")
    assert failed["status"]["reason"] == "NodeLost"
    assert all("terminated" in c["state"] for c in failed["status"]["containerStatuses"])
    survivor = await _until(kube, PODS, since, _phase("Running"), fieldSelector="metadata.name=survivor")
    assert survivor["spec"]["nodeName"] == "h100-001"
    assert (await kube.get(f"{PODS}/survivor"))["status"]["phase"] == "Running"


def _with_deadline(name: str, seconds: int, **annotations: str) -> JsonObject:
    pod = _pod(name, **annotations)
    pod["spec"]["activeDeadlineSeconds"] = seconds
    return pod


async def _run_with_deadline(kube: KubeClient, name: str, seconds: int, **annotations: str) -> str:
    created = await kube.post(PODS, _with_deadline(name, seconds, **annotations))
    await _bind(kube, name)
    return str(created["metadata"]["resourceVersion"])


def _deadline_exceeded(pod: JsonObject) -> None:
    status = pod["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert status["message"] == "Pod was active on the node for longer than the specified deadline"
    assert [c["state"]["terminated"]["exitCode"] for c in status["containerStatuses"]] == [137, 137]
    assert not any(c["ready"] for c in status["containerStatuses"])


async def test_a_pod_running_past_its_active_deadline_fails_as_deadline_exceeded(
    emulator_cluster: Emulator, kube: KubeClient
) -> None:
    # The deadline comes before the end of the work, or at the same moment: the deadline wins.
    since = await _run_with_deadline(kube, "late", 1, **{"aisched.io/sim-duration": "60"})
    await _run_with_deadline(kube, "tied", 1, **{"aisched.io/sim-duration": "1"})
    for name in ("late", "tied"):
        _deadline_exceeded(
            await _until(kube, PODS, since, _phase("Failed"), fieldSelector=f"metadata.name={name}")
        )
    assert not emulator_cluster.kubelet._timers


async def test_a_pod_that_ends_before_its_deadline_succeeds_and_its_deadline_is_dropped(
    emulator_cluster: Emulator, kube: KubeClient
) -> None:
    since = await _run_with_deadline(kube, "quick", 3600, **{"aisched.io/sim-duration": "0.05"})
    done = await _until(kube, PODS, since, _phase("Succeeded"), fieldSelector="metadata.name=quick")
    assert "reason" not in done["status"]
    assert "default/quick" not in emulator_cluster.kubelet._timers


async def test_deleting_a_running_pod_cancels_its_deadline(
    emulator_cluster: Emulator, kube: KubeClient
) -> None:
    since = await _run_with_deadline(kube, "doomed", 3600)
    await _until(kube, PODS, since, _phase("Running"), fieldSelector="metadata.name=doomed")
    assert "default/doomed" in emulator_cluster.kubelet._timers
    await kube.delete(f"{PODS}/doomed")
    assert "default/doomed" not in emulator_cluster.kubelet._timers


async def test_a_deadline_shortened_while_the_pod_runs_ends_it_sooner(kube: KubeClient) -> None:
    since = await _run_with_deadline(kube, "shortened", 3600)
    await _until(kube, PODS, since, _phase("Running"), fieldSelector="metadata.name=shortened")
    await kube.patch(f"{PODS}/shortened", {"spec": {"activeDeadlineSeconds": 1}})
    _deadline_exceeded(
        await _until(kube, PODS, since, _phase("Failed"), fieldSelector="metadata.name=shortened")
    )


async def test_a_pod_found_running_is_judged_by_its_start_time(
    emulator_cluster: Emulator, kube: KubeClient
) -> None:
    """A pod this kubelet did not start (its node was down; someone else reports it running since
    long ago) is past its deadline at once, once its node is back."""
    emulator_cluster.kubelet.fail_node(NODE)
    since = await _run_with_deadline(kube, "inherited", 60)
    since_2000 = {"running": {"startedAt": "2000-01-01T00:00:00Z"}}
    running = {
        "phase": "Running",
        "startTime": "2000-01-01T00:00:00Z",
        "containerStatuses": [{"name": c, "ready": True, "state": since_2000} for c in ("main", "sidecar")],
    }
    await kube.patch(f"{PODS}/inherited/status", {"status": running})
    assert (await kube.get(f"{PODS}/inherited"))["status"]["phase"] == "Running", "its kubelet is silent"
    emulator_cluster.kubelet.heal_node(NODE)
    _deadline_exceeded(
        await _until(kube, PODS, since, _phase("Failed"), fieldSelector="metadata.name=inherited")
    )
