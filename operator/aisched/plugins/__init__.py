"""The default plugins, one module each, and the registry that names them.

Plugins are thin and vectorised: each filter is a few numpy operations over the snapshot's
columns. Pure: imports framework and topology only.
"""

from __future__ import annotations

from aisched.framework.registry import Registry
from aisched.plugins import (
    gang,
    gpu_health,
    gpu_model,
    gpu_sharing,
    gpu_topology,
    least_allocated,
    most_allocated,
    node_affinity,
    node_unschedulable,
    policies,
    priority_sort,
    resource_fit,
    taint_toleration,
)

__all__ = ["default_registry"]

_MODULES = (
    gang,
    gpu_health,
    gpu_model,
    gpu_sharing,
    gpu_topology,
    least_allocated,
    most_allocated,
    node_affinity,
    node_unschedulable,
    priority_sort,
    resource_fit,
    taint_toleration,
)


def default_registry() -> Registry:
    """Every built-in plugin by name; `GPUBinPacking` is MostAllocated over GPUs."""
    registry = Registry({module.NAME: module.new for module in _MODULES})
    registry.register(
        "GPUBinPacking", lambda args: most_allocated.new({"resources": {"nvidia.com/gpu": 1}, **args})
    )
    for name, factory in policies.FACTORIES.items():  # the FGD paper's placement policies
        registry.register(name, factory)
    return registry
