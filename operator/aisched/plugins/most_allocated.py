"""MostAllocated: prefer the fullest nodes that still fit (bin packing; default for GPUs).

Packing GPU pods onto partly used nodes keeps whole nodes free for the large gangs that need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.cycle_state import CycleState
from aisched.framework.handle import Handle
from aisched.framework.interface import Floats
from aisched.framework.registry import parse_args
from aisched.framework.status import Status
from aisched.framework.types import PodInfo
from aisched.plugins._allocation import AllocationArgs, requested_share, utilisation_after
from aisched.topology import resources
from aisched.topology.snapshot import Snapshot

NAME: Final = "MostAllocated"

_SKIP: Final = Status.skip(plugin=NAME)


#: MostAllocated over GPUs alone, under its own name: the default profile's GPU packing.
GPU_BIN_PACKING: Final = "GPUBinPacking"


class MostAllocated:
    def __init__(self, weights: Mapping[str, float], *, name: str = NAME) -> None:
        self.name = name
        self.weights = weights

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return Status.success() if requested_share(pod, self.weights) else _SKIP

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        return 100.0 * utilisation_after(pod, snapshot, self.weights)


def new(args: Mapping[str, Any], handle: Handle, *, name: str = NAME) -> MostAllocated:
    parsed = parse_args(name, AllocationArgs, args)
    if parsed.gpu_pods:
        raise ValueError(f"plugin {name}: invalid args: gpuPods: only LeastAllocated takes it")
    return MostAllocated(parsed.weights({resources.GPU: 1}), name=name)


def new_gpu_bin_packing(args: Mapping[str, Any], handle: Handle) -> MostAllocated:
    return new(args, handle, name=GPU_BIN_PACKING)
