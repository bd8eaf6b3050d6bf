"""`node_info`: a Node object (and its GPUNodeTopology status, if any) as the scheduler sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.topology import resources
from aisched.topology.gpu import GPUTopology
from aisched.topology.node import NodeInfo, Taint, TaintEffect

__all__ = ["node_info"]

_EFFECTS: Final[dict[str, TaintEffect]] = {
    "NoSchedule": "NoSchedule",
    "PreferNoSchedule": "PreferNoSchedule",
    "NoExecute": "NoExecute",
}


def node_info(node: Mapping[str, Any], topology: GPUNodeTopologyStatus | None) -> NodeInfo:
    """The scheduling view of `node`; GPUs come from `topology` when the node published one."""
    meta: Mapping[str, Any] = node.get("metadata") or {}
    spec: Mapping[str, Any] = node.get("spec") or {}
    status: Mapping[str, Any] = node.get("status") or {}
    return NodeInfo(
        name=meta["name"],
        labels=dict(meta.get("labels") or {}),
        taints=tuple(_taint(t) for t in spec.get("taints") or ()),
        allocatable=resources.amounts(status.get("allocatable") or {}),
        ready=_ready(status),
        unschedulable=bool(spec.get("unschedulable")),
        gpus=GPUTopology.from_status(topology) if topology is not None else None,
    )


def _taint(raw: Mapping[str, Any]) -> Taint:
    # An unknown effect is treated as the strictest that still lets running pods stay.
    effect = _EFFECTS.get(str(raw.get("effect") or ""), "NoSchedule")
    return Taint(key=str(raw.get("key") or ""), value=str(raw.get("value") or ""), effect=effect)


def _ready(status: Mapping[str, Any]) -> bool:
    """Whether the Ready condition is True; a node that reports none is not ready (kubelet: Unknown)."""
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False
