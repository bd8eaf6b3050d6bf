"""Tenant isolation and overload safety, end to end: the operator on the emulator, attacked the way
a tenant could attack it — naming another team's quota, or no quota, and asking for far more than
exists."""

from __future__ import annotations

import asyncio
from typing import Final

from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from aisched.runner import DEFAULT_CLUSTER, ensure_namespace
from tests.support.objects import gpu_quota
from tests.test_operator import (
    AIJOBS,
    NAMESPACE,
    PODS,
    Operator,
    _start,
    job,
    operator,
    phase,
    settings,
    until,
)

__all__ = ["operator"]  # the fixture, used by name

QUOTAS: Final = "/apis/aisched.io/v1alpha1/tenantquotas"
EVENTS: Final = f"/api/v1/namespaces/{NAMESPACE}/events"


def _condition(obj: JsonObject | None, kind: str) -> JsonObject:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


async def _quotas(operator: Operator, research_gpus: int) -> None:
    await operator.kube.post("/api/v1/namespaces", {"metadata": {"name": "serve"}})
    await operator.kube.post(
        QUOTAS, gpu_quota("research", [NAMESPACE], guaranteed=research_gpus, cohort=None)
    )
    await operator.kube.post(QUOTAS, gpu_quota("inference", ["serve"], guaranteed=64, cohort=None))


async def _job_pods(operator: Operator, name: str) -> list[JsonObject]:
    pods = (await operator.kube.get(PODS, params={"labelSelector": f"aisched.io/job={name}"}))["items"]
    return list(pods)


async def test_no_job_or_pod_escapes_its_namespaces_quota(operator: Operator) -> None:
    kube = operator.kube
    await _quotas(operator, research_gpus=2)
    for name, tenant in (("nobody-job", "nobody"), ("research-job", "inference")):
        body = job(name, gpus=4)
        body["spec"]["tenant"] = tenant
        await kube.post(AIJOBS, body)
    ghost = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ghost", "namespace": NAMESPACE, "annotations": {"aisched.io/tenant": "ghost"}},
        "spec": {
            "schedulerName": "aisched",
            "containers": [{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 4}}}],
        },
    }
    await kube.post(PODS, ghost)

    def refused(jobs: dict[str, JsonObject]) -> bool:
        return all(
            _condition(jobs.get(n), "Valid").get("reason") == "TenantNotAllowed"
            for n in ("nobody-job", "research-job")
        )

    jobs = await until(kube, AIJOBS, refused)
    nobody = _condition(jobs["nobody-job"], "Valid")
    assert nobody["message"] == (
        f"spec.tenant: 'nobody' is not a tenant of namespace {NAMESPACE}: no TenantQuota is named nobody "
        "(its tenants: research)"
    )
    assert _condition(jobs["research-job"], "Valid")["message"] == (
        f"spec.tenant: 'inference' is not a tenant of namespace {NAMESPACE}: TenantQuota inference does not "
        "list it (its tenants: research)"
    )
    assert {phase(jobs, n) for n in ("nobody-job", "research-job")} == {"Pending"}
    assert await _job_pods(operator, "nobody-job") == []
    assert await _job_pods(operator, "research-job") == []

    pods = await until(
        kube, PODS, lambda p: _condition(p.get("ghost"), "PodScheduled").get("status") == "False"
    )
    scheduled = _condition(pods["ghost"], "PodScheduled")
    assert scheduled["message"].endswith(
        f"annotation aisched.io/tenant: 'ghost' is not a tenant of namespace {NAMESPACE}: no TenantQuota "
        "is named ghost (its tenants: research)"
    ), scheduled["message"]
    assert not pods["ghost"]["spec"].get("nodeName")
    events = (await kube.get(EVENTS))["items"]
    assert any(
        e["involvedObject"]["name"] == "ghost" and "'ghost' is not a tenant" in e["message"] for e in events
    )
    assert any(
        e["involvedObject"]["name"] == "nobody-job" and e["reason"] == "TenantNotAllowed" for e in events
    )

    # Named right, the same job runs, charged to its own tenant.
    fixed = job("fixed", gpus=1, seconds=0.2)
    fixed["spec"]["tenant"] = "research"
    await kube.post(AIJOBS, fixed)
    done = await until(kube, AIJOBS, lambda j: phase(j, "fixed") == "Succeeded")
    assert done["fixed"]["status"]["tenant"] == "research"


async def test_a_job_that_can_never_be_admitted_makes_no_pod_and_the_others_go_on(operator: Operator) -> None:
    kube = operator.kube
    await _quotas(operator, research_gpus=128)
    await kube.post(AIJOBS, job("huge", workers=9_999, gpus=1))  # 10,000 GPUs; research may use 128
    endless = job("endless", gpus=1)
    endless["spec"]["replicas"][0]["template"]["spec"]["containers"][0]["resources"]["limits"] = {
        "nvidia.com/gpu": "1e9"
    }
    await kube.post(AIJOBS, endless)
    await kube.post(AIJOBS, job("small", gpus=1, seconds=0.2))

    def settled(jobs: dict[str, JsonObject]) -> bool:
        return (
            _condition(jobs.get("huge"), "Admissible").get("status") == "False"
            and _condition(jobs.get("endless"), "Admissible").get("status") == "False"
            and phase(jobs, "small") == "Succeeded"
        )

    jobs = await until(kube, AIJOBS, settled)
    huge = _condition(jobs["huge"], "Admissible")
    assert (huge["reason"], huge["message"]) == (
        "ExceedsQuota",
        "the job asks 10000 nvidia.com/gpu, more than tenant research may ever use (128 nvidia.com/gpu)",
    )
    assert jobs["huge"]["status"]["message"].startswith("cannot be admitted: the job asks 10000")
    assert _condition(jobs["endless"], "Admissible")["reason"] == "ExceedsQuota"
    assert await _job_pods(operator, "huge") == [], "not one pod made for a job that cannot run"
    assert await _job_pods(operator, "endless") == []
    events = [e for e in (await kube.get(EVENTS))["items"] if e["involvedObject"]["name"] == "huge"]
    assert [e["reason"] for e in events] == ["Inadmissible"]

    # Past the cluster, not the quota: refused all the same, naming the cluster's figure.
    await kube.patch(
        f"{QUOTAS}/research", {"spec": {"resources": {"nvidia.com/gpu": {"guaranteed": "20000"}}}}
    )
    jobs = await until(
        kube, AIJOBS, lambda j: _condition(j.get("huge"), "Admissible").get("reason") == "ExceedsCluster"
    )
    assert _condition(jobs["huge"], "Admissible")["message"] == (
        "the job asks 10000 nvidia.com/gpu; the cluster has 256 GPUs"
    )
    assert await _job_pods(operator, "huge") == []


async def test_a_restarted_operator_still_counts_the_quota_its_running_jobs_hold() -> None:
    async with Emulator(cluster=DEFAULT_CLUSTER) as api, KubeClient(base_url=api.url, timeout=10.0) as kube:
        ensure_namespace(api, "aisched-system")
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        await kube.post(QUOTAS, gpu_quota("research", [NAMESPACE], guaranteed=8, cohort=None))
        stop = asyncio.Event()
        first = await _start(api, settings(), stop)
        await kube.post(AIJOBS, job("a", workers=1, gpus=4))  # 8 GPUs: the whole quota
        await until(kube, AIJOBS, lambda j: phase(j, "a") == "Running")
        stop.set()
        assert await first == 0
        # A new process, leading at once: it must know the TenantQuotas before it admits anything.
        again = asyncio.Event()
        second = await _start(api, settings(enabled=False), again)
        try:
            await kube.post(AIJOBS, job("b", workers=1, gpus=4))
            jobs = await until(
                kube, AIJOBS, lambda j: _condition(j.get("b"), "Admitted").get("reason") == "WaitingForQuota"
            )
            assert phase(jobs, "a") == "Running"
            assert "tenant research's admitted jobs ask 8 nvidia.com/gpu" in jobs["b"]["status"]["message"]
            pods = (await kube.get(PODS, params={"labelSelector": "aisched.io/job=b"}))["items"]
            assert pods == []
        finally:
            again.set()
            assert await second == 0
