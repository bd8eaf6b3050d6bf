"""FGD (fragmentation gradient descent, Weng et al., USENIX ATC '23) as a Score plugin, and the
fragmentation measure it descends.

A node's fragmentation is the expected GPU milli that the trace's typical pods could not use
there. It is cached per node and per pod shape against the node's state (free CPU and free milli
per GPU), so a decision recomputes only the nodes that changed since that shape was last scored.
Pure: numpy over the snapshot's columns; no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import Field

from aisched.framework.cycle_state import CycleState
from aisched.framework.handle import Handle
from aisched.framework.interface import Bools, Floats
from aisched.framework.registry import PluginArgs, parse_args
from aisched.framework.types import PodInfo
from aisched.topology import resources
from aisched.topology.snapshot import Snapshot

__all__ = [
    "FGD",
    "MILLI",
    "FragmentationGradientDescent",
    "FragmentationTable",
    "TypicalPod",
    "fragmentation",
    "new_fgd",
    "node_state",
    "pod_shape",
]

FGD: Final = "FGD"
MILLI: Final = 1000
_SHAPE_CACHE_LIMIT: Final = 4096

Ints = npt.NDArray[np.int64]


# -- what a pod asks, what a node has -------------------------------------------------------------


def pod_shape(pod: PodInfo) -> tuple[int, int, int]:
    """(CPU milli, milli per GPU, GPU count): (c, m, 1) sharing, (c, 1000, k) whole, (c, 0, 0) CPU only."""
    cpu = pod.requests.get(resources.CPU, 0)
    if pod.gpu_milli > 0:
        return cpu, pod.gpu_milli, 1
    if pod.gpus > 0:
        return cpu, MILLI, pod.gpus
    return cpu, 0, 0


def node_state(snapshot: Snapshot) -> tuple[Ints, Ints]:
    """Free CPU milli per node, and free milli per GPU per node (n × GPUs), as int64."""
    n = snapshot.size
    cpu = snapshot.free[snapshot.resource_index[resources.CPU], :n]
    return cpu, snapshot.gpu_milli_free[:n].astype(np.int64)


# -- FGD's fragmentation measure ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypicalPod:
    """One shape of the workload's common pods, with its share of them (`weight`, summing to 1)."""

    cpu: int
    gpu_milli: int  # per GPU; 0 for a CPU-only pod
    gpus: int
    models: tuple[str, ...] = ()
    weight: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "gpuMilli": self.gpu_milli,
            "gpus": self.gpus,
            "models": list(self.models),
            "weight": self.weight,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TypicalPod:
        return cls(
            cpu=int(raw["cpu"]),
            gpu_milli=int(raw["gpuMilli"]),
            gpus=int(raw["gpus"]),
            models=tuple(raw.get("models", ())),
            weight=float(raw["weight"]),
        )


class FragmentationTable:
    """The typical pods as columns, and which nodes each may use (by GPU model), kept per snapshot."""

    def __init__(self, typical: Sequence[TypicalPod]) -> None:
        if not typical:
            raise ValueError("FGD needs at least one typical pod")
        self.pods = tuple(typical)
        self.cpu = np.array([p.cpu for p in typical], dtype=np.int64)
        self.milli = np.array([p.gpu_milli for p in typical], dtype=np.int64)
        self.count = np.array([p.gpus for p in typical], dtype=np.int64)
        self.weight = np.array([p.weight for p in typical], dtype=np.float64)
        self._access = np.zeros((0, len(typical)), dtype=np.bool_)
        self._access_key: tuple[object, int, int] = (None, -1, -1)

    def access(self, snapshot: Snapshot) -> Bools:
        """Node × typical pod: whether the pod's GPU models allow the node (n × K)."""
        key = (snapshot.lineage, snapshot.static_generation, snapshot.size)
        if key != self._access_key:
            models = snapshot.gpu_model[: snapshot.size]
            allowed = [[i for i in map(snapshot.models.get, p.models) if i >= 0] for p in self.pods]
            everywhere = np.ones(models.size, dtype=np.bool_)
            columns = [
                np.isin(models, ids) if p.models else everywhere
                for ids, p in zip(allowed, self.pods, strict=True)
            ]
            self._access, self._access_key = np.stack(columns, axis=1), key
        return self._access


def fragmentation(cpu: Ints, gpu: Ints, access: Bools, table: FragmentationTable) -> Ints:
    """Per node state and typical pod: the idle GPU milli that pod could not use (S × K, integers).

    All of it when the pod cannot run there at all (CPU-only, model not allowed, too little CPU,
    too few GPUs with enough milli); otherwise the milli on the GPUs too small for it.
    `cpu` is S free CPU milli, `gpu` S × GPUs free milli, `access` S × K.
    """
    idle = gpu.sum(axis=1)
    below = gpu[:, None, :] < table.milli[None, :, None]
    stranded = np.where(below, gpu[:, None, :], 0).sum(axis=2)
    enough = gpu.shape[1] - below.sum(axis=2) >= table.count[None, :]
    runs = access & (cpu[:, None] >= table.cpu[None, :]) & (table.milli > 0)[None, :] & enough
    amounts: Ints = np.where(runs, stranded, idle[:, None])
    return amounts


def _sigmoid_score(decrease: Floats) -> Floats:
    """100·sigmoid(ΔF/1000), truncated to an integer as the paper's plugin does."""
    return np.trunc(1.0 / (1.0 + np.exp(-decrease / 1000.0)) * 100.0)


class _Rows:
    """An array per node slot, valid for the node state (free CPU, free GPU milli) it was computed at."""

    def __init__(self, n: int, gpus: int, width: int) -> None:
        self.cpu = np.full(n, -1, dtype=np.int64)
        self.gpu = np.full((n, gpus), -1, dtype=np.int64)
        self.values = np.zeros((n, width), dtype=np.int64)

    def stale(self, cpu: Ints, gpu: Ints, rows: Ints | None = None) -> Ints:
        """The slots (of `rows`, else all) whose state differs from the one their values were computed at."""
        rows = np.arange(cpu.size) if rows is None else rows
        changed = (self.cpu[rows] != cpu[rows]) | (self.gpu[rows] != gpu[rows]).any(axis=1)
        stale: Ints = rows[changed]
        return stale

    def store(self, rows: Ints, cpu: Ints, gpu: Ints, values: npt.NDArray[Any]) -> None:
        self.cpu[rows] = cpu[rows]
        self.gpu[rows] = gpu[rows]
        self.values[rows] = values


class FragmentationGradientDescent:
    """Place where the fragmentation of the node grows least (or shrinks most); pick the GPU that way too."""

    name = FGD

    def __init__(self, table: FragmentationTable) -> None:
        self.table = table
        self._key: tuple[object, int, int] = (None, -1, -1)
        self._nodes: _Rows | None = None  # per node: fragmentation per typical pod
        self._shapes: dict[tuple[int, int, int], _Rows] = {}  # per pod shape: (score, GPU picked)
        #: Nodes whose scores the last decision had to recompute (the others came from the cache).
        self.recomputed = 0

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        return self._scored(pod, snapshot).values[:, 0].astype(np.float64)

    def pick_gpu(self, pod: PodInfo, snapshot: Snapshot, slot: int) -> int | None:
        if pod.gpu_milli <= 0:
            return None
        picked = int(self._scored(pod, snapshot).values[slot, 1])
        return picked if picked >= 0 else None

    def _scored(self, pod: PodInfo, snapshot: Snapshot) -> _Rows:
        n, gpus = snapshot.size, snapshot.gpu_milli_free.shape[1]
        key = (snapshot.lineage, snapshot.static_generation, n)
        if key != self._key or len(self._shapes) > _SHAPE_CACHE_LIMIT:
            self._key = key
            self._nodes = _Rows(n, gpus, len(self.table.pods))
            self._shapes.clear()
        shape = pod_shape(pod)
        rows = self._shapes.get(shape)
        if rows is None:
            rows = self._shapes[shape] = _Rows(n, gpus, 2)
        cpu, gpu = node_state(snapshot)
        stale = rows.stale(cpu, gpu)
        self.recomputed = int(stale.size)
        if stale.size:
            access = self.table.access(snapshot)
            before = self._node_fragmentation(stale, cpu, gpu, access)
            rows.store(
                stale, cpu, gpu, self._after(shape, stale, cpu=cpu, gpu=gpu, access=access, before=before)
            )
        return rows

    def _node_fragmentation(self, rows: Ints, cpu: Ints, gpu: Ints, access: Bools) -> Ints:
        nodes = self._nodes
        assert nodes is not None
        stale = nodes.stale(cpu, gpu, rows)
        if stale.size:
            nodes.store(stale, cpu, gpu, fragmentation(cpu[stale], gpu[stale], access[stale], self.table))
        return nodes.values[rows]

    def _after(
        self, shape: tuple[int, int, int], rows: Ints, *, cpu: Ints, gpu: Ints, access: Bools, before: Ints
    ) -> Ints:
        """(score, GPU) for each of `rows`: the score of placing a pod of `shape` there, and for a
        sharing pod the GPU that scores best (lowest index on ties; -1 if none fits)."""
        c, milli, count = shape
        here, free_cpu = gpu[rows], cpu[rows] - c
        out = np.zeros((rows.size, 2), dtype=np.int64)
        out[:, 1] = -1
        if 0 < milli < MILLI:
            # One candidate per distinct free amount: GPUs with equal free milli give equal states.
            same_before = np.tril(here[:, :, None] == here[:, None, :], k=-1).any(axis=2)
            at, gpu_index = np.nonzero((here >= milli) & ~same_before)
            if at.size == 0:
                return out
            states = here[at].copy()
            states[np.arange(at.size), gpu_index] -= milli
            after = fragmentation(free_cpu[at], states, access[rows[at]], self.table)
            scores = _sigmoid_score(((before[at] - after) * self.table.weight).sum(axis=1)).astype(np.int64)
            best = np.full(rows.size, -1, dtype=np.int64)
            np.maximum.at(best, at, scores)
            winners = np.flatnonzero(scores == best[at])
            first_row, first = np.unique(at[winners], return_index=True)
            out[first_row, 0] = best[first_row]
            out[first_row, 1] = gpu_index[winners[first]]
            return out
        states = here
        if count:
            whole = here >= MILLI
            states = np.where(whole & (np.cumsum(whole, axis=1) <= count), 0, here)
        after = fragmentation(free_cpu, states, access[rows], self.table)
        out[:, 0] = _sigmoid_score(((before - after) * self.table.weight).sum(axis=1))
        return out


class TypicalPodArgs(PluginArgs):
    cpu: Annotated[int, Field(ge=0)]
    gpu_milli: Annotated[int, Field(ge=0, le=MILLI)]
    gpus: Annotated[int, Field(ge=0)]
    models: tuple[str, ...] = ()
    weight: Annotated[float, Field(ge=0)]


class FGDArgs(PluginArgs):
    """`typicalPods`: the workload's common pod shapes, with their shares (the paper's "typical pods")."""

    typical_pods: Annotated[tuple[TypicalPodArgs, ...], Field(min_length=1)]


def new_fgd(args: Mapping[str, Any], handle: Handle) -> FragmentationGradientDescent:
    parsed = parse_args(FGD, FGDArgs, args)
    typical = [
        TypicalPod(cpu=t.cpu, gpu_milli=t.gpu_milli, gpus=t.gpus, models=t.models, weight=t.weight)
        for t in parsed.typical_pods
    ]
    return FragmentationGradientDescent(FragmentationTable(typical))
