"""The agent end to end: the process publishes on start, again when a GPU's health flips, keeps
the object in place, survives and stops during API outages, and fails loudly without events."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aisched.agent.fake_nvml import FakeNvml
from aisched.agent.publisher import Publisher
from aisched.agent.runner import Agent, AgentTimings, EventThreadError
from aisched.emulator.runner import write_kubeconfig
from aisched.kube.client import KubeClient
from tests.support.fake_apiserver import FakeApiServer

TOPOLOGY = "/apis/aisched.io/v1alpha1/gpunodetopologies/gpu-1"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/aisched-agents/leases/aisched-agent-gpu-1"
NODE = "/api/v1/nodes/gpu-1"


@pytest.fixture
def nvml() -> Iterator[FakeNvml]:
    fake = FakeNvml.for_machine("dgx1-v100", node="gpu-1")
    fake.nvmlInit()
    yield fake
    fake.nvmlShutdown()


class Background:
    """Tasks a test starts; cancelled and awaited at teardown, so a failing test leaks none."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        return task

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def background() -> AsyncIterator[Background]:
    tasks = Background()
    try:
        yield tasks
    finally:
        await tasks.close()


class Ticker:
    """A sleep that ends only when the test calls `tick()`; `sleeping` counts who waits."""

    def __init__(self) -> None:
        self._next = asyncio.Event()
        self.sleeping = 0

    async def __call__(self, delay: float) -> None:
        self.sleeping += 1
        tick = self._next
        try:
            await tick.wait()
        finally:
            self.sleeping -= 1

    def tick(self) -> None:
        self._next.set()
        self._next = asyncio.Event()


async def _until(condition: Callable[[], bool], *, seconds: float = 10) -> None:
    """Yield to the loop until `condition` holds (threads are involved, so time must pass)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the state changes in threads, not through an Event
            await asyncio.sleep(0)


class Node:
    """A test's view of one agent against the fake API server."""

    def __init__(self, server: FakeApiServer, client: KubeClient, nvml: FakeNvml) -> None:
        self.server = server
        self.retry_sleep = Ticker()
        self.period_sleep = Ticker()
        publisher = Publisher(
            client,
            node="gpu-1",
            namespace="aisched-agents",
            now=lambda: datetime.now(UTC),
            sleep=self.retry_sleep,
        )
        self.agent = Agent(
            nvml=nvml, publisher=publisher, clock=lambda: 0.0, sleep=self.period_sleep, timings=AgentTimings()
        )
        self.stop = asyncio.Event()

    def gpu(self, index: int) -> dict[str, Any]:
        stored = self.server.objects.get(TOPOLOGY) or {}
        gpus = (stored.get("status") or {}).get("gpus") or []
        return gpus[index] if len(gpus) > index else {}


@pytest.fixture
def node(server: FakeApiServer, client: KubeClient, nvml: FakeNvml) -> Node:
    return Node(server, client, nvml)


async def test_the_agent_publishes_on_start_and_when_a_gpu_turns_unhealthy(
    node: Node, nvml: FakeNvml, background: Background
) -> None:
    running = background.start(node.agent.run(node.stop))
    await _until(lambda: LEASE in node.server.objects)  # the start-up pass ends with the Lease
    await _until(node.agent.monitor.watching.is_set)  # NVML only reports events once registered
    assert node.gpu(5).get("health") == "Healthy"
    assert node.server.objects[NODE]["metadata"]["labels"]["nvidia.com/gpu.count"] == "8"
    nvml.inject_xid(5, 79)
    await _until(lambda: node.gpu(5).get("health") == "Unhealthy")
    assert node.gpu(5)["healthReason"] == "XID 79"
    node.stop.set()
    await asyncio.wait_for(running, timeout=10)


async def test_an_xid_during_a_start_up_api_outage_is_published_once_the_server_is_back(
    node: Node, nvml: FakeNvml, background: Background
) -> None:
    node.server.down()
    running = background.start(node.agent.run(node.stop))
    # The event thread is registered before the first publish gets through.
    await _until(node.agent.monitor.watching.is_set)
    await _until(lambda: node.retry_sleep.sleeping == 1)
    nvml.inject_xid(5, 79)
    await _until(lambda: not node.agent.monitor.health()[5].healthy)
    node.server.up()
    node.retry_sleep.tick()
    await _until(lambda: node.gpu(5).get("health") == "Unhealthy")
    assert node.gpu(5)["healthReason"] == "XID 79"
    node.stop.set()
    await asyncio.wait_for(running, timeout=10)


async def test_stopping_during_a_start_up_api_outage_ends_the_agent_promptly(
    node: Node, background: Background
) -> None:
    node.server.down()
    running = background.start(node.agent.run(node.stop))
    await _until(lambda: node.retry_sleep.sleeping == 1)  # backing off, the server still down
    node.stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert TOPOLOGY not in node.server.objects
    assert not node.agent.monitor.watching.is_set()


async def test_a_deleted_topology_is_rebuilt_at_the_next_rediscovery_owned_by_the_current_node(
    node: Node, client: KubeClient, background: Background
) -> None:
    running = background.start(node.agent.run(node.stop))
    await _until(lambda: LEASE in node.server.objects)
    await client.delete(TOPOLOGY)
    await client.delete(NODE)  # the Node re-registers: a new uid
    fresh = await client.post(
        "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}}
    )
    await _until(lambda: node.period_sleep.sleeping == 3)  # lease, probe and rediscovery wait
    node.period_sleep.tick()
    await _until(lambda: node.gpu(0).get("health") == "Healthy")
    owners = node.server.objects[TOPOLOGY]["metadata"]["ownerReferences"]
    assert [o["uid"] for o in owners] == [fresh["metadata"]["uid"]]
    node.stop.set()
    await asyncio.wait_for(running, timeout=10)


async def test_an_edited_fingerprint_is_republished_at_the_next_rediscovery(
    node: Node, client: KubeClient, background: Background
) -> None:
    running = background.start(node.agent.run(node.stop))
    await _until(lambda: LEASE in node.server.objects)
    published = node.server.objects[TOPOLOGY]["status"]["fingerprint"]
    stored = await client.get(TOPOLOGY)
    stored["status"]["fingerprint"] = "sha256:edited"
    await client.put(f"{TOPOLOGY}/status", stored)
    await _until(lambda: node.period_sleep.sleeping == 3)
    node.period_sleep.tick()
    await _until(lambda: node.server.objects[TOPOLOGY]["status"]["fingerprint"] == published)
    node.stop.set()
    await asyncio.wait_for(running, timeout=10)


async def test_the_agent_fails_loudly_when_the_event_thread_dies(
    node: Node, nvml: FakeNvml, background: Background
) -> None:
    nvml.fail_call("nvmlEventSetWait_v2", RuntimeError)
    running = background.start(node.agent.run(node.stop))
    with pytest.raises(EventThreadError, match="RuntimeError"):
        await asyncio.wait_for(running, timeout=10)


async def test_aisched_agent_once_publishes_through_a_kubeconfig(
    server: FakeApiServer, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
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
    labels = server.objects[NODE]["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "L40S-48GB"
