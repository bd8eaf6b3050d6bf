"""The agent end to end: the process publishes on start and again when a GPU's health flips."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from aisched.agent.fake_nvml import FakeNvml
from aisched.agent.publisher import Publisher
from aisched.agent.runner import Agent, AgentTimings
from aisched.kube.client import KubeClient
from tests.support.fake_apiserver import FakeApiServer

TOPOLOGY = "/apis/aisched.io/v1alpha1/gpunodetopologies/gpu-1"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/aisched-system/leases/aisched-agent-gpu-1"


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(status_subresources=["gpunodetopologies"]) as fake:
        async with KubeClient(base_url=fake.url) as client:
            await client.post(
                "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}}
            )
        yield fake


async def _until(condition: Callable[[], bool], *, seconds: float = 10) -> None:
    """Yield to the loop until `condition` holds (threads are involved, so time must pass)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the state changes in threads, not through an Event
            await asyncio.sleep(0)


class Gate:
    """A sleep that never ends by itself: periodic work waits until the test opens it."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        await self.opened.wait()


async def test_the_agent_publishes_on_start_and_when_a_gpu_turns_unhealthy(server: FakeApiServer) -> None:
    nvml = FakeNvml.for_machine("dgx1-v100", node="gpu-1")
    nvml.nvmlInit()
    async with KubeClient(base_url=server.url) as client:
        publisher = Publisher(
            client, node="gpu-1", namespace="aisched-system", now=lambda: datetime.now(UTC), sleep=Gate()
        )
        agent = Agent(nvml=nvml, publisher=publisher, clock=lambda: 0.0, sleep=Gate(), timings=AgentTimings())
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))

        def gpu5() -> dict[str, object]:
            stored = server.objects.get(TOPOLOGY) or {}
            gpus = (stored.get("status") or {}).get("gpus") or []
            return gpus[5] if len(gpus) > 5 else {}

        await _until(lambda: LEASE in server.objects)  # the start-up pass ends with the Lease
        await _until(agent.monitor.watching.is_set)  # NVML only reports events once registered
        assert gpu5().get("health") == "Healthy"
        assert server.objects["/api/v1/nodes/gpu-1"]["metadata"]["labels"]["nvidia.com/gpu.count"] == "8"
        nvml.inject_xid(5, 79)
        await _until(lambda: gpu5().get("health") == "Unhealthy")
        assert gpu5()["healthReason"] == "XID 79"
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    nvml.nvmlShutdown()


async def test_aisched_agent_once_publishes_through_a_kubeconfig(
    server: FakeApiServer, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server.url}}],
                "users": [{"name": "agent", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "agent"}}],
                "current-context": "fake",
            }
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aisched.cli",
        "agent",
        "--once",
        "--fake",
        "pcie-8gpu",
        "--node",
        "gpu-1",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    stored = server.objects[TOPOLOGY]
    assert len(stored["status"]["gpus"]) == 8
    assert {p["pcie"] for p in stored["status"]["pairs"]} == {"PIX", "NODE", "SYS"}
    labels = server.objects["/api/v1/nodes/gpu-1"]["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "L40S-48GB"
