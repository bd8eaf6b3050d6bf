"""GPUTopology: prefer nodes that can give a multi-GPU pod a well-connected GPU set.

The score per node comes from its wiring's table (for its free-GPU mask and the pod's GPU
count), which the snapshot keeps per node as GPUs are taken: 100 when the node can offer as good
a set as a fully free node of its kind, less as the best free set crosses slower links (PCIe,
host bridge, socket).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from aisched.framework.cycle_state import CycleState
from aisched.framework.handle import Handle
from aisched.framework.interface import Floats
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.status import Status
from aisched.framework.types import PodInfo
from aisched.topology.gpuset import UNTABLED_SCORE
from aisched.topology.snapshot import Snapshot

NAME: Final = "GPUTopology"

_SKIP: Final = Status.skip(plugin=NAME)


class GPUTopology:
    name = NAME

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return Status.success() if pod.gpus > 1 else _SKIP

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        n = snapshot.size
        if pod.gpus >= snapshot.gpu_set_score.shape[0]:
            return np.full(n, UNTABLED_SCORE)
        return snapshot.gpu_set_score[pod.gpus, :n].copy()


def new(args: Mapping[str, Any], handle: Handle) -> GPUTopology:
    parse_args(NAME, NoArgs, args)
    return GPUTopology()
