"""The Binding a member becomes: path, target node, uid, and the device annotations."""

from __future__ import annotations

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


def test_a_pod_without_gpus_is_bound_with_an_empty_device_list_over_any_it_named() -> None:
    member = PodPlacement(pod=PodInfo(namespace="ml", name="cpu"), node="n1", slot=0)

    assert binding_body(member)["metadata"] == {
        "name": "cpu",
        "namespace": "ml",
        "annotations": {keys.ANNOTATION_GPUS: ""},
    }


def test_gpu_indices_stand_in_when_the_node_published_no_uuids() -> None:
    member = PodPlacement(pod=POD, node="n1", slot=0, gpu_mask=0b1010)

    assert device_annotations(member) == {keys.ANNOTATION_GPUS: "1,3"}


def test_a_shared_gpu_is_annotated_with_its_uuid_milli_and_memory() -> None:
    member = PodPlacement(
        pod=POD, node="n1", slot=0, gpu_mask=0b100, gpu_ids=("GPU-c",), gpu_milli=250, gpu_memory=2**30
    )

    assert device_annotations(member) == {
        keys.ANNOTATION_GPUS: "GPU-c",
        keys.ANNOTATION_GPU_MILLI: "250",
        keys.ANNOTATION_GPU_MEMORY: str(2**30),
    }


def test_a_mig_instance_is_annotated_as_device_profile_and_start() -> None:
    pod = PodInfo(namespace="ml", name="m-0", mig_profile="3g.40gb")
    member = PodPlacement(
        pod=pod, node="n1", slot=0, gpu_mask=0b1000, gpu_ids=("GPU-d",), mig=(3, 4), mig_slots=0b1111_0000
    )

    assert device_annotations(member) == {
        keys.ANNOTATION_GPUS: "GPU-d",
        keys.ANNOTATION_MIG: "GPU-d:3g.40gb@4",
    }


def test_a_mig_instance_on_a_node_without_uuids_names_the_gpu_index() -> None:
    pod = PodInfo(namespace="ml", name="m-0", mig_profile="1g.10gb")
    member = PodPlacement(pod=pod, node="n1", slot=0, gpu_mask=0b10, mig=(1, 6), mig_slots=0b0100_0000)

    assert device_annotations(member)[keys.ANNOTATION_MIG] == "1:1g.10gb@6"
