"""GPUSharing: pods that take part of one GPU (milli, memory) or a MIG instance.

Filter: a sharing pod needs some healthy GPU, not in MIG mode, with its milli (and memory) free;
a MIG pod needs a MIG-enabled GPU with a free aligned place for its profile on the node's GPU
model. Score: the tightest fit wins, so shares and instances pack onto GPUs already partly used
and whole GPUs stay free for the pods that need them. Both read the snapshot's per-GPU columns,
vectorised over all nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import CAPACITY_FREED, ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import FilterResult, Floats, Reasons
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.status import Status
from aisched.framework.types import PodInfo
from aisched.topology.sharing import mig_fits, mig_starts, share_fits
from aisched.topology.snapshot import MILLI_PER_GPU, Snapshot

NAME: Final = "GPUSharing"
NO_CAPACITY: Final = "Insufficient shared GPU capacity"
NO_MEMORY: Final = "Insufficient shared GPU memory"
NO_MIG_GPU: Final = "node(s) had no MIG-enabled GPU"

_SKIP: Final = Status.skip(plugin=NAME)
_MIG_SLOTS: Final = 8


def no_mig_slice(profile: str) -> str:
    return f"no free MIG slice for {profile}"


def mig_not_offered(profile: str) -> str:
    return f"GPU model does not offer MIG profile {profile}"


class GPUSharing:
    name = NAME
    static = False

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return CAPACITY_FREED

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        if pod.mig_profile is not None:
            return _mig_filter(pod.mig_profile, snapshot)
        if not pod.shares_gpu:
            return None
        milli, memory = pod.gpu_milli, pod.gpu_memory
        mask = np.asarray(share_fits(snapshot, milli=milli, memory=memory).any(axis=1), dtype=np.bool_)

        def explain() -> Reasons:
            compute = np.asarray(share_fits(snapshot, milli=milli, memory=0).any(axis=1), dtype=np.bool_)
            return [(NO_CAPACITY, ~compute), (NO_MEMORY, compute & ~mask)]

        return FilterResult(mask, explain)

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return Status.success() if pod.shares_gpu or pod.mig_profile is not None else _SKIP

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        """100 for a node whose best GPU fits the pod exactly, less the more that GPU has left over."""
        n, w = snapshot.size, snapshot.gpu_width
        if pod.mig_profile is not None:
            table = snapshot.mig_tables.table(pod.mig_profile)
            models = snapshot.gpu_model[:n]
            free = snapshot.mig_free[:n, :w]
            fits = mig_starts(snapshot, pod.mig_profile) >= 0
            left = np.where(fits, np.bitwise_count(free), _MIG_SLOTS + 1).min(axis=1, initial=_MIG_SLOTS + 1)
            spare = left.astype(np.float64) - table.size[models]
            return _percent(1.0 - spare / _MIG_SLOTS)
        fits = share_fits(snapshot, milli=pod.gpu_milli, memory=pod.gpu_memory)
        if pod.gpu_milli:
            free = snapshot.gpu_milli_free[:n, :w]
            spare = np.where(fits, free, MILLI_PER_GPU).min(axis=1, initial=MILLI_PER_GPU) - pod.gpu_milli
            return _percent(1.0 - spare / MILLI_PER_GPU)
        memory_free = snapshot.gpu_memory_free[:n, :w]
        total = np.maximum(snapshot.gpu_memory[:n, :w], 1)
        spare_share = np.where(fits, (memory_free - pod.gpu_memory) / total, 1.0).min(axis=1, initial=1.0)
        return _percent(1.0 - spare_share)


def _percent(share: Floats) -> Floats:
    return np.asarray(np.clip(100.0 * share, 0.0, 100.0), dtype=np.float64)


def _mig_filter(profile: str, snapshot: Snapshot) -> FilterResult:
    n = snapshot.size
    table = snapshot.mig_tables.table(profile)
    models = snapshot.gpu_model[:n]
    mask = mig_fits(snapshot, profile)

    def explain() -> Reasons:
        has_mig = snapshot.gpu_mig[:n] != 0
        offered = table.size[models] > 0
        return [
            (NO_MIG_GPU, ~has_mig),
            (mig_not_offered(profile), has_mig & ~offered),
            (no_mig_slice(profile), has_mig & offered & ~mask),
        ]

    return FilterResult(mask, explain)


def new(args: Mapping[str, Any], handle: Handle) -> GPUSharing:
    parse_args(NAME, NoArgs, args)
    return GPUSharing()
