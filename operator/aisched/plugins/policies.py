"""The placement policies of the FGD paper (Weng et al., USENIX ATC '23) as Score plugins.

Random, DotProd, GpuClustering, GpuPacking, BestFit and FGD (fragmentation gradient descent),
each scoring every node 0..100 in integers, as the paper's simulator does, so that ties are
common and the profile's seeded tie-break decides between them. GPU sharing is in milli: a
node's GPUs are the snapshot's `gpu_milli_free` row (1000 = a whole free GPU, 0 = used up or
absent); a pod takes `gpu_milli` of one GPU, or `gpus` whole ones.

FGD and its fragmentation measure live in `aisched.plugins.fgd`; this module registers all six.
Pure: numpy over the snapshot's columns; no I/O, no clock.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from aisched.framework.cycle_state import CycleState
from aisched.framework.interface import Bools, Floats
from aisched.framework.registry import PluginFactory
from aisched.framework.status import Status
from aisched.framework.types import GangPlacement, PodInfo
from aisched.plugins.fgd import (
    FGD,
    MILLI,
    FragmentationTable,
    TypicalPod,
    fragmentation,
    new_fgd,
    node_state,
    pod_shape,
)
from aisched.topology.snapshot import Snapshot

__all__ = [
    "BEST_FIT",
    "CLUSTERING",
    "DOT_PRODUCT",
    "FACTORIES",
    "FGD",
    "PACKING",
    "RANDOM",
    "FragmentationTable",
    "TypicalPod",
    "fragmentation",
    "pod_shape",
]

RANDOM: Final = "Random"
DOT_PRODUCT: Final = "DotProd"
CLUSTERING: Final = "GpuClustering"
PACKING: Final = "GpuPacking"
BEST_FIT: Final = "BestFit"

#: The largest node of the paper's cluster, by which DotProd and BestFit normalise (CPU milli, GPU milli).
MAX_CPU: Final = 128_000
MAX_GPU_MILLI: Final = 8_000

Ints = npt.NDArray[np.int64]


# -- the simpler policies -------------------------------------------------------------------------


class Random:
    """One feasible node at random (the paper's baseline); a random GPU that fits for a sharing pod."""

    name = RANDOM

    def __init__(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(None if seed is None else [seed, 0x5EED])

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        return np.zeros(snapshot.size)

    def normalize(self, scores: Floats, feasible: Bools) -> Floats:
        candidates = np.flatnonzero(feasible)
        if candidates.size:
            scores[candidates[self._rng.integers(candidates.size)]] = 100.0
        return scores

    def pick_gpu(self, pod: PodInfo, snapshot: Snapshot, slot: int) -> int | None:
        fits = np.flatnonzero(snapshot.gpu_milli_free[slot] >= pod.gpu_milli) if pod.gpu_milli > 0 else ()
        return int(fits[self._rng.integers(len(fits))]) if len(fits) else None


class DotProd:
    """Tetris' alignment: prefer the node whose free (CPU, GPU) lines up least with the request."""

    name = DOT_PRODUCT

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        cpu, gpu = node_state(snapshot)
        c, milli, count = pod_shape(pod)
        dot = cpu / MAX_CPU * (c / MAX_CPU) + gpu.sum(axis=1) / MAX_GPU_MILLI * (
            milli * count / MAX_GPU_MILLI
        )
        scores: Floats = np.trunc(100.0 * (1.0 - dot / 2.0))  # the paper's operation order
        return scores


class BestFit:
    """The node with the least CPU and GPU left over once the pod is placed, min-max normalised."""

    name = BEST_FIT

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        cpu, gpu = node_state(snapshot)
        c, milli, count = pod_shape(pod)
        # The paper's operation order, so integer boundaries truncate the same way.
        left = (cpu - c) / MAX_CPU * 0.5 + (gpu.sum(axis=1) - milli * count) / MAX_GPU_MILLI * 0.5
        scores: Floats = np.trunc((1.0 - left) * 100.0)
        return scores

    def normalize(self, scores: Floats, feasible: Bools) -> Floats:
        if not feasible.any():
            return scores
        low, high = scores[feasible].min(), scores[feasible].max()
        if high == low:
            return np.zeros_like(scores)
        normalised: Floats = np.floor_divide((scores - low) * 100.0, high - low)
        return normalised


#: GpuClustering's request classes: a shared GPU, then 1..8 whole GPUs.
_SHARE_CLASS: Final = 0
_CLASSES: Final = 9


def _request_class(pod: PodInfo) -> int:
    """The pod's GPU-request class (0: shares a GPU; k: k whole GPUs), -1 for a pod without GPUs."""
    if pod.gpu_milli > 0:
        return _SHARE_CLASS
    return min(pod.gpus, _CLASSES - 1) if pod.gpus > 0 else -1


class GpuClustering:
    """Keep pods of one GPU-request class together: nodes holding only that class first, then mixed
    nodes with it, then empty nodes, then nodes of other classes; fuller nodes first in each band.

    Which classes a node holds is not in the snapshot, so the plugin counts them itself as
    placements are reserved and unreserved (a departure is an unreserve).
    """

    name = CLUSTERING

    def __init__(self) -> None:
        self._counts = np.zeros((_CLASSES, 0), dtype=np.int64)

    def _held(self, snapshot: Snapshot) -> Ints:
        if self._counts.shape[1] < snapshot.capacity:
            grown = np.zeros((_CLASSES, snapshot.capacity), dtype=np.int64)
            grown[:, : self._counts.shape[1]] = self._counts
            self._counts = grown
        return self._counts

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        klass = _request_class(pod)
        if klass < 0:
            return np.zeros(snapshot.size)
        held = self._held(snapshot)[:, : snapshot.size]
        _, gpu = node_state(snapshot)
        fullness = (25 * (MAX_GPU_MILLI - gpu.sum(axis=1))) // MAX_GPU_MILLI
        classes = (held > 0).sum(axis=0)
        mine = held[klass] > 0
        band = np.where(mine, np.where(classes == 1, 75, 50), np.where(classes == 0, 25, 0))
        scores: Floats = (fullness + band).astype(np.float64)
        return scores

    def reserve(self, state: CycleState, placement: GangPlacement, snapshot: Snapshot) -> Status:
        self._count(placement, snapshot, +1)
        return Status.success()

    def unreserve(self, state: CycleState, placement: GangPlacement, snapshot: Snapshot) -> None:
        self._count(placement, snapshot, -1)

    def _count(self, placement: GangPlacement, snapshot: Snapshot, step: int) -> None:
        held = self._held(snapshot)
        for placed in placement.pods:
            klass = _request_class(placed.pod)
            if klass >= 0:
                held[klass, placed.slot] = max(0, held[klass, placed.slot] + step)


class GpuPacking:
    """Reuse partly used GPUs first, then free GPUs on used nodes, and only then empty nodes."""

    name = PACKING

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        _, milli, count = pod_shape(pod)
        if milli <= 0:
            return np.zeros(snapshot.size)
        _, gpu = node_state(snapshot)
        whole = (gpu >= MILLI).sum(axis=1)
        present = snapshot.gpu_count[: snapshot.size]
        if milli < MILLI:  # the best-fit GPU: a partly used one, or else a whole one
            smallest = np.where(gpu >= milli, gpu, MILLI + 1).min(axis=1)
            reused = np.maximum(100 - (smallest * 100 // MILLI) // 10, 50)
            score = np.where(smallest >= MILLI, 50 - 1, reused)
        else:  # whole GPUs are only ever fully free ones
            score = np.full(snapshot.size, max(50 - count, 100 // 3))
        empty = whole == present
        return np.where(empty, np.maximum(100 // 3 - whole, whole), score).astype(np.float64)


FACTORIES: Final[dict[str, PluginFactory]] = {
    RANDOM: lambda args: Random(args.get("seed")),
    DOT_PRODUCT: lambda args: DotProd(),
    CLUSTERING: lambda args: GpuClustering(),
    PACKING: lambda args: GpuPacking(),
    BEST_FIT: lambda args: BestFit(),
    FGD: new_fgd,
}
