"""The job index Kopf feeds, and the AIJob controller's writes against the emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import pytest

from aisched.controllers.aijob.controller import JobController
from aisched.controllers.index import JobIndex, owning_job
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from tests.support.objects import aijob

NAMESPACE: Final = "ml-research"
AIJOBS: Final = f"/apis/aisched.io/v1alpha1/namespaces/{NAMESPACE}/aijobs"
PODS: Final = f"/api/v1/namespaces/{NAMESPACE}/pods"


def versioned(name: str, version: str, **status: Any) -> JsonObject:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": version},
        "spec": {},
        "status": status,
    }


def test_an_older_copy_never_replaces_a_newer_one() -> None:
    index = JobIndex()
    seen: list[str] = []
    index.subscribe(seen.append, lambda: None)
    index.job_event(None, versioned("a", "10", restarts=1))
    index.job_event("MODIFIED", versioned("a", "9", restarts=0))  # Kopf's event, older than our write
    assert index.jobs[f"{NAMESPACE}/a"]["status"]["restarts"] == 1
    assert seen == [f"{NAMESPACE}/a"], "an ignored copy tells nobody"
    index.job_event("DELETED", versioned("a", "11"))
    assert index.jobs == {}


def test_a_fresh_list_drops_jobs_deleted_while_unwatched() -> None:
    index = JobIndex()
    index.job_event(None, versioned("a", "1"))
    index.job_event(None, versioned("b", "2"))
    dropped = index.replace_jobs([versioned("b", "3")])
    assert dropped == {f"{NAMESPACE}/a"}
    assert list(index.jobs) == [f"{NAMESPACE}/b"]


def test_tenants_follow_their_quotas_namespaces() -> None:
    index = JobIndex()
    quota_changes: list[None] = []
    index.subscribe(lambda key: None, lambda: quota_changes.append(None))
    index.tenant_event(None, {"metadata": {"name": "research"}, "spec": {"namespaces": ["ml", "ml-2"]}})
    assert index.tenant_for("ml") == "research"
    index.tenant_event("MODIFIED", {"metadata": {"name": "research"}, "spec": {"namespaces": ["ml-2"]}})
    assert index.tenant_for("ml") is None
    index.tenant_event("DELETED", {"metadata": {"name": "research"}, "spec": {}})
    assert index.tenant_for("ml-2") is None
    assert len(quota_changes) == 3


def test_only_pods_an_aijob_controls_belong_to_a_job() -> None:
    owned = {
        "metadata": {
            "namespace": "ml",
            "ownerReferences": [{"kind": "AIJob", "apiVersion": "aisched.io/v1alpha1", "name": "j"}],
        }
    }
    labelled_only = {"metadata": {"namespace": "ml", "labels": {"aisched.io/job": "j"}}}
    assert owning_job(owned) == "ml/j"
    assert owning_job(labelled_only) is None


class Running:
    def __init__(self, kube: KubeClient, index: JobIndex, controller: JobController) -> None:
        self.kube = kube
        self.index = index
        self.controller = controller


@pytest.fixture
async def controller(emulator_cluster: Emulator) -> AsyncIterator[Running]:
    """A JobController on the demo cluster, its pod view fed by hand (no scheduler runs)."""
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        index = JobIndex()
        synced = asyncio.Event()
        jobs = JobController(kube, index, clock=time.time, pods_synced=synced)
        stop = asyncio.Event()
        task = asyncio.create_task(jobs.run(stop))
        try:
            yield Running(kube, index, jobs)
        finally:
            stop.set()
            await task


async def test_no_pods_are_made_for_a_job_deleted_before_the_news_arrived(emulator_cluster: Emulator) -> None:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        created = await kube.post(AIJOBS, aijob())
        await kube.delete(f"{AIJOBS}/{created['metadata']['name']}")
        index = JobIndex()
        index.job_event(None, created)  # Kopf's DELETED is late, or was lost in a watch gap
        jobs = JobController(kube, index, clock=time.time, pods_synced=asyncio.Event())
        await jobs._reconcile(f"{NAMESPACE}/llama-pretrain")
        assert index.jobs == {}, "the controller learnt that the job is gone"
        assert (await kube.get(PODS))["items"] == []
        assert (await kube.get(f"/api/v1/namespaces/{NAMESPACE}/services"))["items"] == []


async def test_pods_of_a_job_that_no_longer_exists_are_deleted(controller: Running) -> None:
    orphan = {
        "metadata": {
            "name": "gone-worker-0",
            "namespace": NAMESPACE,
            "ownerReferences": [
                {
                    "apiVersion": "aisched.io/v1alpha1",
                    "kind": "AIJob",
                    "name": "gone",
                    "uid": "u-gone",
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    pod = await controller.kube.post(PODS, orphan)
    controller.controller.pod_event(pod, False)
    controller.controller._pods_synced.set()
    async with asyncio.timeout(10):
        listing = await controller.kube.get(PODS)
        version = listing["metadata"]["resourceVersion"]
        if listing["items"]:
            async for event in controller.kube.watch(PODS, params={"resourceVersion": version}):
                if event["type"] == "DELETED":
                    break
    assert (await controller.kube.get(PODS))["items"] == []
