"""`aisched run --emulator` with `OTEL_TRACES_EXPORTER=console`: one AIJob's life is one trace from
its creation to Running; `aisched explain` and `kubectl aisched explain` answer for a job that waits
for a place, one refused at admission and one that runs, driven with the real kubectl."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.support.kubectl import Kubectl

REPO: Final = Path(__file__).parents[1]
BIN: Final = Path(sys.executable).parent
WAIT: Final = 60.0
NAMESPACE: Final = "ml-research"


@dataclass
class Run:
    kubectl: Kubectl
    kubeconfig: Path
    http: str
    lines: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def spans(self) -> list[dict[str, Any]]:
        """Every span the console exporter printed (indented JSON objects, one after another)."""
        text = "\n".join(self.lines)
        decoder = json.JSONDecoder()
        found, at = [], 0
        while (start := text.find("\n{", at)) >= 0:
            obj, at = decoder.raw_decode(text, start + 1)
            if isinstance(obj, dict) and "context" in obj:
                found.append(obj)
        return found


async def _drain(stream: asyncio.StreamReader, run: Run, kubeconfig_written: asyncio.Event) -> None:
    while line := (await stream.readline()).decode():
        run.lines.append(line.rstrip("\n"))
        if "kubeconfig written" in line:
            kubeconfig_written.set()
    run.ended.set()


@pytest.fixture
async def traced_run(tmp_path: Path) -> AsyncIterator[tuple[Run, asyncio.subprocess.Process]]:
    kubeconfig = tmp_path / "kubeconfig"
    with socket.socket() as probe:  # a free port for the operator's HTTP server, to ask it live
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "AISCHED_METRICS__PORT": str(port),
        "AISCHED_LOGGING__FORMAT": "json",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    process = await asyncio.create_subprocess_exec(
        str(BIN / "aisched"),
        "run",
        "--emulator",
        "--emulator-port=0",
        f"--write-kubeconfig={kubeconfig}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    run = Run(Kubectl(kubeconfig, tmp_path / "cache"), kubeconfig, f"http://127.0.0.1:{port}")
    written = asyncio.Event()
    drain = asyncio.create_task(_drain(process.stdout, run, written))
    try:
        async with asyncio.timeout(WAIT):
            await written.wait()
        yield run, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        async with asyncio.timeout(WAIT):
            await process.wait()
            await drain


def _job(name: str, *, pods: int, gpus: int, rack: bool = False) -> str:
    container = {
        "name": "train",
        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
        "resources": {"limits": {"nvidia.com/gpu": gpus}},
    }
    template = {
        "metadata": {"annotations": {"aisched.io/sim-duration": "600s"}},
        "spec": {"containers": [container]},
    }
    spec: dict[str, Any] = {"replicas": [{"name": "worker", "count": pods, "template": template}]}
    if rack:
        spec["topology"] = {"policy": "Required", "level": "rack"}
    metadata = {"name": name, "namespace": NAMESPACE}
    return yaml.safe_dump(
        {"apiVersion": "aisched.io/v1alpha1", "kind": "AIJob", "metadata": metadata, "spec": spec}
    )


async def _wait_for(kubectl: Kubectl, job: str, jsonpath: str) -> None:
    await kubectl.ok("wait", f"--for=jsonpath={jsonpath}", f"aijob/{job}", "-n", NAMESPACE, "--timeout=60s")


def _trace_of(spans: list[dict[str, Any]], job: str) -> list[dict[str, Any]]:
    """The spans of `job`'s trace: those sharing the trace id of its root span `aijob`."""
    [root] = [s for s in spans if s["name"] == "aijob" and s["attributes"]["aisched.job"] == job]
    return [s for s in spans if s["context"]["trace_id"] == root["context"]["trace_id"]]


async def _explain(
    run: Run, target: str, *, kubectl_plugin: bool = False, live: bool = False
) -> tuple[int, str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if kubectl_plugin:
        args = [run.kubectl.binary, "aisched", "explain", target, "-o", "json"]  # kubectl passes no flags on
        env["KUBECONFIG"] = str(run.kubeconfig)
    else:
        args = [str(BIN / "aisched"), "explain", target, "-o", "json", f"--kubeconfig={run.kubeconfig}"]
        args += [f"--scheduler={run.http}"] if live else []
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=WAIT)
    return process.returncode or 0, out.decode(), err.decode()


async def test_a_jobs_life_is_one_trace_and_explain_answers_for_waiting_refused_and_running_jobs(
    traced_run: tuple[Run, asyncio.subprocess.Process],
) -> None:
    run, process = traced_run
    kubectl = run.kubectl
    await kubectl.ok("apply", "-f", str(REPO / "examples" / "00-namespaces.yaml"))
    await kubectl.ok("apply", "-f", str(REPO / "examples" / "tenantquotas.yaml"))
    await kubectl.ok("apply", "-f", "-", stdin=_job("runs", pods=2, gpus=8))
    await _wait_for(kubectl, "runs", "{.status.phase}=Running")
    # Nine whole nodes in one rack of eight: admitted (the cluster has the GPUs), never placed.
    await kubectl.ok("apply", "-f", "-", stdin=_job("too-wide", pods=9, gpus=8, rack=True))
    # Nine GPUs a pod: no node has that many, so it is refused at admission.
    await kubectl.ok("apply", "-f", "-", stdin=_job("too-big", pods=1, gpus=9))
    await _wait_for(kubectl, "too-wide", "{.status.pendingReason.placement.nodes}=32")
    await _wait_for(kubectl, "too-big", "{.status.pendingReason.stage}=Admission")

    code, out, err = await _explain(run, f"{NAMESPACE}/too-wide")
    assert code == 0, err
    wide = json.loads(out)
    assert {"quota", "placement", "queue", "preemption"} <= set(wide)
    assert wide["object"] == {"kind": "AIJob", "namespace": NAMESPACE, "name": "too-wide", "phase": "Queued"}
    assert wide["placement"]["nodes"] == 32
    assert wide["placement"]["topology"] == ["needs 72 GPUs in one rack; largest rack has 64 free"]
    assert wide["quota"]["tenant"] == "research"
    assert wide["quota"]["asked"] == 72
    assert wide["quota"]["blocking"] is False
    assert wide["queue"]["name"] == "tenant/research"
    assert wide["preemption"]["wouldPreempt"] is False

    code, out, err = await _explain(run, f"{NAMESPACE}/too-wide", kubectl_plugin=True)
    assert code == 0, err
    assert json.loads(out)["placement"] == wide["placement"]

    code, out, err = await _explain(run, f"aijob/{NAMESPACE}/too-big")
    assert code == 0, err
    big = json.loads(out)
    assert big["stage"] == "Admission"
    assert big["quota"]["blocking"] is True
    assert "no node has more than 8" in big["quota"]["message"]
    assert big["quota"]["wouldFree"] == "nothing but more nodes: the job asks more than the cluster has"

    code, out, err = await _explain(run, f"{NAMESPACE}/runs")
    assert code == 0, err
    runs = json.loads(out)
    assert runs["placement"]["placed"] is True
    assert len(runs["placement"]["nodes"]) == 2

    code, _, err = await _explain(run, f"{NAMESPACE}/no-such-job")
    assert code == 1
    assert f"no AIJob or pod {NAMESPACE}/no-such-job" in err

    # Stop the operator so that every buffered span is exported, then read the job's trace.
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(WAIT):
        await run.ended.wait()
    trace = _trace_of(run.spans(), f"{NAMESPACE}/runs")
    names = {s["name"] for s in trace}
    assert {"aijob", "aijob.Queued", "aijob.Admitted", "schedule_cycle", "bind", "aijob.Running"} <= names
    assert "bind_pod" in names
    cycles = [s for s in trace if s["name"] == "schedule_cycle"]
    assert cycles[-1]["attributes"]["aisched.result"] == "scheduled"
    assert all(s["parent_id"] for s in trace if s["name"] != "aijob")


async def test_a_pod_alone_is_explained_live_by_the_scheduler_it_waits_in(
    traced_run: tuple[Run, asyncio.subprocess.Process],
) -> None:
    run, _ = traced_run
    kubectl = run.kubectl
    await kubectl.ok("apply", "-f", str(REPO / "examples" / "00-namespaces.yaml"))
    await kubectl.ok("apply", "-f", str(REPO / "examples" / "tenantquotas.yaml"))
    container = {"name": "c", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": 9}}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lone", "namespace": NAMESPACE},
        "spec": {"schedulerName": "aisched", "containers": [container]},
    }
    await kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(pod))
    await kubectl.ok(
        "wait", "--for=jsonpath={.status.conditions[0].reason}=Unschedulable", "pod/lone", "-n", NAMESPACE
    )

    code, out, err = await _explain(run, f"pod/{NAMESPACE}/lone", live=True)
    assert code == 0, err
    live = json.loads(out)
    assert live["object"]["kind"] == "Pod"
    assert live["placement"]["reasons"] == [{"reason": "Insufficient nvidia.com/gpu", "nodes": 32}]
    assert live["quota"]["tenant"] == "research"
    assert live["queue"]["name"] == "tenant/research"

    code, out, err = await _explain(run, f"pod/{NAMESPACE}/lone")  # without the scheduler: its verdict
    assert code == 0, err
    offline = json.loads(out)
    assert offline["placement"]["message"].startswith(
        "0/32 nodes are available: 32 Insufficient nvidia.com/gpu"
    )
    assert offline["quota"]["tenant"] == "research"
