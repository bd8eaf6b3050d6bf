"""The runtime's fault watch against the emulator: which pods a fault ends, and how."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Final

import pytest

from aisched.controllers.scheduling import SchedulerRuntime
from aisched.emulator import faults
from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient
from tests.controllers.scheduling.test_runtime import PODS, Running, create, pod, wait_bound
from tests.test_operator import until

NODE: Final = "h100-002"
WAIT: Final = 15.0


async def _runtime(kube: KubeClient, *, detection: float) -> AsyncIterator[Running]:
    runtime = SchedulerRuntime(kube, clock=time.monotonic, detection=detection, cooldown=300)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        yield Running(kube, runtime)
    finally:
        stop.set()
        async with asyncio.timeout(WAIT):
            await task


@pytest.fixture
async def kube(emulator_cluster: Emulator) -> AsyncIterator[KubeClient]:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as client:
        yield client


def _fault(obj: JsonObject) -> JsonObject | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "DisruptionTarget"), None)


async def test_an_unhealthy_gpu_ends_only_the_pod_holding_it(kube: KubeClient) -> None:
    async for running in _runtime(kube, detection=10):
        await create(kube, pod("a", gpus=4, node=NODE), pod("b", gpus=4, node=NODE))
        bound = await wait_bound(kube, ["a", "b"])
        held = bound["a"]["metadata"]["annotations"]["aisched.io/gpus"].split(",")
        topology = await kube.get(f"/apis/aisched.io/v1alpha1/gpunodetopologies/{NODE}")
        index = next(g["index"] for g in topology["status"]["gpus"] if g["uuid"] == held[2])

        await faults.gpu_health(kube, NODE, index, xid=79)

        await until(kube, PODS, lambda pods: "a" not in pods)
        b = await kube.get(f"{PODS}/b")
        assert _fault(b) is None, "its GPUs are healthy"
        assert running.runtime.faults.cooling(NODE)
        assert (running.runtime.faults.faults, running.runtime.faults.pods_ended) == (1, 1)


async def test_a_node_not_ready_since_before_the_start_fails_at_once(kube: KubeClient) -> None:
    async for _ in _runtime(kube, detection=10):
        await create(kube, pod("early", gpus=1, node=NODE))
        await wait_bound(kube, ["early"])
    node = await kube.get(f"/api/v1/nodes/{NODE}")
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    ready.update(
        status="Unknown",
        reason="NodeStatusUnknown",
        message="Kubelet stopped posting node status.",
        lastTransitionTime="2026-01-01T00:00:00Z",
    )
    await kube.put(f"/api/v1/nodes/{NODE}/status", node)

    # An operator started long after the node went: no 600 s more of waiting.
    async for _ in _runtime(kube, detection=600):
        ended = await until(kube, PODS, lambda pods: _fault(pods.get("early") or {}) is not None)
        condition = _fault(ended["early"])
        assert condition is not None
        assert condition["message"] == (
            f"node {NODE} has not been ready for 600s (Ready=Unknown: Kubelet stopped posting node status.)"
        )
        assert ended["early"]["status"]["phase"] == "Failed"


async def test_a_pod_being_deleted_on_a_lost_node_is_removed(kube: KubeClient) -> None:
    async for _ in _runtime(kube, detection=0.2):
        await create(kube, pod("stuck", gpus=1, node=NODE))
        await wait_bound(kube, ["stuck"])
        await until(kube, PODS, lambda pods: pods["stuck"].get("status", {}).get("phase") == "Running")
        await faults.set_ready(kube, NODE, False)
        await kube.delete(f"{PODS}/stuck")  # no kubelet answers: it would stay Terminating

        await until(kube, PODS, lambda pods: "stuck" not in pods)
        with pytest.raises(ApiError):
            await kube.get(f"{PODS}/stuck")


async def test_a_node_still_not_ready_is_one_fault_however_often_it_is_updated(kube: KubeClient) -> None:
    async for running in _runtime(kube, detection=0.2):
        await create(kube, pod("first", gpus=1, node=NODE), pod("second", gpus=1, node="h100-003"))
        await wait_bound(kube, ["first", "second"])
        await faults.set_ready(kube, NODE, False)
        await until(kube, PODS, lambda pods: _fault(pods.get("first") or {}) is not None)
        await kube.patch(f"/api/v1/nodes/{NODE}", {"metadata": {"labels": {"team": "infra"}}})
        await faults.set_ready(kube, NODE, False)  # its condition written again, still not ready
        # A later fault elsewhere: by the time it is handled, so are the updates before it.
        await faults.set_ready(kube, "h100-003", False)
        await until(kube, PODS, lambda pods: _fault(pods.get("second") or {}) is not None)
        assert running.runtime.faults.faults == 2


async def test_a_pod_stopping_for_a_gpu_fault_is_removed_when_its_node_then_fails(kube: KubeClient) -> None:
    slow = pod("slow", gpus=8, node=NODE, annotations={"aisched.io/sim-stop-seconds": "600"})
    slow["spec"]["terminationGracePeriodSeconds"] = 600
    async for _ in _runtime(kube, detection=0.2):
        await create(kube, slow)
        await wait_bound(kube, ["slow"])
        await until(kube, PODS, lambda pods: pods["slow"].get("status", {}).get("phase") == "Running")
        await faults.gpu_health(kube, NODE, 0, xid=79)
        await until(kube, PODS, lambda pods: bool(pods["slow"]["metadata"].get("deletionTimestamp")))

        await faults.set_ready(kube, NODE, False)  # its kubelet will never finish stopping it

        await until(kube, PODS, lambda pods: "slow" not in pods)


async def test_a_gpu_long_unhealthy_with_no_pod_on_it_is_no_fault_on_start(kube: KubeClient) -> None:
    await faults.gpu_health(kube, NODE, 2, xid=79)
    async for running in _runtime(kube, detection=10):
        await running.runtime.topologies.synced.wait()
        assert running.runtime.faults.faults == 0
        assert not running.runtime.faults.cooling(NODE)


async def test_a_pod_bound_onto_a_failed_node_after_its_fault_is_ended_too(kube: KubeClient) -> None:
    async for _ in _runtime(kube, detection=0.2):
        await create(kube, pod("there", gpus=1, node=NODE))
        await wait_bound(kube, ["there"])
        await faults.set_ready(kube, NODE, False)
        await until(kube, PODS, lambda pods: _fault(pods.get("there") or {}) is not None)
        await create(kube, pod("late", gpus=1, node=NODE))  # pinned there: it waits
        # A binding that was in flight when the node failed lands now.
        binding = {"metadata": {"name": "late"}, "target": {"kind": "Node", "name": NODE}}
        await kube.post(f"{PODS}/late/binding", binding)

        ended = await until(kube, PODS, lambda pods: _fault(pods.get("late") or {}) is not None)
        condition = _fault(ended["late"])
        assert condition is not None
        assert condition["message"] == f"node {NODE} failed (not ready) as the pod was bound there"
