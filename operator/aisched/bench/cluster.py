"""Synthetic GPU clusters: nodes of known machine types in racks and blocks, for benchmarks and tests."""

from __future__ import annotations

from collections.abc import Sequence

from aisched.api import keys
from aisched.cache.cache import Cache
from aisched.topology import resources
from aisched.topology.machines import MACHINES
from aisched.topology.node import NodeInfo

__all__ = ["synthetic_cluster", "synthetic_nodes"]


def synthetic_nodes(
    count: int,
    *,
    machines: Sequence[str] = ("dgx-h100",),
    nodes_per_rack: int = 16,
    racks_per_block: int = 8,
) -> list[NodeInfo]:
    """`count` nodes cycling through `machines`, `nodes_per_rack` to a rack, racks grouped in blocks."""
    nodes = []
    for i in range(count):
        machine = MACHINES[machines[i % len(machines)]]
        rack = i // nodes_per_rack
        name = f"node-{i:05d}"
        nodes.append(
            NodeInfo(
                name=name,
                labels={
                    keys.LABEL_RACK: f"rack-{rack:04d}",
                    keys.LABEL_BLOCK: f"block-{rack // racks_per_block:03d}",
                    keys.LABEL_GPU_PRODUCT: machine.gpu_model,
                    "kubernetes.io/hostname": name,
                },
                allocatable={
                    resources.CPU: machine.cpu * 1000,
                    resources.MEMORY: machine.memory_gib * 2**30,
                    resources.PODS: 110,
                    resources.GPU: machine.gpu_count,
                },
                gpus=machine.topology(node=name),
            )
        )
    return nodes


def synthetic_cluster(count: int, **kwargs: object) -> Cache:
    """A cache holding `synthetic_nodes(count, ...)`."""
    cache = Cache()
    for node in synthetic_nodes(count, **kwargs):  # type: ignore[arg-type]
        cache.set_node(node)
    return cache
