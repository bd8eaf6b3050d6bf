"""The arithmetic LeastAllocated and MostAllocated share: per-resource utilisation after placing a pod."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import numpy as np
from pydantic import Field

from aisched.framework.interface import Floats
from aisched.framework.registry import PluginArgs
from aisched.framework.types import PodInfo
from aisched.topology.snapshot import Snapshot


class AllocationArgs(PluginArgs):
    """`resources`: resource name → positive weight (None: the plugin's default resources)."""

    resources: Annotated[dict[str, Annotated[float, Field(gt=0)]], Field(min_length=1)] | None = None
    #: LeastAllocated only: also spread pods that use GPUs (by default they are left to packing).
    gpu_pods: bool = False

    def weights(self, default: Mapping[str, float]) -> dict[str, float]:
        return dict(self.resources if self.resources is not None else default)


def requested_share(pod: PodInfo, weights: Mapping[str, float]) -> bool:
    """Whether the pod asks for any of the weighted resources (else the score says nothing)."""
    return any(pod.requests.get(name, 0) > 0 for name in weights)


def utilisation_after(pod: PodInfo, snapshot: Snapshot, weights: Mapping[str, float]) -> Floats:
    """Weighted mean fraction (0..1) of each node's allocatable that is used once `pod` is placed.

    A node that offers none of a resource counts as full for it.
    """
    n = snapshot.size
    total: Floats | None = None
    weight_sum = 0.0
    for name, weight in weights.items():
        column = snapshot.resource_index.get(name)
        if column is None:
            continue
        request = pod.requests.get(name, 0)
        share = snapshot.utilisation[column, :n]
        share = share + request * snapshot.inverse_allocatable[column, :n] if request else share.copy()
        np.minimum(share, 1.0, out=share)
        if weight != 1.0:
            share *= weight
        total = share if total is None else np.add(total, share, out=total)
        weight_sum += weight
    if total is None:
        return np.zeros(n)
    return total / weight_sum if weight_sum != 1.0 else total
