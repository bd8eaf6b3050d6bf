"""GPU sharing and MIG over the snapshot's per-GPU columns: which nodes can take a pod, how many
such pods each can take, and which GPU (and MIG slots) one gets.

A sharing pod fits a GPU that has its milli free (at least 1 when it asks for memory only) and
its memory free; it takes the best fit (least free milli that still fits, lowest index on ties).
A MIG pod fits a MIG-enabled GPU with a free aligned run of slots for its profile on the node's
GPU model; it takes the GPU with the fewest free slots (partly used first), at the start that
keeps large profiles placeable (`topology.mig`).
Everything vectorised over nodes reads only the first `snapshot.gpu_width` GPU columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aisched.topology.snapshot import Snapshot

__all__ = [
    "MigChoice",
    "best_fit_gpu",
    "mig_capacity",
    "mig_fits",
    "mig_starts",
    "pick_mig",
    "share_capacity",
    "share_fits",
    "share_fits_gpu",
]

Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


def share_fits(snapshot: Snapshot, *, milli: int, memory: int) -> Bools:
    """Per node and GPU (n × gpu_width): whether a pod needing `milli` and `memory` fits that GPU."""
    n, w = snapshot.size, snapshot.gpu_width
    fits: Bools = snapshot.gpu_milli_free[:n, :w] >= max(milli, 1)
    if memory:
        fits &= snapshot.gpu_memory_free[:n, :w] >= memory
    return fits


def share_capacity(snapshot: Snapshot, *, milli: int, memory: int, slot: int | None = None) -> Ints:
    """How many pods needing `milli` and `memory` of one GPU each node (or node `slot`) can take."""
    rows = slice(0, snapshot.size) if slot is None else slice(slot, slot + 1)
    w = snapshot.gpu_width
    per_gpu = snapshot.gpu_milli_free[rows, :w].astype(np.int64) // max(milli, 1)
    if not milli:  # memory only: any compute left will do
        per_gpu = np.where(per_gpu > 0, np.iinfo(np.int32).max, 0)
    if memory:
        np.minimum(per_gpu, snapshot.gpu_memory_free[rows, :w] // memory, out=per_gpu)
    total: Ints = per_gpu.sum(axis=1, dtype=np.int64)
    return total


def share_fits_gpu(snapshot: Snapshot, slot: int, index: int, *, milli: int, memory: int) -> bool:
    """Whether GPU `index` of node `slot` has `milli` and `memory` free for one more sharing pod."""
    return (
        0 <= index < snapshot.gpu_width
        and snapshot.gpu_milli_free.item(slot, index) >= max(milli, 1)
        and snapshot.gpu_memory_free.item(slot, index) >= memory
    )


def best_fit_gpu(snapshot: Snapshot, slot: int, *, milli: int, memory: int) -> int | None:
    """The GPU of node `slot` with the least free milli that still fits (then the least free
    memory for a pod asking for memory), lowest index on ties; None if no GPU fits."""
    w = snapshot.gpu_width
    milli_free = snapshot.gpu_milli_free[slot, :w]
    memory_free = snapshot.gpu_memory_free[slot, :w]
    fits = milli_free >= max(milli, 1)
    if memory:
        fits &= memory_free >= memory
    candidates = np.flatnonzero(fits)
    if not candidates.size:
        return None
    keys = (candidates, memory_free[candidates] if memory else candidates, milli_free[candidates])
    return int(candidates[np.lexsort(keys)[0]])


@dataclass(frozen=True, slots=True)
class MigChoice:
    """Where a MIG instance goes: the GPU, its first memory slot, and the slots it holds."""

    gpu: int
    start: int
    slots: int


def mig_starts(snapshot: Snapshot, profile: str) -> npt.NDArray[np.int8]:
    """Per node and GPU (n × gpu_width): where the next instance of `profile` would start (-1: nowhere)."""
    n, w = snapshot.size, snapshot.gpu_width
    table = snapshot.mig_tables.table(profile)
    return table.start[snapshot.gpu_model[:n, None], snapshot.mig_free[:n, :w]]


def mig_fits(snapshot: Snapshot, profile: str) -> Bools:
    """Per node: whether some MIG-enabled GPU has a free aligned place for an instance of `profile`."""
    return np.asarray((mig_starts(snapshot, profile) >= 0).any(axis=1), dtype=np.bool_)


def mig_capacity(snapshot: Snapshot, profile: str, *, slot: int | None = None) -> Ints:
    """How many instances of `profile` each node (or node `slot`) can still take, each GPU filled
    by the rule."""
    rows = slice(0, snapshot.size) if slot is None else slice(slot, slot + 1)
    table = snapshot.mig_tables.table(profile)
    counts = table.count[snapshot.gpu_model[rows, None], snapshot.mig_free[rows, : snapshot.gpu_width]]
    total: Ints = counts.sum(axis=1, dtype=np.int64)
    return total


def pick_mig(snapshot: Snapshot, slot: int, profile: str) -> MigChoice | None:
    """The place for one instance of `profile` on node `slot`: the GPU with the fewest free slots
    that takes it, then the one left best able to take large profiles, then the lowest index."""
    table = snapshot.mig_tables.table(profile)
    model = int(snapshot.gpu_model[slot])
    best: tuple[int, int, int] | None = None
    choice = None
    for index in range(snapshot.gpu_width):
        free = snapshot.mig_free.item(slot, index)
        start = int(table.start[model, free])
        if start < 0:
            continue
        key = (free.bit_count(), -int(table.rank[model, free]), index)
        if best is None or key < best:
            best = key
            size = int(table.size[model])
            choice = MigChoice(gpu=index, start=start, slots=((1 << size) - 1) << start)
    return choice
