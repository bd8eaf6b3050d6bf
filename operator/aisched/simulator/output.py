"""What `aisched simulate` writes for one workload: the curves as CSV, a JSON summary, a table.

`curves.csv` has one row per (source, policy, seed, arrived %): source `ours` (each seed, and
`mean` over them) or `paper` (the authors' mean), with allocated, unallocated, fragmentation and
fragmentation ratio, all in %. `summary.json` has, per policy, the unallocated GPU % at arrived
100 and 130 beside the paper's, and the seconds one replay took.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aisched.simulator.metrics import ARRIVED, Curves, mean_curves
from aisched.simulator.replay import Replay

__all__ = ["summary", "table", "write_curves", "write_summary"]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _curve_rows(source: str, policy: str, seed: str, curves: Curves) -> list[list[object]]:
    return [
        [source, policy, seed, int(x), _number(a), _number(100.0 - a), _number(f), _number(r)]
        for x, a, f, r in zip(
            ARRIVED, curves.allocated, curves.fragmentation, curves.fragmentation_ratio, strict=True
        )
    ]


def write_curves(path: Path, runs: Mapping[str, Sequence[Replay]], paper: Mapping[str, Curves]) -> None:
    rows: list[list[object]] = []
    for policy, replays in runs.items():
        curves = [r.curves() for r in replays]
        for replay, own in zip(replays, curves, strict=True):
            rows += _curve_rows("ours", policy, str(replay.seed), own)
        rows += _curve_rows("ours", policy, "mean", mean_curves(curves))
        if policy in paper:
            rows += _curve_rows("paper", policy, "mean", paper[policy])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["source", "policy", "seed", "arrived_pct", "allocated_pct", "unallocated_pct",
             "fragmentation_pct", "fragmentation_ratio_pct"]
        )  # fmt: skip
        writer.writerows(rows)


def summary(
    *, workload: str, tune: float, runs: Mapping[str, Sequence[Replay]], paper: Mapping[str, Curves]
) -> dict[str, Any]:
    """Per policy: unallocated GPU % at arrived 100 and 130 (seed means), the paper's, seconds per replay."""
    policies: dict[str, Any] = {}
    for policy, replays in runs.items():
        mean = mean_curves([r.curves() for r in replays])
        entry: dict[str, Any] = {
            "unallocated_at_130": _number(mean.unallocated_at(130)),
            "unallocated_at_100": _number(mean.unallocated_at(100)),
            "fragmentation_at_100": _number(float(mean.fragmentation[100])),
            "seconds_per_replay": round(sum(r.seconds for r in replays) / len(replays), 3),
            "pods_per_replay": round(sum(r.arrived for r in replays) / len(replays), 1),
            "failed_per_replay": round(sum(r.failed for r in replays) / len(replays), 1),
            "seeds": [r.seed for r in replays],
        }
        if policy in paper:
            entry["paper_unallocated_at_130"] = _number(paper[policy].unallocated_at(130))
            entry["paper_unallocated_at_100"] = _number(paper[policy].unallocated_at(100))
        policies[policy] = entry
    return {"workload": workload, "tune": tune, "policies": policies}


def write_summary(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def table(data: Mapping[str, Any]) -> str:
    """The summary as aligned text: ours beside the paper's, per policy."""

    def cell(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else "-"

    head = f"{data['workload']} (tune {data['tune']})"
    lines = [
        head,
        f"{'policy':<11} {'unalloc@130':>11} {'paper':>7} {'unalloc@100':>11} {'paper':>7} {'s/replay':>9}",
    ]
    for policy, e in data["policies"].items():
        lines.append(
            f"{policy:<11} {cell(e['unallocated_at_130']):>11} {cell(e.get('paper_unallocated_at_130')):>7}"
            f" {cell(e['unallocated_at_100']):>11} {cell(e.get('paper_unallocated_at_100')):>7}"
            f" {e['seconds_per_replay']:>9.2f}"
        )
    return "\n".join(lines)
