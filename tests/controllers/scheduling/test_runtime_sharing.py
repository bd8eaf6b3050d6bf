"""Shared GPUs and MIG instances end to end: pods created over HTTP, placed by the runtime, bound
with their device annotations, and accounted again by a runtime that starts afresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest

from aisched.api import keys
from aisched.emulator.cluster import ClusterSpec, NodeGroup
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from tests.controllers.scheduling.test_runtime import (
    NAMESPACE,
    TOPOLOGIES,
    create,
    gpu_uuids,
    harness,
    started,
    unschedulable,
    wait_bound,
    wait_pods,
)

NODE: Final = "h100-000"


def sharing_pod(
    name: str, *, annotations: dict[str, str], limits: dict[str, Any] | None = None, node: str = NODE
) -> JsonObject:
    """A pending pod for aisched that asks for no whole GPU, pinned to `node`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": {
            "schedulerName": "aisched",
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [
                {
                    "name": "main",
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": dict(limits or {})},
                }
            ],
        },
    }


def share(name: str, milli: int) -> JsonObject:
    return sharing_pod(name, annotations={keys.ANNOTATION_GPU_MILLI: str(milli)})


def annotations_of(obj: JsonObject) -> dict[str, str]:
    return dict(obj["metadata"]["annotations"])


async def test_three_400_milli_pods_share_two_gpus_and_a_fresh_runtime_accounts_them(
    kube: KubeClient,
) -> None:
    first = harness(kube)
    async with started(first.runtime):
        await create(kube, share("s0", 400), share("s1", 400), share("s2", 400))
        bound = await wait_bound(kube, ["s0", "s1", "s2"])

    devices = {name: annotations_of(obj)[keys.ANNOTATION_GPUS] for name, obj in bound.items()}
    assert all(obj["spec"]["nodeName"] == NODE for obj in bound.values())
    assert all(annotations_of(obj)[keys.ANNOTATION_GPU_MILLI] == "400" for obj in bound.values())
    assert set(devices.values()) <= await gpu_uuids(kube, NODE)
    assert sorted(list(devices.values()).count(d) for d in set(devices.values())) == [1, 2]
    alone = next(d for d in devices.values() if list(devices.values()).count(d) == 1)

    # While no scheduler runs, a pod that fits exactly beside the lone share (600 left there).
    await create(kube, share("after", 600))
    second = harness(kube)
    async with started(second.runtime):
        after = (await wait_bound(kube, ["after"]))["after"]
        snapshot = second.runtime.cache.update_snapshot(second.runtime.scheduler.snapshot)
        slot = snapshot.slot_of[NODE]
        free = sorted(snapshot.gpu_milli_free[slot, :8].tolist())

    assert annotations_of(after)[keys.ANNOTATION_GPUS] == alone
    assert free == [0, 200, *[1000] * 6]


async def test_a_share_that_names_memory_is_granted_it_on_its_gpu(kube: KubeClient) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(
            kube,
            sharing_pod(
                "m", annotations={keys.ANNOTATION_GPU_MILLI: "100", keys.ANNOTATION_GPU_MEMORY: "60Gi"}
            ),
            sharing_pod(
                "n", annotations={keys.ANNOTATION_GPU_MILLI: "100", keys.ANNOTATION_GPU_MEMORY: "30Gi"}
            ),
        )
        bound = await wait_bound(kube, ["m", "n"])

    assert annotations_of(bound["m"])[keys.ANNOTATION_GPU_MEMORY] == str(60 * 2**30)
    # 80 GiB GPUs: 60 + 30 do not fit on one.
    assert (
        annotations_of(bound["m"])[keys.ANNOTATION_GPUS] != annotations_of(bound["n"])[keys.ANNOTATION_GPUS]
    )


MIG_CLUSTER: Final = ClusterSpec(node_groups=[NodeGroup(name="mig", count=1, machine="a100-mig")])


@pytest.fixture
async def mig_kube() -> AsyncIterator[KubeClient]:
    async with (
        Emulator(cluster=MIG_CLUSTER) as running,
        KubeClient(base_url=running.url, timeout=10.0) as client,
    ):
        yield client


async def gpu_uuid(kube: KubeClient, node: str, index: int) -> str:
    (topology,) = [t for t in (await kube.get(TOPOLOGIES))["items"] if t["spec"]["nodeName"] == node]
    return str(next(g["uuid"] for g in topology["status"]["gpus"] if g["index"] == index))


def mig_pod(name: str, profile: str) -> JsonObject:
    return sharing_pod(name, annotations={}, limits={f"nvidia.com/mig-{profile}": 1}, node="mig-000")


async def test_mig_instances_are_bound_with_their_slots_and_a_fresh_runtime_accounts_them(
    mig_kube: KubeClient,
) -> None:
    first = harness(mig_kube)
    async with started(first.runtime):
        await create(mig_kube, mig_pod("small", "1g.10gb"), mig_pod("half", "3g.40gb"))
        bound = await wait_bound(mig_kube, ["small", "half"])

    gpu3 = await gpu_uuid(mig_kube, "mig-000", 3)  # the one MIG GPU not yet partitioned
    placed = {name: annotations_of(obj)[keys.ANNOTATION_MIG] for name, obj in bound.items()}
    assert placed == {"small": f"{gpu3}:1g.10gb@6", "half": f"{gpu3}:3g.40gb@0"}
    assert all(annotations_of(obj)[keys.ANNOTATION_GPUS] == gpu3 for obj in bound.values())

    # Slots 4, 5 and 7 are left: a 2g fits at 4, a second 3g nowhere.
    await create(mig_kube, mig_pod("pair", "2g.20gb"), mig_pod("late", "3g.40gb"))
    second = harness(mig_kube)
    async with started(second.runtime):
        pair = (await wait_bound(mig_kube, ["pair"]))["pair"]
        late = (await wait_pods(mig_kube, ["late"], unschedulable()))["late"]
        snapshot = second.runtime.cache.update_snapshot(second.runtime.scheduler.snapshot)
        mig_free = int(snapshot.mig_free[snapshot.slot_of["mig-000"], 3])

    assert annotations_of(pair)[keys.ANNOTATION_MIG] == f"{gpu3}:2g.20gb@4"
    assert mig_free == 0b1000_0000
    assert "1 no free MIG slice for 3g.40gb" in late["status"]["conditions"][0]["message"]
