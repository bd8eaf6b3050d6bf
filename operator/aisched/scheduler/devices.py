"""Which devices of its node a placed pod gets.

- Whole GPUs: the best-connected set of fully free GPUs, a table look-up (`topology.gpuset`).
- A share of one GPU: the GPU the profile's `GPUPicker` names, else the best fit (the least free
  milli that still fits, lowest index on ties).
- A MIG instance: the partly used GPU and start slot that keep large profiles placeable
  (`topology.sharing.pick_mig`).

While a gang is being placed, `DeviceLedger` takes each member's devices in the snapshot's
per-GPU columns, so the next member (and a picker) sees them taken, and gives them back once the
gang is placed or abandoned: the cache's assume then accounts the placement for good.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from aisched.framework.interface import Bools, GPUPicker
from aisched.framework.types import PodInfo, PodPlacement
from aisched.topology.gpuset import best_gpu_set
from aisched.topology.sharing import (
    MigChoice,
    best_fit_gpu,
    mig_fits,
    pick_mig,
    share_fits,
    share_fits_gpu,
)
from aisched.topology.snapshot import Int32s, Int64s, Snapshot

__all__ = ["DeviceLedger", "Devices", "choose_devices", "choose_gpus", "device_fit", "unfit_device"]


class Devices(NamedTuple):
    """The devices one pod gets on its node: GPUs `mask`, with a share or a MIG instance of the one GPU.

    A named tuple: one is made per placed pod, on the hot path.
    """

    mask: int = 0
    milli: int = 0
    memory: int = 0
    mig: MigChoice | None = None

    def placement(self, snapshot: Snapshot, slot: int, pod: PodInfo) -> PodPlacement:
        topology = snapshot.topologies[slot]
        mig = self.mig
        return PodPlacement(
            pod=pod,
            node=snapshot.infos[slot].name,  # type: ignore[union-attr]
            slot=slot,
            gpu_mask=self.mask,
            gpu_ids=tuple(topology.uuids(self.mask)) if topology is not None and self.mask else (),
            gpu_milli=self.milli,
            gpu_memory=self.memory,
            mig=(mig.gpu, mig.start) if mig is not None else None,
            mig_slots=mig.slots if mig is not None else 0,
        )


_NONE = Devices()


def choose_gpus(snapshot: Snapshot, slot: int, free: int, gpus: int) -> int:
    """The best-connected `gpus` GPUs among `free` on node `slot` (a bit mask; 0 for none)."""
    if gpus <= 0:
        return 0
    table = int(snapshot.gpu_table[slot])
    if table >= 0:
        tables = snapshot.gpu_tables
        return int(tables.best[tables.index(table, free, gpus)]) if free.bit_count() >= gpus else 0
    topology = snapshot.topologies[slot]
    return best_gpu_set(topology, free, gpus) if topology is not None else 0


def choose_devices(
    snapshot: Snapshot, slot: int, pod: PodInfo, *, free: int, picker: GPUPicker | None
) -> Devices | None:
    """`pod`'s devices on node `slot`, whole GPUs taken from `free`; None if the node lacks them."""
    gpus = pod.gpus  # whole GPUs first: the common case, and never combined with a share or MIG
    if gpus:
        mask = choose_gpus(snapshot, slot, free, gpus)
        return Devices(mask) if mask.bit_count() == gpus else None
    if pod.mig_profile is not None:
        choice = pick_mig(snapshot, slot, pod.mig_profile)
        return Devices(mask=1 << choice.gpu, mig=choice) if choice is not None else None
    if pod.shares_gpu:
        milli, memory = pod.gpu_milli, pod.gpu_memory
        index = picker.pick_gpu(pod, snapshot, slot) if picker is not None else None
        if index is None or not share_fits_gpu(snapshot, slot, index, milli=milli, memory=memory):
            index = best_fit_gpu(snapshot, slot, milli=milli, memory=memory)
        return Devices(mask=1 << index, milli=milli, memory=memory) if index is not None else None
    return _NONE


def device_fit(snapshot: Snapshot, pod: PodInfo) -> Bools:
    """Per node: whether its free devices can take `pod` (whole GPUs, a share, or a MIG instance)."""
    if pod.mig_profile is not None:
        return mig_fits(snapshot, pod.mig_profile)
    if pod.shares_gpu:
        return np.asarray(
            share_fits(snapshot, milli=pod.gpu_milli, memory=pod.gpu_memory).any(axis=1), dtype=np.bool_
        )
    return np.asarray(snapshot.gpus_free_count() >= pod.gpus, dtype=np.bool_)


def unfit_device(pod: PodInfo) -> str:
    """Why no node that passes the filters took `pod`, when its devices were the problem."""
    if pod.mig_profile is not None:
        return f"no node that passes the filters has a free MIG slice for {pod.mig_profile}"
    if pod.shares_gpu:
        memory = f" and {pod.gpu_memory} bytes of memory" if pod.gpu_memory else ""
        return f"no node that passes the filters has a GPU with {pod.gpu_milli} milli{memory} free"
    return f"no node that passes the filters has {pod.gpus} free GPUs"


class DeviceLedger:
    """Devices taken in the snapshot while a gang is placed; `restore` puts every row back.

    Only a gang with sharing or MIG members needs it (`active`): whole GPUs are chosen from the
    placement's own scratch record of free GPUs, and nothing else reads the per-GPU columns.
    """

    def __init__(self, snapshot: Snapshot, *, active: bool = True) -> None:
        self._snapshot = snapshot
        self.active = active
        self._saved: dict[int, tuple[int, Int32s, Int64s, Int32s]] = {}

    def take(self, slot: int, devices: Devices) -> None:
        if not devices.mask or not self.active:
            return
        snapshot = self._snapshot
        if slot not in self._saved:
            self._saved[slot] = (
                int(snapshot.gpu_free[slot]),
                snapshot.gpu_milli_free[slot].copy(),
                snapshot.gpu_memory_free[slot].copy(),
                snapshot.mig_free[slot].copy(),
            )
        mig = devices.mig
        snapshot.take_devices(
            slot,
            gpus=devices.mask,
            gpu_milli=devices.milli,
            gpu_memory=devices.memory,
            mig_slots=mig.slots if mig is not None else 0,
        )
        snapshot.gpu_free[slot] = int(snapshot.gpu_free[slot]) & ~devices.mask

    def restore(self) -> None:
        snapshot = self._snapshot
        for slot, (free, milli, memory, mig) in self._saved.items():
            snapshot.gpu_free[slot] = free
            snapshot.gpu_milli_free[slot] = milli
            snapshot.gpu_memory_free[slot] = memory
            snapshot.mig_free[slot] = mig
        self._saved.clear()
