"""The trace half of `aisched bench queue`: the Alibaba trace's own arrivals and run times through
the scheduling core and its gang queue (`simulator.events`), under three queueings:

- (a) `today`: BestEffortFIFO without reservations, what aisched did before queue discipline;
- (b) `StrictFIFO` (with reservation);
- (c) `BestEffortFIFO+reservation` (the default).

The trace's pods ask for 98 % of its GPUs in all, so compressing arrivals alone never
oversubscribes its cluster: each scenario replays them on a fraction of the nodes (taken evenly
from every GPU model) with arrivals compressed, and states both. The trace's pods declare no run
time; one scenario gives each a runtime limit of 1.5 times its traced run time (as users give
limits), the others leave the scheduler to learn estimates from finished pods. Reported per run: mean and p99
wait of all pods and of the multi-GPU pods (4 GPUs or more, the ones a stream of small pods
starves), GPU utilisation over the arrivals, pods never started. Targets, for (c) against (a):
utilisation within 1 point, and at most half the p99 wait of the multi-GPU pods.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from aisched.queue.policy import QueueingPolicy
from aisched.simulator.events import TODAY, EventsReplay, replay_events
from aisched.simulator.trace import load_trace

__all__ = ["MULTI_GPU", "SCENARIOS", "TraceRow", "TraceScenario", "trace_rows"]

#: Pods asking for at least this many GPUs are the multi-GPU pods.
MULTI_GPU: Final = 4
UTILISATION_POINTS: Final = 1.0
P99_FACTOR: Final = 0.5


@dataclass(frozen=True)
class TraceScenario:
    node_fraction: float
    compress: float
    #: Each pod declares a runtime limit of its traced run time times this; None: no limits.
    limits: float | None = None

    @property
    def label(self) -> str:
        limits = f", limits {self.limits:g}x run time" if self.limits else ""
        return f"{self.node_fraction:.0%} of nodes, arrivals {self.compress:g}x{limits}"


SCENARIOS: Final = (
    TraceScenario(0.66, 10000.0),
    TraceScenario(0.5, 3000.0),
    TraceScenario(0.66, 10000.0, limits=1.5),
)
_QUEUEINGS: Final = (
    ("today", TODAY),
    ("StrictFIFO", QueueingPolicy(strategy="StrictFIFO", aging_interval=0)),
    ("BestEffortFIFO+reservation", QueueingPolicy(strategy="BestEffortFIFO", aging_interval=0)),
)


@dataclass(frozen=True)
class _Waits:
    count: int
    mean_s: float
    p99_s: float

    @classmethod
    def of(cls, waits: Sequence[float]) -> _Waits:
        if not waits:
            return cls(0, math.nan, math.nan)
        return cls(len(waits), float(np.mean(waits)), float(np.percentile(waits, 99)))


@dataclass(frozen=True)
class TraceRow:
    workload: str
    scenario: TraceScenario
    queueing: str
    nodes: int
    demand_over_capacity: float
    all_pods: _Waits
    multi_gpu: _Waits
    utilisation: float
    never_started: int
    cycles: int
    seconds: float
    #: The `today` run of the same scenario, to judge the targets against (None for itself).
    baseline: TraceRow | None = None

    @property
    def label(self) -> str:
        limits = f", limits {self.scenario.limits:g}x" if self.scenario.limits else ""
        return (
            f"{self.queueing} [{self.scenario.node_fraction:.0%} nodes, {self.scenario.compress:g}x{limits}]"
        )

    @classmethod
    def of(
        cls, replay: EventsReplay, *, scenario: TraceScenario, queueing: str, nodes: int, demand: float
    ) -> TraceRow:
        waits = [r.wait for r in replay.records if r.wait is not None]
        multi = [r.wait for r in replay.records if r.wait is not None and r.gpus >= MULTI_GPU]
        return cls(
            workload=replay.workload,
            scenario=scenario,
            queueing=queueing,
            nodes=nodes,
            demand_over_capacity=demand,
            all_pods=_Waits.of(waits),
            multi_gpu=_Waits.of(multi),
            utilisation=replay.utilisation(),
            never_started=sum(1 for r in replay.records if r.start is None),
            cycles=replay.cycles,
            seconds=replay.seconds,
        )

    def targets_missed(self) -> list[str]:
        base = self.baseline
        if base is None or self.queueing != "BestEffortFIFO+reservation":
            return []
        missed = []
        if 100 * (base.utilisation - self.utilisation) > UTILISATION_POINTS:
            missed.append(f"utilisation within {UTILISATION_POINTS:g} point of today's")
        if not self.multi_gpu.p99_s <= P99_FACTOR * base.multi_gpu.p99_s:
            missed.append(f"multi-GPU p99 wait <= {P99_FACTOR:g} x today's")
        return missed

    def to_json(self) -> dict[str, Any]:
        missed = self.targets_missed()
        return {
            "workload": self.workload,
            "strategy": self.queueing,
            "node_fraction": self.scenario.node_fraction,
            "nodes": self.nodes,
            "demand_over_capacity": round(self.demand_over_capacity, 3),
            "arrivals_compressed": self.scenario.compress,
            "runtime_limits": self.scenario.limits,
            "pods": self.all_pods.count + self.never_started,
            "mean_wait_s": _round(self.all_pods.mean_s),
            "p99_wait_s": _round(self.all_pods.p99_s),
            "multi_gpu_pods": self.multi_gpu.count,
            "multi_gpu_mean_wait_s": _round(self.multi_gpu.mean_s),
            "multi_gpu_p99_wait_s": _round(self.multi_gpu.p99_s),
            "gpu_utilisation": round(self.utilisation, 4),
            "never_started": self.never_started,
            "cycles": self.cycles,
            "seconds": round(self.seconds, 1),
            "meets_target": not missed if self.queueing == "BestEffortFIFO+reservation" else None,
            "targets_missed": missed,
        }

    def cells(self) -> list[tuple[str, str]]:
        missed = self.targets_missed()
        verdict = (
            "-" if self.queueing != "BestEffortFIFO+reservation" else ("met" if not missed else "missed")
        )
        return [
            ("scenario", self.scenario.label),
            ("nodes (pods ask / capacity)", f"{self.nodes} ({self.demand_over_capacity:.2f}x)"),
            ("wait, all pods: mean / p99", f"{self.all_pods.mean_s:.0f} / {self.all_pods.p99_s:.0f} s"),
            (
                f"wait, >= {MULTI_GPU} GPUs ({self.multi_gpu.count}): mean / p99",
                f"{self.multi_gpu.mean_s:.0f} / {self.multi_gpu.p99_s:.0f} s",
            ),
            ("GPU utilisation", f"{100 * self.utilisation:.2f} %"),
            ("never started (must be 0)", f"{self.never_started}"),
            ("targets (c vs a)", verdict),
        ]

    def failures(self) -> list[str]:
        return [f"{self.never_started} pod(s) never started"] if self.never_started else []


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)


def trace_rows(
    traces: Path, *, workload: str = "default", scenarios: Sequence[TraceScenario] = SCENARIOS, seed: int = 42
) -> tuple[TraceRow, ...]:
    """Every scenario under the three queueings (BestFit placement, as the trace's FGD paper
    compares against)."""
    full = load_trace(traces, workload)
    demand = sum(p.total_gpu_milli for p in full.pods)
    rows: list[TraceRow] = []
    for scenario in scenarios:
        trace = full.on_fraction(scenario.node_fraction)
        baseline: TraceRow | None = None
        for name, queueing in _QUEUEINGS:
            replay = replay_events(
                trace,
                policy="bestfit",
                seed=seed,
                queueing=queueing,
                compress=scenario.compress,
                limits=scenario.limits,
            )
            row = TraceRow.of(
                replay,
                scenario=scenario,
                queueing=name,
                nodes=len(trace.nodes),
                demand=demand / trace.capacity_milli,
            )
            if baseline is None:
                baseline = row
            else:
                row = dataclasses.replace(row, baseline=baseline)
            rows.append(row)
    return tuple(rows)
