"""TenantQuota status from bound pods: usage in GPUs, borrowing, shares and job counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import pytest

from aisched.controllers.jobs import JobIndex
from aisched.controllers.quotas import QuotaController, quota_status
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from aisched.quota import GPU_MILLI, QuotaLedger
from tests.support.objects import gpu_quota

QUOTAS: Final = "/apis/aisched.io/v1alpha1/tenantquotas"


def bound_pod(name: str, namespace: str, *, gpus: int, node: str | None = "n1", **meta: Any) -> JsonObject:
    return {
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": gpus}}}],
        },
        "status": {"phase": "Running"},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Running:
    kube: KubeClient
    index: JobIndex
    controller: QuotaController


@pytest.fixture
async def running(emulator_cluster: Emulator) -> AsyncIterator[Running]:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        index = JobIndex()
        for body in (
            gpu_quota("research", ["ml"], guaranteed=8, maximum=24),
            gpu_quota("inference", ["serve"], guaranteed=16, maximum=16),
        ):
            index.tenant_event(None, await kube.post(QUOTAS, body))
        synced = asyncio.Event()
        controller = QuotaController(
            kube,
            index,
            QuotaLedger(),
            clock=Clock(),
            pods_synced=synced,
            capacity=lambda: {GPU_MILLI: 64_000},
            min_interval=0.0,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(controller.run(stop))
        try:
            yield Running(kube, index, controller)
        finally:
            stop.set()
            await task


async def status_of(kube: KubeClient, name: str, wanted: float) -> JsonObject:
    """TenantQuota `name`'s status once it says `wanted` GPUs are used (list, then watch)."""
    async with asyncio.timeout(10):
        listing = await kube.get(QUOTAS)
        for item in listing["items"]:
            if item["metadata"]["name"] == name and (item.get("status") or {}).get("usedGPUs") == wanted:
                return dict(item["status"])
        async for event in kube.watch(
            QUOTAS, params={"resourceVersion": listing["metadata"]["resourceVersion"]}
        ):
            obj = event["object"]
            if obj["metadata"]["name"] == name and (obj.get("status") or {}).get("usedGPUs") == wanted:
                return dict(obj["status"])
    raise AssertionError("unreachable")


async def test_bound_pods_are_charged_to_their_tenant_and_borrowing_shows(running: Running) -> None:
    controller = running.controller
    controller.pod_event(bound_pod("a", "ml", gpus=8), False)
    controller.pod_event(bound_pod("b", "ml", gpus=4), False)
    controller.pod_event(bound_pod("pending", "ml", gpus=8, node=None), False)
    controller._pods_synced.set()
    status = await status_of(running.kube, "research", 12.0)
    assert status["used"] == {"nvidia.com/gpu": "12"}
    assert status["borrowed"] == {"nvidia.com/gpu": "4"}
    assert status["borrowedGPUs"] == 4.0
    assert status["guaranteedGPUs"] == 8.0
    assert status["dominantShare"] == 0.1875
    assert status["dominantResource"] == "nvidia.com/gpu"
    finished = bound_pod("a", "ml", gpus=8)
    finished["status"]["phase"] = "Succeeded"
    controller.pod_event(finished, False)
    status = await status_of(running.kube, "research", 4.0)
    assert status["borrowed"] == {}


async def test_an_aijobs_own_tenant_wins_over_its_namespace(running: Running) -> None:
    controller = running.controller
    controller.pod_event(bound_pod("x", "ml", gpus=2, annotations={"aisched.io/tenant": "inference"}), False)
    controller._pods_synced.set()
    assert (await status_of(running.kube, "inference", 2.0))["used"] == {"nvidia.com/gpu": "2"}
    assert controller.ledger.used("research") == {}


def test_job_counts_follow_the_jobs_phases() -> None:
    ledger = QuotaLedger()
    jobs = {
        f"ml/{i}": {"status": {"tenant": "research", "phase": phase}}
        for i, phase in enumerate(["Running", "Queued", "Scheduling", "Succeeded", "Pending"])
    }
    status = quota_status(ledger, "research", jobs, now=0.0)
    assert (status["admittedJobs"], status["pendingJobs"]) == (2, 2)
