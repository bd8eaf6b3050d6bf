"""GPUHealth: a GPU pod needs that many free GPUs that are also healthy.

ResourceFit counts `nvidia.com/gpu` as the kubelet does; this plugin looks at the devices: GPUs
the node agent reports unhealthy, or that pods hold by device, are not on offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import CAPACITY_FREED, ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import FilterResult
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.types import PodInfo
from aisched.topology.snapshot import Snapshot

NAME: Final = "GPUHealth"
REASON: Final = "node(s) had too few healthy free GPUs"


class GPUHealth:
    name = NAME
    static = False

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return CAPACITY_FREED  # free GPUs count, not only healthy ones

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        if pod.gpus <= 0:
            return None
        mask = snapshot.gpus_free_count() >= pod.gpus
        return FilterResult.single_reason(mask, REASON)


def new(args: Mapping[str, Any], handle: Handle) -> GPUHealth:
    parse_args(NAME, NoArgs, args)
    return GPUHealth()
