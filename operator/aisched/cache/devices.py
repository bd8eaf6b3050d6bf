"""Per-GPU usage of one node's sharing and MIG pods, as the cache writes it into the snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aisched.topology.sharing import best_fit_gpu, pick_mig
from aisched.topology.snapshot import Snapshot

if TYPE_CHECKING:
    from aisched.cache.cache import PodUsage

__all__ = ["NodeDevices"]


class NodeDevices:
    """Sums the milli and memory sharing pods take per GPU and the MIG slots pods hold.

    Pods whose GPU or MIG slots are unknown (bound by someone else, or annotated by an older
    binder) are charged, in key order, where aisched would have placed them, so their share is
    never offered twice.
    """

    def __init__(self, snapshot: Snapshot, slot: int) -> None:
        topology = snapshot.topologies[slot]
        self.index_of = {g.uuid: g.index for g in topology.gpus} if topology is not None else {}
        self._snapshot = snapshot
        self._slot = slot
        self.shared: dict[int, tuple[int, int]] = {}
        self.mig_held: dict[int, int] = {}
        self._unknown: list[PodUsage] = []

    def _index(self, usage: PodUsage) -> int | None:
        if usage.gpu_mask:
            return usage.gpu_mask.bit_length() - 1
        if len(usage.gpu_uuids) == 1:
            return self.index_of.get(usage.gpu_uuids[0])
        return None

    def add(self, usage: PodUsage) -> None:
        """Account a pod that shares a GPU or holds a MIG instance."""
        index = self._index(usage)
        if usage.mig is not None:
            profile = self._snapshot.mig_profile(self._slot, usage.mig[0])
            start = usage.mig[1]
            if profile is None:
                return  # a profile the node's GPUs do not have: nothing of ours to hold
            if index is None or start is None:
                self._unknown.append(usage)
                return
            self.mig_held[index] = self.mig_held.get(index, 0) | profile.slots_at(start)
            return
        if index is None:
            self._unknown.append(usage)
            return
        milli, memory = self.shared.get(index, (0, 0))
        self.shared[index] = (milli + usage.gpu_milli, memory + usage.gpu_memory)

    def settle(
        self, snapshot: Snapshot, slot: int, *, used: dict[str, int], held: int, unassigned: int
    ) -> tuple[dict[int, tuple[int, int]], dict[int, int]]:
        """The per-GPU usage, with the pods of unknown devices charged where they would go."""
        if not self._unknown:
            return self.shared, self.mig_held
        snapshot.set_usage(
            slot,
            used=used,
            gpus_held=held,
            gpus_unassigned=unassigned,
            shared=self.shared,
            mig_held=self.mig_held,
        )
        for usage in sorted(self._unknown, key=lambda u: u.key):
            if usage.mig is not None:
                choice = pick_mig(snapshot, slot, usage.mig[0])
                if choice is not None:
                    self.mig_held[choice.gpu] = self.mig_held.get(choice.gpu, 0) | choice.slots
                    snapshot.mig_free[slot, choice.gpu] &= ~choice.slots
                continue
            index = best_fit_gpu(snapshot, slot, milli=usage.gpu_milli, memory=usage.gpu_memory)
            if index is None:
                continue  # over-committed by whoever bound it: nothing left to charge
            milli, memory = self.shared.get(index, (0, 0))
            self.shared[index] = (milli + usage.gpu_milli, memory + usage.gpu_memory)
            snapshot.gpu_milli_free[slot, index] -= usage.gpu_milli
            snapshot.gpu_memory_free[slot, index] -= usage.gpu_memory
        return self.shared, self.mig_held
