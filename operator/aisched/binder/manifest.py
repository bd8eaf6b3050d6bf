"""What a Binding says: the path it is POSTed to, its body, the device annotations it carries.

Pure: no I/O. The API server copies the Binding's `metadata.annotations` onto the pod, which is
how the chosen devices travel with the binding (DESIGN.md §2).
"""

from __future__ import annotations

from typing import Any

from aisched.api import keys
from aisched.api.mig import MigAnnotation
from aisched.framework.types import PodInfo, PodPlacement
from aisched.kube.client import resource_path

__all__ = ["binding_body", "binding_path", "device_annotations", "pod_path"]


def pod_path(pod: PodInfo) -> str:
    return resource_path(group="", version="v1", plural="pods", namespace=pod.namespace, name=pod.name)


def binding_path(pod: PodInfo) -> str:
    """The pod's `binding` subresource."""
    return resource_path(
        group="", version="v1", plural="pods", namespace=pod.namespace, name=pod.name, subresource="binding"
    )


def device_annotations(member: PodPlacement) -> dict[str, str]:
    """The device annotations of one member: GPU UUIDs (indices when the node published none; none
    at all is written as empty);
    for a shared GPU the milli and memory granted on it; for a MIG instance
    `<device>:<profile>@<first memory slot>` (see `MigAnnotation`)."""
    devices: tuple[str, ...] = member.gpu_ids or tuple(str(i) for i in member.gpu_indices)
    # Always written, empty when the pod gets no GPU: the binding's word on devices is the last.
    annotations: dict[str, str] = {keys.ANNOTATION_GPUS: ",".join(devices)}
    if member.gpu_milli:
        annotations[keys.ANNOTATION_GPU_MILLI] = str(member.gpu_milli)
    if member.gpu_memory:
        annotations[keys.ANNOTATION_GPU_MEMORY] = str(member.gpu_memory)
    if member.mig is not None and member.pod.mig_profile is not None and devices:
        placed = MigAnnotation(profile=member.pod.mig_profile, device=devices[0], start=member.mig[1])
        annotations[keys.ANNOTATION_MIG] = str(placed)
    return annotations


def binding_body(member: PodPlacement) -> dict[str, Any]:
    """The v1 Binding of one member to its node.

    `metadata.uid` makes the API server refuse (409) a pod that was deleted and recreated under
    the same name since it was scheduled.
    """
    metadata: dict[str, Any] = {"name": member.pod.name, "namespace": member.pod.namespace}
    if member.pod.uid:
        metadata["uid"] = member.pod.uid
    annotations = device_annotations(member)
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": member.node},
    }
