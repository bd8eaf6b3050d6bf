"""MIG placement by table look-up: for a GPU model, a profile and a GPU's free memory-slot mask,
where the next instance goes and how many fit.

A MIG-enabled GPU has 8 memory slots; a profile takes a run of them starting at one of a few
allowed positions (`aisched.api.mig`). Of the feasible starts, the one chosen leaves the
remaining free slots best able to take large profiles: the remainder is ranked by how many
placements it still offers of each profile, largest profile first (then the lowest start). So a
1g instance on an empty A100 goes to slot 6, keeping 0-3 and 4-5 whole, and the GPU still takes
a 4g, a 3g and a 2g afterwards.

With 256 masks per model, every answer is precomputed once per (profile, model) and looked up
vectorised over all nodes and GPUs: `table.start[model_id, free_mask]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from aisched.api.mig import MIG_MEMORY_SLOTS, MigProfile, mig_profiles_for

__all__ = ["ALL_SLOTS", "MigTable", "MigTables", "remainder_rank"]

#: Every memory slot of a MIG GPU free.
ALL_SLOTS: Final = (1 << MIG_MEMORY_SLOTS) - 1
_MASKS: Final = 1 << MIG_MEMORY_SLOTS


@dataclass(frozen=True)
class MigTable:
    """One profile name's look-ups, one row per GPU model id (models lacking the profile: none),
    plus a last, empty row that model id -1 (a node of no known model) indexes."""

    profile: str
    #: First memory slot of the next instance (-1: it does not fit), per (model, free mask).
    start: npt.NDArray[np.int8]
    #: How many instances fit one after another, each placed by the rule, per (model, free mask).
    count: npt.NDArray[np.int8]
    #: The memory slots one instance takes, per model (0: the model has no such profile).
    size: npt.NDArray[np.int8]
    #: Rank of what the chosen placement leaves free (higher: larger profiles still placeable).
    rank: npt.NDArray[np.int64]


def _starts(profile: MigProfile, mask: int) -> list[int]:
    return [s for s in profile.starts if mask & profile.slots_at(s) == profile.slots_at(s)]


def _distinct(model: str) -> list[MigProfile]:
    """The model's profiles with distinct slot layouts, largest first (`+me` twins dropped)."""
    seen: dict[tuple[int, tuple[int, ...]], MigProfile] = {}
    for p in mig_profiles_for(model).values():
        seen.setdefault((p.memory_slots, p.starts), p)
    return sorted(seen.values(), key=lambda p: (-p.memory_slots, len(p.starts), p.starts))


def remainder_rank(model: str, mask: int) -> int:
    """How well a free-slot mask keeps large profiles placeable: placements per profile, largest
    profile in the most significant digit (so any placement of a larger profile outweighs all
    of smaller ones)."""
    rank = 0
    for p in _distinct(model):
        rank = rank * 16 + len(_starts(p, mask))
    return rank


def _build(model: str, name: str) -> tuple[list[int], list[int], int, list[int]]:
    profile = mig_profiles_for(model).get(name)
    starts = [-1] * _MASKS
    counts = [0] * _MASKS
    ranks = [remainder_rank(model, m) for m in range(_MASKS)] if profile is not None else [0] * _MASKS
    if profile is None:
        return starts, counts, 0, ranks
    chosen_rank = [0] * _MASKS
    for mask in sorted(range(_MASKS), key=int.bit_count):  # a remainder has fewer bits: done first
        feasible = _starts(profile, mask)
        if not feasible:
            continue
        best = max(feasible, key=lambda s: (ranks[mask & ~profile.slots_at(s)], -s))
        starts[mask] = best
        rest = mask & ~profile.slots_at(best)
        counts[mask] = 1 + counts[rest]
        chosen_rank[mask] = ranks[rest]
    return starts, counts, profile.memory_slots, chosen_rank


class MigTables:
    """Every profile's table, built on first use and rebuilt when new GPU models appear.

    `models` lists GPU model names by id (the snapshot's vocabulary, grown in place), so a table
    row is a model id.
    """

    def __init__(self, models: list[object]) -> None:
        self._models = models
        self._tables: dict[str, MigTable] = {}

    def table(self, profile: str) -> MigTable:
        found = self._tables.get(profile)
        if found is not None and found.start.shape[0] == len(self._models) + 1:
            return found
        n = len(self._models) + 1
        start = np.full((n, _MASKS), -1, dtype=np.int8)
        count = np.zeros((n, _MASKS), dtype=np.int8)
        size = np.zeros(n, dtype=np.int8)
        rank = np.zeros((n, _MASKS), dtype=np.int64)
        for model_id, model in enumerate(self._models):
            s, c, z, r = _build(str(model), profile)
            start[model_id], count[model_id], size[model_id], rank[model_id] = s, c, z, r
        table = self._tables[profile] = MigTable(
            profile=profile, start=start, count=count, size=size, rank=rank
        )
        return table
