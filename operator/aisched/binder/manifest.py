"""What a Binding says: the path it is POSTed to, its body, the device annotations it carries.

Pure: no I/O. The API server copies the Binding's `metadata.annotations` onto the pod, which is
how the chosen devices travel with the binding (DESIGN.md §2).
"""

from __future__ import annotations

from typing import Any, Final

from aisched.api import keys
from aisched.framework.types import PodInfo, PodPlacement
from aisched.kube.client import resource_path

__all__ = ["binding_body", "binding_path", "device_annotations", "pod_path"]

# Sharing and MIG placements will be fields of PodPlacement; whatever the placement carries under
# these names is passed through as is, so the binder needs no change when they arrive.
_PASSTHROUGH: Final = (
    ("gpu_milli", keys.ANNOTATION_GPU_MILLI),
    ("gpu_memory", keys.ANNOTATION_GPU_MEMORY),
    ("mig", keys.ANNOTATION_MIG),
)


def pod_path(pod: PodInfo) -> str:
    return resource_path(group="", version="v1", plural="pods", namespace=pod.namespace, name=pod.name)


def binding_path(pod: PodInfo) -> str:
    """The pod's `binding` subresource."""
    return resource_path(
        group="", version="v1", plural="pods", namespace=pod.namespace, name=pod.name, subresource="binding"
    )


def device_annotations(member: PodPlacement) -> dict[str, str]:
    """The device annotations of one member: GPU UUIDs (indices when the node published none)."""
    annotations: dict[str, str] = {}
    if member.gpu_ids:
        annotations[keys.ANNOTATION_GPUS] = ",".join(member.gpu_ids)
    elif member.gpu_mask:
        annotations[keys.ANNOTATION_GPUS] = ",".join(str(i) for i in member.gpu_indices)
    for attribute, annotation in _PASSTHROUGH:
        value = getattr(member, attribute, None)
        if value not in (None, "", 0):
            annotations[annotation] = str(value)
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
