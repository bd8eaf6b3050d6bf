"""`aisched simulate`: the FGD experiment (or a replay of the trace's own times) for one or more workloads.

For each workload it writes `<output-dir>/<workload>/`: `curves.csv`, `summary.json` and
`curves.png` (the experiment), or `pods.csv`, `timeline.csv` and `summary.json` (with
`--trace-events`), and prints a table.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from aisched.queue.policy import QueueingPolicy
from aisched.simulator.events import TODAY, replay_events, write_events
from aisched.simulator.experiment import parse_seeds, progress_to, run_experiment, write_outputs
from aisched.simulator.output import table
from aisched.simulator.trace import load_trace, resolve, workloads

__all__ = ["simulate"]

ALL_POLICIES = ("random", "dotprod", "clustering", "packing", "bestfit", "fgd")


def simulate(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    try:
        seeds = parse_seeds(args.seeds)
        names = (
            workloads(resolve(args.traces))
            if args.workload == "all"
            else [w.strip() for w in args.workload.split(",") if w.strip()]
        )
        traces = [load_trace(args.traces, name) for name in names]
    except (OSError, ValueError) as exc:
        print(f"aisched simulate: {exc}", file=err)
        return 1
    policies = args.policies or list(ALL_POLICIES)

    for trace in traces:
        directory = args.output_dir / trace.workload
        if args.trace_events:
            try:
                queueing = TODAY if args.queueing == "today" else QueueingPolicy(strategy=args.queueing)
                replayed = trace.on_fraction(args.node_fraction)
                runs = [
                    replay_events(replayed, policy=p, seed=s, queueing=queueing, compress=args.compress)
                    for p in policies
                    for s in seeds
                ]
            except ValueError as exc:
                print(f"aisched simulate: {trace.workload}: {exc}", file=err)
                return 1
            print(write_events(runs, directory), file=out)
            continue
        experiment = run_experiment(
            trace, policies=policies, seeds=seeds, tune=args.tune, jobs=args.jobs, progress=progress_to(err)
        )
        data = write_outputs(experiment, directory, expected=args.expected)
        print(table(data), file=out)
        print(f"wrote {directory}/curves.csv, summary.json, curves.png", file=out)
    return 0
