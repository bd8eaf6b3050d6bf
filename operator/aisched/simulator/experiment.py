"""The FGD experiment for one workload: every policy × every seed, then the outputs.

Replays are independent, so `jobs` > 1 runs them in worker processes, each replay still on one
core (its `seconds` are its own). Results come back in (policy, seed) order whatever finished first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from aisched.simulator import output
from aisched.simulator.expected import paper_curves
from aisched.simulator.metrics import Curves, mean_curves
from aisched.simulator.plot import plot_comparison
from aisched.simulator.replay import Replay, replay
from aisched.simulator.trace import POD_PREFIX, Trace
from aisched.simulator.workload import typical_pods

__all__ = ["Experiment", "parse_seeds", "progress_to", "run_experiment", "write_outputs"]


def parse_seeds(text: str) -> list[int]:
    """`42..51`, `42,43,47` or `42`: the seeds named, in order."""
    seeds: list[int] = []
    for part in text.split(","):
        low, dots, high = part.strip().partition("..")
        try:
            seeds += list(range(int(low), int(high) + 1)) if dots else [int(low)]
        except ValueError:
            raise ValueError(f"seeds {text!r}: expected N, N..M or a comma-separated list") from None
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


@dataclass
class Experiment:
    workload: str
    tune: float
    runs: dict[str, list[Replay]] = field(default_factory=dict)

    def mean(self, policy: str) -> Curves:
        return mean_curves([r.curves() for r in self.runs[policy]])


def progress_to(stream: TextIO) -> Callable[[Replay], None]:
    """A progress callback: one line per finished replay on `stream`."""

    def progress(done: Replay) -> None:
        curves = done.curves()
        print(
            f"  {done.workload.removeprefix(POD_PREFIX)} {done.policy} seed {done.seed}: unallocated"
            f" {curves.unallocated_at(130):5.2f} % at 130, {curves.unallocated_at(100):5.2f} % at 100"
            f" ({done.seconds:.1f} s)",
            file=stream,
            flush=True,
        )

    return progress


def _replay(task: tuple[Trace, str, int, float]) -> Replay:
    trace, policy, seed, tune = task
    return replay(trace, policy=policy, seed=seed, tune=tune, typical=typical_pods(trace.pods))


def run_experiment(
    trace: Trace,
    *,
    policies: Sequence[str],
    seeds: Sequence[int],
    tune: float,
    jobs: int = 1,
    progress: Callable[[Replay], None] | None = None,
) -> Experiment:
    """Replay `trace` under every policy with every seed."""
    tasks = [(trace, policy, seed, tune) for policy in policies for seed in seeds]
    experiment = Experiment(workload=trace.workload, tune=tune, runs={p: [] for p in policies})
    if jobs <= 1:
        results = map(_replay, tasks)
        for done in results:
            experiment.runs[done.policy].append(done)
            if progress is not None:
                progress(done)
        return experiment
    with ProcessPoolExecutor(max_workers=min(jobs, os.cpu_count() or 1, len(tasks))) as pool:
        for done in pool.map(_replay, tasks):
            experiment.runs[done.policy].append(done)
            if progress is not None:
                progress(done)
    return experiment


def write_outputs(experiment: Experiment, directory: Path, *, expected: Path) -> dict[str, Any]:
    """Write `curves.csv`, `summary.json` and `curves.png` for the experiment in `directory`.

    Returns the summary.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paper = paper_curves(expected, experiment.workload)
    output.write_curves(directory / "curves.csv", experiment.runs, paper)
    data = output.summary(
        workload=experiment.workload, tune=experiment.tune, runs=experiment.runs, paper=paper
    )
    output.write_summary(directory / "summary.json", data)
    seeds = max((len(r) for r in experiment.runs.values()), default=0)
    plot_comparison(
        directory / "curves.png",
        title=experiment.workload,
        ours={p: experiment.mean(p) for p in experiment.runs},
        paper=paper,
        seeds=seeds,
    )
    return data
