"""Hardware faults under running gangs, end to end: the operator on the emulator, faults injected
through the emulator's API as `aisched fault` does. Each ends the pods it hits with the reason,
the job's recovery runs at once, and nothing new goes to the node while it cools down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

import pytest

from aisched.emulator import faults
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from aisched.runner import DEFAULT_CLUSTER, ensure_namespace
from aisched.settings import load_settings
from tests.test_operator import AIJOBS, NAMESPACE, PODS, WAIT, Operator, _start, job, phase, until

EVENTS: Final = f"/api/v1/namespaces/{NAMESPACE}/events"
#: Short, so the tests wait little; the default is 10 s.
DETECTION: Final = 1.0


@pytest.fixture
async def operator() -> AsyncIterator[Operator]:
    async with Emulator(cluster=DEFAULT_CLUSTER) as api, KubeClient(base_url=api.url, timeout=10.0) as kube:
        ensure_namespace(api, "aisched-system")
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        config = load_settings(
            {},
            metrics={"port": 0, "host": "127.0.0.1"},
            leader_election={"lease_duration": 3, "renew_deadline": 2.0, "retry_period": 0.25},
            failures={"detection_seconds": DETECTION, "node_cooldown_seconds": 300},
        )
        stop = asyncio.Event()
        task = await _start(api, config, stop)
        try:
            yield Operator(api, kube)
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                assert await task == 0, "the operator exited with an error"


def _restartable(name: str, **options: Any) -> JsonObject:
    body = job(name, workers=1, **options)
    body["spec"]["restart"] = {"policy": "OnFailure", "backoffLimit": 3}
    return body


async def _running(kube: KubeClient, name: str) -> dict[str, JsonObject]:
    """The job's pods by name once it runs."""
    await until(kube, AIJOBS, lambda j: phase(j, name) == "Running")
    pods = (await kube.get(PODS, params={"labelSelector": f"aisched.io/job={name}"}))["items"]
    return {p["metadata"]["name"]: p for p in pods}


async def _restarted(kube: KubeClient, name: str) -> JsonObject:
    jobs = await until(
        kube,
        AIJOBS,
        lambda j: phase(j, name) == "Running" and (j[name]["status"].get("restarts") or 0) >= 1,
    )
    return jobs[name]


def _fault(pod: JsonObject) -> JsonObject | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "DisruptionTarget"), None)


async def _events(kube: KubeClient, path: str, reason: str) -> list[JsonObject]:
    return [e for e in (await kube.get(path))["items"] if e["reason"] == reason]


async def test_a_node_not_ready_ends_its_pods_and_the_gang_restarts_elsewhere(operator: Operator) -> None:
    kube = operator.kube
    await kube.post(AIJOBS, _restartable("ddp"))
    pods = await _running(kube, "ddp")
    lost = pods["ddp-worker-0"]["spec"]["nodeName"]
    version = (await kube.get(PODS))["metadata"]["resourceVersion"]

    await faults.set_ready(kube, lost, False)

    failed = await until(kube, PODS, lambda p: _fault(p.get("ddp-worker-0") or {}) is not None)
    worker = failed["ddp-worker-0"]
    condition = _fault(worker)
    assert condition is not None
    assert condition["reason"] == "NodeNotReady"
    assert condition["message"].startswith(f"node {lost} has not been ready for 1s (Ready=False")
    assert (worker["status"]["phase"], worker["status"]["reason"]) == ("Failed", "NodeNotReady")
    assert worker["metadata"]["resourceVersion"] > version
    restarted = await _restarted(kube, "ddp")
    assert restarted["status"]["restarts"] == 1
    said = [e["message"] for e in (await kube.get(EVENTS))["items"] if e["involvedObject"]["kind"] == "AIJob"]
    assert any(
        m.startswith("restarting the gang (1/3): pod ddp-worker-0 failed: NodeNotReady (node ") for m in said
    ), said
    again = await _running(kube, "ddp")
    assert lost not in {p["spec"]["nodeName"] for p in again.values()}
    assert [e["involvedObject"]["name"] for e in await _events(kube, EVENTS, "NodeNotReady")] == [
        "ddp-worker-0"
    ]
    cooling = await _events(kube, "/api/v1/namespaces/default/events", "NodeCoolingDown")
    assert [e["involvedObject"]["name"] for e in cooling] == [lost]


async def test_a_node_back_within_its_detection_time_ends_nothing(operator: Operator) -> None:
    kube = operator.kube
    await kube.post(AIJOBS, _restartable("steady"))
    await kube.post(AIJOBS, _restartable("other"))
    pods = await _running(kube, "steady")
    other = await _running(kube, "other")
    node = pods["steady-master-0"]["spec"]["nodeName"]

    await faults.set_ready(kube, node, False)  # a kubelet restart: back at once
    await faults.set_ready(kube, node, True)
    # Not ready after it and for good: once its pods are ended, the first node's time was up too.
    await faults.set_ready(kube, other["other-master-0"]["spec"]["nodeName"], False)
    await _restarted(kube, "other")

    now = await _running(kube, "steady")
    assert {n: p["metadata"]["uid"] for n, p in now.items()} == {
        n: p["metadata"]["uid"] for n, p in pods.items()
    }
    assert all(_fault(p) is None for p in now.values())


async def test_a_deleted_node_ends_its_pods_as_lost(operator: Operator) -> None:
    kube = operator.kube
    await kube.post(AIJOBS, _restartable("gone"))
    pods = await _running(kube, "gone")
    node = pods["gone-master-0"]["spec"]["nodeName"]

    await faults.delete_node(kube, node)

    restarted = await _restarted(kube, "gone")
    assert restarted["status"]["restarts"] == 1
    events = await _events(kube, EVENTS, "NodeLost")
    assert [(e["involvedObject"]["name"], e["message"]) for e in events] == [
        ("gone-master-0", f"node {node} was deleted")
    ]


async def test_an_xid_under_a_pod_ends_it_with_its_stop_signal_and_cools_the_node(operator: Operator) -> None:
    kube = operator.kube
    body = _restartable("xid", gpus=4)
    body["spec"]["checkpoint"] = {"method": "Signal", "signal": "SIGUSR1", "gracePeriodSeconds": 30}
    await kube.post(AIJOBS, body)
    pods = await _running(kube, "xid")
    master = pods["xid-master-0"]
    node = master["spec"]["nodeName"]
    held = master["metadata"]["annotations"]["aisched.io/gpus"].split(",")
    topology = await kube.get(f"/apis/aisched.io/v1alpha1/gpunodetopologies/{node}")
    index = next(g["index"] for g in topology["status"]["gpus"] if g["uuid"] == held[0])

    await faults.gpu_health(kube, node, index, xid=79)

    restarted = await _restarted(kube, "xid")
    assert restarted["status"]["restarts"] == 1
    said = [e["message"] for e in (await kube.get(EVENTS))["items"] if e["involvedObject"]["kind"] == "AIJob"]
    assert any("pod xid-master-0 failed: GPUUnhealthy (GPU " in m and "XID 79" in m for m in said), said
    [event] = await _events(kube, EVENTS, "GPUUnhealthy")
    assert event["involvedObject"]["name"] == "xid-master-0"
    assert event["message"] == f"GPU {held[0]} (index {index}) on node {node} is unhealthy: XID 79"
    killing = [e["message"] for e in await _events(kube, EVENTS, "Killing")]
    assert "Stopping container pytorch with signal SIGUSR1" in killing, "the job's checkpoint signal"
    again = await _running(kube, "xid")
    assert node not in {p["spec"]["nodeName"] for p in again.values()}, "the node cools down"


async def test_pods_of_other_schedulers_are_left_to_the_cluster(operator: Operator) -> None:
    kube = operator.kube
    await kube.post(AIJOBS, _restartable("mine"))
    pods = await _running(kube, "mine")
    node = pods["mine-master-0"]["spec"]["nodeName"]
    plain = {
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": node},
    }
    await kube.post(PODS, plain)
    await until(kube, PODS, lambda p: (p.get("web") or {}).get("status", {}).get("phase") == "Running")

    await faults.set_ready(kube, node, False)

    await _restarted(kube, "mine")
    web = await kube.get(f"{PODS}/web")
    assert _fault(web) is None
    assert web["status"]["phase"] == "Running", "the node lifecycle controller's to evict, not aisched's"


async def test_under_replace_only_the_lost_pod_is_replaced_in_the_survivors_rack(operator: Operator) -> None:
    kube = operator.kube
    body = job("elastic", workers=2)
    body["spec"]["restart"] = {"policy": "Replace", "backoffLimit": 3}
    await kube.post(AIJOBS, body)
    pods = await _running(kube, "elastic")
    lost = pods["elastic-worker-1"]["spec"]["nodeName"]
    racks = {
        n["metadata"]["name"]: n["metadata"]["labels"]["aisched.io/rack"]
        for n in (await kube.get("/api/v1/nodes"))["items"]
    }

    await faults.set_ready(kube, lost, False)

    def replaced(jobs: dict[str, JsonObject]) -> bool:
        status = jobs["elastic"].get("status") or {}
        return (
            status.get("replacements") == 1
            and not status.get("replacing")
            and status.get("phase") == "Running"
        )

    jobs = await until(kube, AIJOBS, replaced)
    assert jobs["elastic"]["status"]["restarts"] == 0, "no whole-gang restart"
    now = await _running(kube, "elastic")
    for name in ("elastic-master-0", "elastic-worker-0"):
        assert now[name]["metadata"]["uid"] == pods[name]["metadata"]["uid"], f"{name} kept running"
        assert now[name]["metadata"]["annotations"]["aisched.io/rendezvous-epoch"] == "1"
    new = now["elastic-worker-1"]
    assert new["metadata"]["uid"] != pods["elastic-worker-1"]["metadata"]["uid"]
    assert new["metadata"]["annotations"]["aisched.io/rendezvous-epoch"] == "1"
    assert new["spec"]["nodeName"] != lost
    assert racks[new["spec"]["nodeName"]] == racks[pods["elastic-master-0"]["spec"]["nodeName"]], (
        "the survivors' rack"
    )
    said = [e["reason"] for e in (await kube.get(EVENTS))["items"] if e["involvedObject"]["kind"] == "AIJob"]
    assert "Replacing" in said
    assert "Replaced" in said
