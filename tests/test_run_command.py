"""The operator as a user starts it: `aisched run --emulator` driven with the real kubectl, and the
module plain `kopf run` loads, against an emulator in this process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import KubeClient
from aisched.runner import DEFAULT_CLUSTER, ensure_namespace
from tests.support.kubectl import Kubectl

REPO: Final = Path(__file__).parents[1]
AISCHED: Final = Path(sys.executable).with_name("aisched")
KOPF: Final = Path(sys.executable).with_name("kopf")
WAIT: Final = 60.0


async def _line_containing(stream: asyncio.StreamReader, text: str) -> str:
    async with asyncio.timeout(WAIT):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"the process ended before printing {text!r}")
            if text in line:
                return line


async def _stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
    async with asyncio.timeout(WAIT):
        return await process.wait()


@pytest.fixture
async def aisched_run(tmp_path: Path) -> AsyncIterator[Kubectl]:
    """`aisched run --emulator` in its own process; kubectl bound to the kubeconfig it wrote."""
    kubeconfig = tmp_path / "kubeconfig"
    env = {**os.environ, "AISCHED_METRICS__PORT": "0", "AISCHED_LOGGING__FORMAT": "json"}
    process = await asyncio.create_subprocess_exec(
        str(AISCHED),
        "run",
        "--emulator",
        "--emulator-port=0",
        f"--write-kubeconfig={kubeconfig}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        assert process.stdout is not None
        await _line_containing(process.stdout, "kubeconfig written")
        yield Kubectl(kubeconfig, tmp_path / "cache")
    finally:
        assert await _stop(process) == 0, "aisched run exits 0 on SIGINT"


async def test_kubectl_applied_ddp_job_runs_under_aisched_run(aisched_run: Kubectl) -> None:
    kubectl = aisched_run
    await kubectl.ok("apply", "-f", str(REPO / "examples" / "00-namespaces.yaml"))
    await kubectl.ok("apply", "-f", str(REPO / "examples" / "tenantquotas.yaml"))  # it names tenant research
    await kubectl.ok("apply", "-f", str(REPO / "examples" / "aijob-pytorch-ddp.yaml"))
    await kubectl.ok(
        "wait",
        "--for=jsonpath={.status.phase}=Running",
        "aijob/llama-pretrain-ddp",
        "-n",
        "ml-research",
        "--timeout=60s",
    )
    table = await kubectl.ok("get", "aijobs", "-n", "ml-research")
    assert "llama-pretrain-ddp" in table
    assert "Running" in table
    nodes = await kubectl.ok(
        "get",
        "pods",
        "-n",
        "ml-research",
        "-l",
        "aisched.io/job=llama-pretrain-ddp",
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName}{'\\n'}{end}",
    )
    assert len([n for n in nodes.split() if n]) == 2, nodes


async def test_plain_kopf_run_loads_the_operator_module(tmp_path: Path) -> None:
    async with Emulator(cluster=DEFAULT_CLUSTER) as api, KubeClient(base_url=api.url) as kube:
        ensure_namespace(api, "aisched-system")
        await kube.post("/api/v1/namespaces", {"metadata": {"name": "ml"}})
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "AISCHED_METRICS__PORT": "0",
            "AISCHED_LOGGING__FORMAT": "json",
        }
        process = await asyncio.create_subprocess_exec(
            str(KOPF),
            "run",
            "--all-namespaces",  # no --standalone: the startup hook turns Kopf's peering off itself
            "-m",
            "aisched.kopf_main",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        try:
            assert process.stdout is not None
            await _line_containing(process.stdout, "job_controller_started")
            await kube.post(
                "/api/v1/namespaces/ml/pods",
                {
                    "metadata": {"name": "p", "namespace": "ml"},
                    "spec": {
                        "schedulerName": "aisched",
                        "containers": [
                            {"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 2}}}
                        ],
                    },
                },
            )
            async with asyncio.timeout(WAIT):
                async for event in kube.watch("/api/v1/namespaces/ml/pods", params={"resourceVersion": "0"}):
                    if event["object"]["spec"].get("nodeName"):
                        break
        finally:
            await _stop(process)
