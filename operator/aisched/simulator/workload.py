"""What arrives, and in which order: the FGD experiment's shuffle and inflation, and its typical pods.

Arrivals (REPRODUCE-FGD "Arrival order and inflation"): the trace's pods sorted by name and
shuffled with the seed; then pods drawn uniformly, with replacement, from the name-sorted list
are appended while the cumulative GPU request stays within `tune` × the cluster's capacity. Like
the authors' code, the check adds the drawn pod's milli *per GPU* (not its total) to the running
total, and stops at the first pod that would cross the line. A trace asking for more than the
target is cut down instead, by removing pods at random.

Typical pods: the original (not inflated) pods grouped by (CPU, milli per GPU, GPU count, allowed
models), the most common groups taken until they cover 95 % of the pods, their shares
renormalised to sum to one.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Final

import numpy as np

from aisched.plugins.policies import TypicalPod
from aisched.simulator.trace import TracePod

__all__ = ["TYPICAL_COVERAGE", "arrival_order", "typical_pods"]

TYPICAL_COVERAGE: Final = 0.95


def arrival_order(pods: Sequence[TracePod], *, seed: int, tune: float, capacity_milli: int) -> list[TracePod]:
    """The pods in arrival order, inflated (or cut) to `tune` × `capacity_milli` of GPU requests."""
    rng = np.random.default_rng([seed, 0xA771])
    by_name = sorted(pods, key=lambda p: p.name)
    order = [by_name[i] for i in rng.permutation(len(by_name))]
    target = tune * capacity_milli
    total = sum(p.total_gpu_milli for p in order)
    if tune <= 0 or not by_name:
        return order
    while total > target and order:
        total -= order.pop(int(rng.integers(len(order)))).total_gpu_milli
    copies = 0
    while True:
        drawn = by_name[int(rng.integers(len(by_name)))]
        if total + drawn.gpu_milli > target:
            return order
        total += drawn.total_gpu_milli
        order.append(dataclasses.replace(drawn, name=f"{drawn.name}-tuned-{copies}"))
        copies += 1


def typical_pods(pods: Sequence[TracePod], *, coverage: float = TYPICAL_COVERAGE) -> list[TypicalPod]:
    """The most common pod shapes covering `coverage` of `pods`, with renormalised weights.

    Groups are taken most common first; equally common ones by CPU, then milli, GPU count and
    models, largest first (the authors' order, so the cut-off falls the same way).
    """
    counts = Counter(
        (p.cpu_milli, p.gpu_milli if p.num_gpu else 0, p.num_gpu, "|".join(p.gpu_spec)) for p in pods
    )
    ranked = sorted(counts.items(), key=lambda item: (item[1], *item[0]), reverse=True)
    needed = coverage * len(pods)
    taken: list[tuple[tuple[int, int, int, str], int]] = []
    covered = 0
    for shape, count in ranked:
        if covered >= needed:
            break
        taken.append((shape, count))
        covered += count
    return [
        TypicalPod(
            cpu=cpu,
            gpu_milli=milli,
            gpus=gpus,
            models=tuple(m for m in spec.split("|") if m),
            weight=count / covered,
        )
        for (cpu, milli, gpus, spec), count in taken
    ]
