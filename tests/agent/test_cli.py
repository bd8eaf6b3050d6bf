"""`aisched agent` as a process: clear errors without a cluster, and NVML kept off the event loop."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from aisched.agent.cli import serve
from aisched.agent.fake_nvml import FakeNvml
from aisched.emulator.runner import write_kubeconfig
from tests.support.fake_apiserver import FakeApiServer

TOPOLOGY = "/apis/aisched.io/v1alpha1/gpunodetopologies/gpu-1"


def test_a_missing_cluster_config_is_a_one_line_error_and_exit_code_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aisched.cli",
            "agent",
            "--fake",
            "pcie-8gpu",
            "--node",
            "gpu-1",
            "--kubeconfig",
            str(tmp_path / "missing"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("aisched agent:")]
    assert len(ours) == 1, result.stderr
    assert "no cluster to publish to" in ours[0]
    assert str(tmp_path / "missing") in ours[0]


class LoopWatchingNvml(FakeNvml):
    """A fake NVML that notes every initialisation and device call made on an event loop's thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_loop: list[str] = []
        self.calls: list[str] = []

    def _note(self, name: str) -> None:
        self.calls.append(name)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.on_loop.append(name)

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's name
        self._note("nvmlInit")
        super().nvmlInit()

    def nvmlShutdown(self) -> None:  # noqa: N802 - pynvml's name
        self._note("nvmlShutdown")
        super().nvmlShutdown()

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - pynvml's name
        self._note("nvmlDeviceGetCount")
        return super().nvmlDeviceGetCount()

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:  # noqa: N802 - pynvml's name
        self._note("nvmlDeviceGetHandleByIndex")
        return super().nvmlDeviceGetHandleByIndex(index)


async def test_nvml_init_and_the_health_monitor_run_off_the_event_loop(
    server: FakeApiServer, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    nvml = LoopWatchingNvml(FakeNvml.for_machine("pcie-8gpu").machine, node="gpu-1")
    args = argparse.Namespace(
        kubeconfig=str(kubeconfig), namespace="aisched-agents", once=True, sysfs=tmp_path
    )
    assert await serve(nvml, node="gpu-1", args=args) == 0
    assert TOPOLOGY in server.objects
    assert {"nvmlInit", "nvmlDeviceGetCount", "nvmlShutdown"} <= set(nvml.calls)
    assert nvml.on_loop == []
