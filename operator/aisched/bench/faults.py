"""`aisched bench faults`: node and GPU faults under running gangs, end to end.

Per restart policy (`OnFailure`, the whole gang restarts; `Replace`, only the lost pods), three
processes, as `bench queue` runs them: a fresh emulator (racks of 8 DGX H100 nodes), the operator
as a user starts it (`aisched run`, `AISCHED_FAILURES__DETECTION_SECONDS` in its environment), and
the load here. The load runs `jobs` AIJobs of 3 whole-node pods each (master and 2 workers, one
rack required, running until deleted), leaving spare nodes in every rack; then injects the faults
one after another through the emulator's API, as `aisched fault` does, each under a worker of
another job: a node not ready, a GPU XID, a node deleted, and so on round. For each fault it
measures, from the pods it watches:

- `detect_s`: from the fault to the worker's pod ended (its DisruptionTarget condition, or Failed);
- `recover_s`: from the fault to its job running whole again (every pod Running, the lost one new);
- GPU-hours lost: the run time of every pod the fault and the recovery ended (what a job that
  restarts from its start throws away; one that checkpoints loses less);
- `gpu_conflicts`: a GPU held by two running pods at any moment (must be 0), and
  `half_bound_gangs`: jobs not running whole at the end (must be 0).

Targets: `detect_s` within the detection time plus 2 s; under `Replace`, p99 recovery within the
detection time plus 5 s (spare nodes are in every rack).
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from aisched.bench.elastic import ElasticRow, ElasticScenario, elastic_missed, run_elastic
from aisched.bench.harness import EmulatorProcess, first, log_warnings
from aisched.bench.pods import Cluster, watched_operator
from aisched.emulator import faults
from aisched.emulator.kubelet import whole_node_template
from aisched.kube.client import JsonObject, KubeClient, resource_path

__all__ = ["FAULT_KINDS", "FaultsBenchmark", "PolicyRow", "run_faults_benchmark"]

NAMESPACE: Final = "bench-faults"
FAULT_KINDS: Final = ("not-ready", "xid", "delete-node")
POLICIES: Final = ("OnFailure", "Replace")
DETECT_MARGIN_S: Final = 2.0
REPLACE_MARGIN_S: Final = 5.0
_PODS_PER_JOB: Final = 3
_GPUS: Final = 8
_READY_TIMEOUT: Final = 120.0
_FAULT_TIMEOUT: Final = 120.0


@dataclass(frozen=True)
class FaultRecord:
    kind: str
    node: str
    job: str
    detect_s: float
    recover_s: float
    pods_ended: int
    gpu_hours_lost: float


@dataclass(frozen=True)
class PolicyRow:
    policy: str
    detection_s: float
    nodes: int
    jobs: int
    faults: tuple[FaultRecord, ...]
    gpu_conflicts: int
    half_bound_gangs: int
    operator_warnings: int

    def _values(self, name: str) -> list[float]:
        return [getattr(f, name) for f in self.faults if not math.isnan(getattr(f, name))]

    def percentile(self, name: str, q: float) -> float:
        values = self._values(name)
        return float(np.percentile(values, q)) if values else math.nan

    def missed(self) -> list[str]:
        missed = []
        if (
            len(self._values("detect_s")) < len(self.faults)
            or self.percentile("detect_s", 100) > self.detection_s + DETECT_MARGIN_S
        ):
            missed.append(f"detect_s <= {self.detection_s + DETECT_MARGIN_S:g}")
        if self.policy == "Replace" and (
            len(self._values("recover_s")) < len(self.faults)
            or self.percentile("recover_s", 99) > self.detection_s + REPLACE_MARGIN_S
        ):
            missed.append(f"Replace recover_s p99 <= {self.detection_s + REPLACE_MARGIN_S:g}")
        return missed

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 2)

        return {
            "policy": self.policy,
            "detection_seconds": self.detection_s,
            "nodes": self.nodes,
            "jobs": self.jobs,
            "faults": [
                {
                    "kind": f.kind,
                    "node": f.node,
                    "job": f.job,
                    "detect_s": rounded(f.detect_s),
                    "recover_s": rounded(f.recover_s),
                    "pods_ended": f.pods_ended,
                    "gpu_hours_lost": round(f.gpu_hours_lost, 4),
                }
                for f in self.faults
            ],
            "detect_s_max": rounded(self.percentile("detect_s", 100)),
            "recover_s_p50": rounded(self.percentile("recover_s", 50)),
            "recover_s_p99": rounded(self.percentile("recover_s", 99)),
            "gpu_hours_lost": round(sum(f.gpu_hours_lost for f in self.faults), 4),
            "gpu_conflicts": self.gpu_conflicts,
            "half_bound_gangs": self.half_bound_gangs,
            "operator_warnings": self.operator_warnings,
            "targets_missed": self.missed(),
        }


@dataclass(frozen=True)
class FaultsBenchmark:
    rows: tuple[PolicyRow, ...]
    #: The elastic job mix under each mode (`bench.elastic`); empty when not run.
    elastic: tuple[ElasticRow, ...] = ()

    def to_json(self) -> dict[str, Any]:
        elastic = [row.to_json() for row in self.elastic]
        missed = elastic_missed(self.elastic) if self.elastic else []
        return {
            "faults": [row.to_json() for row in self.rows],
            "elastic": elastic or None,
            "elastic_targets_missed": missed,
        }

    def table(self) -> str:
        lines = [
            f"{'policy':<10} {'faults':>6} {'detect max':>10} {'recover p50/p99':>16} {'GPU-h lost':>10}"
            f" {'GPUs twice':>10} {'half-bound':>10}  targets"
        ]
        for row in self.rows:
            missed = row.missed()
            lines.append(
                f"{row.policy:<10} {len(row.faults):>6} {row.percentile('detect_s', 100):>9.1f}s"
                f" {row.percentile('recover_s', 50):>7.1f}/{row.percentile('recover_s', 99):>6.1f} s"
                f" {sum(f.gpu_hours_lost for f in row.faults):>10.3f} {row.gpu_conflicts:>10}"
                f" {row.half_bound_gangs:>10}  {'met' if not missed else 'missed: ' + '; '.join(missed)}"
            )
            for f in row.faults:
                lines.append(
                    f"  {f.kind:<12} {f.node:<8} {f.job:<8} detect {f.detect_s:5.1f} s"
                    f"  recover {f.recover_s:5.1f} s  pods ended {f.pods_ended}  GPU-h {f.gpu_hours_lost:.3f}"
                )
        if not self.elastic:
            lines.append("elastic against fixed sizes: not run")
        for mix in self.elastic:
            lines.append(
                f"{mix.mode:<10} jobs {mix.completed}/{mix.jobs} done  GPU utilisation"
                f" {100 * mix.utilisation:5.1f} %  mean completion {mix.mean_completion_s:6.1f} s"
                f"  GPUs twice {mix.gpu_conflicts}"
            )
        if self.elastic:
            missed = elastic_missed(self.elastic)
            lines.append("elastic targets: " + ("met" if not missed else "missed: " + "; ".join(missed)))
        return "\n".join(lines)

    def failures(self) -> list[str]:
        failed = []
        for row in self.rows:
            if row.gpu_conflicts:
                failed.append(f"{row.policy}: {row.gpu_conflicts} GPU(s) held by two running pods")
            if row.half_bound_gangs:
                failed.append(f"{row.policy}: {row.half_bound_gangs} job(s) not running whole at the end")
        for elastic in self.elastic:
            if elastic.gpu_conflicts:
                failed.append(f"{elastic.mode}: {elastic.gpu_conflicts} GPU(s) held by two running pods")
            if elastic.completed < elastic.jobs:
                failed.append(f"{elastic.mode}: {elastic.jobs - elastic.completed} job(s) never finished")
        return failed


def run_faults_benchmark(
    *,
    nodes: int = 32,
    jobs: int = 8,
    faults_count: int = 6,
    detection: float = 10.0,
    elastic: ElasticScenario | None = None,
) -> FaultsBenchmark:
    if jobs * _PODS_PER_JOB > nodes:
        raise ValueError(
            f"{jobs} jobs of {_PODS_PER_JOB} whole-node pods need {jobs * _PODS_PER_JOB} nodes, not {nodes}"
        )
    if faults_count > jobs:
        raise ValueError(f"each fault hits another job: at most {jobs} faults, not {faults_count}")
    rows = []
    for policy in POLICIES:
        with (
            tempfile.TemporaryDirectory(prefix="aisched-bench-faults-") as tmp,
            EmulatorProcess(Path(tmp), nodes=nodes, name="bench-faults", per_rack=8) as emulator,
        ):
            rows.append(
                asyncio.run(
                    _run(emulator, policy, nodes=nodes, jobs=jobs, count=faults_count, detection=detection)
                )
            )
    return FaultsBenchmark(tuple(rows), run_elastic(elastic) if elastic is not None else ())


def _job(name: str, policy: str) -> JsonObject:
    template = whole_node_template(None, gpus=_GPUS)
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "topology": {"policy": "Required", "level": "rack"},
            "restart": {"policy": policy, "backoffLimit": 10},
            "replicas": [
                {"name": "master", "count": 1, "template": template},
                {"name": "worker", "count": _PODS_PER_JOB - 1, "template": template},
            ],
        },
    }


async def _run(
    emulator: EmulatorProcess, policy: str, *, nodes: int, jobs: int, count: int, detection: float
) -> PolicyRow:
    records: list[FaultRecord] = []
    settings = {"AISCHED_FAILURES__DETECTION_SECONDS": str(detection)}
    async with watched_operator(emulator, NAMESPACE, settings=settings, within=_READY_TIMEOUT) as watched:
        kube, cluster, guards = watched.kube, watched.cluster, watched.guards
        names = [f"job-{i}" for i in range(jobs)]
        path = resource_path(group="aisched.io", version="v1alpha1", plural="aijobs", namespace=NAMESPACE)
        for name in names:
            await kube.post(path, _job(name, policy))
        everyone = lambda: all(cluster.job_running(n, size=_PODS_PER_JOB) for n in names)  # noqa: E731
        await first(cluster.until(everyone, _READY_TIMEOUT), *guards)
        for i in range(count):
            records.append(await _inject(kube, cluster, FAULT_KINDS[i % len(FAULT_KINDS)], names[i], guards))
        half = sum(1 for n in names if not cluster.job_running(n, size=_PODS_PER_JOB))
    return PolicyRow(
        policy=policy,
        detection_s=detection,
        nodes=nodes,
        jobs=jobs,
        faults=tuple(records),
        gpu_conflicts=cluster.gpu_conflicts(),
        half_bound_gangs=half,
        operator_warnings=log_warnings(watched.operator.log_path),
    )


async def _inject(
    kube: KubeClient, cluster: Cluster, kind: str, job: str, guards: Sequence[asyncio.Task[None]]
) -> FaultRecord:
    """One fault under `job`'s first worker; its record once the job runs whole again."""
    victim = cluster.pods[cluster.live[f"{job}-worker-0"]]
    node = victim.sightings.node
    before = {u for u, p in cluster.pods.items() if p.ended_at is None}
    at = time.time()
    if kind == "not-ready":
        await faults.set_ready(kube, node, False)
    elif kind == "xid":
        topology = await kube.get(f"/apis/aisched.io/v1alpha1/gpunodetopologies/{node}")
        index = next(g["index"] for g in topology["status"]["gpus"] if g["uuid"] in victim.sightings.gpus)
        await faults.gpu_health(kube, node, index, xid=79)
    else:
        await faults.delete_node(kube, node)
    detect = recover = math.nan
    try:
        await first(
            cluster.until(
                lambda: victim.disrupted_at is not None or victim.ended_at is not None, _FAULT_TIMEOUT
            ),
            *guards,
        )
        detect = min(t for t in (victim.disrupted_at, victim.ended_at) if t is not None) - at
        await first(
            cluster.until(
                lambda: cluster.job_running(job, size=_PODS_PER_JOB, without=victim.uid), _FAULT_TIMEOUT
            ),
            *guards,
        )
        recover = time.time() - at
    except TimeoutError:
        pass
    ended = [cluster.pods[u] for u in before if cluster.pods[u].ended_at is not None]
    lost = sum(_GPUS * max(0.0, (p.ended_at or at) - (p.running_since or at)) for p in ended) / 3600
    return FaultRecord(kind, node, job, detect, recover, len(ended), lost)
