"""GPUNodeTopology: the GPUs of one node and how they are wired (cluster-scoped, one per node).

The node agent writes it from NVML; the scheduler reads it to pick well-connected GPU sets.
The object is named after its node. `status.fingerprint` is a digest of the hardware view, so an
agent restart on unchanged hardware does not rewrite the object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field

from aisched.api.meta import LIST_MAP, Condition, Resource, Rule, SpecModel, StatusModel
from aisched.api.mig import MIG_MEMORY_SLOTS, MIG_PROFILE_NAMES
from aisched.api.quantity import NonNegativeQuantity

__all__ = [
    "GPUDevice",
    "GPUNodeTopology",
    "GPUNodeTopologySpec",
    "GPUNodeTopologyStatus",
    "GPUPair",
    "MigInstance",
    "NVLink",
    "PCIePath",
]

MAX_GPUS: Final = 64

#: How two GPUs reach each other over PCIe, best first, as `nvidia-smi topo -m` names it:
#: PIX one PCIe switch, PXB several switches, PHB through a host bridge, NODE across host bridges
#: inside one NUMA node, SYS across the inter-socket link.
PCIePath = Literal["PIX", "PXB", "PHB", "NODE", "SYS"]


class NVLink(StatusModel):
    """The NVLinks of one GPU to one peer (another GPU, or an NVSwitch)."""

    peer: Annotated[int, Field(ge=-1, lt=MAX_GPUS)] = Field(
        description="Index of the peer GPU, or -1 when the links go to an NVSwitch."
    )
    links: Annotated[int, Field(ge=1, le=64)]
    remote: Literal["GPU", "NVSwitch", "CPU"] = "GPU"


class MigInstance(StatusModel):
    """An existing MIG GPU instance."""

    profile: Literal[MIG_PROFILE_NAMES]  # type: ignore[valid-type]
    start: Annotated[int, Field(ge=0, lt=MIG_MEMORY_SLOTS)]
    size: Annotated[int, Field(ge=1, le=MIG_MEMORY_SLOTS)]
    uuid: str | None = None

    __rules__ = (
        Rule(
            path="size",
            message=f"the instance must end within the GPU's {MIG_MEMORY_SLOTS} memory slots",
            cel=f"self.start + self.size <= {MIG_MEMORY_SLOTS}",
            check=lambda m: m.start + m.size <= MIG_MEMORY_SLOTS,
            detail=lambda m: f"start {m.start} + size {m.size}",
        ),
    )


class GPUDevice(StatusModel):
    """One physical GPU."""

    index: Annotated[int, Field(ge=0, lt=MAX_GPUS)]
    uuid: Annotated[str, Field(min_length=1, max_length=128)]
    model: Annotated[str, Field(min_length=1, max_length=64)]
    memory: NonNegativeQuantity
    pci_bus_id: str | None = None
    numa_node: Annotated[int, Field(ge=-1)] | None = None
    nvlinks: Annotated[list[NVLink], Field(max_length=MAX_GPUS)] = Field(default_factory=list)
    nvswitch: bool = False
    clique_id: str | None = None
    health: Literal["Healthy", "Unhealthy"] = "Healthy"
    health_reason: str | None = None
    mig_mode: Literal["Disabled", "Enabled"] = "Disabled"
    mig_instances: Annotated[list[MigInstance], Field(max_length=MIG_MEMORY_SLOTS)] = Field(
        default_factory=list
    )

    __rules__ = (
        Rule(
            path="migInstances",
            message="MIG instances exist only on a GPU with migMode Enabled",
            cel="!has(self.migInstances) || size(self.migInstances) == 0"
            " || (has(self.migMode) && self.migMode == 'Enabled')",
            check=lambda g: not g.mig_instances or g.mig_mode == "Enabled",
        ),
    )


class GPUPair(StatusModel):
    """How GPUs `a` and `b` (indices, a < b) are connected."""

    a: Annotated[int, Field(ge=0, lt=MAX_GPUS)]
    b: Annotated[int, Field(ge=0, lt=MAX_GPUS)]
    pcie: PCIePath
    nvlinks: Annotated[int, Field(ge=0, le=64)] = 0
    p2p: bool = True

    __rules__ = (
        Rule(
            path="b",
            message="a pair names two GPUs with a < b",
            cel="self.a < self.b",
            check=lambda p: p.a < p.b,
        ),
    )


class GPUNodeTopologySpec(SpecModel):
    """The node the object describes (the object is named after it)."""

    node_name: Annotated[str, Field(min_length=1, max_length=253)]


class GPUNodeTopologyStatus(StatusModel):
    """The GPUs and their wiring as the agent last discovered them."""

    gpus: Annotated[list[GPUDevice], Field(max_length=MAX_GPUS), LIST_MAP("index")] = Field(
        default_factory=list
    )
    pairs: Annotated[list[GPUPair], Field(max_length=MAX_GPUS * (MAX_GPUS - 1) // 2)] = Field(
        default_factory=list
    )
    fingerprint: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    agent_version: str | None = None
    conditions: Annotated[list[Condition], LIST_MAP("type")] = Field(default_factory=list)
    last_update_time: datetime | None = None

    __rules__ = (
        Rule(
            path="gpus",
            message="GPU indices must be 0..n-1, each once",
            # Uniqueness is the list-map on `index`; with it, every index below n means exactly 0..n-1.
            cel="!has(self.gpus) || self.gpus.all(g, g.index < size(self.gpus))",
            check=lambda s: sorted(g.index for g in s.gpus) == list(range(len(s.gpus))),
        ),
        Rule(
            path="pairs",
            message="pairs must name GPUs of this node",
            cel="!has(self.pairs) || self.pairs.all(p, p.b < (has(self.gpus) ? size(self.gpus) : 0))",
            check=lambda s: all(p.b < len(s.gpus) for p in s.pairs),
        ),
    )


class GPUNodeTopology(Resource):
    """The GPU topology of one node, published by the node agent."""

    KIND: ClassVar[str] = "GPUNodeTopology"
    PLURAL: ClassVar[str] = "gpunodetopologies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("gnt",)
    NAMESPACED: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str | int], ...]] = (
        {"name": "Node", "type": "string", "jsonPath": ".spec.nodeName"},
        {"name": "Fingerprint", "type": "string", "jsonPath": ".status.fingerprint", "priority": 1},
    )

    kind: Literal["GPUNodeTopology"] = "GPUNodeTopology"
    spec: GPUNodeTopologySpec
    status: GPUNodeTopologyStatus | None = None
