"""The FGD authors' own results (`fgd-expected-results/`), as curves to set beside ours.

Each of their files has a row per (workload, policy, tune, seed) and one column per arrived %
0..130: allocation % (`analysis_allo_discrete.csv`), fragmentation % of capacity
(`analysis_frag_discrete.csv`) and fragmentation % of the idle GPUs
(`analysis_frag_ratio_discrete.csv`). Their policy names map onto ours.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import numpy as np

from aisched.simulator.metrics import ARRIVED, Curves, mean_curves
from aisched.simulator.trace import resolve

__all__ = ["PAPER_POLICIES", "paper_curves"]

PAPER_POLICIES: Final = {
    "01-Random": "random",
    "02-DotProd": "dotprod",
    "03-GpuClustering": "clustering",
    "04-GpuPacking": "packing",
    "05-BestFit": "bestfit",
    "06-FGD": "fgd",
}
_FILES: Final = (
    "analysis_allo_discrete.csv",
    "analysis_frag_discrete.csv",
    "analysis_frag_ratio_discrete.csv",
)


def _rows(path: Path, workload: str, seeds: set[int] | None) -> dict[str, dict[int, np.ndarray]]:
    """Policy → seed → the 131 values of `workload`'s rows."""
    out: dict[str, dict[int, np.ndarray]] = {}
    columns = [str(x) for x in ARRIVED]
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            policy = PAPER_POLICIES.get(row["sc_policy"])
            seed = int(row["seed"])
            if row["workload"] != workload or policy is None or (seeds is not None and seed not in seeds):
                continue
            values = [float(row[c]) if row.get(c) not in (None, "") else np.nan for c in columns]
            out.setdefault(policy, {})[seed] = np.array(values)
    return out


def paper_curves(directory: Path, workload: str, *, seeds: Iterable[int] | None = None) -> dict[str, Curves]:
    """Policy → the authors' curves for `workload`, the mean over their seeds (only `seeds` if given).

    Empty when the folder or the workload is not there: the comparison is then left out.
    """
    directory = resolve(directory)
    if not all((directory / name).exists() for name in _FILES):
        return {}
    wanted = set(seeds) if seeds is not None else None
    allocated, fragmentation, ratio = (_rows(directory / name, workload, wanted) for name in _FILES)
    curves = {}
    for policy, by_seed in allocated.items():
        runs = [
            Curves(
                allocated=values,
                fragmentation=fragmentation.get(policy, {}).get(seed, np.full(len(ARRIVED), np.nan)),
                fragmentation_ratio=ratio.get(policy, {}).get(seed, np.full(len(ARRIVED), np.nan)),
            )
            for seed, values in sorted(by_seed.items())
        ]
        curves[policy] = mean_curves(runs)
    return curves
