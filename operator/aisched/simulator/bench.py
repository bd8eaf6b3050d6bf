"""`aisched bench sim`: every policy over the seeds on one workload, against the paper's numbers.

The JSON names each policy by its command-line name with the unallocated GPU % at arrived 130
and 100 (means over the seeds), the paper's means beside them, and the seconds one replay took
on one core.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from aisched.simulator.expected import paper_curves
from aisched.simulator.experiment import progress_to, run_experiment
from aisched.simulator.output import summary, table
from aisched.simulator.trace import load_trace

__all__ = ["run_sim_benchmark"]


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
) -> tuple[dict[str, Any], str]:
    """The benchmark's JSON document and its readable table."""
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
    return document, table(data)
