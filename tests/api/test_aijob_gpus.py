"""The GPUs an AIJob asks for (its status's `gpus`, the GPUS column): shared GPUs by their part."""

from __future__ import annotations

from typing import Any

import pytest

from aisched.api.aijob import AIJob
from tests.support.objects import aijob


def shared(pods: int, gpu: dict[str, Any]) -> AIJob:
    """A job of `pods` pods in one role, each taking the part of a GPU `gpu` says."""
    body = aijob(gpus=8, workers=1)
    role = body["spec"]["replicas"][1]
    role["count"] = pods
    for container in role["template"]["spec"]["containers"]:
        container["resources"]["limits"].pop("nvidia.com/gpu")
    body["spec"]["replicas"] = [role]
    body["spec"]["gpu"] = gpu
    body["spec"].pop("topology")
    return AIJob.model_validate(body)


def test_whole_gpus_are_counted_per_pod() -> None:
    assert AIJob.model_validate(aijob(gpus=8, workers=3)).spec.total_gpus() == 32


@pytest.mark.parametrize(
    ("pods", "milli", "gpus"), [(4, 250, 1.0), (2, 250, 0.5), (3, 500, 1.5), (1, 1, 0.001)]
)
def test_a_shared_gpu_counts_by_the_part_each_pod_takes(pods: int, milli: int, gpus: float) -> None:
    assert shared(pods, {"milli": milli}).spec.total_gpus() == gpus


@pytest.mark.parametrize(
    ("pods", "profile", "gpus"), [(7, "1g.10gb", 1.0), (2, "3g.40gb", 0.86), (1, "7g.80gb", 1.0)]
)
def test_a_mig_instance_counts_by_its_compute_slices(pods: int, profile: str, gpus: float) -> None:
    assert shared(pods, {"migProfile": profile}).spec.total_gpus() == gpus


def test_a_share_of_gpu_memory_alone_names_no_part_of_a_gpu() -> None:
    assert shared(4, {"memory": "10Gi"}).spec.total_gpus() == 0
