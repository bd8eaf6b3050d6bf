"""The comparison as a picture: our curves (solid) beside the paper's (dashed), one colour per policy.

Four panels: unallocated GPU %, fragmentation % of capacity and fragmentation % of idle GPUs
against arrived workload %, and the unallocated GPU % at arrived 130 as bars, ours beside theirs.
Drawn with matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from aisched.simulator.metrics import ARRIVED, Curves

__all__ = ["plot_comparison"]

_COLOURS = {
    "random": "#7f7f7f",
    "dotprod": "#1f77b4",
    "clustering": "#2ca02c",
    "packing": "#9467bd",
    "bestfit": "#ff7f0e",
    "fgd": "#d62728",
}


def plot_comparison(
    path: Path, *, title: str, ours: Mapping[str, Curves], paper: Mapping[str, Curves], seeds: int
) -> None:
    """Write the PNG comparing each policy's mean curves over `seeds` runs with the paper's."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    panels = (
        (axes[0, 0], "unallocated GPU (%), arrived 80-130 %", "unallocated"),
        (axes[0, 1], "fragmented GPU (% of capacity)", "fragmentation"),
        (axes[1, 0], "fragmented GPU (% of idle GPUs)", "fragmentation_ratio"),
    )
    for axis, label, column in panels:

        def values(curves: Curves, column: str = column) -> object:
            return getattr(curves, column)

        for policy, curves in ours.items():
            colour = _COLOURS.get(policy)
            axis.plot(ARRIVED, values(curves), color=colour, lw=1.6, label=f"{policy} (ours)")
            if policy in paper:
                axis.plot(
                    ARRIVED, values(paper[policy]), color=colour, lw=1.2, ls="--", label=f"{policy} (paper)"
                )
        axis.set_xlabel("arrived workload (% of GPU capacity)")
        axis.set_ylabel(label)
        axis.set_xlim(0, 130)
        axis.grid(alpha=0.3)
    # Below ~90 % arrived every policy places everything: the policies differ only beyond.
    axes[0, 0].set_xlim(80, 130)
    axes[0, 0].set_ylim(0, 25)
    axes[0, 0].legend(fontsize=7, ncol=2)
    bars = axes[1, 1]
    names = list(ours)
    at = np.arange(len(names))
    ours_130 = [ours[p].unallocated_at(130) for p in names]
    paper_130 = [paper[p].unallocated_at(130) if p in paper else np.nan for p in names]
    bars.bar(at - 0.2, ours_130, width=0.4, color=[_COLOURS.get(p) for p in names], label="ours")
    bars.bar(at + 0.2, paper_130, width=0.4, color=[_COLOURS.get(p) for p in names], alpha=0.45, hatch="//",
             label="paper")  # fmt: skip
    for x, value in zip(at, ours_130, strict=True):
        bars.annotate(f"{value:.2f}", (x - 0.2, value), ha="center", va="bottom", fontsize=8)
    for x, value in zip(at, paper_130, strict=True):
        if not np.isnan(value):
            bars.annotate(f"{value:.2f}", (x + 0.2, value), ha="center", va="bottom", fontsize=8)
    bars.set_xticks(at, names)
    bars.set_ylabel("unallocated GPU (%) at arrived 130 %")
    bars.legend(fontsize=8)
    bars.grid(axis="y", alpha=0.3)
    fig.suptitle(
        f"{title}: ours (solid, mean of {seeds} seed(s)) vs the FGD paper (dashed, mean of 10 seeds)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
