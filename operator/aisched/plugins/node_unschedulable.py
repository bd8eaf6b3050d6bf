"""NodeUnschedulable: only ready nodes, not cooling down after a fault (see
`controllers.scheduling.faults`; no toleration lifts that), and not cordoned ones unless the pod
tolerates that."""

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
COOLING: Final = "node(s) were cooling down after a failure"


class NodeUnschedulable:
    name = NAME
    static = True

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_CONDITION_CHANGED})

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult:
        n = snapshot.size
        ready = snapshot.ready[:n]
        cooling = snapshot.cooling[:n]
        tolerates = any(
            t.tolerates(key=UNSCHEDULABLE_TAINT, value="", effect="NoSchedule") for t in pod.tolerations
        )
        usable = ready & ~cooling
        open_ = usable if tolerates else usable & ~snapshot.unschedulable[:n]
        valid = snapshot.valid[:n]
        return FilterResult(
            open_,
            lambda: [
                (NOT_READY, valid & ~ready),
                (COOLING, valid & ready & cooling),
                (CORDONED, valid & usable & ~open_),
            ],
        )


def new(args: Mapping[str, Any], handle: Handle) -> NodeUnschedulable:
    parse_args(NAME, NoArgs, args)
    return NodeUnschedulable()
