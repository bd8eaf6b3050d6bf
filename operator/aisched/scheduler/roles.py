"""A gang's roles, and how many pods of a role each node can take: vectorised over all nodes
from the snapshot, and per node against the scratch record of what earlier members of the gang
took (resources and whole GPUs; shares and MIG slots are taken in the snapshot's per-GPU columns
by `scheduler.devices.DeviceLedger` while the gang is placed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from aisched.framework.interface import Floats
from aisched.framework.runtime import Feasibility
from aisched.framework.types import PodInfo
from aisched.topology.sharing import mig_capacity, share_capacity
from aisched.topology.snapshot import Snapshot

__all__ = ["Role", "Scratch", "clique_capacity", "slots"]

Ints = npt.NDArray[np.int64]
_UNLIMITED: Final = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class Role:
    """Pods of one template in a gang, with what the framework said about them."""

    pods: Sequence[PodInfo]
    feasibility: Feasibility
    score: Floats
    #: Per slot, the node's rank among equal scores (lower wins); None: the lowest slot wins.
    tie_break: Ints | None = None

    @property
    def template(self) -> PodInfo:
        return self.pods[0]

    @property
    def gpus(self) -> int:
        return self.template.gpus

    def needs(self, snapshot: Snapshot) -> list[tuple[int, int]]:
        """(column, amount) of every resource the role's pods request."""
        return [
            (snapshot.resource_index[name], value)
            for name, value in self.template.requests.items()
            if value > 0 and name in snapshot.resource_index
        ]


def slots(snapshot: Snapshot, role: Role, *, nvlink: bool = False) -> Ints:
    """How many pods of `role` each node can take (0 where the role is infeasible)."""
    n = snapshot.size
    out = np.full(n, _UNLIMITED, dtype=np.int64)
    for column, value in role.needs(snapshot):
        np.minimum(out, snapshot.free[column, :n] // value, out=out)
    if role.gpus:
        if nvlink:
            per_clique = np.bitwise_count(snapshot.gpu_free[:n, None] & snapshot.gpu_cliques[:n]).max(axis=1)
            np.minimum(out, per_clique.astype(np.int64) // role.gpus, out=out)
        np.minimum(out, snapshot.gpus_free_count() // role.gpus, out=out)
    template = role.template
    if template.mig_profile is not None:
        np.minimum(out, mig_capacity(snapshot, template.mig_profile), out=out)
    elif template.shares_gpu:
        np.minimum(
            out, share_capacity(snapshot, milli=template.gpu_milli, memory=template.gpu_memory), out=out
        )
    out[~role.feasibility.mask] = 0
    np.maximum(out, 0, out=out)
    return np.minimum(out, len(role.pods))


class Scratch:
    """What earlier pods of this gang took, per node: resources and GPUs, not yet in the snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.taken: dict[int, dict[int, int]] = {}
        self.gpu_free: dict[int, int] = {}
        #: At the nvlink level: the NVLink clique the gang uses on each node it touches.
        self.clique: dict[int, int] = {}

    def free_gpus(self, slot: int) -> int:
        return self.gpu_free.get(slot, int(self.snapshot.gpu_free[slot]))

    def take(self, slot: int, needs: list[tuple[int, int]], gpu_mask: int) -> None:
        used = self.taken.setdefault(slot, {})
        for column, value in needs:
            used[column] = used.get(column, 0) + value
        self.gpu_free[slot] = self.free_gpus(slot) & ~gpu_mask

    def slots(self, slot: int, role: Role, needs: list[tuple[int, int]], nvlink: bool) -> int:
        """`role`'s slots on a node that earlier roles already used."""
        snapshot = self.snapshot
        used = self.taken.get(slot, {})
        count = len(role.pods)
        for column, value in needs:
            count = min(count, int(snapshot.free[column, slot] - used.get(column, 0)) // value)
        if role.gpus:
            free = self.free_gpus(slot)
            if nvlink and slot in self.clique:
                usable = (free & self.clique[slot]).bit_count()
            else:
                usable = max(clique_capacity(snapshot, slot, free)) if nvlink else free.bit_count()
            usable -= int(snapshot.gpu_unassigned[slot])
            count = min(count, usable // role.gpus)
        template = role.template  # the snapshot's per-GPU columns hold what earlier members took
        if template.mig_profile is not None:
            count = min(count, int(mig_capacity(snapshot, template.mig_profile, slot=slot)[0]))
        elif template.shares_gpu:
            share = share_capacity(snapshot, milli=template.gpu_milli, memory=template.gpu_memory, slot=slot)
            count = min(count, int(share[0]))
        return max(count, 0)


def clique_capacity(snapshot: Snapshot, slot: int, free: int) -> list[int]:
    return [(free & int(c)).bit_count() for c in snapshot.gpu_cliques[slot] if c] or [0]
