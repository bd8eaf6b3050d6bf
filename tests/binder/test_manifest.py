"""The Binding a member becomes: path, target node, uid, and the device annotations."""

from __future__ import annotations

from dataclasses import dataclass

from aisched.api import keys
from aisched.binder import binding_body, binding_path, device_annotations
from aisched.framework.types import PodInfo, PodPlacement

POD = PodInfo(namespace="ml", name="w-0", uid="u-123")


def test_the_binding_targets_the_node_and_carries_uid_and_gpu_uuids() -> None:
    member = PodPlacement(pod=POD, node="n7", slot=3, gpu_mask=0b11, gpu_ids=("GPU-a", "GPU-b"))

    assert binding_path(POD) == "/api/v1/namespaces/ml/pods/w-0/binding"
    assert binding_body(member) == {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {
            "name": "w-0",
            "namespace": "ml",
            "uid": "u-123",
            "annotations": {keys.ANNOTATION_GPUS: "GPU-a,GPU-b"},
        },
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n7"},
    }


def test_a_pod_without_uid_or_gpus_gets_a_bare_binding() -> None:
    member = PodPlacement(pod=PodInfo(namespace="ml", name="cpu"), node="n1", slot=0)

    assert binding_body(member)["metadata"] == {"name": "cpu", "namespace": "ml"}


def test_gpu_indices_stand_in_when_the_node_published_no_uuids() -> None:
    member = PodPlacement(pod=POD, node="n1", slot=0, gpu_mask=0b1010)

    assert device_annotations(member) == {keys.ANNOTATION_GPUS: "1,3"}


@dataclass(frozen=True, slots=True)
class SharedPlacement(PodPlacement):
    """A placement as it will look once the core places shared and MIG GPUs."""

    gpu_milli: int = 0
    mig: str = ""


def test_sharing_and_mig_fields_of_a_placement_pass_through_as_annotations() -> None:
    member = SharedPlacement(pod=POD, node="n1", slot=0, gpu_ids=("GPU-a",), gpu_milli=250, mig="1g.10gb")

    assert device_annotations(member) == {
        keys.ANNOTATION_GPUS: "GPU-a",
        keys.ANNOTATION_GPU_MILLI: "250",
        keys.ANNOTATION_MIG: "1g.10gb",
    }
