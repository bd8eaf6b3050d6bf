"""An AIJob nothing happens to is never rewritten, however often the controller looks at it."""

from __future__ import annotations

import asyncio
from typing import Final

from aisched.controllers.aijob.controller import JobController
from aisched.controllers.index import JobIndex
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from tests.support.objects import aijob
from tests.support.queueing import Clock

NAMESPACE: Final = "ml-research"
AIJOBS: Final = f"/apis/aisched.io/v1alpha1/namespaces/{NAMESPACE}/aijobs"
PODS: Final = f"/api/v1/namespaces/{NAMESPACE}/pods"
KEY: Final = f"{NAMESPACE}/llama-pretrain"


async def _running_pods(kube: KubeClient, count: int) -> list[JsonObject]:
    """The job's pods once `count` of them run (the emulator's kubelet starts bound pods)."""
    listing = await kube.get(PODS)
    pods = {p["metadata"]["name"]: p for p in listing["items"]}

    def running() -> list[JsonObject]:
        return [p for p in pods.values() if p.get("status", {}).get("phase") == "Running"]

    if len(running()) >= count:
        return running()
    async with asyncio.timeout(10):
        async for event in kube.watch(
            PODS, params={"resourceVersion": listing["metadata"]["resourceVersion"]}
        ):
            pods[event["object"]["metadata"]["name"]] = event["object"]
            if len(running()) >= count:
                return running()
    raise AssertionError("the watch ended before the pods ran")


async def test_a_running_jobs_status_is_not_rewritten_however_often_it_is_reconciled(
    emulator_cluster: Emulator,
) -> None:
    clock = Clock()
    clock.now = 1_800_000_000.0
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        index = JobIndex()
        index.job_event(None, await kube.post(AIJOBS, aijob(gpus=8, workers=1)))
        jobs = JobController(kube, index, clock=clock, pods_synced=asyncio.Event())
        await jobs._reconcile(KEY)  # its pods are made
        for pod, node in zip((await kube.get(PODS))["items"], ("h100-000", "h100-001"), strict=True):
            name = pod["metadata"]["name"]
            binding = {"metadata": {"name": name}, "target": {"kind": "Node", "name": node}}
            await kube.post(f"{PODS}/{name}/binding", binding)
        for pod in await _running_pods(kube, 2):
            jobs.pod_event(pod, False)
        clock.now += 1.0
        await jobs._reconcile(KEY)
        job = await kube.get(f"{AIJOBS}/llama-pretrain")
        assert job["status"]["phase"] == "Running"
        assert job["status"]["gpus"] == 16
        for _ in range(60):  # a minute of looks, a second apart, with nothing new
            clock.now += 1.0
            for pod in (await kube.get(PODS))["items"]:
                jobs.pod_event(pod, False)
            await jobs._reconcile(KEY)
        again = await kube.get(f"{AIJOBS}/llama-pretrain")
        assert again["metadata"]["resourceVersion"] == job["metadata"]["resourceVersion"]
        assert again["status"] == job["status"]
