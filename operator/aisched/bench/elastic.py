"""The elastic half of `aisched bench faults`: one job mix run three ways, end to end.

The same jobs (a master and `min_workers`..`max_workers` workers, each a whole DGX node) arrive
every `interval_s` seconds on a fresh emulator and operator, run as elastic AIJobs
(`spec.elastic`), fixed at the minimum, or fixed at the maximum. Each job has `work_pod_s`
pod-seconds of work: the load plays the training, crediting each job with one pod-second per
running pod per second, and deletes the job when its work is done, so more pods finish sooner.
Reported per mode: GPU utilisation over the run (from the first arrival to the last completion)
and the mean completion time (arrival to done). Targets: elastic's utilisation at least 10
points above fixed-min's, and its mean completion time no worse than fixed-max's.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aisched.bench.harness import EmulatorProcess
from aisched.bench.pods import Cluster, watched_operator
from aisched.emulator.kubelet import whole_node_template
from aisched.kube.client import ApiError, JsonObject, KubeClient, resource_path

__all__ = ["MODES", "ElasticRow", "ElasticScenario", "elastic_missed", "run_elastic"]

NAMESPACE: Final = "bench-elastic"
MODES: Final = ("elastic", "fixed-min", "fixed-max")
UTILISATION_POINTS: Final = 0.10
_GPUS: Final = 8
_TICK_S: Final = 0.25  # the load's work clock: how often it credits the running pods
_READY_TIMEOUT: Final = 120.0


@dataclass(frozen=True)
class ElasticScenario:
    nodes: int = 16
    jobs: int = 6
    interval_s: float = 4.0
    work_pod_s: float = 100.0
    min_workers: int = 1
    max_workers: int = 4
    timeout_s: float = 600.0


@dataclass(frozen=True)
class ElasticRow:
    mode: str
    jobs: int
    completed: int
    utilisation: float
    mean_completion_s: float
    gpu_conflicts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "jobs": self.jobs,
            "completed": self.completed,
            "gpu_utilisation": round(self.utilisation, 4),
            "mean_completion_s": None
            if math.isnan(self.mean_completion_s)
            else round(self.mean_completion_s, 2),
            "gpu_conflicts": self.gpu_conflicts,
        }


def elastic_missed(rows: tuple[ElasticRow, ...]) -> list[str]:
    """The targets elastic misses against the fixed sizes (none when a mode is absent)."""
    by = {row.mode: row for row in rows}
    if set(by) != set(MODES):
        return []
    missed = []
    if by["elastic"].utilisation < by["fixed-min"].utilisation + UTILISATION_POINTS:
        missed.append("elastic utilisation >= fixed-min's + 10 points")
    if not by["elastic"].mean_completion_s <= by["fixed-max"].mean_completion_s:
        missed.append("elastic mean completion <= fixed-max's")
    return missed


def run_elastic(scenario: ElasticScenario) -> tuple[ElasticRow, ...]:
    rows = []
    for mode in MODES:
        with (
            tempfile.TemporaryDirectory(prefix="aisched-bench-elastic-") as tmp,
            EmulatorProcess(Path(tmp), nodes=scenario.nodes, name="bench-elastic", per_rack=8) as emulator,
        ):
            rows.append(asyncio.run(_run(emulator, mode, scenario)))
    return tuple(rows)


def _job(name: str, mode: str, scenario: ElasticScenario) -> JsonObject:
    template = whole_node_template(None, gpus=_GPUS)
    workers = scenario.max_workers if mode == "fixed-max" else scenario.min_workers
    spec: dict[str, Any] = {
        "topology": {"policy": "Preferred"},
        "replicas": [
            {"name": "master", "count": 1, "template": template},
            {"name": "worker", "count": workers, "template": template},
        ],
    }
    if mode == "elastic":
        spec["elastic"] = {
            "role": "worker",
            "minReplicas": scenario.min_workers,
            "maxReplicas": scenario.max_workers,
        }
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


async def _run(emulator: EmulatorProcess, mode: str, scenario: ElasticScenario) -> ElasticRow:
    async with watched_operator(emulator, NAMESPACE, settings={}, within=_READY_TIMEOUT) as watched:
        cluster = watched.cluster
        completions, window = await watched.run(_play(watched.kube, cluster, mode, scenario))
    start, end = window
    busy = 0.0
    for pod in cluster.pods.values():
        if pod.running_since is None:
            continue
        begin, until = max(pod.running_since, start), min(pod.ended_at or end, end)
        busy += _GPUS * max(0.0, until - begin)
    capacity = scenario.nodes * _GPUS * max(1e-9, end - start)
    done = [c for c in completions if c is not None]
    return ElasticRow(
        mode=mode,
        jobs=scenario.jobs,
        completed=len(done),
        utilisation=busy / capacity,
        mean_completion_s=sum(done) / len(done) if done else math.nan,
        gpu_conflicts=cluster.gpu_conflicts(),
    )


async def _play(
    kube: KubeClient, cluster: Cluster, mode: str, scenario: ElasticScenario
) -> tuple[list[float | None], tuple[float, float]]:
    """Submit the jobs on their schedule and play their training; (completion per job, window)."""
    path = resource_path(group="aisched.io", version="v1alpha1", plural="aijobs", namespace=NAMESPACE)
    names = [f"job-{i}" for i in range(scenario.jobs)]
    start = time.time()
    arrivals = {name: start + i * scenario.interval_s for i, name in enumerate(names)}
    submitted: set[str] = set()
    work = dict.fromkeys(names, 0.0)
    completions: dict[str, float] = {}
    last = start
    while len(completions) < len(names) and time.time() - start < scenario.timeout_s:
        now = time.time()
        for name in names:
            if name not in submitted and now >= arrivals[name]:
                await kube.post(path, _job(name, mode, scenario))
                submitted.add(name)
        running: dict[str, int] = {}
        for pod in cluster.pods.values():
            if pod.running_since is not None and pod.ended_at is None:
                running[pod.job] = running.get(pod.job, 0) + 1
        for name in submitted - completions.keys():
            work[name] += running.get(name, 0) * (now - last)
            if work[name] >= scenario.work_pod_s:
                completions[name] = now - arrivals[name]
                try:
                    await kube.delete(f"{path}/{name}")
                except ApiError as exc:
                    if exc.status != 404:
                        raise
        last = now
        await asyncio.sleep(_TICK_S)  # the workload's own clock, not a wait for a state
    end = time.time() if completions else start
    return [completions.get(n) for n in names], (start, max(end, start + 1e-9))
