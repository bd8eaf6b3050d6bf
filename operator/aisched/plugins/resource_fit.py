"""ResourceFit: the node has room for the pod's requests (CPU, memory, pods, GPUs, any extended resource)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import CAPACITY_FREED, ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import Bools, FilterResult, Reasons
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.types import PodInfo
from aisched.topology import resources
from aisched.topology.snapshot import Snapshot

NAME: Final = "ResourceFit"


def insufficient(resource: str) -> str:
    return "Too many pods" if resource == resources.PODS else f"Insufficient {resource}"


class ResourceFit:
    name = NAME
    static = False

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return CAPACITY_FREED

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult:
        n = snapshot.size
        wanted = [(name, value) for name, value in pod.requests.items() if value > 0]
        columns = [snapshot.resource_index.get(name, -1) for name, _ in wanted]
        # A resource no node has ever offered fits nowhere.
        mask = np.zeros(n, dtype=np.bool_) if min(columns, default=0) < 0 else _fits(snapshot, pod)

        def explain() -> Reasons:
            out: Reasons = []
            for column, (name, value) in zip(columns, wanted, strict=True):
                short = np.ones(n, dtype=np.bool_) if column < 0 else snapshot.free[column, :n] < value
                out.append((insufficient(name), short))
            return out

        return FilterResult(mask, explain)


_NO_NEED: Final = np.iinfo(np.int64).min


@lru_cache(maxsize=4096)
def _fixed_need(amounts: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """The fixed-column requirement as a column vector (pods repeat a few request shapes)."""
    return np.array([a or _NO_NEED for a in amounts], dtype=np.int64)[:, None]


_FIXED: Final = len(resources.FIXED)


def _fits(snapshot: Snapshot, pod: PodInfo) -> Bools:
    """All requested resources fit. The fixed columns (cpu, memory, pods, GPUs) are compared as
    one contiguous block, an unrequested one against the smallest integer so it always passes
    (its free amount may be negative on an overcommitted node and must not matter)."""
    n = snapshot.size
    need = _fixed_need(tuple(pod.requests.get(name, 0) for name in resources.FIXED))
    mask: Bools = np.asarray((snapshot.free[:_FIXED, :n] >= need).all(axis=0), dtype=np.bool_)
    for name, value in pod.requests.items():
        if value <= 0:
            continue
        column = snapshot.resource_index.get(name, -1)
        if column < 0:
            return np.zeros(n, dtype=np.bool_)
        if column >= _FIXED:
            mask &= snapshot.free[column, :n] >= value
    return mask


def new(args: Mapping[str, Any], handle: Handle) -> ResourceFit:
    parse_args(NAME, NoArgs, args)
    return ResourceFit()
