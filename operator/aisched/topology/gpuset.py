"""Choosing which GPUs of a node a pod gets: the best-connected free set, by table look-up.

For a node of G ≤ 8 GPUs there are 2^G free-masks; for each mask and each size g the best subset
(least total pairwise cost under the cost model; then the one that leaves the remaining free GPUs
best connected; then the lowest mask) is computed once per wiring, so placement never enumerates
subsets at run time. Wider nodes fall back to a greedy choice computed on demand.

`GPUSetTables` flattens every wiring's table into one array so that a vectorised score over all
nodes is a single gather: `score[offset[node] + free_mask[node] * (width + 1) + g]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Final

import numpy as np
import numpy.typing as npt

from aisched.topology.gpu import GPUTopology

__all__ = ["TABLE_MAX_GPUS", "GPUSetTable", "GPUSetTables", "best_gpu_set", "set_cost"]

#: Nodes up to this width get a precomputed table (2^8 masks × 9 sizes per wiring).
TABLE_MAX_GPUS: Final = 8


def set_cost(cost: npt.NDArray[np.float64], mask: int) -> float:
    """The total pairwise cost (ms per MB exchanged by every pair) of the GPUs in `mask`."""
    members = [i for i in range(cost.shape[0]) if mask >> i & 1]
    return float(sum(cost[i, j] for i, j in combinations(members, 2)))


@dataclass(frozen=True)
class GPUSetTable:
    """Best subsets of one wiring: `best[mask, g]` and its cost `cost[mask, g]` (-1 / inf: none)."""

    width: int
    best: npt.NDArray[np.int64]
    cost: npt.NDArray[np.float64]
    #: 0..100 per (mask, g): how close the best set is to the best a fully free node offers.
    score: npt.NDArray[np.float64]

    @classmethod
    def build(cls, topology: GPUTopology) -> GPUSetTable:
        width = topology.count
        if width > TABLE_MAX_GPUS:
            raise ValueError(f"no table for {width} GPUs; use best_gpu_set()")
        matrix = topology.cost_matrix
        masks = 1 << width
        pair_cost = np.array([set_cost(matrix, m) for m in range(masks)])
        numa = [g.numa_node if g.numa_node is not None else 0 for g in topology.gpus]
        spread = [len({numa[i] for i in range(width) if m >> i & 1}) for m in range(masks)]
        best = np.full((masks, width + 1), -1, dtype=np.int64)
        cost = np.full((masks, width + 1), np.inf)
        tiebreak: dict[tuple[int, int], tuple[int, float]] = {}
        for mask in range(masks):
            best[mask, 0], cost[mask, 0] = 0, 0.0
            sub = mask
            while sub:
                g = sub.bit_count()
                # Least cost; then fewest NUMA nodes (CPU affinity); then the best-connected remainder.
                # Submasks are visited from high to low, so `<=` keeps the lowest mask on ties.
                rank = (spread[sub], pair_cost[mask ^ sub])
                if (pair_cost[sub], *rank) <= (cost[mask, g], *tiebreak.get((mask, g), (99, np.inf))):
                    best[mask, g], cost[mask, g] = sub, pair_cost[sub]
                    tiebreak[(mask, g)] = rank
                sub = (sub - 1) & mask
        ideal = cost[masks - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(np.isfinite(cost), np.where(cost > 0, 100.0 * ideal / cost, 100.0), 0.0)
        return cls(width=width, best=best, cost=cost, score=np.nan_to_num(score))


def best_gpu_set(topology: GPUTopology, free_mask: int, g: int) -> int:
    """The best `g` GPUs among `free_mask` for a node of any width; 0 if there are not enough.

    With up to 8 free GPUs the choice is exact and ranked as the tables rank it (least cost, then
    fewest NUMA nodes, then the best-connected remainder, then the lowest mask); beyond that it
    is greedy.
    """
    if g == 0 or free_mask.bit_count() < g:
        return 0
    matrix = topology.cost_matrix
    free: list[int] = [i for i in range(topology.count) if free_mask >> i & 1]
    if len(free) <= TABLE_MAX_GPUS:
        numa = [gpu.numa_node if gpu.numa_node is not None else 0 for gpu in topology.gpus]

        def rank(subset: tuple[int, ...]) -> tuple[float, int, float, int]:
            mask = _mask(subset)
            return (
                set_cost(matrix, mask),
                len({numa[i] for i in subset}),
                set_cost(matrix, free_mask & ~mask),
                mask,
            )

        return _mask(min(combinations(free, g), key=rank))
    if g == 1:
        chosen = [free[0]]
    else:
        first, second = min(combinations(free, 2), key=lambda pair: (float(matrix[pair[0], pair[1]]), pair))
        chosen = [first, second]
    while len(chosen) < g:
        rest = [i for i in free if i not in chosen]
        chosen.append(min(rest, key=lambda i: (sum(matrix[i, j] for j in chosen), i)))
    return _mask(chosen)


def _mask(indices: tuple[int, ...] | list[int]) -> int:
    return sum(1 << i for i in indices)


#: Score of a node too wide for a table (its set is chosen greedily at placement).
UNTABLED_SCORE: Final = 50.0


class GPUSetTables:
    """Every wiring's table in one flat array, keyed by topology signature.

    The array opens with one constant block (score `UNTABLED_SCORE`, no best set) that nodes too
    wide for a table point at, so a vectorised look-up needs no branch.
    """

    def __init__(self, width: int = TABLE_MAX_GPUS) -> None:
        self.width = width
        self._ids: dict[tuple[object, ...], int] = {}
        self._tables: list[GPUSetTable] = []
        self.best = np.full(self.stride, -1, dtype=np.int64)
        self.score = np.full(self.stride, UNTABLED_SCORE, dtype=np.float64)
        self.cost = np.full(self.stride, np.inf, dtype=np.float64)

    @property
    def stride(self) -> int:
        """Entries per wiring: 2^width masks × (width + 1) sizes."""
        return (1 << self.width) * (self.width + 1)

    def table_id(self, topology: GPUTopology) -> int:
        """The id of `topology`'s wiring, building its table the first time (-1: too wide for a table)."""
        if topology.count > self.width:
            return -1
        key = topology.signature
        found = self._ids.get(key)
        if found is not None:
            return found
        table = GPUSetTable.build(topology)
        padded = [np.full(((1 << self.width), self.width + 1), fill) for fill in (-1, 0.0, np.inf)]
        # A narrower node's table fills the top-left corner; masks beyond its GPUs never occur.
        rows, cols = table.best.shape
        padded[0][:rows, :cols] = table.best
        padded[1][:rows, :cols] = table.score
        padded[2][:rows, :cols] = table.cost
        self.best = np.concatenate([self.best, padded[0].ravel()])
        self.score = np.concatenate([self.score, padded[1].ravel()])
        self.cost = np.concatenate([self.cost, padded[2].ravel()])
        self._tables.append(table)
        self._ids[key] = len(self._tables) - 1
        return self._ids[key]

    def base(self, table_id: int) -> int:
        """Offset of a wiring's block in the flat arrays (the constant block for -1)."""
        return (table_id + 1) * self.stride if table_id >= 0 else 0

    def index(self, table_id: int, mask: int, g: int) -> int:
        return self.base(table_id) + mask * (self.width + 1) + g
