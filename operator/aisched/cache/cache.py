"""`Cache`: nodes and the pods that use them, with assume/forget for placements not yet bound.

The cache is the one book of what pods hold: every change to a pod's usage (set, remove, assume,
forget) is told to its listeners as one delta (the old usage, the new one), so the quota ledger
and the gauges follow from the same path that makes the snapshot, never from a second count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from aisched.cache.devices import NodeDevices
from aisched.topology import resources
from aisched.topology.node import NodeInfo
from aisched.topology.snapshot import Snapshot

__all__ = ["Cache", "PodDelta", "PodUsage"]


@dataclass(frozen=True, slots=True)
class PodUsage:
    """What one pod takes from its node: its requests, and its GPUs by index or by UUID if known.

    A pod sharing a GPU takes `gpu_milli` and `gpu_memory` of the one GPU that `gpu_mask` or
    `gpu_uuids` names; a MIG pod takes an instance `mig` = (profile, first memory slot) there.
    When that GPU is unknown (a pod bound by another scheduler), the share is charged to the GPU
    aisched would have chosen, so it is not given twice.
    """

    key: str
    node: str
    requests: Mapping[str, int]
    gpu_mask: int | None = None
    gpu_uuids: tuple[str, ...] = ()
    assumed: bool = False
    gpu_milli: int = 0
    gpu_memory: int = 0
    mig: tuple[str, int | None] | None = None
    # Who holds it, for quota and preemption: the gang it belongs to (its own key when alone),
    # the tenant it names (else its namespace decides), its priority, whether it may be evicted,
    # and when it started (the scheduler's clock).
    gang: str = ""
    tenant: str | None = None
    priority: int = 0
    preemptible: bool = True
    started: float = 0.0
    # How long it may run (`PodInfo.runtime_limit`) and its job class, to estimate when it ends.
    runtime_limit: float | None = None
    job_class: str | None = None

    @property
    def gpus(self) -> int:
        """Whole GPUs the pod holds."""
        return self.requests.get(resources.GPU, 0)

    @property
    def namespace(self) -> str:
        return self.key.partition("/")[0]

    @property
    def mig_profile(self) -> str | None:
        return self.mig[0] if self.mig is not None else None

    @property
    def gang_key(self) -> str:
        return self.gang or self.key

    @property
    def shares_gpu(self) -> bool:
        return self.gpu_milli > 0 or self.gpu_memory > 0


#: A change to what one pod holds: (before, after), None for "nothing" on either side.
PodDelta = Callable[[PodUsage | None, PodUsage | None], None]


@dataclass
class _Node:
    info: NodeInfo | None = None
    pods: dict[str, PodUsage] = field(default_factory=dict)


class Cache:
    """Nodes by name, each with the pods on it; the one source of truth a snapshot is made from."""

    def __init__(self) -> None:
        self._nodes: dict[str, _Node] = {}
        self._pods: dict[str, PodUsage] = {}
        self._gangs: dict[str, dict[str, PodUsage]] = {}
        self._static_dirty: set[str] = set()
        self._usage_dirty: set[str] = set()
        self._removed: set[str] = set()
        self._snapshot: Snapshot | None = None
        self._listeners: list[PodDelta] = []
        self._allocatable: dict[str, int] = {}
        self._gpu_nodes: dict[str | None, dict[int, int]] = {}  # GPU model -> GPU count -> nodes
        #: Whole GPUs held by every pod accounted (bound or assumed).
        self.gpus_held = 0
        #: Bumped by every pod change, so a reader can tell its view of the pods is current.
        self.version = 0

    def subscribe(self, listener: PodDelta) -> Callable[[], None]:
        """Tell `listener` of every pod accounted now (as added: `(None, usage)`) and of every change
        from then on, so a listener's view never depends on when it joined; returns the unsubscribe."""
        for usage in self._pods.values():
            listener(None, usage)
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- nodes -------------------------------------------------------------------------

    def set_node(self, info: NodeInfo) -> None:
        """Add or replace a node's static description."""
        entry = self._nodes.setdefault(info.name, _Node())
        if entry.info is not None:
            self._add_allocatable(entry.info, -1)
        self._add_allocatable(info, +1)
        entry.info = info
        self._removed.discard(info.name)
        self._static_dirty.add(info.name)

    def remove_node(self, name: str) -> None:
        entry = self._nodes.get(name)
        if entry is None or entry.info is None:
            return
        self._add_allocatable(entry.info, -1)
        entry.info = None
        if not entry.pods:
            del self._nodes[name]
        self._removed.add(name)
        self._static_dirty.discard(name)
        self._usage_dirty.discard(name)

    def node(self, name: str) -> NodeInfo | None:
        entry = self._nodes.get(name)
        return entry.info if entry is not None else None

    def nodes(self) -> Iterator[NodeInfo]:
        """Every node known (not the names only pods still on a deleted node give)."""
        return iter([entry.info for entry in self._nodes.values() if entry.info is not None])

    @property
    def node_count(self) -> int:
        return sum(1 for e in self._nodes.values() if e.info is not None)

    def allocatable_total(self) -> dict[str, int]:
        """Every node's allocatable resources summed (snapshot units): the cluster's capacity."""
        return {name: value for name, value in self._allocatable.items() if value}

    def gpu_nodes(self, models: Iterable[str] | None = None) -> tuple[int, int]:
        """The GPUs of the nodes with one of `models` (None: any node): all of them, and the most
        one node has."""
        wanted = set(self._gpu_nodes) if models is None else set(models)
        total = largest = 0
        for model in wanted:
            for count, nodes in self._gpu_nodes.get(model, {}).items():
                total += count * nodes
                largest = max(largest, count)
        return total, largest

    def _add_allocatable(self, info: NodeInfo, sign: int) -> None:
        for name, value in info.allocatable.items():
            self._allocatable[name] = self._allocatable.get(name, 0) + sign * value
        gpus = info.allocatable.get(resources.GPU, 0)
        if gpus > 0:
            by_count = self._gpu_nodes.setdefault(info.gpu_model, {})
            by_count[gpus] = by_count.get(gpus, 0) + sign
            if not by_count[gpus]:
                del by_count[gpus]

    # -- pods --------------------------------------------------------------------------

    def set_pod(self, usage: PodUsage) -> None:
        """Account a pod bound to (or assumed on) `usage.node`, replacing what was known of it."""
        key, node = usage.key, usage.node
        old = self._unlink(key) if key in self._pods else None
        self._pods[key] = usage
        self._nodes.setdefault(node, _Node()).pods[key] = usage
        self._gangs.setdefault(usage.gang or key, {})[key] = usage
        self._usage_dirty.add(node)
        self._changed(old, usage)

    def remove_pod(self, key: str) -> bool:
        """Stop accounting pod `key`; whether it was accounted."""
        old = self._unlink(key)
        if old is None:
            return False
        self._changed(old, None)
        return True

    def _unlink(self, key: str) -> PodUsage | None:
        old = self._pods.pop(key, None)
        if old is None:
            return None
        entry = self._nodes.get(old.node)
        if entry is not None:
            entry.pods.pop(key, None)
            if entry.info is None and not entry.pods:
                del self._nodes[old.node]
            self._usage_dirty.add(old.node)
        members = self._gangs.get(old.gang_key)
        if members is not None:
            members.pop(key, None)
            if not members:
                del self._gangs[old.gang_key]
        return old

    def _changed(self, old: PodUsage | None, new: PodUsage | None) -> None:
        self.version += 1
        if new is not None:
            self.gpus_held += new.requests.get(resources.GPU, 0)
        if old is not None:
            self.gpus_held -= old.requests.get(resources.GPU, 0)
        for listener in self._listeners:
            listener(old, new)

    def pod(self, key: str) -> PodUsage | None:
        return self._pods.get(key)

    def gang(self, key: str) -> Mapping[str, PodUsage]:
        """The accounted members of gang `key` (bound or assumed), by pod key."""
        return self._gangs.get(key, {})

    def pods(self) -> Iterator[PodUsage]:
        """Every pod accounted, bound or assumed."""
        return iter(list(self._pods.values()))

    def pods_on(self, node: str) -> list[PodUsage]:
        """The pods accounted on `node` (also after the node itself is gone)."""
        entry = self._nodes.get(node)
        return list(entry.pods.values()) if entry is not None else []

    def gangs(self) -> Iterator[tuple[str, Mapping[str, PodUsage]]]:
        """Every gang with a member accounted, and those members."""
        return iter(self._gangs.items())

    def assume(self, placed: Iterable[tuple[PodUsage, int]]) -> None:
        """Account pods placed but not yet bound, so later cycles see their resources taken.

        `placed` holds each pod's usage (marked assumed) with the snapshot slot it was placed in:
        the snapshot this cache last refreshed is updated in place, so the next cycle needs no
        row rewrite for it.
        """
        for given, slot in placed:
            usage = given if given.assumed else replace(given, assumed=True)
            in_place = (
                self._snapshot is not None
                and usage.key not in self._pods
                and usage.node not in self._usage_dirty
                and self._snapshot.slot_of.get(usage.node) == slot
            )
            self.set_pod(usage)
            if in_place and self._snapshot is not None:
                self._assume_in_place(self._snapshot, slot, usage)

    def _assume_in_place(self, snapshot: Snapshot, slot: int, usage: PodUsage) -> None:
        mig_slots = 0
        if usage.mig is not None:
            profile = snapshot.mig_profile(slot, usage.mig[0])
            start = usage.mig[1]
            if profile is None or start is None or not usage.gpu_mask:
                return  # not placeable in place: the node's row is rewritten at the next refresh
            mig_slots = profile.slots_at(start)
        elif usage.shares_gpu and not usage.gpu_mask:
            return
        self._usage_dirty.discard(usage.node)
        snapshot.assume(
            slot,
            request=usage.requests,
            gpus=usage.gpu_mask or 0,
            gpu_milli=usage.gpu_milli,
            gpu_memory=usage.gpu_memory,
            mig_slots=mig_slots,
        )

    def forget(self, keys: Iterable[str]) -> list[str]:
        """Drop assumed pods whose binding failed; pods confirmed bound in the meantime stay.
        Returns the keys dropped."""
        dropped = []
        for key in keys:
            usage = self._pods.get(key)
            if usage is not None and usage.assumed:
                self.remove_pod(key)
                dropped.append(key)
        return dropped

    def assumed(self) -> list[str]:
        return [key for key, usage in self._pods.items() if usage.assumed]

    # -- snapshots ---------------------------------------------------------------------

    def update_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """Bring `snapshot` up to date, copying only what changed since it was last updated here.

        A snapshot this cache has not filled before is filled from scratch.
        """
        if snapshot is not self._snapshot:
            self._snapshot = snapshot
            for name in list(snapshot.slot_of):
                snapshot.remove_node(name)
            self._removed.clear()
            self._static_dirty = {name for name, e in self._nodes.items() if e.info is not None}
            self._usage_dirty = set(self._static_dirty)
        for name in self._removed:
            if name in snapshot.slot_of:
                snapshot.remove_node(name)
        self._removed.clear()
        # Sorted, so nodes get the same slots in every run (slot order breaks score ties).
        for name in sorted(self._static_dirty):
            info = self._nodes[name].info
            if info is None:
                continue
            slot = snapshot.slot_of.get(name)
            if slot is None:
                snapshot.add_node(info)
            else:
                snapshot.set_node(slot, info)
            self._usage_dirty.add(name)
        self._static_dirty.clear()
        for name in self._usage_dirty:
            entry = self._nodes.get(name)
            slot = snapshot.slot_of.get(name)
            if entry is None or entry.info is None or slot is None:
                continue
            self._write_usage(snapshot, slot, entry)
        self._usage_dirty.clear()
        return snapshot

    def write_without(self, snapshot: Snapshot, keys: Iterable[str]) -> None:
        """Rewrite, in `snapshot` (a copy of the one this cache keeps current), the rows of the
        nodes the pods `keys` are on as if those pods were gone: a what-if, the cache untouched."""
        gone = set(keys)
        nodes = {usage.node for usage in (self._pods.get(k) for k in gone) if usage is not None}
        for name in nodes:
            entry = self._nodes.get(name)
            slot = snapshot.slot_of.get(name)
            if entry is not None and entry.info is not None and slot is not None:
                self._write_usage(snapshot, slot, entry, without=gone)

    @staticmethod
    def _write_usage(snapshot: Snapshot, slot: int, entry: _Node, *, without: set[str] | None = None) -> None:
        used: dict[str, int] = {}
        held = 0
        unassigned = 0
        devices = NodeDevices(snapshot, slot)
        for usage in entry.pods.values():
            if without and usage.key in without:
                continue
            for name, value in usage.requests.items():
                used[name] = used.get(name, 0) + value
            if usage.shares_gpu or usage.mig is not None:
                devices.add(usage)
            elif usage.gpu_mask is not None:
                held |= usage.gpu_mask
            elif usage.gpu_uuids and all(u in devices.index_of for u in usage.gpu_uuids):
                for uuid in usage.gpu_uuids:
                    held |= 1 << devices.index_of[uuid]
            else:
                unassigned += usage.gpus
        shared, mig_held = devices.settle(snapshot, slot, used=used, held=held, unassigned=unassigned)
        snapshot.set_usage(
            slot, used=used, gpus_held=held, gpus_unassigned=unassigned, shared=shared, mig_held=mig_held
        )
