"""Every example validates, under the models and under the CRDs' CEL rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aisched.api import KIND_MODELS, validate_manifest
from aisched.api.crd import crd_for
from tests.support.cel import rule_errors

EXAMPLES = Path(__file__).parents[1] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    for doc in _documents(path):
        assert validate_manifest(doc) in (None, []), f"{path.name}: {doc.get('kind')}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_satisfies_the_crd_rules(path: Path) -> None:
    for doc in _documents(path):
        model = KIND_MODELS.get(doc["kind"])
        if model is not None:
            schema = crd_for(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            assert rule_errors(schema, doc) == []


def test_the_examples_cover_what_the_foundation_promises() -> None:
    docs = [doc for path in FILES for doc in _documents(path)]
    jobs = [d for d in docs if d["kind"] == "AIJob"]
    gpus = [
        sum(
            r["count"]
            * sum(
                int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
                for c in r["template"]["spec"]["containers"]
            )
            for r in job["spec"]["replicas"]
        )
        for job in jobs
    ]
    assert 16 in gpus, "a 16-GPU PyTorch DDP job"
    assert any("elastic" in job["spec"] for job in jobs)
    assert any("milli" in job["spec"].get("gpu", {}) for job in jobs)
    assert any("migProfile" in job["spec"].get("gpu", {}) for job in jobs)
    quotas = [d for d in docs if d["kind"] == "TenantQuota"]
    assert len(quotas) >= 2
    assert len({q["spec"]["cohort"] for q in quotas}) == 1
    pods = [d for d in docs if d["kind"] == "Pod"]
    assert pods
    assert all(
        p["spec"]["schedulerName"] == "aisched" and "aisched.io/gang" in p["metadata"]["labels"] for p in pods
    )
