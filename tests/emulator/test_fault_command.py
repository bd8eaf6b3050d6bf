"""`aisched fault`: node and GPU faults injected through the emulator's API, as a user runs it (a
process of its own, a kubeconfig), and refused against any other API server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest

from aisched.emulator import faults
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient, Params
from tests.support.kubectl import Result

ROOT: Final = Path(__file__).resolve().parents[2]
NODE: Final = "h100-001"
TOPOLOGY: Final = f"/apis/aisched.io/v1alpha1/gpunodetopologies/{NODE}"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Path]]:
    async with Emulator(cluster=ROOT / "examples" / "clusters" / "demo.yaml") as emulator:
        yield emulator, emulator.kubeconfig(tmp_path / "kubeconfig")


async def _fault(kubeconfig: Path, *args: str) -> Result:
    command = "from aisched.cli import main; raise SystemExit(main())"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", command, "fault", *args, f"--kubeconfig={kubeconfig}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return Result(process.returncode or 0, out.decode(), err.decode())


def _ready(node: JsonObject) -> tuple[str, str]:
    condition = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    return condition["status"], condition["reason"]


async def test_a_node_goes_not_ready_and_back(api: tuple[Emulator, Path]) -> None:
    emulator, kubeconfig = api
    async with KubeClient(base_url=emulator.url) as kube:
        assert (await _fault(kubeconfig, "not-ready", NODE)).code == 0
        assert _ready(await kube.get(f"/api/v1/nodes/{NODE}")) == ("False", "NodeStatusUnknown")
        assert (await _fault(kubeconfig, "ready", NODE)).code == 0
        assert _ready(await kube.get(f"/api/v1/nodes/{NODE}")) == ("True", "KubeletReady")


async def test_an_xid_marks_the_gpu_unhealthy_as_the_agent_would(api: tuple[Emulator, Path]) -> None:
    emulator, kubeconfig = api
    done = await _fault(kubeconfig, "xid", NODE, "--gpu", "3", "--xid", "48")
    assert (done.code, done.out) == (0, f"xid {NODE} gpu 3\n")
    async with KubeClient(base_url=emulator.url) as kube:
        gpus = {g["index"]: g for g in (await kube.get(TOPOLOGY))["status"]["gpus"]}
        assert (gpus[3]["health"], gpus[3]["healthReason"]) == ("Unhealthy", "XID 48")
        assert all(g["health"] == "Healthy" for i, g in gpus.items() if i != 3)
        assert (await _fault(kubeconfig, "gpu-healthy", NODE, "--gpu", "3")).code == 0
        healed = (await kube.get(TOPOLOGY))["status"]["gpus"]
        assert all(g["health"] == "Healthy" and "healthReason" not in g for g in healed)


async def test_unknown_nodes_and_gpus_are_refused_by_name(api: tuple[Emulator, Path]) -> None:
    _, kubeconfig = api
    missing = await _fault(kubeconfig, "xid", NODE, "--gpu", "99")
    assert missing.code == 1
    assert missing.err == f"aisched fault: node {NODE} has no GPU 99 (it has 8)\n"
    nowhere = await _fault(kubeconfig, "delete-node", "nowhere")
    assert nowhere.code == 1
    assert "cannot delete node nowhere" in nowhere.err


class _RealCluster:
    async def get(self, path: str, *, params: Params | None = None) -> JsonObject:
        assert path == "/version"
        return {"gitVersion": "v1.32.3"}


async def test_only_the_emulator_takes_faults() -> None:
    with pytest.raises(faults.FaultError, match="not aisched's emulator"):
        await faults.check_emulator(_RealCluster())
