"""TenantQuota status from the ledger the cache keeps: usage in GPUs, borrowing, shares and job counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import pytest

from aisched.cache import Cache, PodUsage
from aisched.controllers.index import JobIndex
from aisched.controllers.tenantquota import QuotaController, quota_status
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from aisched.quota import GPU_MILLI, QuotaLedger
from tests.support.objects import gpu_quota

QUOTAS: Final = "/apis/aisched.io/v1alpha1/tenantquotas"


def bound(name: str, namespace: str, *, gpus: int, tenant: str | None = None) -> PodUsage:
    """A pod bound to n1, as the scheduler's cache accounts it."""
    return PodUsage(
        key=f"{namespace}/{name}",
        node="n1",
        requests={"nvidia.com/gpu": gpus, "pods": 1},
        tenant=tenant,
    )


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
    cache: Cache
    synced: asyncio.Event
    clock: Clock


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
        ledger = QuotaLedger(index.tenants(), capacity={GPU_MILLI: 64_000})
        cache = Cache()
        cache.subscribe(ledger.pod_changed)  # as the scheduling core wires them
        clock = Clock()
        controller = QuotaController(kube, index, ledger, clock=clock, pods_synced=synced, min_interval=0.0)
        stop = asyncio.Event()
        task = asyncio.create_task(controller.run(stop))
        try:
            yield Running(kube, index, controller, cache, synced, clock)
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


async def test_the_pods_the_cache_accounts_show_in_their_tenants_status(running: Running) -> None:
    running.cache.set_pod(bound("a", "ml", gpus=8))
    running.cache.set_pod(bound("b", "ml", gpus=4))
    running.synced.set()
    status = await status_of(running.kube, "research", 12.0)
    assert status["used"] == {"nvidia.com/gpu": "12"}
    assert status["borrowed"] == {"nvidia.com/gpu": "4"}
    assert status["borrowedGPUs"] == 4.0
    assert status["guaranteedGPUs"] == 8.0
    assert status["dominantShare"] == 0.1875
    assert status["dominantResource"] == "nvidia.com/gpu"
    running.cache.remove_pod("ml/a")  # it ended: the cache stops accounting it
    status = await status_of(running.kube, "research", 4.0)
    assert status["borrowed"] == {}


async def revisions(kube: KubeClient) -> dict[str, str]:
    """Each TenantQuota's resourceVersion, as the API server holds it."""
    return {
        item["metadata"]["name"]: item["metadata"]["resourceVersion"]
        for item in (await kube.get(QUOTAS))["items"]
    }


async def test_an_idle_tenants_status_is_not_rewritten_however_often_it_is_looked_at(
    running: Running,
) -> None:
    running.cache.set_pod(bound("a", "ml", gpus=8))
    running.index.job_event(
        None,
        {
            "metadata": {"name": "train", "namespace": "ml", "resourceVersion": "1"},
            "status": {"tenant": "research", "phase": "Running"},
        },
    )
    running.synced.set()
    assert (await status_of(running.kube, "research", 8.0))["admittedJobs"] == 1
    await running.controller.wait_idle()
    inference = (await running.kube.get(f"{QUOTAS}/inference"))["status"]
    assert "dominantResource" not in inference, "a tenant using nothing has no dominant resource"
    before = await revisions(running.kube)
    for _ in range(60):  # a minute of news that changes nothing, each past the write interval
        running.clock.now += 1.0
        running.controller.quotas_changed()
        running.controller.usage_changed("inference")
        running.controller.job_changed("ml/train")
        running.cache.set_pod(bound("a", "ml", gpus=8))
        await running.controller.wait_idle()
    assert await revisions(running.kube) == before
    running.clock.now += 1.0
    running.cache.set_pod(bound("b", "serve", gpus=2))  # a real change is still written
    status = await status_of(running.kube, "inference", 2.0)
    assert status["dominantResource"] == "nvidia.com/gpu"
    running.cache.remove_pod("serve/b")
    running.clock.now += 1.0
    status = await status_of(running.kube, "inference", 0.0)
    assert "dominantResource" not in status, "gone with the usage, not left behind"


def test_an_older_copy_of_a_tenantquota_never_replaces_a_newer_one() -> None:
    index = JobIndex()
    body = gpu_quota("research", ["ml"], guaranteed=8)
    index.tenant_event(
        None, {**body, "metadata": {"name": "research", "resourceVersion": "7"}, "status": {"usedGPUs": 2}}
    )
    index.tenant_event(
        "MODIFIED", {**body, "metadata": {"name": "research", "resourceVersion": "6"}, "status": {}}
    )
    assert index.quotas["research"]["status"] == {"usedGPUs": 2}


async def test_a_pod_naming_another_teams_tenant_is_charged_to_its_own(running: Running) -> None:
    running.cache.set_pod(bound("x", "ml", gpus=2, tenant="inference"))
    running.synced.set()
    assert (await status_of(running.kube, "research", 2.0))["used"] == {"nvidia.com/gpu": "2"}
    assert running.controller.ledger.used("inference") == {}


def test_job_counts_follow_the_jobs_phases() -> None:
    ledger = QuotaLedger()
    jobs = {
        f"ml/{i}": {"status": {"tenant": "research", "phase": phase}}
        for i, phase in enumerate(["Running", "Queued", "Scheduling", "Succeeded", "Pending"])
    }
    status = quota_status(ledger, "research", jobs, now=0.0)
    assert (status["admittedJobs"], status["pendingJobs"]) == (2, 2)
