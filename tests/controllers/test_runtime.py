"""The scheduling runtime end to end against the in-process emulator: pods created over HTTP,
placed by the runtime (plain pods and gangs), bound with their GPUs annotated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Final

import pytest

from aisched.controllers import SchedulerRuntime
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from aisched.queue import QueueState

NAMESPACE: Final = "default"
PODS: Final = f"/api/v1/namespaces/{NAMESPACE}/pods"
TOPOLOGIES: Final = "/apis/aisched.io/v1alpha1/gpunodetopologies"
WAIT: Final = 15.0


@dataclass
class Running:
    kube: KubeClient
    runtime: SchedulerRuntime


@pytest.fixture
async def running(emulator_cluster: Emulator) -> AsyncIterator[Running]:
    """The runtime, scheduling against the demo cluster; its errors surface at teardown."""
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        runtime = SchedulerRuntime(kube, clock=time.monotonic)
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:
            yield Running(kube, runtime)
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                await task


def pod(
    name: str,
    *,
    gpus: int,
    gang: str | None = None,
    min_member: int | None = None,
    annotations: dict[str, str] | None = None,
) -> JsonObject:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "annotations": dict(annotations or {})}
    if gang is not None:
        meta["labels"] = {"aisched.io/gang": gang}
    if min_member is not None:
        meta["annotations"]["aisched.io/gang-min-member"] = str(min_member)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "schedulerName": "aisched",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "resources": {
                        "requests": {"cpu": "4", "memory": "16Gi"},
                        "limits": {"nvidia.com/gpu": gpus, "memory": "16Gi"},
                    },
                }
            ],
        },
    }


async def create(kube: KubeClient, *pods: JsonObject) -> None:
    for body in pods:
        await kube.post(PODS, body)


async def wait_bound(kube: KubeClient, names: Iterable[str]) -> dict[str, JsonObject]:
    """The pods `names` once every one has a node, watched (not polled) from a list."""
    wanted = set(names)
    bound: dict[str, JsonObject] = {}
    async with asyncio.timeout(WAIT):
        listing = await kube.get(PODS)
        for item in listing["items"]:
            if item["metadata"]["name"] in wanted and item["spec"].get("nodeName"):
                bound[item["metadata"]["name"]] = item
        version = listing["metadata"]["resourceVersion"]
        while not wanted <= bound.keys():
            async for event in kube.watch(PODS, params={"resourceVersion": version}):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if (
                    event["type"] != "BOOKMARK"
                    and obj["metadata"]["name"] in wanted
                    and obj["spec"].get("nodeName")
                ):
                    bound[obj["metadata"]["name"]] = obj
                if wanted <= bound.keys():
                    break
    return bound


async def node_of(kube: KubeClient, name: str) -> JsonObject:
    return await kube.get(f"/api/v1/nodes/{name}")


async def gpu_uuids(kube: KubeClient, node: str) -> set[str]:
    topologies = await kube.get(TOPOLOGIES)
    (topology,) = [t for t in topologies["items"] if t["spec"]["nodeName"] == node]
    return {gpu["uuid"] for gpu in topology["status"]["gpus"]}


async def unbound(kube: KubeClient, name: str) -> bool:
    return not (await kube.get(f"{PODS}/{name}"))["spec"].get("nodeName")


async def test_a_single_gpu_pod_is_bound_with_its_gpu_uuids_annotated(running: Running) -> None:
    await create(running.kube, pod("single", gpus=4))
    bound = (await wait_bound(running.kube, ["single"]))["single"]
    node = bound["spec"]["nodeName"]
    uuids = bound["metadata"]["annotations"]["aisched.io/gpus"].split(",")
    assert len(uuids) == len(set(uuids)) == 4
    assert set(uuids) <= await gpu_uuids(running.kube, node)


async def test_a_gang_of_two_8_gpu_pods_is_bound_whole_on_two_nodes_in_one_required_rack(
    running: Running,
) -> None:
    required = {"aisched.io/topology-policy": "Required", "aisched.io/topology-level": "rack"}
    await create(
        running.kube,
        *(pod(f"train-{i}", gpus=8, gang="train", min_member=2, annotations=required) for i in range(2)),
    )
    bound = await wait_bound(running.kube, ["train-0", "train-1"])
    nodes = {p["spec"]["nodeName"] for p in bound.values()}
    assert len(nodes) == 2
    racks = {(await node_of(running.kube, n))["metadata"]["labels"]["aisched.io/rack"] for n in nodes}
    assert len(racks) == 1
    for member in bound.values():
        uuids = member["metadata"]["annotations"]["aisched.io/gpus"].split(",")
        assert set(uuids) == await gpu_uuids(running.kube, member["spec"]["nodeName"])


async def test_an_incomplete_gang_waits_until_its_last_member_appears(running: Running) -> None:
    await create(running.kube, *(pod(f"ddp-{i}", gpus=2, gang="ddp", min_member=3) for i in range(2)))
    # A later pod, bound only after the runtime has seen (and tried) the gang's two members.
    await create(running.kube, pod("fence", gpus=1))
    await wait_bound(running.kube, ["fence"])
    assert await unbound(running.kube, "ddp-0")
    assert await unbound(running.kube, "ddp-1")
    assert running.runtime.queue.state("default/gang:ddp") is QueueState.UNSCHEDULABLE
    assert "waiting for the rest" in running.runtime.queue.reason("default/gang:ddp")

    await create(running.kube, pod("ddp-2", gpus=2, gang="ddp", min_member=3))
    bound = await wait_bound(running.kube, ["ddp-0", "ddp-1", "ddp-2"])
    assert all(p["metadata"]["annotations"]["aisched.io/gpus"] for p in bound.values())


async def test_a_pod_that_fits_nowhere_stays_pending_while_later_pods_are_bound(running: Running) -> None:
    await create(running.kube, pod("huge", gpus=16), pod("small", gpus=1))
    await wait_bound(running.kube, ["small"])
    assert await unbound(running.kube, "huge")
    assert running.runtime.queue.state("default/huge") is QueueState.UNSCHEDULABLE
    assert "nvidia.com/gpu" in running.runtime.queue.reason("default/huge")


async def test_a_bound_pod_is_never_scheduled_twice(running: Running) -> None:
    await create(running.kube, pod("once", gpus=8))
    first = (await wait_bound(running.kube, ["once"]))["once"]
    # The kubelet's status updates keep arriving; none may put the pod back in the queue.
    await create(running.kube, pod("fence", gpus=1))
    await wait_bound(running.kube, ["fence"])
    assert "default/once" not in running.runtime.queue
    usage = running.runtime.cache.pod("default/once")
    assert usage is not None
    assert not usage.assumed
    assert usage.node == first["spec"]["nodeName"]
