"""Nodes as the scheduler sees them: a Node object and its GPUNodeTopology status become a
`NodeInfo`, and a change between two views becomes the cluster events it amounts to.

Pure: no I/O, no clock. Most Node updates (heartbeats, image lists, addresses) change nothing the
scheduler reads: they amount to no event, so the cache is left alone and no gang wakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.api.objects import ObjectView
from aisched.framework.events import ClusterEvent
from aisched.topology import resources
from aisched.topology.gpu import GPUTopology
from aisched.topology.node import DEFAULT_DOMAINS, DomainLabels, NodeInfo, Taint, TaintEffect

__all__ = ["NodeView", "node_events", "node_info", "ready_condition"]

_EFFECTS: Final[dict[str, TaintEffect]] = {
    "NoSchedule": "NoSchedule",
    "PreferNoSchedule": "PreferNoSchedule",
    "NoExecute": "NoExecute",
}


class NodeView:
    """What the scheduler reads of one node: its Node object's fields and its topology status."""

    def __init__(
        self,
        node: Mapping[str, Any],
        topology: GPUNodeTopologyStatus | None,
        *,
        cooling: bool = False,
        domains: DomainLabels = DEFAULT_DOMAINS,
    ) -> None:
        view = ObjectView(node)
        self.name = view.name
        self.labels = dict(view.labels)
        self.taints = tuple(_taint(t) for t in view.spec.get("taints") or ())
        self.allocatable = resources.amounts(view.status.get("allocatable") or {})
        self.ready = _ready(view.status)
        self.unschedulable = bool(view.spec.get("unschedulable"))
        self.topology = topology
        self.cooling = cooling
        self.domains = domains

    def info(self) -> NodeInfo:
        return NodeInfo(
            name=self.name,
            labels=self.labels,
            taints=self.taints,
            allocatable=self.allocatable,
            ready=self.ready,
            unschedulable=self.unschedulable,
            cooling=self.cooling,
            domains=self.domains,
            gpus=GPUTopology.from_status(self.topology) if self.topology is not None else None,
        )


def node_info(node: Mapping[str, Any], topology: GPUNodeTopologyStatus | None) -> NodeInfo:
    """The scheduling view of `node`; GPUs come from `topology` when the node published one."""
    return NodeView(node, topology).info()


def node_events(old: NodeView | None, new: NodeView) -> set[ClusterEvent]:
    """The cluster events going from `old` (None: the node is new) to `new`; empty: nothing the
    scheduler reads changed."""
    if old is None:
        return {ClusterEvent.NODE_ADDED}
    events = set()
    if old.labels != new.labels:
        events.add(ClusterEvent.NODE_LABELS_CHANGED)
    if old.taints != new.taints:
        events.add(ClusterEvent.NODE_TAINTS_CHANGED)
    if (old.ready, old.unschedulable, old.cooling) != (new.ready, new.unschedulable, new.cooling):
        events.add(ClusterEvent.NODE_CONDITION_CHANGED)
    if old.allocatable != new.allocatable:
        events.add(ClusterEvent.NODE_ALLOCATABLE_CHANGED)
    if old.topology != new.topology:
        events.add(ClusterEvent.NODE_GPUS_CHANGED)
    return events


def _taint(raw: Mapping[str, Any]) -> Taint:
    # An unknown effect is treated as the strictest that still lets running pods stay.
    effect = _EFFECTS.get(str(raw.get("effect") or ""), "NoSchedule")
    return Taint(key=str(raw.get("key") or ""), value=str(raw.get("value") or ""), effect=effect)


def ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The node's Ready condition, if it reports one."""
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def _ready(status: Mapping[str, Any]) -> bool:
    """Whether the Ready condition is True; a node that reports none is not ready (kubelet: Unknown)."""
    condition = ready_condition(status)
    return condition is not None and condition.get("status") == "True"
