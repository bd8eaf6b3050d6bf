"""The default plugins, one module each, and the registry that names them.

Plugins are thin and vectorised: each filter is a few numpy operations over the snapshot's
columns. Each is built by `new(args, handle)` and reaches shared state (quota ledger, cache,
preemption) only through the handle. Pure: imports framework, quota and topology only.
"""

from __future__ import annotations

from aisched.framework.registry import Registry
from aisched.plugins import (
    fair_share,
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
    preemption,
    priority_sort,
    quota,
    reservation,
    resource_fit,
    taint_toleration,
)

__all__ = ["default_registry"]

_MODULES = (
    fair_share,
    gang,
    gpu_health,
    gpu_model,
    gpu_sharing,
    gpu_topology,
    least_allocated,
    most_allocated,
    node_affinity,
    node_unschedulable,
    preemption,
    priority_sort,
    quota,
    reservation,
    resource_fit,
    taint_toleration,
)


def default_registry() -> Registry:
    """Every built-in plugin by name; `GPUBinPacking` is MostAllocated over GPUs."""
    registry = Registry({module.NAME: module.new for module in _MODULES})
    registry.register(most_allocated.GPU_BIN_PACKING, most_allocated.new_gpu_bin_packing)
    for name, factory in policies.FACTORIES.items():  # the FGD paper's placement policies
        registry.register(name, factory)
    return registry
