"""LeastAllocated: prefer the nodes with the most room left (spreads load; default for CPU and memory).

By default it scores only pods without GPUs (whole, shared or MIG): GPU pods are placed by GPU
packing and topology, and spreading their CPU would scatter GPU jobs across half-used nodes
(`gpuPods: true` turns it on).
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

NAME: Final = "LeastAllocated"

_SKIP: Final = Status.skip(plugin=NAME)


class LeastAllocated:
    name = NAME

    def __init__(self, weights: Mapping[str, float], *, gpu_pods: bool = False) -> None:
        self.weights = weights
        self.gpu_pods = gpu_pods

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        if (pod.uses_gpu and not self.gpu_pods) or not requested_share(pod, self.weights):
            return _SKIP
        return Status.success()

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        return 100.0 * (1.0 - utilisation_after(pod, snapshot, self.weights))


def new(args: Mapping[str, Any], handle: Handle) -> LeastAllocated:
    parsed = parse_args(NAME, AllocationArgs, args)
    return LeastAllocated(parsed.weights({resources.CPU: 1, resources.MEMORY: 1}), gpu_pods=parsed.gpu_pods)
