"""Valid objects of each aisched kind, as plain manifests, for tests to start from and break."""

from __future__ import annotations

from typing import Any


def aijob(*, gpus: int = 8, workers: int = 1) -> dict[str, Any]:
    """A two-role training job: one master and `workers` workers, `gpus` GPUs each."""

    def role(name: str, count: int) -> dict[str, Any]:
        return {
            "name": name,
            "count": count,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                            "resources": {
                                "requests": {"cpu": "16", "memory": "128Gi"},
                                "limits": {"nvidia.com/gpu": gpus, "memory": "128Gi"},
                            },
                        }
                    ]
                }
            },
        }

    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": "llama-pretrain", "namespace": "ml-research"},
        "spec": {
            "replicas": [role("master", 1), role("worker", workers)],
            "topology": {"policy": "Required", "level": "rack"},
            "priority": 100,
        },
    }


def tenantquota() -> dict[str, Any]:
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "TenantQuota",
        "metadata": {"name": "research"},
        "spec": {
            "namespaces": ["ml-research"],
            "cohort": "gpu-pool",
            "weight": 2,
            "resources": {
                "nvidia.com/gpu": {"guaranteed": 64, "max": 128},
                "memory": {"guaranteed": "4Ti", "max": "8Ti"},
            },
        },
    }


def gpu_quota(
    name: str,
    namespaces: list[str],
    *,
    guaranteed: int,
    maximum: int | None = None,
    cohort: str | None = "pool",
    preemption: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A TenantQuota for `namespaces` with a GPU quota (and no other), in a cohort by default."""
    gpu = {"guaranteed": str(guaranteed)} | ({} if maximum is None else {"max": str(maximum)})
    spec: dict[str, Any] = {"namespaces": namespaces, "resources": {"nvidia.com/gpu": gpu}}
    if cohort is not None:
        spec["cohort"] = cohort
    if preemption is not None:
        spec["preemption"] = preemption
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "TenantQuota",
        "metadata": {"name": name},
        "spec": spec,
    }


def gpunodetopology() -> dict[str, Any]:
    """Two NVLinked GPUs on one PCIe switch."""
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "GPUNodeTopology",
        "metadata": {"name": "gpu-node-1"},
        "spec": {"nodeName": "gpu-node-1"},
        "status": {
            "gpus": [
                {
                    "index": i,
                    "uuid": f"GPU-{i}",
                    "model": "H100-80GB",
                    "memory": "80Gi",
                    "numaNode": 0,
                    "nvlinks": [{"peer": 1 - i, "links": 18}],
                }
                for i in range(2)
            ],
            "pairs": [{"a": 0, "b": 1, "pcie": "PIX", "nvlinks": 18}],
            "fingerprint": "sha256:abc",
        },
    }
