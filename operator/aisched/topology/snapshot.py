"""The columnar snapshot: the cluster as numpy arrays, one row per node slot.

A node keeps its slot for as long as it exists, so rows can be rewritten one at a time: the
cache copies only the nodes that changed since the last cycle, and an assumed placement updates
its rows in place. Filters and scores read whole columns at once.

Static columns (readiness, labels, taints, GPU model, domains) change only when a node changes;
`static_generation` counts those changes so plugins can cache masks computed from them.
Usage columns (`used`, GPU masks, per-GPU milli, memory and MIG slots) change with every pod.

GPUs are given three ways. Whole: a pod takes k GPUs from `gpu_free`. Shared: a pod takes milli
(of 1000) and memory of one GPU (`gpu_milli_free`, `gpu_memory_free`); a GPU any sharing pod
uses is no longer in `gpu_free`. MIG: a pod takes an instance's memory slots on a MIG-enabled
GPU (`mig_free`); such GPUs are never given whole or shared.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from aisched.api import keys
from aisched.api.mig import MigProfile, mig_profiles_for
from aisched.api.objects import decimal
from aisched.topology import resources
from aisched.topology.gpu import MAX_GPUS_PER_NODE, GPUTopology
from aisched.topology.gpuset import GPUSetTables
from aisched.topology.mig import ALL_SLOTS, MigTables
from aisched.topology.node import NodeInfo, Taint
from aisched.topology.vocabulary import Vocabulary

__all__ = ["MILLI_PER_GPU", "Snapshot", "Vocabulary"]

_INITIAL_SLOTS: Final = 64
#: A whole GPU, in the milli that sharing pods ask for.
MILLI_PER_GPU: Final = 1000
_BITS: Final = np.left_shift(1, np.arange(MAX_GPUS_PER_NODE, dtype=np.int64))
_MIB: Final = 2**20
Int64s = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


class Snapshot:
    """The cluster as columns. Create empty; the cache fills and refreshes it."""

    def __init__(self, *, capacity: int = _INITIAL_SLOTS) -> None:
        self.capacity = capacity
        #: Shared by this snapshot and its clones: with `static_generation`, it tells a plugin's
        #: cache of node-static data (tie-break ranks, model access) whether it still applies.
        self.lineage = object()
        self.generation = 0
        self.static_generation = 0
        self.resource_index: dict[str, int] = {name: i for i, name in enumerate(resources.FIXED)}
        self.gpu_tables = GPUSetTables()
        self.models = Vocabulary()
        self.mig_tables = MigTables(self.models.values)
        #: The most GPUs any node has had: per-GPU columns are read up to here.
        self.gpu_width = 0
        self.domains = {"rack": Vocabulary(), "block": Vocabulary(), "fabric": Vocabulary()}
        self.taint_vocabulary = Vocabulary()
        self._label_vocabularies: dict[str, Vocabulary] = {}
        self._label_columns: dict[str, Int32s] = {}

        self.infos: list[NodeInfo | None] = [None] * capacity
        self.topologies: list[GPUTopology | None] = [None] * capacity
        self.slot_of: dict[str, int] = {}
        self._free_slots: list[int] = []
        self.size = 0  # slots ever used: rows [0, size) are meaningful
        self._allocate(capacity, len(self.resource_index))

    def _allocate(self, n: int, r: int) -> None:
        def grow(old: Any, shape: tuple[int, ...], fill: object, dtype: Any) -> Any:
            new = np.full(shape, fill, dtype=dtype)
            if old is not None:
                new[tuple(slice(0, s) for s in old.shape)] = old
            return new

        get = self.__dict__.get
        self.valid: Bools = grow(get("valid"), (n,), False, np.bool_)
        self.ready: Bools = grow(get("ready"), (n,), False, np.bool_)
        self.unschedulable: Bools = grow(get("unschedulable"), (n,), False, np.bool_)
        self.cooling: Bools = grow(get("cooling"), (n,), False, np.bool_)
        # Resource-major (resource × slot): plugins read one resource across all nodes contiguously.
        self.allocatable: Int64s = grow(get("allocatable"), (r, n), 0, np.int64)
        self.used: Int64s = grow(get("used"), (r, n), 0, np.int64)
        self.free: Int64s = grow(get("free"), (r, n), 0, np.int64)
        #: 1 / allocatable (0 where nothing is allocatable): utilisation is a multiplication.
        self.inverse_allocatable: Floats = grow(get("inverse_allocatable"), (r, n), 0.0, np.float64)
        #: used / allocatable, 1.0 where nothing is allocatable: a node offering none counts as full.
        self.utilisation: Floats = grow(get("utilisation"), (r, n), 1.0, np.float64)
        self.rack: Int32s = grow(get("rack"), (n,), -1, np.int32)
        self.block: Int32s = grow(get("block"), (n,), -1, np.int32)
        self.fabric: Int32s = grow(get("fabric"), (n,), -1, np.int32)
        self.gpu_model: Int32s = grow(get("gpu_model"), (n,), -1, np.int32)
        self.gpu_count: Int32s = grow(get("gpu_count"), (n,), 0, np.int32)
        # GPU masks are int64 bit sets (bit i: GPU i), so index arithmetic needs no casts.
        self.gpu_healthy: Int64s = grow(get("gpu_healthy"), (n,), 0, np.int64)
        #: Whole, healthy GPUs no pod holds (by device).
        self.gpu_free: Int64s = grow(get("gpu_free"), (n,), 0, np.int64)
        #: GPUs held by pods whose devices are unknown (bound by another scheduler).
        self.gpu_unassigned: Int64s = grow(get("gpu_unassigned"), (n,), 0, np.int64)
        #: Whole GPUs each node can still give: free by device, less those held blind.
        self.gpu_free_count: Int64s = grow(get("gpu_free_count"), (n,), 0, np.int64)
        self.gpu_table: Int32s = grow(get("gpu_table"), (n,), -1, np.int32)
        self.gpu_cliques: Int64s = grow(get("gpu_cliques"), (n, MAX_GPUS_PER_NODE), 0, np.int64)
        #: Offset of the node's GPU-set table in `gpu_tables` (-1: none), for one-gather look-ups.
        self.gpu_table_base: Int64s = grow(get("gpu_table_base"), (n,), 0, np.int64)
        #: Bits of the free mask that index the table: all of them for a tabled node, none for a
        #: node too wide for a table (whose base points at the constant block of GPUSetTables).
        self.gpu_table_mask: Int64s = grow(get("gpu_table_mask"), (n,), 0, np.int64)
        #: Per GPU count g (row) and node: how well connected the best free set of g GPUs is,
        #: 0..100, kept current as GPUs are taken, so topology scoring is one row copy.
        width = self.gpu_tables.width
        self.gpu_set_score: Floats = grow(get("gpu_set_score"), (width + 1, n), 0.0, np.float64)
        g = MAX_GPUS_PER_NODE
        #: Healthy GPUs not in MIG mode: those that can be given whole or shared (static).
        self.gpu_whole: Int64s = grow(get("gpu_whole"), (n,), 0, np.int64)
        #: Healthy GPUs in MIG mode (static).
        self.gpu_mig: Int64s = grow(get("gpu_mig"), (n,), 0, np.int64)
        #: Per GPU: its memory in bytes, 0 if unknown (static).
        self.gpu_memory: Int64s = grow(get("gpu_memory"), (n, g), 0, np.int64)
        #: Per MIG GPU: the memory slots no published MIG instance holds (static; 0: not MIG).
        self.mig_open: Int32s = grow(get("mig_open"), (n, g), 0, np.int32)
        #: Per GPU: the milli a sharing pod can still get there: 1000 for a whole free GPU, less as
        #: sharing pods use it, 0 for an absent, unhealthy, MIG-mode or wholly held GPU.
        self.gpu_milli_free: Int32s = grow(get("gpu_milli_free"), (n, g), 0, np.int32)
        #: Per GPU: the memory (bytes) a sharing pod can still get there, 0 where milli is 0.
        self.gpu_memory_free: Int64s = grow(get("gpu_memory_free"), (n, g), 0, np.int64)
        #: Per MIG GPU: free memory slots (8-bit mask, bit i: slot i); 0 for GPUs not in MIG mode.
        self.mig_free: Int32s = grow(get("mig_free"), (n, g), 0, np.int32)
        old_taints = get("taints")
        t = max(len(self.taint_vocabulary), 1, old_taints.shape[1] if old_taints is not None else 0)
        self.taints: Bools = grow(get("taints"), (n, t), False, np.bool_)
        for key, column in self._label_columns.items():
            self._label_columns[key] = grow(column, (n,), -1, np.int32)
        if n > len(self.infos):
            self.infos.extend([None] * (n - len(self.infos)))
            self.topologies.extend([None] * (n - len(self.topologies)))
        self.capacity = n

    # -- the cache's writes -------------------------------------------------------------

    def resource_column(self, name: str) -> int:
        """The column of resource `name`, added (all zero) the first time it is named."""
        found = self.resource_index.get(name)
        if found is None:
            found = self.resource_index[name] = len(self.resource_index)
            self._allocate(self.capacity, len(self.resource_index))
        return found

    def add_node(self, info: NodeInfo) -> int:
        """Give `info` a slot and write its static columns; returns the slot."""
        # The lowest free slot first, so refilling a snapshot gives the slots a fresh one would.
        slot = heapq.heappop(self._free_slots) if self._free_slots else self.size
        if slot == self.capacity:
            self._allocate(self.capacity * 2, len(self.resource_index))
        self.size = max(self.size, slot + 1)
        self.slot_of[info.name] = slot
        self.set_node(slot, info)
        return slot

    def set_node(self, slot: int, info: NodeInfo) -> None:
        """Rewrite the static columns of `slot` from `info` (usage columns are left to set_usage)."""
        topology = info.gpu_topology()
        self.infos[slot] = info
        self.topologies[slot] = topology
        self.valid[slot] = True
        self.ready[slot] = info.ready
        self.unschedulable[slot] = info.unschedulable
        self.cooling[slot] = info.cooling
        self.allocatable[:, slot] = 0
        for name, value in info.allocatable.items():
            column = self.resource_column(name)  # may grow the arrays: index them only after
            self.allocatable[column, slot] = value
        offered = self.allocatable[:, slot]
        self.inverse_allocatable[:, slot] = np.divide(
            1.0, offered, out=np.zeros(len(offered)), where=offered > 0
        )
        self._refresh_utilisation(slot)
        self.rack[slot] = self.domains["rack"].id(info.rack) if info.rack else -1
        self.block[slot] = self.domains["block"].id(info.block) if info.block else -1
        fabric = topology.fabric_clique
        self.fabric[slot] = self.domains["fabric"].id(fabric) if fabric else -1
        model = info.gpu_model
        self.gpu_model[slot] = self.models.id(model) if model else -1
        self.gpu_count[slot] = topology.count
        self.gpu_width = max(self.gpu_width, topology.count)
        self.gpu_healthy[slot] = topology.healthy_mask
        self._set_devices(slot, info, topology)
        self.gpu_table[slot] = table = self.gpu_tables.table_id(topology)
        self.gpu_table_base[slot] = self.gpu_tables.base(table)
        self.gpu_table_mask[slot] = (1 << self.gpu_tables.width) - 1 if table >= 0 else 0
        self._refresh_gpu_set_score(slot)
        self.gpu_cliques[slot] = 0
        for i, clique in enumerate(topology.cliques):
            self.gpu_cliques[slot, i] = clique
        self._set_taints(slot, info.taints)
        for key, label_ids in self._label_columns.items():
            label = info.labels.get(key)
            label_ids[slot] = self._label_vocabularies[key].id(label) if label is not None else -1
        self.static_generation += 1
        self.generation += 1

    def _set_devices(self, slot: int, info: NodeInfo, topology: GPUTopology) -> None:
        """The static per-GPU columns: which GPUs are whole or MIG, their memory, MIG slots left open."""
        label = info.labels.get(keys.LABEL_GPU_MEMORY, "")
        fallback = (decimal(label) or 0) * _MIB  # GPU feature discovery: MiB
        mig = sum(1 << gpu.index for gpu in topology.gpus if gpu.healthy and gpu.mig_enabled)
        self.gpu_mig[slot] = mig
        self.gpu_whole[slot] = topology.healthy_mask & ~mig
        self.gpu_memory[slot] = 0
        self.mig_open[slot] = 0
        for gpu in topology.gpus:
            self.gpu_memory[slot, gpu.index] = gpu.memory_bytes or fallback
            if mig >> gpu.index & 1:
                self.mig_open[slot, gpu.index] = ALL_SLOTS & ~gpu.mig_mask

    def _set_taints(self, slot: int, taints: tuple[Taint, ...]) -> None:
        ids = [self.taint_vocabulary.id(t) for t in taints if t.effect != "PreferNoSchedule"]
        if len(self.taint_vocabulary) > self.taints.shape[1]:
            wider = np.zeros((self.capacity, len(self.taint_vocabulary) * 2), dtype=np.bool_)
            wider[:, : self.taints.shape[1]] = self.taints
            self.taints = wider
        self.taints[slot] = False
        self.taints[slot, ids] = True

    def remove_node(self, name: str) -> None:
        slot = self.slot_of.pop(name)
        self.valid[slot] = self.ready[slot] = self.cooling[slot] = False
        self.infos[slot] = self.topologies[slot] = None
        self.allocatable[:, slot] = self.used[:, slot] = self.free[:, slot] = 0
        self.inverse_allocatable[:, slot] = 0.0
        self.utilisation[:, slot] = 1.0
        self.gpu_free[slot] = self.gpu_healthy[slot] = self.gpu_free_count[slot] = 0
        self.gpu_whole[slot] = self.gpu_mig[slot] = self.gpu_count[slot] = 0
        self.gpu_memory[slot] = self.mig_open[slot] = 0
        self.gpu_milli_free[slot] = self.gpu_memory_free[slot] = self.mig_free[slot] = 0
        self.gpu_set_score[:, slot] = 0.0
        heapq.heappush(self._free_slots, slot)
        self.static_generation += 1
        self.generation += 1

    def set_usage(
        self,
        slot: int,
        *,
        used: Mapping[str, int],
        gpus_held: int,
        gpus_unassigned: int,
        shared: Mapping[int, tuple[int, int]] | None = None,
        mig_held: Mapping[int, int] | None = None,
    ) -> None:
        """Rewrite the usage columns of `slot`: summed requests, GPUs held whole by device, GPUs
        held blind, and per GPU index the (milli, memory) sharing pods use and the MIG slots held."""
        self.used[:, slot] = 0
        for name, value in used.items():
            column = self.resource_column(name)  # may grow the arrays: index them only after
            self.used[column, slot] = value
        self.free[:, slot] = self.allocatable[:, slot] - self.used[:, slot]
        self._refresh_utilisation(slot)
        free = int(self.gpu_whole[slot]) & ~gpus_held
        usable = (free & _BITS) != 0
        milli = self.gpu_milli_free[slot]
        memory = self.gpu_memory_free[slot]
        np.copyto(milli, np.where(usable, MILLI_PER_GPU, 0))
        np.copyto(memory, np.where(usable, self.gpu_memory[slot], 0))
        for index, (milli_used, memory_used) in (shared or {}).items():
            milli[index] = max(int(milli[index]) - milli_used, 0)
            memory[index] = max(int(memory[index]) - memory_used, 0)
            free &= ~(1 << index)  # a shared GPU is no longer whole
        self.mig_free[slot] = self.mig_open[slot]
        for index, held in (mig_held or {}).items():
            self.mig_free[slot, index] &= ~held
        self.gpu_free[slot] = free
        self.gpu_unassigned[slot] = gpus_unassigned
        self.gpu_free_count[slot] = free.bit_count() - gpus_unassigned
        self._refresh_gpu_set_score(slot)
        self.generation += 1

    def assume(
        self,
        slot: int,
        *,
        request: Mapping[str, int],
        gpus: int,
        gpu_milli: int = 0,
        gpu_memory: int = 0,
        mig_slots: int = 0,
    ) -> None:
        """Account a placement in place (no rebuild): `request` more used, GPU mask `gpus` taken.

        A pod sharing a GPU (`gpu_milli`/`gpu_memory`) or holding a MIG instance (`mig_slots`)
        names its one GPU in `gpus`; otherwise `gpus` are taken whole.
        """
        index = self.resource_index
        for name, value in request.items():
            column = index.get(name)
            if column is None:
                column = self.resource_column(name)
            used = self.used.item(column, slot) + value
            self.used[column, slot] = used
            self.free[column, slot] = self.allocatable.item(column, slot) - used
            inverse = self.inverse_allocatable.item(column, slot)
            if inverse:
                self.utilisation[column, slot] = used * inverse
        if gpus:
            if gpu_milli or gpu_memory or mig_slots:
                self.take_devices(
                    slot, gpus=gpus, gpu_milli=gpu_milli, gpu_memory=gpu_memory, mig_slots=mig_slots
                )
            else:
                self._take_whole(slot, gpus)
            free = self.gpu_free.item(slot) & ~gpus
            self.gpu_free[slot] = free
            self.gpu_free_count[slot] = free.bit_count() - self.gpu_unassigned.item(slot)
            self._refresh_gpu_set_score(slot)
        self.generation += 1

    def take_devices(
        self, slot: int, *, gpus: int, gpu_milli: int = 0, gpu_memory: int = 0, mig_slots: int = 0
    ) -> None:
        """Take devices in the per-GPU columns only (`assume` also counts requests and whole GPUs):
        a share of, or MIG slots on, the one GPU in `gpus`, else the GPUs `gpus` whole."""
        index = gpus.bit_length() - 1
        if mig_slots:
            self.mig_free[slot, index] = self.mig_free.item(slot, index) & ~mig_slots
        elif gpu_milli or gpu_memory:
            self.gpu_milli_free[slot, index] = max(self.gpu_milli_free.item(slot, index) - gpu_milli, 0)
            self.gpu_memory_free[slot, index] = max(self.gpu_memory_free.item(slot, index) - gpu_memory, 0)
        else:
            self._take_whole(slot, gpus)

    def _take_whole(self, slot: int, gpus: int) -> None:
        # A scalar write per GPU: cheaper than a vectorised one for a handful of GPUs.
        milli_row, memory_row = self.gpu_milli_free[slot], self.gpu_memory_free[slot]
        rest = gpus
        while rest:
            lowest = rest & -rest
            milli_row[lowest.bit_length() - 1] = memory_row[lowest.bit_length() - 1] = 0
            rest ^= lowest

    def mig_profile(self, slot: int, name: str) -> MigProfile | None:
        """Profile `name` on the GPU model of node `slot` (None: the model does not offer it)."""
        model = int(self.gpu_model[slot])
        return mig_profiles_for(str(self.models.values[model])).get(name) if model >= 0 else None

    def _refresh_gpu_set_score(self, slot: int) -> None:
        tables = self.gpu_tables
        start = self.gpu_table_base.item(slot) + (
            self.gpu_free.item(slot) & self.gpu_table_mask.item(slot)
        ) * (tables.width + 1)
        self.gpu_set_score[:, slot] = tables.score[start : start + tables.width + 1]

    def _refresh_utilisation(self, slot: int) -> None:
        allocatable = self.allocatable[:, slot]
        self.utilisation[:, slot] = np.where(
            allocatable > 0, self.used[:, slot] * self.inverse_allocatable[:, slot], 1.0
        )

    # -- what-ifs ------------------------------------------------------------------------

    def clone(self) -> Snapshot:
        """A copy whose rows may be changed (a dry run) without touching this snapshot.

        Arrays, the slot map and per-slot lists are copied; what only ever grows as nodes are
        added (vocabularies, GPU-set and MIG tables) is shared, since a clone adds no node.
        """
        copy = Snapshot.__new__(Snapshot)
        for name, value in self.__dict__.items():
            if name == "_label_columns":
                copy.__dict__[name] = {key: column.copy() for key, column in value.items()}
            elif isinstance(value, np.ndarray | dict | list):
                copy.__dict__[name] = value.copy()
            else:
                copy.__dict__[name] = value
        return copy

    # -- what plugins read ---------------------------------------------------------------

    def label_column(self, key: str) -> tuple[Int32s, Vocabulary]:
        """Per-slot value ids of label `key` (-1: absent), materialised on first use and kept current."""
        column = self._label_columns.get(key)
        if column is None:
            vocabulary = self._label_vocabularies[key] = Vocabulary()
            column = np.full(self.capacity, -1, dtype=np.int32)
            for slot in range(self.size):
                info = self.infos[slot]
                value = info.labels.get(key) if info is not None else None
                if value is not None:
                    column[slot] = vocabulary.id(value)
            self._label_columns[key] = column
        return column, self._label_vocabularies[key]

    def gpus_free_count(self) -> Int64s:
        """Whole GPUs each node can still give (free by device, less those held blind)."""
        return self.gpu_free_count[: self.size]

    def node_names(self, slots: npt.NDArray[np.intp] | list[int]) -> list[str]:
        return [self.infos[int(s)].name for s in slots]  # type: ignore[union-attr]

    @property
    def node_count(self) -> int:
        return len(self.slot_of)
