"""The columnar snapshot: the cluster as numpy arrays, one row per node slot.

A node keeps its slot for as long as it exists, so rows can be rewritten one at a time: the
cache copies only the nodes that changed since the last cycle, and an assumed placement updates
its rows in place. Filters and scores read whole columns at once.

Static columns (readiness, labels, taints, GPU model, domains) change only when a node changes;
`static_generation` counts those changes so plugins can cache masks computed from them.
Usage columns (`used`, GPU masks) change with every pod.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from aisched.topology import resources
from aisched.topology.gpu import MAX_GPUS_PER_NODE, GPUTopology
from aisched.topology.gpuset import GPUSetTables
from aisched.topology.node import NodeInfo, Taint

__all__ = ["Snapshot", "Vocabulary"]

_INITIAL_SLOTS: Final = 64
Int64s = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


class Vocabulary:
    """Strings ↔ dense integer ids (label values, rack names, GPU models, taints)."""

    def __init__(self) -> None:
        self._ids: dict[object, int] = {}
        self.values: list[object] = []

    def id(self, value: object) -> int:
        found = self._ids.get(value)
        if found is None:
            found = self._ids[value] = len(self.values)
            self.values.append(value)
        return found

    def get(self, value: object) -> int:
        """The id of `value`, or -1 if it was never seen (so it matches no node)."""
        return self._ids.get(value, -1)

    def __len__(self) -> int:
        return len(self.values)


class Snapshot:
    """The cluster as columns. Create empty; the cache fills and refreshes it."""

    def __init__(self, *, capacity: int = _INITIAL_SLOTS) -> None:
        self.capacity = capacity
        self.generation = 0
        self.static_generation = 0
        self.resource_index: dict[str, int] = {name: i for i, name in enumerate(resources.FIXED)}
        self.gpu_tables = GPUSetTables()
        self.models = Vocabulary()
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
        self.gpu_healthy[slot] = topology.healthy_mask
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
        self.valid[slot] = self.ready[slot] = False
        self.infos[slot] = self.topologies[slot] = None
        self.allocatable[:, slot] = self.used[:, slot] = self.free[:, slot] = 0
        self.inverse_allocatable[:, slot] = 0.0
        self.utilisation[:, slot] = 1.0
        self.gpu_free[slot] = self.gpu_healthy[slot] = self.gpu_free_count[slot] = 0
        self.gpu_set_score[:, slot] = 0.0
        heapq.heappush(self._free_slots, slot)
        self.static_generation += 1
        self.generation += 1

    def set_usage(self, slot: int, *, used: Mapping[str, int], gpus_held: int, gpus_unassigned: int) -> None:
        """Rewrite the usage columns of `slot`: summed requests, GPUs held by device, GPUs held blind."""
        self.used[:, slot] = 0
        for name, value in used.items():
            column = self.resource_column(name)  # may grow the arrays: index them only after
            self.used[column, slot] = value
        self.free[:, slot] = self.allocatable[:, slot] - self.used[:, slot]
        self._refresh_utilisation(slot)
        free = int(self.gpu_healthy[slot]) & ~gpus_held
        self.gpu_free[slot] = free
        self.gpu_unassigned[slot] = gpus_unassigned
        self.gpu_free_count[slot] = free.bit_count() - gpus_unassigned
        self._refresh_gpu_set_score(slot)
        self.generation += 1

    def assume(self, slot: int, *, request: Mapping[str, int], gpus: int) -> None:
        """Account a placement in place (no rebuild): `request` more used, GPU mask `gpus` taken."""
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
            free = self.gpu_free.item(slot) & ~gpus
            self.gpu_free[slot] = free
            self.gpu_free_count[slot] = free.bit_count() - self.gpu_unassigned.item(slot)
            self._refresh_gpu_set_score(slot)
        self.generation += 1

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
