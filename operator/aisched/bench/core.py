"""`aisched bench core`: the scheduling core on a synthetic cluster, against a bare numpy floor.

Measured on one core, in one process:
- single-pod GPU decisions: full cycles (snapshot refresh, filters, scores, placement, assume)
  for pods of 1, 2, 4 and 8 GPUs, decisions per second and p50/p99 latency;
- the floor: for the same pods over the same arrays, a bare vectorised filter (static mask, the
  requested resources, free GPUs) plus a bin-packing score and argmax, with no framework at all;
- gangs: 8 pods × 8 GPUs with Preferred rack topology, gangs per second;
- memory: peak RSS once the snapshot of the cluster is built;
- one-pod snapshot update: a bound pod arriving from the informer, then the snapshot refresh;
- tracing: single-pod decisions per second with no tracing code, with the OpenTelemetry API and no
  SDK (the default), and with the SDK sampling 1 % of cycles (`bench.tracing`).

Checked, outside the timings, over every placement made (the correctness rows): no GPU of a node
handed to two pods, every pod given as many GPUs as it asked for, every gang placed whole.
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from aisched.bench.cluster import synthetic_cluster
from aisched.bench.tracing import tracing_cost
from aisched.cache.cache import PodUsage
from aisched.framework.profile import Profile
from aisched.framework.types import Gang, GangPlacement, PodInfo
from aisched.scheduler import Scheduler
from aisched.topology import resources

__all__ = ["CoreBenchmark", "run_core_benchmark"]

MACHINES: Final = ("dgx-h100", "hgx-a100", "dgx1-v100", "pcie-8gpu")
GPU_SIZES: Final = (1, 2, 4, 8)
_BATCH: Final = 250


@dataclass(frozen=True)
class CoreBenchmark:
    nodes: int
    single_pod_decisions: int
    single_pod_decisions_per_s: float
    single_pod_p50_us: float
    single_pod_p99_us: float
    floor_us: float
    floor_ratio: float
    floor_ratio_mean: float
    gangs: int
    gang_decisions_per_s: float
    gang_p50_ms: float
    gang_p99_ms: float
    gang_racks_used_mean: float
    rss_mb: float
    snapshot_build_s: float
    snapshot_update_us: float
    tracing_off_per_s: float
    tracing_disabled_per_s: float
    tracing_disabled_overhead_pct: float
    tracing_sampled_per_s: float | None
    tracing_sampled_overhead_pct: float | None
    tracing_with_metrics_per_s: float | None
    tracing_with_metrics_overhead_pct: float | None
    tracing_spans_exported: int
    gpu_conflicts: int  #: GPUs of a node handed to more than one pod (must be 0)
    gpu_count_mismatches: int  #: pods given more or fewer GPUs than they asked for (must be 0)
    gangs_split: int  #: gangs placed with fewer members than they have (must be 0)

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}

    def table(self) -> str:
        rows = [
            ("nodes", f"{self.nodes}", ""),
            ("single-pod decisions/s", f"{self.single_pod_decisions_per_s:,.0f}", "target >= 1,000"),
            (
                "  p50 / p99 per decision",
                f"{self.single_pod_p50_us:.0f} / {self.single_pod_p99_us:.0f} us",
                "",
            ),
            ("  bare numpy floor (p50)", f"{self.floor_us:.0f} us", ""),
            ("  ratio to floor (p50 / p50)", f"{self.floor_ratio:.2f}x", "target <= 4x"),
            ("  ratio to floor (mean / mean)", f"{self.floor_ratio_mean:.2f}x", ""),
            ("gang decisions/s (8x8 GPUs, rack)", f"{self.gang_decisions_per_s:,.0f}", "target >= 200"),
            ("  p50 / p99 per gang", f"{self.gang_p50_ms:.2f} / {self.gang_p99_ms:.2f} ms", ""),
            ("  racks per gang (mean)", f"{self.gang_racks_used_mean:.2f}", "lower bound 1"),
            ("peak RSS", f"{self.rss_mb:.0f} MB", "target <= 200 MB"),
            ("snapshot build", f"{self.snapshot_build_s:.2f} s", ""),
            ("one-pod snapshot update", f"{self.snapshot_update_us:.0f} us", "target <= 1,000 us"),
            ("decisions/s, no tracing code", f"{self.tracing_off_per_s:,.0f}", ""),
            (
                "  tracing disabled (API only)",
                f"{self.tracing_disabled_per_s:,.0f} ({self.tracing_disabled_overhead_pct:+.1f}%)",
                "target: not measurable",
            ),
            (
                "  tracing on, 1% sampled",
                _rate_and_cost(self.tracing_sampled_per_s, self.tracing_sampled_overhead_pct),
                f"target <= +5% ({self.tracing_spans_exported} spans)",
            ),
            (
                "  and plugin metrics sampled",
                _rate_and_cost(self.tracing_with_metrics_per_s, self.tracing_with_metrics_overhead_pct),
                "as the operator runs",
            ),
            ("GPUs given twice", f"{self.gpu_conflicts}", "must be 0"),
            ("pods given the wrong GPU count", f"{self.gpu_count_mismatches}", "must be 0"),
            ("gangs split", f"{self.gangs_split}", "must be 0"),
        ]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value:>16}  {note}" for name, value, note in rows)

    def failures(self) -> list[str]:
        checks = [
            (self.gpu_conflicts, f"GPUs given twice: {self.gpu_conflicts} (must be 0)"),
            (
                self.gpu_count_mismatches,
                f"pods given the wrong GPU count: {self.gpu_count_mismatches} (must be 0)",
            ),
            (self.gangs_split, f"gangs split: {self.gangs_split} of {self.gangs} (must be 0)"),
        ]
        return [row for count, row in checks if count]


def _rate_and_cost(rate: float | None, cost_pct: float | None) -> str:
    return "n/a (no SDK)" if rate is None or cost_pct is None else f"{rate:,.0f} ({cost_pct:+.1f}%)"


def _pod(name: str, gpus: int) -> PodInfo:
    return PodInfo(
        namespace="bench",
        name=name,
        requests={
            resources.CPU: 8_000 * gpus,
            resources.MEMORY: 64 * 2**30 * gpus,
            resources.PODS: 1,
            resources.GPU: gpus,
        },
    )


def _scheduler(nodes: int) -> tuple[Scheduler, float]:
    started = time.perf_counter()
    cache = synthetic_cluster(nodes, machines=MACHINES)
    scheduler = Scheduler(profile=Profile(), cache=cache)
    cache.update_snapshot(scheduler.snapshot)
    return scheduler, time.perf_counter() - started


def _timed(run: Callable[[int], object], count: int) -> tuple[float, list[float]]:
    gc.collect()
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        run(i)
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - started, latencies


def _floor(scheduler: Scheduler, pods: list[PodInfo]) -> list[float]:
    """Seconds per pod of a bare filter + score + argmax over the same snapshot arrays."""
    snapshot = scheduler.snapshot
    n = snapshot.size
    static = snapshot.valid[:n] & snapshot.ready[:n] & ~snapshot.unschedulable[:n]
    fixed = len(resources.FIXED)
    gpu = snapshot.resource_index[resources.GPU]
    needs = [np.array([p.requests[r] for r in resources.FIXED], dtype=np.int64)[:, None] for p in pods]
    sink = 0
    latencies = []
    for pod, need in zip(pods, needs, strict=True):
        t0 = time.perf_counter()
        mask = static & (snapshot.free[:fixed, :n] >= need).all(axis=0)
        mask &= snapshot.gpu_free_count[:n] >= pod.gpus
        score = snapshot.utilisation[gpu, :n] + pod.gpus * snapshot.inverse_allocatable[gpu, :n]
        sink += int(np.argmax(np.where(mask, score, -np.inf)))
        latencies.append(time.perf_counter() - t0)
    return latencies


def _gpu_checks(placements: Iterable[GangPlacement]) -> tuple[int, int]:
    """Over placements made on one cache (nothing removed in between): GPUs (node, index) handed
    to more than one pod, and pods given a GPU count other than their request."""
    seen: set[tuple[int, int]] = set()
    conflicts = mismatches = 0
    for placement in placements:
        for pod in placement.pods:
            indices = pod.gpu_indices
            mismatches += len(indices) != pod.pod.gpus
            for index in indices:
                conflicts += (pod.slot, index) in seen
                seen.add((pod.slot, index))
    return conflicts, mismatches


def run_core_benchmark(*, nodes: int = 5000, decisions: int = 4000, gangs: int = 250) -> CoreBenchmark:
    # Single pods.
    scheduler, build_s = _scheduler(nodes)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pods = [_pod(f"p{i}", GPU_SIZES[i % len(GPU_SIZES)]) for i in range(decisions)]
    for pod in pods[:50]:  # warm caches and tables, as a running scheduler has
        scheduler.schedule(Gang.of(pod))
    scheduler, _ = _scheduler(nodes)
    failures = 0
    placed: list[GangPlacement] = []
    latencies: list[float] = []
    floors: list[float] = []
    total = 0.0
    # Decisions and the floor alternate in batches over the same, filling snapshot, so both see
    # the same cluster state and the same machine noise.
    for start in range(0, decisions, _BATCH):
        batch = pods[start : start + _BATCH]

        def one(i: int, batch: list[PodInfo] = batch) -> None:
            nonlocal failures
            placement = scheduler.schedule(Gang.of(batch[i])).placement
            if placement is None:
                failures += 1
            else:
                placed.append(placement)

        spent, batch_latencies = _timed(one, len(batch))
        total += spent
        latencies += batch_latencies
        floors += _floor(scheduler, batch)
    if failures:
        raise RuntimeError(f"{failures} single-pod decisions failed; the benchmark cluster is too small")
    per_decision = total / decisions
    floor = statistics.median(floors)
    single_conflicts, single_mismatches = _gpu_checks(placed)

    # One bound pod arriving, then the snapshot refresh.
    cache = scheduler.cache
    node_names = list(scheduler.snapshot.slot_of)
    update_started = time.perf_counter()
    updates = 1000
    for i in range(updates):
        cache.set_pod(
            PodUsage(
                key=f"bound/p{i}",
                node=node_names[(i * 7919) % len(node_names)],
                requests={resources.CPU: 100, resources.PODS: 1},
            )
        )
        cache.update_snapshot(scheduler.snapshot)
    update_us = (time.perf_counter() - update_started) / updates * 1e6

    # Gangs.
    scheduler, _ = _scheduler(nodes)
    racks: list[int] = []
    gang_placements: list[GangPlacement] = []

    def gang(i: int) -> None:
        members = [_pod(f"g{i}-{k}", 8) for k in range(8)]
        result = scheduler.schedule(
            Gang(
                key=f"bench/g{i}",
                members=members,
                min_member=8,
                topology_policy="Preferred",
                topology_level="rack",
            )
        )
        if result.placement is None:
            raise RuntimeError(f"gang {i} failed: {result.message}")
        gang_placements.append(result.placement)
        racks.append(len({scheduler.snapshot.infos[p.slot].rack for p in result.placement.pods}))  # type: ignore[union-attr]

    gang_total, gang_latencies = _timed(gang, gangs)
    gang_conflicts, gang_mismatches = _gpu_checks(gang_placements)
    split = sum(
        len({p.pod.key for p in placement.pods}) != len(placement.gang.members)
        for placement in gang_placements
    )
    rss_mb = max(rss_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    cost = tracing_cost(nodes, pods, machines=MACHINES)
    return CoreBenchmark(
        nodes=nodes,
        single_pod_decisions=decisions,
        single_pod_decisions_per_s=1 / per_decision,
        single_pod_p50_us=statistics.median(latencies) * 1e6,
        single_pod_p99_us=float(np.percentile(latencies, 99)) * 1e6,
        floor_us=floor * 1e6,
        floor_ratio=statistics.median(latencies) / floor,
        floor_ratio_mean=per_decision / statistics.mean(floors),
        gangs=gangs,
        gang_decisions_per_s=gangs / gang_total,
        gang_p50_ms=statistics.median(gang_latencies) * 1e3,
        gang_p99_ms=float(np.percentile(gang_latencies, 99)) * 1e3,
        gang_racks_used_mean=statistics.mean(racks),
        rss_mb=rss_mb,
        snapshot_build_s=build_s,
        snapshot_update_us=update_us,
        tracing_off_per_s=cost.off_per_s,
        tracing_disabled_per_s=cost.disabled_per_s,
        tracing_disabled_overhead_pct=cost.disabled_overhead_pct,
        tracing_sampled_per_s=cost.sampled_per_s,
        tracing_sampled_overhead_pct=cost.sampled_overhead_pct,
        tracing_with_metrics_per_s=cost.with_metrics_per_s,
        tracing_with_metrics_overhead_pct=cost.with_metrics_overhead_pct,
        tracing_spans_exported=cost.spans_exported,
        gpu_conflicts=single_conflicts + gang_conflicts,
        gpu_count_mismatches=single_mismatches + gang_mismatches,
        gangs_split=split,
    )
