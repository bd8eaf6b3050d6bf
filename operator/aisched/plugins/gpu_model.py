"""GPUModel: a pod that names allowed GPU models goes only to nodes with one of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import FilterResult
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.types import PodInfo
from aisched.topology.snapshot import Snapshot

NAME: Final = "GPUModel"
REASON: Final = "GPU model not allowed"


class GPUModel:
    name = NAME
    static = True

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return frozenset(
            {ClusterEvent.NODE_ADDED, ClusterEvent.NODE_LABELS_CHANGED, ClusterEvent.NODE_GPUS_CHANGED}
        )

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        if not pod.gpu_models:
            return None
        ids = [snapshot.models.get(m) for m in pod.gpu_models]
        mask = np.isin(snapshot.gpu_model[: snapshot.size], [i for i in ids if i >= 0])
        return FilterResult.single_reason(mask, REASON)


def new(args: Mapping[str, Any], handle: Handle) -> GPUModel:
    parse_args(NAME, NoArgs, args)
    return GPUModel()
