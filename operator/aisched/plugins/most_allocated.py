"""MostAllocated: prefer the fullest nodes that still fit (bin packing; default for GPUs).

Packing GPU pods onto partly used nodes keeps whole nodes free for the large gangs that need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.cycle_state import CycleState
from aisched.framework.interface import Floats
from aisched.framework.status import Status
from aisched.framework.types import PodInfo
from aisched.plugins._allocation import requested_share, resource_weights, utilisation_after
from aisched.topology import resources
from aisched.topology.snapshot import Snapshot

NAME: Final = "MostAllocated"

_SKIP: Final = Status.skip(plugin=NAME)


class MostAllocated:
    name = NAME

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = weights

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return Status.success() if requested_share(pod, self.weights) else _SKIP

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        return 100.0 * utilisation_after(pod, snapshot, self.weights)


def new(args: Mapping[str, Any]) -> MostAllocated:
    return MostAllocated(resource_weights(args, {resources.GPU: 1}))
