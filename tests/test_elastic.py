"""Elastic AIJobs end to end (the operator on the emulator): the pods placed together start it,
the surplus up to maxReplicas takes idle room, goes first when a higher-priority job needs room,
and comes back once there is room again; never an eviction of the job itself."""

from __future__ import annotations

from typing import Final

import pytest

from aisched.emulator.cluster import ClusterSpec
from aisched.kube.client import JsonObject
from tests.test_operator import (
    AIJOBS,
    NAMESPACE,
    PODS,
    Operator,
    job,
    lender_and_borrower,
    operator,
    phase,
    reclaimable_tenant,
    until,
)

__all__ = ["operator"]  # the fixture, used by name

EVENTS: Final = f"/api/v1/namespaces/{NAMESPACE}/events"
FOUR_NODES: Final = ClusterSpec.model_validate(
    {"nodeGroups": [{"name": "gpu", "count": 4, "machine": "dgx-h100", "rack": "r1"}]}
)


def _elastic(name: str) -> JsonObject:
    """A master and 1..3 workers of 8 GPUs each, at priority 1."""
    body = job(name, workers=1)
    body["spec"]["priority"] = 1
    body["spec"]["topology"] = {"policy": "Preferred"}
    body["spec"]["elastic"] = {"role": "worker", "minReplicas": 1, "maxReplicas": 3}
    return body


def _replicas(jobs: dict[str, JsonObject], name: str) -> int | None:
    return ((jobs.get(name) or {}).get("status") or {}).get("elasticReplicas")


@pytest.mark.parametrize("operator", [FOUR_NODES], indirect=True)
async def test_an_elastic_job_grows_into_idle_room_and_shrinks_first_for_a_higher_priority_job(
    operator: Operator,
) -> None:
    kube = operator.kube
    await kube.post(
        "/apis/aisched.io/v1alpha1/tenantquotas",
        reclaimable_tenant("a", NAMESPACE, guaranteed=32, maximum=32),
    )
    await kube.post(AIJOBS, _elastic("bert"))

    grown = await until(kube, AIJOBS, lambda j: phase(j, "bert") == "Running" and _replicas(j, "bert") == 3)
    pods = {p["metadata"]["name"]: p for p in (await kube.get(PODS))["items"]}
    assert sorted(pods) == ["bert-master-0", "bert-worker-0", "bert-worker-1", "bert-worker-2"]
    surplus = pods["bert-worker-2"]["metadata"]
    assert surplus["annotations"]["aisched.io/elastic-surplus"] == "true"
    assert surplus["labels"]["aisched.io/gang"].startswith("surplus_"), "a gang of its own"
    assert grown["bert"]["status"]["resizes"] >= 1
    core = {n: pods[n]["metadata"]["uid"] for n in ("bert-master-0", "bert-worker-0")}

    urgent = job("urgent", workers=1)
    urgent["spec"]["priority"] = 100
    await kube.post(AIJOBS, urgent)

    jobs = await until(kube, AIJOBS, lambda j: phase(j, "urgent") == "Running" and _replicas(j, "bert") == 1)
    status = jobs["bert"]["status"]
    assert (status["phase"], status.get("preemptions", 0), status.get("restarts", 0)) == ("Running", 0, 0)
    now = {p["metadata"]["name"]: p for p in (await kube.get(PODS))["items"]}
    assert {n: now[n]["metadata"]["uid"] for n in core} == core, "the pods placed together keep running"
    said = [e["message"] for e in (await kube.get(EVENTS))["items"] if e["reason"] == "Resized"]
    assert any(
        "-> 1 running pod(s): pod bert-worker-" in m and "evicted to make room for" in m for m in said
    ), said
    waiting = [
        n for n in ("bert-worker-1", "bert-worker-2") if n in now and not now[n]["spec"].get("nodeName")
    ]
    assert waiting, "the surplus waits for room again; it evicts no one"

    await kube.delete(f"{AIJOBS}/urgent")
    await until(kube, AIJOBS, lambda j: _replicas(j, "bert") == 3)


@pytest.mark.parametrize("operator", [FOUR_NODES], indirect=True)
async def test_a_tenant_reclaiming_its_guarantee_shrinks_a_borrowing_elastic_job_first(
    operator: Operator,
) -> None:
    kube = operator.kube
    serve = await lender_and_borrower(kube, guaranteed=16, maximum=32)
    await kube.post(AIJOBS, _elastic("bert"))  # 16 GPUs placed together, then b's idle 16 borrowed
    await until(kube, AIJOBS, lambda j: _replicas(j, "bert") == 3)
    core = {p["metadata"]["name"]: p["metadata"]["uid"] for p in (await kube.get(PODS))["items"]}
    core = {n: u for n, u in core.items() if n in ("bert-master-0", "bert-worker-0")}

    owner = job("owner", workers=1)
    owner["metadata"]["namespace"] = "serve"
    await kube.post(serve, owner)  # b's guarantee: 16 GPUs

    owned = await until(kube, serve, lambda j: phase(j, "owner") == "Running")
    assert owned["owner"]["status"].get("restarts", 0) == 0
    jobs = await until(kube, AIJOBS, lambda j: _replicas(j, "bert") == 1)
    assert (jobs["bert"]["status"]["phase"], jobs["bert"]["status"].get("preemptions", 0)) == ("Running", 0)
    now = {p["metadata"]["name"]: p["metadata"]["uid"] for p in (await kube.get(PODS))["items"]}
    assert {n: now[n] for n in core} == core, "the job's pods placed together keep running"
