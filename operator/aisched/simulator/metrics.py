"""What a replay measures after every arriving pod, and the curves it is summarised into.

Per event (REPRODUCE-FGD "Metrics"): the GPU milli requested so far by every pod that arrived
(failed ones included), the milli allocated, the cluster's fragmentation (Σ over nodes of FGD's
F, with the trace's typical pods) and the idle milli. Curves bucket the events by arrived % of
capacity rounded to an integer and average inside each bucket; an empty bucket takes the events
of its neighbours x±1, as the authors' analysis does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from aisched.plugins.policies import FragmentationTable, fragmentation
from aisched.topology import resources
from aisched.topology.snapshot import Snapshot

__all__ = ["ARRIVED", "Curves", "EventLog", "FragmentationMeter", "bucket", "mean_curves"]

Floats = npt.NDArray[np.float64]
#: The x axis of every curve: arrived GPU request as % of capacity, 0..130.
ARRIVED: Final = np.arange(131)


class FragmentationMeter:
    """The cluster's fragmented and idle GPU milli, kept current one changed node at a time."""

    def __init__(self, table: FragmentationTable, snapshot: Snapshot) -> None:
        self.table = table
        self.snapshot = snapshot
        n = snapshot.size
        self._per_node = np.zeros(n)
        self._idle = np.zeros(n, dtype=np.int64)
        self.update(np.arange(n))

    def update(self, slots: npt.NDArray[np.intp] | Sequence[int]) -> None:
        """Re-measure the nodes in `slots` (those a placement or departure changed)."""
        rows = np.asarray(slots, dtype=np.intp)
        snapshot = self.snapshot
        cpu = snapshot.free[snapshot.resource_index[resources.CPU], rows]
        gpu = snapshot.gpu_milli_free[rows].astype(np.int64)
        amounts = fragmentation(cpu, gpu, self.table.access(snapshot)[rows], self.table)
        self._per_node[rows] = (amounts * self.table.weight).sum(axis=1)
        self._idle[rows] = gpu.sum(axis=1)

    @property
    def fragmented(self) -> float:
        return float(self._per_node.sum())

    @property
    def idle(self) -> int:
        return int(self._idle.sum())


@dataclass
class EventLog:
    """One row per arriving pod (or, on a virtual clock, per event), in milli."""

    arrived: list[int] = field(default_factory=list)
    allocated: list[int] = field(default_factory=list)
    fragmented: list[float] = field(default_factory=list)
    idle: list[int] = field(default_factory=list)

    def record(self, *, arrived: int, allocated: int, fragmented: float, idle: int) -> None:
        self.arrived.append(arrived)
        self.allocated.append(allocated)
        self.fragmented.append(fragmented)
        self.idle.append(idle)

    def curves(self, capacity_milli: int) -> Curves:
        arrived = 100.0 * np.asarray(self.arrived, dtype=np.float64) / capacity_milli
        idle = np.asarray(self.idle, dtype=np.float64)
        fragmented = np.asarray(self.fragmented, dtype=np.float64)
        ratio = np.divide(100.0 * fragmented, idle, out=np.zeros_like(idle), where=idle > 0)
        return Curves(
            allocated=bucket(arrived, 100.0 * np.asarray(self.allocated, dtype=np.float64) / capacity_milli),
            fragmentation=bucket(arrived, 100.0 * fragmented / capacity_milli),
            fragmentation_ratio=bucket(arrived, ratio),
        )


def bucket(arrived_pct: Floats, values: Floats) -> Floats:
    """`values` averaged per arrived % rounded half up, over 0..130; an empty bucket x uses x-1 and x+1."""
    top = int(ARRIVED[-1])
    keys = np.floor(arrived_pct + 0.5).astype(np.int64)
    keep = (keys >= 0) & (keys <= top + 1)
    sums = np.bincount(keys[keep], weights=values[keep], minlength=top + 3)
    counts = np.bincount(keys[keep], minlength=top + 3).astype(np.float64)
    beside_sums = np.concatenate(([0.0], sums[:-2])) + sums[1:]
    beside_counts = np.concatenate(([0.0], counts[:-2])) + counts[1:]
    own = sums[: top + 1] / np.where(counts[: top + 1] > 0, counts[: top + 1], np.nan)
    near = beside_sums[: top + 1] / np.where(beside_counts[: top + 1] > 0, beside_counts[: top + 1], np.nan)
    return np.where(counts[: top + 1] > 0, own, near)


@dataclass(frozen=True)
class Curves:
    """Allocated %, fragmentation % (of capacity), fragmentation ratio % (of idle), per arrived % 0..130."""

    allocated: Floats
    fragmentation: Floats
    fragmentation_ratio: Floats

    @property
    def unallocated(self) -> Floats:
        return 100.0 - self.allocated

    def unallocated_at(self, arrived: int) -> float:
        return float(self.unallocated[arrived])


def mean_curves(runs: Sequence[Curves]) -> Curves:
    """The mean of several runs' curves (over the runs that reach each point)."""

    def mean(values: list[Floats]) -> Floats:
        stacked = np.vstack(values)
        reached = ~np.isnan(stacked)
        total = np.where(reached, stacked, 0.0).sum(axis=0)
        count = reached.sum(axis=0)
        averaged: Floats = total / np.where(count > 0, count, np.nan)
        return averaged

    return Curves(
        allocated=mean([c.allocated for c in runs]),
        fragmentation=mean([c.fragmentation for c in runs]),
        fragmentation_ratio=mean([c.fragmentation_ratio for c in runs]),
    )
