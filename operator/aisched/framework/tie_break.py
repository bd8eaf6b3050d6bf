"""Seeded tie-break between equally scored nodes: a fixed random priority per node name.

A node's priority is a hash of the seed and its name, so the order of all nodes is a random
permutation fixed by the seed, and a node keeps its priority as others come and go (a trace
replay with seed 42 ranks its nodes alike in every run). Pure: no clock, no global random state.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from aisched.topology.snapshot import Snapshot

__all__ = ["TieBreak", "node_priority"]

Ints = npt.NDArray[np.int64]
_LAST = np.iinfo(np.int64).max


def node_priority(seed: int, name: str) -> int:
    """The priority of node `name` under `seed`: lower wins a tie; a non-negative 63-bit integer."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, key=seed.to_bytes(16, "big", signed=True))
    return int.from_bytes(digest.digest(), "big") >> 1


class TieBreak:
    """Per snapshot slot, its node's priority; rebuilt only when the snapshot's nodes change."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._by_name: dict[str, int] = {}
        self._key: tuple[object, int, int] | None = None
        self._ranks: Ints = np.zeros(0, dtype=np.int64)

    def ranks(self, snapshot: Snapshot) -> Ints:
        """Priority of every slot's node (slots without a node rank last)."""
        key = (snapshot.lineage, snapshot.static_generation, snapshot.size)
        if key != self._key:
            ranks = np.full(snapshot.size, _LAST, dtype=np.int64)
            for name, slot in snapshot.slot_of.items():
                found = self._by_name.get(name)
                if found is None:
                    found = self._by_name[name] = node_priority(self.seed, name)
                ranks[slot] = found
            self._key, self._ranks = key, ranks
        return self._ranks
