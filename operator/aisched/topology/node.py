"""What the scheduler knows of one node that does not change when pods come and go."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aisched.api import keys
from aisched.topology.gpu import GPUTopology

__all__ = ["DEFAULT_DOMAINS", "DomainLabels", "NodeInfo", "Taint", "TaintEffect"]

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


@dataclass(frozen=True, kw_only=True)
class Taint:
    key: str
    value: str = ""
    effect: TaintEffect = "NoSchedule"


@dataclass(frozen=True, kw_only=True)
class DomainLabels:
    """The node label keys the two topology levels above the node come from: `block` the wider,
    `rack` the narrower (an AIJob's `topology.level`). A cluster labelled by its network (e.g.
    `network.topology.nvidia.com/spine` and `.../leaf`) names those instead of aisched's own."""

    block: str = keys.LABEL_BLOCK
    rack: str = keys.LABEL_RACK


DEFAULT_DOMAINS: DomainLabels = DomainLabels()


@dataclass(frozen=True, kw_only=True, eq=False)
class NodeInfo:
    """A node's name, labels, taints, allocatable resources, readiness and GPUs.

    `allocatable` is in snapshot units (see `topology.resources`). `gpus` is the node's GPU
    topology: from its GPUNodeTopology, else uniform GPUs of unknown wiring matching
    `allocatable["nvidia.com/gpu"]`.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    allocatable: Mapping[str, int] = field(default_factory=dict)
    ready: bool = True
    unschedulable: bool = False
    gpus: GPUTopology | None = None
    #: A fault ended pods here lately: nothing is placed on it until its cooldown is over.
    cooling: bool = False
    #: Which labels say the node's rack and block.
    domains: DomainLabels = DEFAULT_DOMAINS

    @property
    def rack(self) -> str | None:
        return self.labels.get(self.domains.rack)

    @property
    def block(self) -> str | None:
        return self.labels.get(self.domains.block)

    @property
    def gpu_model(self) -> str | None:
        if self.gpus is not None and self.gpus.count:
            return self.gpus.model or self.labels.get(keys.LABEL_GPU_PRODUCT)
        return self.labels.get(keys.LABEL_GPU_PRODUCT)

    def gpu_topology(self) -> GPUTopology:
        """The node's GPUs; uniform unknown wiring when it published no topology."""
        if self.gpus is not None:
            return self.gpus
        count = self.allocatable.get(keys.GPU_RESOURCE, 0)
        return GPUTopology.uniform(count, model=self.labels.get(keys.LABEL_GPU_PRODUCT, ""))
