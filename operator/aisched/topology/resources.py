"""Resource amounts as integers, the way the snapshot's columns hold them.

CPU is counted in millicores, everything else in its base unit rounded up (bytes, pods,
devices), as kube-scheduler does. The first columns are fixed; any other resource (extended
resources such as `example.com/fpga`, `ephemeral-storage`, MIG devices) gets a column the first
time a node or pod names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aisched.api import keys
from aisched.api.quantity import Quantity

__all__ = ["CPU", "FIXED", "GPU", "MEMORY", "PODS", "amount", "amounts"]

CPU: Final = "cpu"
MEMORY: Final = "memory"
PODS: Final = "pods"
GPU: Final = keys.GPU_RESOURCE
#: The resources every node row carries, in column order.
FIXED: Final = (CPU, MEMORY, PODS, GPU)


def amount(resource: str, quantity: Quantity | int | str) -> int:
    """`quantity` of `resource` as the integer the snapshot stores (CPU in milli, others rounded up)."""
    q = quantity if isinstance(quantity, Quantity) else Quantity(quantity)
    return q.milli() if resource == CPU else q.value()


def amounts(resources: Mapping[str, Quantity | int | str]) -> dict[str, int]:
    return {name: amount(name, q) for name, q in resources.items()}
