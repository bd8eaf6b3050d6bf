"""Simulated clusters: node groups of known machine types, turned into Node and GPUNodeTopology objects.

A cluster file (examples/clusters/*.yaml) lists node groups; each node's GPUs come from the same
machine templates the node agent's fake NVML uses, and its GPUNodeTopology status is what the
agent's discovery reports on that fake, so there is one definition of each machine type.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aisched.agent.discovery import discover, nvml_session
from aisched.agent.fake_nvml import FakeNvml
from aisched.api import keys
from aisched.api.gpunodetopology import GPUNodeTopology
from aisched.api.meta import API_VERSION
from aisched.api.objects import rfc3339
from aisched.topology.machines import MACHINES

__all__ = ["ClusterSpec", "NodeGroup", "load_cluster", "node_objects"]

KUBELET_VERSION: Final = "v1.32.0-aisched"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Taint(_Model):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class NodeGroup(_Model):
    """`count` identical nodes of one machine type, in racks and a block."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    count: Annotated[int, Field(ge=1, le=10_000)]
    machine: str = "dgx-h100"
    #: Overrides of the machine type's figures (a machine without GPUs: gpus 0).
    gpus: Annotated[int, Field(ge=0, le=8)] | None = None
    cpu: Annotated[int, Field(ge=1)] | None = None
    memory_gib: Annotated[int, Field(ge=1)] | None = Field(default=None, alias="memoryGiB")
    #: A rack for every node of the group, or `nodesPerRack` to number racks within the group.
    rack: str | None = None
    nodes_per_rack: Annotated[int, Field(ge=1)] | None = Field(default=None, alias="nodesPerRack")
    block: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_machine(self) -> NodeGroup:
        if self.machine not in MACHINES:
            raise ValueError(f"machine {self.machine!r} is not one of {', '.join(sorted(MACHINES))}")
        if self.rack and self.nodes_per_rack:
            raise ValueError("give either rack or nodesPerRack, not both")
        return self


class ClusterSpec(_Model):
    """A simulated cluster: its name and node groups."""

    api_version: Literal["emulator.aisched.io/v1alpha1"] = Field(
        default="emulator.aisched.io/v1alpha1", alias="apiVersion"
    )
    kind: Literal["SimulatedCluster"] = "SimulatedCluster"
    metadata: dict[str, Any] = Field(default_factory=dict)
    node_groups: list[NodeGroup] = Field(alias="nodeGroups", min_length=1)
    #: Whether NVIDIA's GPU DRA driver runs: its DeviceClasses exist and every GPU node publishes
    #: a ResourceSlice of its GPUs (`emulator.dra`).
    dra_driver: bool = Field(default=False, alias="draDriver")


def load_cluster(path: Path) -> ClusterSpec:
    return ClusterSpec.model_validate(yaml.safe_load(path.read_text()))


def node_objects(
    cluster: ClusterSpec, *, now: datetime | None = None
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(Node, GPUNodeTopology or None) for every simulated node."""
    now_text = rfc3339(now or datetime.now(UTC))
    out = []
    address = 0
    for group in cluster.node_groups:
        machine = MACHINES[group.machine]
        gpus = machine.gpu_count if group.gpus is None else group.gpus
        for i in range(group.count):
            name = f"{group.name}-{i:03d}"
            address += 1
            rack = group.rack or (
                f"{group.name}-rack-{i // group.nodes_per_rack}" if group.nodes_per_rack else None
            )
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": group.machine,
                **group.labels,
            }
            if rack:
                labels[keys.LABEL_RACK] = rack
            if group.block:
                labels[keys.LABEL_BLOCK] = group.block
            if gpus:
                labels.update(
                    {
                        keys.LABEL_GPU_PRODUCT: machine.gpu_model,
                        keys.LABEL_GPU_COUNT: str(gpus),
                        keys.LABEL_GPU_MEMORY: str(machine.gpu_memory_gib * 1024),
                        "nvidia.com/gpu.present": "true",
                    }
                )
            resources = {
                "cpu": str(group.cpu or machine.cpu),
                "memory": f"{group.memory_gib or machine.memory_gib}Gi",
                "pods": "110",
                keys.GPU_RESOURCE: str(gpus),
                "ephemeral-storage": "1Ti",
            }
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels},
                "spec": {"taints": [t.model_dump() for t in group.taints]} if group.taints else {},
                "status": {
                    "capacity": resources,
                    "allocatable": resources,
                    "conditions": [ready_condition(True, at=now_text)],
                    "addresses": [
                        {"type": "InternalIP", "address": f"10.0.{address // 250}.{address % 250 + 1}"},
                        {"type": "Hostname", "address": name},
                    ],
                    "nodeInfo": {
                        "kubeletVersion": KUBELET_VERSION,
                        "containerRuntimeVersion": "sim://1.0",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                    },
                },
            }
            out.append((node, _topology(name, group.machine) if gpus == machine.gpu_count and gpus else None))
    return out


def with_ready(node: dict[str, Any], ready: bool, reason: str | None = None, *, at: str) -> dict[str, Any]:
    """A copy of the Node object `node` whose Ready condition says `ready` (its others kept)."""
    updated = copy.deepcopy(node)
    status = updated.setdefault("status", {})
    kept = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
    status["conditions"] = [*kept, ready_condition(ready, reason, at=at)]
    return updated


def ready_condition(ready: bool, reason: str | None = None, *, at: str) -> dict[str, Any]:
    """A Node's Ready condition as its kubelet reports it (or stops reporting it)."""
    return {
        "lastHeartbeatTime": at,
        "lastTransitionTime": at,
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": reason or ("KubeletReady" if ready else "NodeStatusUnknown"),
        "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
    }


def _topology(node: str, machine: str) -> dict[str, Any]:
    nvml = FakeNvml.for_machine(machine, node=node)
    with nvml_session(nvml):
        status = discover(nvml).status
    return {
        "apiVersion": API_VERSION,
        "kind": GPUNodeTopology.KIND,
        "metadata": {"name": node},
        "spec": {"nodeName": node},
        "status": status.to_dict(),
    }
