"""The GPUS column of `kubectl get aijobs`, as the AIJob controller fills it, for shared GPUs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import pytest
import yaml

from aisched.controllers.aijob.controller import JobController
from aisched.controllers.index import JobIndex
from aisched.emulator.runner import Emulator
from aisched.kube.client import KubeClient
from tests.support.kubectl import Kubectl, require_kubectl
from tests.support.queueing import Clock

EXAMPLES: Final = Path(__file__).parents[3] / "examples"
AIJOBS: Final = "/apis/aisched.io/v1alpha1/namespaces/ml-inference/aijobs"


@pytest.mark.parametrize(("servers", "column"), [(4, "1"), (2, "0.5")])
async def test_pods_sharing_a_gpu_in_quarters_count_as_the_gpus_they_add_up_to(
    emulator_cluster: Emulator, tmp_path: Path, servers: int, column: str
) -> None:
    require_kubectl()
    body = yaml.safe_load((EXAMPLES / "aijob-shared-gpu.yaml").read_text())  # 250 milli a pod
    body["spec"]["replicas"][0]["count"] = servers
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": "ml-inference"}})
        index = JobIndex()
        index.job_event(None, await kube.post(AIJOBS, body))
        jobs = JobController(kube, index, clock=Clock(), pods_synced=asyncio.Event())
        await jobs._reconcile("ml-inference/embedder-triton")
        job = await kube.get(f"{AIJOBS}/embedder-triton")
    assert job["status"]["gpus"] == servers / 4
    kubectl = Kubectl(emulator_cluster.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")
    header, row = (await kubectl.ok("get", "aij", "-n", "ml-inference")).splitlines()[:2]
    assert header.split()[:3] == ["NAME", "PHASE", "GPUS"]
    assert row.split()[2] == column
