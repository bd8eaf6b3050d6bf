"""What a pod holds, as the cache accounts it (`PodUsage`): one builder for pods the scheduler
places and for pods the shell finds bound, so who a pod is (gang, tenant, quota, priority) is read
the same way whoever placed it."""

from __future__ import annotations

from aisched.cache import PodUsage
from aisched.framework.types import PodInfo, PodPlacement

__all__ = ["placed_usage", "pod_usage"]


def pod_usage(
    pod: PodInfo,
    *,
    node: str,
    gang: str,
    started: float,
    assumed: bool = False,
    gpu_mask: int | None = None,
    gpu_uuids: tuple[str, ...] = (),
    gpu_milli: int = 0,
    gpu_memory: int = 0,
    mig_start: int | None = None,
) -> PodUsage:
    """`pod` on `node` with the devices given (a mask, or UUIDs; a share; a MIG start slot), as
    member of gang `gang` (its own key when alone), running since `started`."""
    profile = pod.mig_profile
    return PodUsage(
        key=pod.key,
        node=node,
        requests=pod.requests,
        gpu_mask=gpu_mask,
        gpu_uuids=gpu_uuids,
        assumed=assumed,
        gpu_milli=gpu_milli,
        gpu_memory=gpu_memory,
        mig=(profile, mig_start) if profile is not None else None,
        gang=gang if gang != pod.key else "",
        tenant=pod.tenant,
        priority=pod.priority,
        preemptible=pod.preemptible,
        started=started,
        runtime_limit=pod.runtime_limit,
        job_class=pod.job_class,
    )


def placed_usage(placed: PodPlacement, *, gang: str, started: float) -> PodUsage:
    """A pod the scheduler placed, assumed until its binding is confirmed."""
    return pod_usage(
        placed.pod,
        node=placed.node,
        gang=gang,
        started=started,
        assumed=True,
        gpu_mask=placed.gpu_mask,
        gpu_uuids=placed.gpu_ids,
        gpu_milli=placed.gpu_milli,
        gpu_memory=placed.gpu_memory,
        mig_start=placed.mig[1] if placed.mig is not None else None,
    )
