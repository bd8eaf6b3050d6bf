"""The devices the plugin serves, from the agent's view of the node. Pure: no I/O, no gRPC.

The agent's `GPUNodeTopologyStatus` (NVML discovery with the HealthMonitor's verdicts applied) is
the one book; this module reads it as the kubelet needs it: per resource, device IDs with health
and NUMA node, and how a device is named to the container runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from aisched.api import keys
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.api.objects import decimal

__all__ = [
    "CDI_KIND",
    "HEALTHY",
    "UNHEALTHY",
    "Device",
    "Inventory",
    "inventory",
]

HEALTHY: Final = "Healthy"
UNHEALTHY: Final = "Unhealthy"
#: The CDI kind NVIDIA's container toolkit generates specs for (`nvidia-ctk cdi generate`).
CDI_KIND: Final = "nvidia.com/gpu"

Health = Literal["Healthy", "Unhealthy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """One device as the kubelet sees it: its ID (the GPU's UUID), health and NUMA node."""

    id: str
    index: int
    health: Health
    reason: str | None = None
    numa_node: int | None = None

    @property
    def healthy(self) -> bool:
        return self.health == HEALTHY

    @property
    def cdi_name(self) -> str:
        """The fully qualified CDI device name (`nvidia.com/gpu=GPU-…`)."""
        return f"{CDI_KIND}={self.id}"


@dataclass(frozen=True, slots=True)
class Inventory:
    """The node's devices of one resource, in index order; looked up by ID or by index."""

    resource: str
    devices: tuple[Device, ...] = ()

    def by_id(self) -> Mapping[str, Device]:
        return {d.id: d for d in self.devices}

    def resolve(self, names: Iterable[str]) -> tuple[list[Device], list[str]]:
        """The devices `names` name (a UUID, or an index when the node published none), and the
        names that match no device of this node."""
        found: list[Device] = []
        unknown: list[str] = []
        ids = self.by_id()
        indices = {d.index: d for d in self.devices}
        for name in names:
            device = ids.get(name)
            if device is None and (index := decimal(name)) is not None:
                device = indices.get(index)
            if device is None:
                unknown.append(name)
            else:
                found.append(device)
        return found, unknown


def inventory(status: GPUNodeTopologyStatus | None) -> Inventory:
    """The whole GPUs (`nvidia.com/gpu`) of the node, with the agent's health verdicts.

    A GPU in MIG mode is left out: its memory and compute belong to its MIG instances, and handing
    the whole GPU to a container would let it see none of them (or all, with the right driver
    capabilities). A GPU discovery could not query keeps its placeholder ID (`unknown-<index>`) and
    is listed Unhealthy, so that the kubelet's capacity says a GPU is there but not usable.
    """
    if status is None:
        return Inventory(keys.GPU_RESOURCE)
    devices = tuple(
        Device(
            id=gpu.uuid,
            index=gpu.index,
            health=HEALTHY if gpu.health == "Healthy" else UNHEALTHY,
            reason=gpu.health_reason,
            numa_node=gpu.numa_node,
        )
        for gpu in sorted(status.gpus, key=lambda g: g.index)
        if gpu.mig_mode != "Enabled"
    )
    return Inventory(keys.GPU_RESOURCE, devices)
