"""Publishing GPUNodeTopology, Node labels and the liveness Lease against a fake API server."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aisched.agent.discovery import discover, nvml_session
from aisched.agent.fake_nvml import FakeNvml
from aisched.agent.health import GpuHealth
from aisched.agent.publisher import Publisher, PublishStopped, lease_name
from aisched.agent.runner import with_health
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.kube.client import KubeClient
from aisched.kube.rbac import AGENT_LEASE_NAMESPACE, AGENT_NAMESPACED_PERMISSIONS, AGENT_PERMISSIONS
from aisched.kube.retry import Backoff
from tests.support.fake_apiserver import FakeApiServer, RecordedRequest

TOPOLOGY = "/apis/aisched.io/v1alpha1/gpunodetopologies/gpu-1"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/aisched-system/leases/{lease_name('gpu-1')}"
NODE = "/api/v1/nodes/gpu-1"


class Sleeps:
    """An injected sleep that records delays and runs a hook after each, without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.after: Any = None

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.after is not None:
            self.after(len(self.delays))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _status(machine: str = "dgx-h100", *, lost: tuple[int, ...] = ()) -> GPUNodeTopologyStatus:
    nvml = FakeNvml.for_machine(machine, node="gpu-1")
    with nvml_session(nvml):
        for index in lost:
            nvml.lose(index)
        return discover(nvml).status


def _publisher(client: KubeClient, sleeps: Sleeps | None = None, clock: Clock | None = None) -> Publisher:
    return Publisher(
        client,
        node="gpu-1",
        namespace="aisched-system",
        now=clock or Clock(),
        sleep=sleeps or Sleeps(),
        backoff=Backoff(rng=random.Random(7)),
    )


def _writes(server: FakeApiServer, path: str) -> list[Any]:
    return [r for r in server.requests if r.method in ("POST", "PUT", "PATCH") and r.path.startswith(path)]


async def test_the_first_publish_creates_the_object_owned_by_the_node(
    server: FakeApiServer, client: KubeClient
) -> None:
    status = _status()
    assert await _publisher(client).publish_topology(lambda: status)
    stored = await client.get(TOPOLOGY)
    node = await client.get(NODE)
    assert stored["spec"] == {"nodeName": "gpu-1"}
    assert stored["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "gpu-1", "uid": node["metadata"]["uid"]}
    ]
    assert stored["status"]["fingerprint"] == status.fingerprint
    assert len(stored["status"]["gpus"]) == 8
    assert stored["status"]["agentVersion"]
    assert stored["status"]["lastUpdateTime"] == "2026-11-28T12:00:00Z"


async def test_an_unchanged_hardware_view_is_not_rewritten(server: FakeApiServer, client: KubeClient) -> None:
    publisher = _publisher(client)
    status = _status()
    await publisher.publish_topology(lambda: status)
    before = len(_writes(server, TOPOLOGY))
    assert not await publisher.publish_topology(_status)  # rediscovered: same hardware
    assert len(_writes(server, TOPOLOGY)) == before


async def test_a_health_change_is_published(server: FakeApiServer, client: KubeClient) -> None:
    publisher = _publisher(client)
    status = _status()
    await publisher.publish_topology(lambda: status)
    sick = with_health(status, {2: GpuHealth(False, "XID 79")})
    assert sick.fingerprint != status.fingerprint
    assert await publisher.publish_topology(lambda: sick)
    stored = await client.get(TOPOLOGY)
    assert stored["status"]["gpus"][2]["health"] == "Unhealthy"
    assert stored["status"]["gpus"][2]["healthReason"] == "XID 79"
    healed = with_health(status, {2: GpuHealth(True)})
    assert await publisher.publish_topology(lambda: healed)
    stored = await client.get(TOPOLOGY)
    assert stored["status"]["gpus"][2]["health"] == "Healthy"
    assert "healthReason" not in stored["status"]["gpus"][2]


async def test_missing_gpu_labels_are_added_and_existing_ones_kept(
    server: FakeApiServer, client: KubeClient
) -> None:
    await client.patch(NODE, {"metadata": {"labels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}})
    added = await _publisher(client).label_node(_status())
    assert added == {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.memory": "81920"}
    labels = (await client.get(NODE))["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert await _publisher(client).label_node(_status()) == {}


async def test_the_lease_is_created_then_renewed(server: FakeApiServer, client: KubeClient) -> None:
    clock = Clock()
    publisher = _publisher(client, clock=clock)
    await publisher.renew_lease()
    lease = await client.get(LEASE)
    assert lease["spec"]["holderIdentity"] == "gpu-1"
    assert lease["spec"]["renewTime"] == "2026-11-28T12:00:00.000000Z"
    clock.now += timedelta(seconds=10)
    await publisher.renew_lease()
    renewed = await client.get(LEASE)
    assert renewed["spec"]["renewTime"] == "2026-11-28T12:00:10.000000Z"
    assert renewed["spec"]["acquireTime"] == "2026-11-28T12:00:00.000000Z"


async def test_an_outage_is_retried_with_growing_backoff_and_nothing_is_lost(
    server: FakeApiServer, client: KubeClient
) -> None:
    sleeps = Sleeps()
    publisher = _publisher(client, sleeps)
    first, latest = _status(), with_health(_status(), {0: GpuHealth(False, "XID 48")})
    desired = [first]

    def during_outage(slept: int) -> None:
        if slept == 2:
            desired.append(latest)  # the view changes while the API server is down
        if slept == 4:
            server.up()

    sleeps.after = during_outage
    server.down()
    assert await publisher.publish_topology(lambda: desired[-1])
    assert len(sleeps.delays) == 4
    assert all(0.8 * base <= d <= 1.2 * base for d, base in zip(sleeps.delays, [0.5, 1, 2, 4], strict=True))
    stored = await client.get(TOPOLOGY)
    assert stored["status"]["fingerprint"] == latest.fingerprint
    assert stored["status"]["gpus"][0]["health"] == "Unhealthy"


async def test_server_errors_are_retried(server: FakeApiServer, client: KubeClient) -> None:
    sleeps = Sleeps()
    server.fail_next(3, status=500)
    await _publisher(client, sleeps).renew_lease()
    assert len(sleeps.delays) == 3
    assert (await client.get(LEASE))["spec"]["holderIdentity"] == "gpu-1"


@pytest.mark.parametrize("status", [408, 409, 425, 429, 502])
async def test_transient_answers_and_conflicts_are_retried_at_the_normal_pace(
    server: FakeApiServer, client: KubeClient, status: int
) -> None:
    sleeps = Sleeps()
    server.fail_next(2, status=status)
    await _publisher(client, sleeps).renew_lease()
    assert len(sleeps.delays) == 2
    assert all(d <= 0.5 * 2 * 1.2 for d in sleeps.delays)


async def test_a_refusal_is_retried_slowly(server: FakeApiServer, client: KubeClient) -> None:
    sleeps = Sleeps()
    server.fail_next(1, status=403)
    await _publisher(client, sleeps).renew_lease()
    assert len(sleeps.delays) == 1
    assert sleeps.delays[0] >= 30 * 0.8  # at the cap at once: RBAC will not fix itself soon
    assert (await client.get(LEASE))["spec"]["holderIdentity"] == "gpu-1"


async def test_a_node_without_gpus_publishes_zero_gpus_and_no_labels(
    server: FakeApiServer, client: KubeClient
) -> None:
    nvml = FakeNvml.empty(node="gpu-1")
    with nvml_session(nvml):
        status = discover(nvml).status
    publisher = _publisher(client)
    assert await publisher.publish_topology(lambda: status)
    assert await publisher.label_node(status) == {}
    stored = await client.get(TOPOLOGY)
    assert stored["status"].get("gpus", []) == []
    assert "labels" not in (await client.get(NODE))["metadata"]


async def test_a_recreated_object_is_owned_by_the_node_as_it_is_now(
    server: FakeApiServer, client: KubeClient
) -> None:
    publisher = _publisher(client)
    status = _status()
    await publisher.publish_topology(lambda: status)
    await client.delete(TOPOLOGY)
    await client.delete(NODE)
    fresh = await client.post(
        "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}}
    )
    assert await publisher.publish_topology(lambda: status)
    owners = (await client.get(TOPOLOGY))["metadata"]["ownerReferences"]
    assert [o["uid"] for o in owners] == [fresh["metadata"]["uid"]]


async def test_labels_come_from_the_first_healthy_gpu(server: FakeApiServer, client: KubeClient) -> None:
    added = await _publisher(client).label_node(_status(lost=(0,)))
    assert added == {
        "nvidia.com/gpu.product": "H100-80GB",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "81920",
    }


async def test_no_labels_when_no_gpu_is_healthy(server: FakeApiServer, client: KubeClient) -> None:
    assert await _publisher(client).label_node(_status("pcie-8gpu", lost=tuple(range(8)))) == {}
    assert "labels" not in (await client.get(NODE))["metadata"]
    assert not _writes(server, NODE)


async def test_retrying_gives_up_when_stop_is_set_during_an_outage(
    server: FakeApiServer, client: KubeClient
) -> None:
    stop = asyncio.Event()
    sleeps = Sleeps()
    sleeps.after = lambda slept: stop.set() if slept == 2 else None
    server.down()
    with pytest.raises(PublishStopped, match="gpunodetopology"):
        await _publisher(client, sleeps).publish_topology(_status, stop=stop)
    assert len(sleeps.delays) == 2
    assert TOPOLOGY not in server.objects


async def test_retrying_gives_up_while_waiting_out_a_backoff(
    server: FakeApiServer, client: KubeClient
) -> None:
    stop = asyncio.Event()
    forever = asyncio.Event()

    async def sleep(delay: float) -> None:
        stop.set()  # the agent is told to stop while it waits for the next attempt
        await forever.wait()

    publisher = Publisher(client, node="gpu-1", namespace="aisched-agents", now=Clock(), sleep=sleep)
    server.down()
    with pytest.raises(PublishStopped, match="lease"):
        await asyncio.wait_for(publisher.renew_lease(stop=stop), timeout=10)


def _permission(request: RecordedRequest) -> tuple[str, str, str, str | None]:
    """(API group, resource[/subresource], RBAC verb, namespace) of one request to an object."""
    parts = request.path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource = f"{rest[0]}/{rest[2]}" if len(rest) == 3 else rest[0]
    verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}[request.method]
    return group, resource, verb, namespace


async def test_the_agent_rbac_grants_exactly_the_calls_the_publisher_makes(
    server: FakeApiServer, client: KubeClient
) -> None:
    clock = Clock()
    publisher = Publisher(client, node="gpu-1", namespace=AGENT_LEASE_NAMESPACE, now=clock, sleep=Sleeps())
    status = _status()
    server.requests.clear()
    await publisher.publish_topology(lambda: status)  # create
    await publisher.publish_topology(lambda: with_health(status, {1: GpuHealth(False, "XID 79")}))
    await publisher.label_node(status)
    await publisher.renew_lease()  # create
    clock.now += timedelta(seconds=10)
    await publisher.renew_lease()  # renew
    used = {_permission(r) for r in server.requests}
    # Pods are the device plugin's (list and watch of its node's pods: tests/agent/deviceplugin).
    publishing = [p for p in AGENT_PERMISSIONS if (p.group, p.resource) != ("", "pods")]
    cluster_wide = {(p.group, p.resource, verb, None) for p in publishing for verb in p.verbs}
    namespaced = {
        (p.group, p.resource, verb, AGENT_LEASE_NAMESPACE)
        for p in AGENT_NAMESPACED_PERMISSIONS
        for verb in p.verbs
    }
    assert used == cluster_wide | namespaced


def test_discoverys_unhealthy_verdict_stands_over_a_healthy_probe() -> None:
    nvml = FakeNvml.for_machine("dgx-h100", node="gpu-1")
    nvml.fail_call("nvmlDeviceGetMemoryInfo", nvml.NVMLError_Unknown, index=3)
    with nvml_session(nvml):
        status = discover(nvml).status
    merged = with_health(status, {3: GpuHealth(True)})  # the probe asks only for the UUID
    assert (merged.gpus[3].health, merged.gpus[3].health_reason) == ("Unhealthy", "NVML error: Unknown Error")
