"""How a pod asks for part of one GPU or a MIG instance: parsed at the edge, contradictions refused."""

from __future__ import annotations

from typing import Any

import pytest

from aisched.api import keys
from aisched.api.mig import MigAnnotation
from aisched.framework.types import PodInfo
from aisched.topology import resources
from tests.framework.test_types import container, manifest
from tests.support.core import GiB, pod


def parsed(**kwargs: Any) -> PodInfo:
    return PodInfo.from_manifest(manifest(**kwargs))


def test_gpu_milli_annotation_makes_a_sharing_pod() -> None:
    info = parsed(annotations={keys.ANNOTATION_GPU_MILLI: "400"})

    assert (info.gpu_milli, info.gpu_memory, info.mig_profile) == (400, 0, None)
    assert info.shares_gpu
    assert info.uses_gpu
    assert info.gpus == 0


def test_gpu_memory_annotation_is_a_kubernetes_quantity_in_bytes() -> None:
    info = parsed(annotations={keys.ANNOTATION_GPU_MILLI: "250", keys.ANNOTATION_GPU_MEMORY: "20Gi"})

    assert (info.gpu_milli, info.gpu_memory) == (250, 20 * GiB)


def test_memory_alone_also_shares_a_gpu() -> None:
    info = parsed(annotations={keys.ANNOTATION_GPU_MEMORY: "8Gi"})

    assert info.shares_gpu
    assert info.gpu_milli == 0


def test_a_mig_resource_request_names_the_profile_and_leaves_the_requests() -> None:
    info = parsed(containers=[container(limits={"nvidia.com/mig-3g.40gb": 1, "cpu": "2"})])

    assert info.mig_profile == "3g.40gb"
    assert "nvidia.com/mig-3g.40gb" not in info.requests
    assert info.requests[resources.CPU] == 2000
    assert info.uses_gpu
    assert not info.shares_gpu


def test_the_mig_annotation_names_the_profile_asked_for_or_placed() -> None:
    asked = parsed(annotations={keys.ANNOTATION_MIG: "1g.10gb"})
    placed = parsed(annotations={keys.ANNOTATION_MIG: "GPU-abc:1g.10gb@6"})

    assert asked.mig_profile == placed.mig_profile == "1g.10gb"


def test_a_mig_resource_and_the_same_profile_annotated_agree() -> None:
    info = parsed(
        annotations={keys.ANNOTATION_MIG: "GPU-abc:2g.20gb@4"},
        containers=[container(limits={"nvidia.com/mig-2g.20gb": 1})],
    )

    assert info.mig_profile == "2g.20gb"


def test_whole_gpu_and_cpu_pods_share_nothing() -> None:
    whole = parsed(containers=[container(limits={keys.GPU_RESOURCE: 2})])
    cpu = parsed(containers=[container(requests={"cpu": "1"})])

    assert not whole.shares_gpu
    assert whole.uses_gpu
    assert not cpu.shares_gpu
    assert not cpu.uses_gpu
    assert (cpu.gpu_milli, cpu.gpu_memory, cpu.mig_profile) == (0, 0, None)


@pytest.mark.parametrize(
    ("annotations", "limits", "message"),
    [
        (
            {keys.ANNOTATION_GPU_MILLI: "500"},
            {keys.GPU_RESOURCE: 1},
            "cannot be combined with nvidia.com/gpu",
        ),
        (
            {keys.ANNOTATION_GPU_MEMORY: "1Gi"},
            {keys.GPU_RESOURCE: 1},
            "cannot be combined with nvidia.com/gpu",
        ),
        ({keys.ANNOTATION_GPU_MILLI: "500"}, {"nvidia.com/mig-1g.10gb": 1}, "MIG profile 1g.10gb cannot be"),
        ({}, {"nvidia.com/mig-1g.10gb": 1, keys.GPU_RESOURCE: 1}, "MIG profile 1g.10gb cannot be"),
        ({}, {"nvidia.com/mig-1g.10gb": 2}, "one MIG instance only"),
        ({keys.ANNOTATION_MIG: "3g.40gb"}, {"nvidia.com/mig-1g.10gb": 1}, "one MIG instance only"),
        ({keys.ANNOTATION_GPU_MILLI: "1000"}, {}, "must be an integer from 1 to 999"),
        ({keys.ANNOTATION_GPU_MILLI: "0"}, {}, "must be an integer from 1 to 999"),
        ({keys.ANNOTATION_GPU_MILLI: "half"}, {}, "must be an integer from 1 to 999"),
        ({keys.ANNOTATION_GPU_MILLI: "\u00b2"}, {}, "must be an integer from 1 to 999"),  # a superscript two
        ({keys.ANNOTATION_GPU_MEMORY: "lots"}, {}, "aisched.io/gpu-memory"),
        ({keys.ANNOTATION_GPU_MEMORY: "0"}, {}, "must be more than zero"),
        ({keys.ANNOTATION_MIG: "GPU-a:1g.10gb@9"}, {}, "start slot 0-7"),
        ({keys.ANNOTATION_MIG: "GPU-a:1g.10gb"}, {}, "neither a profile nor"),
    ],
)
def test_contradictory_or_malformed_gpu_requests_are_refused_with_a_reason(
    annotations: dict[str, str], limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parsed(annotations=annotations, containers=[container(limits=limits)])


def test_pods_differing_only_in_their_share_have_different_templates() -> None:
    small, large, mig = pod("a", gpu_milli=200), pod("b", gpu_milli=500), pod("c", mig_profile="1g.10gb")

    assert len({small.template_key, large.template_key, mig.template_key, pod("d").template_key}) == 4
    assert small.template_key == pod("e", gpu_milli=200).template_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3g.40gb", MigAnnotation(profile="3g.40gb")),
        ("GPU-8f3c:3g.40gb@4", MigAnnotation(profile="3g.40gb", device="GPU-8f3c", start=4)),
        ("2:1g.10gb+me@6", MigAnnotation(profile="1g.10gb+me", device="2", start=6)),
    ],
)
def test_the_mig_annotation_round_trips(text: str, expected: MigAnnotation) -> None:
    assert MigAnnotation.parse(text) == expected
    assert str(expected) == text
