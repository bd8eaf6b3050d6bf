"""NodeUnschedulable: only ready nodes, and not cordoned ones unless the pod tolerates that."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import FilterResult
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.types import PodInfo
from aisched.topology.snapshot import Snapshot

NAME: Final = "NodeUnschedulable"
#: The taint kubectl cordon implies; a pod tolerating it may go to a cordoned node.
UNSCHEDULABLE_TAINT: Final = "node.kubernetes.io/unschedulable"
NOT_READY: Final = "node(s) were not ready"
CORDONED: Final = "node(s) were unschedulable"


class NodeUnschedulable:
    name = NAME
    static = True

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_CONDITION_CHANGED})

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult:
        n = snapshot.size
        ready = snapshot.ready[:n]
        tolerates = any(
            t.tolerates(key=UNSCHEDULABLE_TAINT, value="", effect="NoSchedule") for t in pod.tolerations
        )
        open_ = ready if tolerates else ready & ~snapshot.unschedulable[:n]
        valid = snapshot.valid[:n]
        return FilterResult(
            open_,
            lambda: [(NOT_READY, valid & ~ready), (CORDONED, valid & ready & ~open_)],
        )


def new(args: Mapping[str, Any], handle: Handle) -> NodeUnschedulable:
    parse_args(NAME, NoArgs, args)
    return NodeUnschedulable()
