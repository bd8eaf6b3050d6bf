"""Explanations of failed cycles, worded like kube-scheduler's.

"0/40 nodes are available: 31 Insufficient nvidia.com/gpu, 9 GPU model not allowed." names, for
every node, the first filter that turned the pod away; gang-level reasons follow
("needs 64 GPUs in one rack; largest rack has 40 free").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

__all__ = ["summary"]


def summary(*, nodes: int, feasible: int, reasons: Counter[str], gang_reasons: Sequence[str] = ()) -> str:
    """One line: how many nodes are available, why the others are not, why the gang still did not fit."""
    parts = [f"{feasible}/{nodes} nodes are available"]
    if reasons:
        ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        parts[0] += ": " + ", ".join(f"{count} {reason}" for reason, count in ordered)
    text = parts[0] + "."
    if gang_reasons:
        text += " " + "; ".join(gang_reasons) + "."
    return text
