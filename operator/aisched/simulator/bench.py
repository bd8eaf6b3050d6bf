"""`aisched bench sim`: every policy over the seeds on one workload, against the paper's numbers.

The JSON names each policy by its command-line name with the unallocated GPU % at arrived 130
and 100 (means over the seeds), the paper's means beside them, and the seconds one replay took
on one core. The one correctness row: after every pod of every replay, the GPU milli placed plus
the GPU milli the snapshot has idle equal the cluster's capacity (a GPU handed out twice, or
a share beyond a whole GPU, leaves the snapshot's free count clamped at 0 and breaks the sum).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from aisched.simulator.expected import paper_curves
from aisched.simulator.experiment import progress_to, run_experiment
from aisched.simulator.output import summary, table
from aisched.simulator.replay import Replay
from aisched.simulator.trace import load_trace

__all__ = ["SimBenchmark", "accounting_errors", "run_sim_benchmark"]


@dataclass(frozen=True)
class SimBenchmark:
    """The benchmark's JSON document and table, and the replays whose GPU accounting broke."""

    document: dict[str, Any]
    text: str
    #: "policy seed N" → the events after which placed + idle GPU milli != capacity.
    accounting_errors: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return self.document

    def table(self) -> str:
        return self.text

    def failures(self) -> list[str]:
        return [
            f"{run}: GPU milli placed + idle != capacity after {count} pod(s) (GPUs over-committed or lost)"
            for run, count in self.accounting_errors.items()
        ]


def accounting_errors(runs: Mapping[str, Sequence[Replay]]) -> dict[str, int]:
    """Per replay with any: the events after which the placed and idle GPU milli do not add up to
    the capacity."""
    errors: dict[str, int] = {}
    for policy, replays in runs.items():
        for run in replays:
            total = np.asarray(run.log.allocated, dtype=np.int64) + np.asarray(run.log.idle, dtype=np.int64)
            wrong = int(np.count_nonzero(total != run.capacity_milli))
            if wrong:
                errors[f"{policy} seed {run.seed}"] = wrong
    return errors


def run_sim_benchmark(
    *,
    traces: Path,
    expected: Path,
    workload: str,
    policies: Sequence[str],
    seeds: Sequence[int],
    tune: float,
    jobs: int = 1,
    log: TextIO = sys.stderr,
) -> SimBenchmark:
    """Replay the workload under every policy with every seed; the figures and the checks."""
    trace = load_trace(traces, workload)

    experiment = run_experiment(
        trace, policies=policies, seeds=seeds, tune=tune, jobs=jobs, progress=progress_to(log)
    )
    data = summary(
        workload=trace.workload, tune=tune, runs=experiment.runs, paper=paper_curves(expected, trace.workload)
    )
    keep = ("unallocated_at_130", "unallocated_at_100", "seconds_per_replay",
            "paper_unallocated_at_130", "paper_unallocated_at_100")  # fmt: skip
    document = {
        "workload": trace.workload,
        "tune": tune,
        "seeds": list(seeds),
        "policies": {p: {k: v for k, v in e.items() if k in keep} for p, e in data["policies"].items()},
    }
    return SimBenchmark(document, table(data), accounting_errors(experiment.runs))
