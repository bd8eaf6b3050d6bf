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

from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from aisched.cache import PodUsage
from aisched.framework.cycle_state import CycleState
from aisched.framework.handle import Handle
from aisched.framework.interface import Bools, Floats, Plugin
from aisched.framework.registry import NoArgs, PluginArgs, PluginFactory, parse_args
from aisched.framework.types import PodInfo
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

    Which classes a node holds is not in the snapshot: the plugin counts them from the cache's
    deltas (through its handle), so every pod the cache accounts counts, whoever placed it, and
    a departure is simply a pod the cache stops accounting.
    """

    name = CLUSTERING

    def __init__(self, handle: Handle) -> None:
        self._handle = handle
        self._by_node: dict[str, Ints] = {}  # node -> pods held per class
        self._counts = np.zeros((_CLASSES, 0), dtype=np.int64)  # by snapshot slot
        self._layout: tuple[object, int] = (None, -1)
        self._dirty: set[str] = set()
        handle.cache.subscribe(self._pod_changed)

    def _pod_changed(self, old: PodUsage | None, new: PodUsage | None) -> None:
        for usage, step in ((old, -1), (new, +1)):
            klass = _usage_class(usage) if usage is not None else -1
            if usage is not None and klass >= 0:
                row = self._by_node.setdefault(usage.node, np.zeros(_CLASSES, dtype=np.int64))
                row[klass] = max(0, row[klass] + step)
                self._dirty.add(usage.node)

    def _held(self, snapshot: Snapshot) -> Ints:
        """Pods held per class, by slot: rewritten whole when nodes moved, else the changed rows."""
        layout = (snapshot.lineage, snapshot.static_generation)
        if layout != self._layout or self._counts.shape[1] < snapshot.size:
            self._layout, self._dirty = layout, set()
            self._counts = np.zeros((_CLASSES, snapshot.capacity), dtype=np.int64)
            names = self._by_node
        else:
            names = {name: self._by_node[name] for name in self._dirty if name in self._by_node}
            self._dirty.clear()
        for name, row in names.items():
            slot = snapshot.slot_of.get(name)
            if slot is not None:
                self._counts[:, slot] = row
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


def _usage_class(usage: PodUsage) -> int:
    """`_request_class` of a pod the cache accounts."""
    if usage.gpu_milli > 0:
        return _SHARE_CLASS
    return min(usage.gpus, _CLASSES - 1) if usage.gpus > 0 else -1


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


class RandomArgs(PluginArgs):
    """`seed`: makes the choices repeatable (None: fresh entropy)."""

    seed: int | None = None


def _new_random(args: Mapping[str, Any], handle: Handle) -> Random:
    return Random(parse_args(RANDOM, RandomArgs, args).seed)


def _new_clustering(args: Mapping[str, Any], handle: Handle) -> GpuClustering:
    parse_args(CLUSTERING, NoArgs, args)
    return GpuClustering(handle)


def _no_args(name: str, make: Callable[[], Plugin]) -> PluginFactory:
    def new(args: Mapping[str, Any], handle: Handle) -> Plugin:
        parse_args(name, NoArgs, args)
        return make()

    return new


FACTORIES: Final[dict[str, PluginFactory]] = {
    RANDOM: _new_random,
    DOT_PRODUCT: _no_args(DOT_PRODUCT, DotProd),
    CLUSTERING: _new_clustering,
    PACKING: _no_args(PACKING, GpuPacking),
    BEST_FIT: _no_args(BEST_FIT, BestFit),
    FGD: new_fgd,
}
