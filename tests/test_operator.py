"""The whole operator (Kopf, leader election, informers, scheduler, binder, AIJob controller) against
the emulator over HTTP, as `aisched run --emulator` runs it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import pytest

from aisched.controllers.kopf_handlers import Connection, run_operator
from aisched.controllers.manager import Manager
from aisched.emulator.cluster import ClusterSpec
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from aisched.runner import DEFAULT_CLUSTER, ensure_namespace
from aisched.settings import Settings, load_settings
from tests.support.objects import gpu_quota

NAMESPACE: Final = "ml"
AIJOBS: Final = f"/apis/aisched.io/v1alpha1/namespaces/{NAMESPACE}/aijobs"
PODS: Final = f"/api/v1/namespaces/{NAMESPACE}/pods"
WAIT: Final = 30.0


def settings(**election: Any) -> Settings:
    return load_settings(
        {},
        metrics={"port": 0, "host": "127.0.0.1"},
        leader_election={"lease_duration": 3, "renew_deadline": 2.0, "retry_period": 0.25, **election},
    )


@dataclass
class Operator:
    api: Emulator
    kube: KubeClient


async def _start(api: Emulator, config: Settings, stop: asyncio.Event) -> asyncio.Task[int]:
    return asyncio.create_task(run_operator(Connection(server=api.url), config, stop=stop))


@pytest.fixture
async def operator(request: pytest.FixtureRequest) -> AsyncIterator[Operator]:
    """One operator replica on a cluster (default: 32 DGX H100 nodes in 4 racks); param: a ClusterSpec."""
    cluster = getattr(request, "param", DEFAULT_CLUSTER)
    async with Emulator(cluster=cluster) as api, KubeClient(base_url=api.url, timeout=10.0) as kube:
        ensure_namespace(api, "aisched-system")
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        stop = asyncio.Event()
        task = await _start(api, settings(), stop)
        try:
            yield Operator(api, kube)
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                assert await task == 0, "the operator exited with an error"


def job(
    name: str,
    *,
    workers: int = 1,
    gpus: int = 8,
    seconds: float | None = None,
    models: list[str] | None = None,
    timeout: int | None = None,
) -> JsonObject:
    template: dict[str, Any] = {
        "metadata": {"annotations": {"aisched.io/sim-duration": f"{seconds}s"} if seconds else {}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "pytorch",
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "resources": {
                        "requests": {"cpu": "16", "memory": "64Gi"},
                        "limits": {"nvidia.com/gpu": gpus, "memory": "64Gi"},
                    },
                }
            ],
        },
    }
    spec: dict[str, Any] = {
        "topology": {"policy": "Required", "level": "rack"},
        "restart": {"policy": "Never"},
        "replicas": [
            {"name": "master", "count": 1, "template": template},
            {"name": "worker", "count": workers, "template": copy.deepcopy(template)},
        ],
    }
    if models is not None:
        spec["gpu"] = {"models": models}
    if timeout is not None:
        spec["gang"] = {"timeoutSeconds": timeout}
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


async def until(
    kube: KubeClient, path: str, wanted: Callable[[dict[str, JsonObject]], bool]
) -> dict[str, JsonObject]:
    """The objects at `path` by name, once `wanted` holds for them: a list, then its watch."""
    async with asyncio.timeout(WAIT):
        listing = await kube.get(path)
        objects = {o["metadata"]["name"]: o for o in listing["items"]}
        version = listing["metadata"]["resourceVersion"]
        while not wanted(objects):
            async for event in kube.watch(
                path, params={"resourceVersion": version, "allowWatchBookmarks": "true"}
            ):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if event["type"] == "DELETED":
                    objects.pop(obj["metadata"]["name"], None)
                elif event["type"] != "BOOKMARK":
                    objects[obj["metadata"]["name"]] = obj
                if wanted(objects):
                    break
    return objects


def phase(jobs: dict[str, JsonObject], name: str) -> str | None:
    found = jobs.get(name)
    return None if found is None else (found.get("status") or {}).get("phase")


def condition(obj: JsonObject, kind: str) -> JsonObject:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def test_a_16_gpu_ddp_job_runs_as_one_gang_in_one_rack_and_succeeds(operator: Operator) -> None:
    kube = operator.kube
    await kube.post(AIJOBS, job("ddp", seconds=1.5))
    jobs = await until(kube, AIJOBS, lambda j: phase(j, "ddp") == "Running")
    running = jobs["ddp"]
    placement = running["status"]["placement"]
    assert sorted(p["pod"] for p in placement) == ["ddp-master-0", "ddp-worker-0"]
    nodes = {
        (await kube.get(f"/api/v1/nodes/{p['node']}"))["metadata"]["labels"]["aisched.io/rack"]
        for p in placement
    }
    assert len(nodes) == 1, f"one rack, got {nodes}"
    assert all(len(set(p["gpus"])) == 8 for p in placement)
    pods = {p["metadata"]["name"]: p for p in (await kube.get(PODS))["items"]}
    master, worker = pods["ddp-master-0"], pods["ddp-worker-0"]
    env = {e["name"]: e["value"] for e in worker["spec"]["containers"][0]["env"]}
    assert env["WORLD_SIZE"] == "2"
    assert env["RANK"] == "1"
    assert env["MASTER_ADDR"] == "ddp-master-0.ddp.ml.svc"
    assert master["metadata"]["annotations"]["aisched.io/gpus"].count(",") == 7
    service = await kube.get(f"/api/v1/namespaces/{NAMESPACE}/services/ddp")
    assert service["spec"]["clusterIP"] == "None"
    done = await until(kube, AIJOBS, lambda j: phase(j, "ddp") in ("Succeeded", "Failed"))
    assert phase(done, "ddp") == "Succeeded", done["ddp"]["status"]["message"]
    assert done["ddp"]["status"]["completionTime"]


TWO_NODES: Final = ClusterSpec.model_validate(
    {"nodeGroups": [{"name": "gpu", "count": 2, "machine": "dgx-h100", "rack": "r1"}]}
)


@pytest.mark.parametrize("operator", [TWO_NODES], indirect=True)
async def test_two_gangs_competing_for_the_last_gpus_one_waits_whole_then_runs(operator: Operator) -> None:
    kube = operator.kube
    await kube.post(AIJOBS, job("first"))  # runs until the test ends its pods
    await until(kube, AIJOBS, lambda j: phase(j, "first") == "Running")
    await kube.post(AIJOBS, job("second", seconds=0.5))
    waiting = await until(
        kube,
        AIJOBS,
        lambda j: (
            _has_condition(j.get("second"), "Scheduled", "Unschedulable")
            and j["second"]["status"].get("queue", {}).get("position") == 1
        ),
    )
    assert phase(waiting, "second") == "Queued"
    assert "0/2 nodes are available" in condition(waiting["second"], "Scheduled")["message"]
    queue = waiting["second"]["status"]["queue"]
    assert (queue["name"], queue["strategy"], queue["position"], queue["length"]) == (
        "namespace/ml",
        "BestEffortFIFO",
        1,
        1,
    )
    assert queue["reservedNodes"] >= 2, "the head of its queue holds the nodes it will start on"
    assert "estimatedStart" not in queue, "the first job has no runtime limit: no start is promised"
    assert (
        "position 1 of 1 in namespace/ml (BestEffortFIFO); reserved:"
        in waiting["second"]["status"]["message"]
    )
    pods = (await kube.get(PODS))["items"]
    seconds = [p for p in pods if p["metadata"]["name"].startswith("second-")]
    assert len(seconds) == 2
    assert not [p for p in seconds if p["spec"].get("nodeName")], "no member of the waiting gang is bound"
    for name in ("first-master-0", "first-worker-0"):
        await _finish(kube, name)
    done = await until(kube, AIJOBS, lambda j: phase(j, "second") in ("Succeeded", "Failed"))
    assert phase(done, "first") == "Succeeded"
    assert phase(done, "second") == "Succeeded"
    assert "queue" not in done["second"]["status"]


def _has_condition(obj: JsonObject | None, kind: str, reason: str) -> bool:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("reason") == reason for c in conditions)


async def _finish(kube: KubeClient, name: str) -> None:
    """End pod `name` successfully, as its kubelet would when the container exits 0."""
    await _end(kube, name, code=0)


async def _end(kube: KubeClient, name: str, *, code: int) -> None:
    """End pod `name`'s container with exit `code`, as its kubelet would."""
    await kube.patch(
        f"{PODS}/{name}/status",
        {
            "status": {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "pytorch",
                        "ready": False,
                        "restartCount": 0,
                        "image": "",
                        "imageID": "",
                        "state": {
                            "terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
                        },
                    }
                ],
            }
        },
    )


async def test_broken_jobs_end_with_a_clear_condition_while_others_keep_scheduling(
    operator: Operator,
) -> None:
    kube = operator.kube
    await kube.post(AIJOBS, job("too-big", gpus=9, timeout=2))
    await kube.post(AIJOBS, job("no-such-gpu", models=["B300-288GB"]))
    await kube.post(AIJOBS, job("fine", seconds=0.5))
    jobs = await until(
        kube,
        AIJOBS,
        lambda j: (
            phase(j, "too-big") == "Failed"
            and phase(j, "fine") == "Succeeded"
            and _has_condition(j.get("no-such-gpu"), "Admissible", "ExceedsCluster")
        ),
    )
    too_big = jobs["too-big"]["status"]
    assert condition(jobs["too-big"], "Failed")["reason"] == "GangTimeout"
    assert "a pod asks 9 GPUs; no node has more than 8 GPUs" in too_big["message"], too_big["message"]
    unknown = condition(jobs["no-such-gpu"], "Admissible")
    assert unknown["status"] == "False"
    assert "the cluster has 0 GPUs of model B300-288GB" in unknown["message"], unknown["message"]
    pods = (await kube.get(PODS))["items"]
    made_for = {p["metadata"]["labels"]["aisched.io/job"] for p in pods}
    assert made_for == {"fine"}, "no pod for a job never admitted"
    events = (await kube.get(f"/api/v1/namespaces/{NAMESPACE}/events"))["items"]
    about = [
        e for e in events if e["involvedObject"].get("kind") == "AIJob" and e["reason"] == "Inadmissible"
    ]
    assert {e["involvedObject"]["name"] for e in about} >= {"no-such-gpu"}
    assert len([e for e in about if e["involvedObject"]["name"] == "no-such-gpu"]) == 1, (
        "one Event, not one per cycle"
    )


async def test_a_failed_pod_restarts_the_whole_gang_once(operator: Operator) -> None:
    kube = operator.kube
    body = job("flaky", workers=2)
    body["spec"]["restart"] = {"policy": "OnFailure", "backoffLimit": 3}
    await kube.post(AIJOBS, body)
    await until(kube, AIJOBS, lambda j: phase(j, "flaky") == "Running")
    first = {p["metadata"]["name"]: p["metadata"]["uid"] for p in (await kube.get(PODS))["items"]}
    await _end(kube, "flaky-worker-1", code=3)
    # A new attempt: every pod replaced (new uids), the gang placed and running again.
    jobs = await until(
        kube,
        AIJOBS,
        lambda j: phase(j, "flaky") == "Running" and (j["flaky"]["status"].get("restarts") or 0) >= 1,
    )
    status = jobs["flaky"]["status"]
    assert status["restarts"] == 1, "one failure, one restart"
    pods = (await kube.get(PODS))["items"]
    second = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
    assert second.keys() == first.keys()
    assert not set(second.values()) & set(first.values()), "the whole gang was replaced"
    assert {p["metadata"]["annotations"]["aisched.io/attempt"] for p in pods} == {"1"}
    assert "startTime" in status
    for name in second:
        await _end(kube, name, code=0)
    done = await until(kube, AIJOBS, lambda j: phase(j, "flaky") in ("Succeeded", "Failed"))
    assert phase(done, "flaky") == "Succeeded"
    assert done["flaky"]["status"]["restarts"] == 1


async def test_deleting_a_job_deletes_its_pods(operator: Operator) -> None:
    kube = operator.kube
    await kube.post(AIJOBS, job("doomed"))
    await until(kube, AIJOBS, lambda j: phase(j, "doomed") == "Running")
    await kube.delete(f"{AIJOBS}/doomed")
    await until(kube, PODS, lambda pods: not any(n.startswith("doomed-") for n in pods))


async def test_killing_the_leader_hands_over_to_the_other_replica() -> None:
    async with Emulator(cluster=DEFAULT_CLUSTER) as api, KubeClient(base_url=api.url, timeout=10.0) as kube:
        ensure_namespace(api, "aisched-system")
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        stops = [asyncio.Event(), asyncio.Event()]
        managers: list[Manager] = []
        clients = [KubeClient(base_url=api.url, timeout=10.0) for _ in stops]
        tasks = []
        for i, client in enumerate(clients):
            await client.__aenter__()
            managers.append(Manager(client, settings(), identity=f"replica-{i}", serve_metrics=False))
            tasks.append(asyncio.create_task(managers[i].run(stops[i])))
        try:
            waiters = [asyncio.create_task(m.leading.wait()) for m in managers]
            try:
                async with asyncio.timeout(WAIT):
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            leader = 0 if managers[0].leading.is_set() else 1
            other = 1 - leader
            assert not managers[other].leading.is_set(), "only one replica leads"
            await kube.post(PODS, _pod("before"))
            await until(kube, PODS, lambda p: bool(p.get("before", {}).get("spec", {}).get("nodeName")))
            tasks[leader].cancel()  # a crash: the Lease is not released, it has to expire
            await asyncio.gather(tasks[leader], return_exceptions=True)
            await kube.post(PODS, _pod("after"))
            pods = await until(kube, PODS, lambda p: bool(p.get("after", {}).get("spec", {}).get("nodeName")))
            assert managers[other].leading.is_set()
            lease = await kube.get(
                "/apis/coordination.k8s.io/v1/namespaces/aisched-system/leases/aisched-scheduler"
            )
            assert lease["spec"]["holderIdentity"] == f"replica-{other}"
            assert pods["before"]["spec"]["nodeName"], "the first pod stayed bound where it was"
            runtime = managers[other].runtime
            assert runtime is not None
            assert runtime.cache.pod(f"{NAMESPACE}/before") is not None, (
                "the new leader accounted the bound pod"
            )
        finally:
            for stop in stops:
                stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                await client.close()


def _pod(name: str) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "schedulerName": "aisched",
            "containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
        },
    }


async def test_a_restarted_operator_picks_up_running_jobs_without_touching_their_pods() -> None:
    async with Emulator(cluster=TWO_NODES) as api, KubeClient(base_url=api.url, timeout=10.0) as kube:
        ensure_namespace(api, "aisched-system")
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        stop = asyncio.Event()
        first = await _start(api, settings(), stop)
        await kube.post(AIJOBS, job("long"))
        await until(kube, AIJOBS, lambda j: phase(j, "long") == "Running")
        before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in (await kube.get(PODS))["items"]}
        stop.set()
        assert await first == 0
        # While no operator runs, a second job arrives; the first job's pods finish.
        await kube.post(AIJOBS, job("later", seconds=0.5))
        again = asyncio.Event()
        second = await _start(api, settings(), again)
        try:
            await until(kube, AIJOBS, lambda j: phase(j, "later") == "Queued")
            pods = (await kube.get(PODS))["items"]
            after = {
                p["metadata"]["name"]: p["metadata"]["uid"]
                for p in pods
                if p["metadata"]["name"].startswith("long-")
            }
            assert after == before, "the running job's pods were left alone"
            for name in before:
                await _finish(kube, name)
            done = await until(kube, AIJOBS, lambda j: phase(j, "later") in ("Succeeded", "Failed"))
            assert phase(done, "long") == "Succeeded"
            assert phase(done, "later") == "Succeeded"
        finally:
            again.set()
            assert await second == 0


class _HeldBindings(KubeClient):
    """A client whose Binding POSTs, but the first, wait until the test lets them through."""

    def __init__(self, *, base_url: str) -> None:
        super().__init__(base_url=base_url, timeout=10.0)
        self.release = asyncio.Event()
        self.held = 0
        self.some_held = asyncio.Event()

    async def post(self, path: str, body: JsonObject, **options: Any) -> JsonObject:
        if path.endswith("/binding") and not path.endswith("/g-0/binding"):
            self.held += 1
            self.some_held.set()
            await self.release.wait()
        return await super().post(path, body, **options)


async def test_stopping_the_leader_mid_gang_finishes_the_gangs_bindings_first() -> None:
    async with Emulator(cluster=DEFAULT_CLUSTER) as api, KubeClient(base_url=api.url, timeout=10.0) as kube:
        ensure_namespace(api, "aisched-system")
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        async with _HeldBindings(base_url=api.url) as client:
            manager = Manager(client, settings(), identity="solo", serve_metrics=False)
            stop = asyncio.Event()
            task = asyncio.create_task(manager.run(stop))
            async with asyncio.timeout(WAIT):
                await manager.leading.wait()
            for i in range(4):
                member = _pod(f"g-{i}")
                member["metadata"]["labels"] = {"aisched.io/gang": "g"}
                member["metadata"]["annotations"] = {"aisched.io/gang-min-member": "4"}
                member["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = 8
                await kube.post(PODS, member)
            await until(kube, PODS, lambda p: bool(p.get("g-0", {}).get("spec", {}).get("nodeName")))
            async with asyncio.timeout(WAIT):
                await client.some_held.wait()
            stop.set()  # SIGTERM while three Bindings are in flight (a rolling update)
            for _ in range(200):  # let the stop reach the term (a cancelled term would drop them now)
                await asyncio.sleep(0)
            client.release.set()
            async with asyncio.timeout(WAIT):
                await task
        pods = (await kube.get(PODS))["items"]
        bound = sorted(p["metadata"]["name"] for p in pods if p["spec"].get("nodeName"))
        assert bound == ["g-0", "g-1", "g-2", "g-3"], "the gang's bindings finished before the term ended"


async def test_a_tenants_usage_and_jobs_show_in_its_tenantquota_status(operator: Operator) -> None:
    kube = operator.kube
    quotas = "/apis/aisched.io/v1alpha1/tenantquotas"
    for name, namespaces, guaranteed in (("research", [NAMESPACE], 8), ("inference", ["serve"], 32)):
        await kube.post(quotas, gpu_quota(name, namespaces, guaranteed=guaranteed, maximum=32))
    await kube.post(AIJOBS, job("ddp"))  # 16 GPUs: 8 guaranteed, 8 borrowed from inference's idle 32
    await until(kube, AIJOBS, lambda j: phase(j, "ddp") == "Running")
    found = await until(
        kube, quotas, lambda q: ((q.get("research") or {}).get("status") or {}).get("admittedJobs") == 1
    )
    status = found["research"]["status"]
    assert status["usedGPUs"] == 16.0
    assert status["borrowedGPUs"] == 8.0
    assert status["used"]["nvidia.com/gpu"] == "16"
    jobs = await kube.get(AIJOBS)
    assert jobs["items"][0]["status"]["tenant"] == "research"


async def test_a_tenant_at_its_quota_waits_with_a_clear_message_while_others_proceed(
    operator: Operator,
) -> None:
    kube = operator.kube
    quotas = "/apis/aisched.io/v1alpha1/tenantquotas"
    await kube.post("/api/v1/namespaces", {"metadata": {"name": "serve"}})
    for name, namespace, gpus in (("research", NAMESPACE, 8), ("inference", "serve", 64)):
        await kube.post(quotas, gpu_quota(name, [namespace], guaranteed=gpus, cohort=None))
    other = job("other")
    other["metadata"]["namespace"] = "serve"
    await kube.post("/apis/aisched.io/v1alpha1/namespaces/serve/aijobs", other)
    await kube.post(AIJOBS, job("big"))  # 16 GPUs for a tenant allowed 8
    waiting = await until(kube, AIJOBS, lambda j: _has_condition(j.get("big"), "Admissible", "ExceedsQuota"))
    message = condition(waiting["big"], "Admissible")["message"]
    assert "the job asks 16 nvidia.com/gpu, more than tenant research may ever use (8 nvidia.com/gpu)" in (
        message
    )
    assert phase(waiting, "big") == "Pending"
    pods = (await kube.get(PODS))["items"]
    assert not [p for p in pods if p["metadata"]["labels"].get("aisched.io/job") == "big"]
    served = await until(
        kube, "/apis/aisched.io/v1alpha1/namespaces/serve/aijobs", lambda j: phase(j, "other") == "Running"
    )
    assert phase(served, "other") == "Running", "the other tenant was not held up"
    await kube.patch(f"{quotas}/research", {"spec": {"resources": {"nvidia.com/gpu": {"guaranteed": "16"}}}})
    await until(kube, AIJOBS, lambda j: phase(j, "big") == "Running")


def reclaimable_tenant(name: str, namespace: str, *, guaranteed: int, maximum: int) -> JsonObject:
    """A tenant whose jobs may be preempted at once (no minimum runtime) to reclaim its lenders'."""
    preemption = {"reclaimWithinCohort": "Any", "minRuntimeSeconds": 0}
    return gpu_quota(name, [namespace], guaranteed=guaranteed, maximum=maximum, preemption=preemption)


async def lender_and_borrower(kube: KubeClient, *, guaranteed: int, maximum: int) -> str:
    """Tenant `a` (namespace NAMESPACE) and tenant `b` (namespace `serve`, made here), each with
    `guaranteed` GPUs and up to `maximum`, reclaimable at once; returns `serve`'s AIJob path."""
    await kube.post("/api/v1/namespaces", {"metadata": {"name": "serve"}})
    for body in (
        reclaimable_tenant("a", NAMESPACE, guaranteed=guaranteed, maximum=maximum),
        reclaimable_tenant("b", "serve", guaranteed=guaranteed, maximum=maximum),
    ):
        await kube.post("/apis/aisched.io/v1alpha1/tenantquotas", body)
    return "/apis/aisched.io/v1alpha1/namespaces/serve/aijobs"


@pytest.mark.parametrize("operator", [TWO_NODES], indirect=True)
async def test_a_tenant_reclaims_its_guarantee_from_a_borrower_whose_gang_goes_back_to_the_queue(
    operator: Operator,
) -> None:
    kube = operator.kube
    serve = await lender_and_borrower(kube, guaranteed=8, maximum=16)
    borrower = job("borrower")  # 16 GPUs: a's 8, and b's idle 8
    borrower["spec"]["checkpoint"] = {"method": "Annotation", "gracePeriodSeconds": 1}
    await kube.post(AIJOBS, borrower)
    await until(kube, AIJOBS, lambda j: phase(j, "borrower") == "Running")
    listing = await kube.get(PODS)
    first = {p["metadata"]["uid"] for p in listing["items"]}
    timeline = asyncio.create_task(_eviction_timeline(kube, listing["metadata"]["resourceVersion"], first))
    owner = job("owner", gpus=4)  # 8 GPUs: exactly b's guarantee
    owner["metadata"]["namespace"] = "serve"
    await kube.post(serve, owner)
    # b takes back what it is guaranteed: the borrower's whole gang is evicted, not failed.
    await until(kube, serve, lambda j: phase(j, "owner") == "Running")
    jobs = await until(kube, AIJOBS, lambda j: (j["borrower"]["status"].get("preemptions") or 0) == 1)
    status = jobs["borrower"]["status"]
    assert status["phase"] in ("Preempted", "Queued"), status  # never Restarting: not a failure
    assert status["restarts"] == 0, "a preemption is not a failure"
    pods = (await kube.get(PODS))["items"]
    assert not {p["metadata"]["uid"] for p in pods} & first, "every pod of the borrower's gang went"
    asked, last_victim_gone, first_owner_bound = await timeline
    assert asked == first, "each was asked to checkpoint before it was deleted"
    assert last_victim_gone < first_owner_bound, "the room was given only once the victims were gone"
    assert not [p for p in pods if p["spec"].get("nodeName")], "and its new gang waits whole"
    waiting = await until(
        kube, AIJOBS, lambda j: _has_condition(j.get("borrower"), "Scheduled", "Unschedulable")
    )
    assert "waiting for quota" in condition(waiting["borrower"], "Scheduled")["message"]
    # The owner finishes: the borrower runs again.
    for name in ("owner-master-0", "owner-worker-0"):
        await kube.patch(
            f"/api/v1/namespaces/serve/pods/{name}/status",
            {"status": {"phase": "Succeeded"}},
        )
    await until(kube, AIJOBS, lambda j: phase(j, "borrower") == "Running")


async def test_a_higher_priority_job_evicts_a_lower_priority_one_of_its_tenant(operator: Operator) -> None:
    kube = operator.kube
    await kube.post(
        "/apis/aisched.io/v1alpha1/tenantquotas",
        reclaimable_tenant("a", NAMESPACE, guaranteed=16, maximum=16),
    )
    low = job("low")
    low["spec"]["priority"] = 1
    await kube.post(AIJOBS, low)
    await until(kube, AIJOBS, lambda j: phase(j, "low") == "Running")
    high = job("high")
    high["spec"]["priority"] = 100
    await kube.post(AIJOBS, high)
    jobs = await until(kube, AIJOBS, lambda j: phase(j, "high") == "Running")
    assert jobs["low"]["status"]["preemptions"] == 1
    other = job("urgent")
    other["spec"]["priority"] = 50
    await kube.post(AIJOBS, other)  # waits: its tenant is at its quota, and only `high` runs
    waiting = await until(
        kube, AIJOBS, lambda j: _has_condition(j.get("urgent"), "Admitted", "WaitingForQuota")
    )
    assert phase(waiting, "high") == "Running", "a higher-priority job is never evicted for a lower one"
    assert "tenant a's admitted jobs ask 32 nvidia.com/gpu" in waiting["urgent"]["status"]["message"]


async def _eviction_timeline(kube: KubeClient, version: str, uids: set[str]) -> tuple[set[str], int, int]:
    """Watching every pod until the victims (`uids`) are deleted and the owner's pods bound: the
    victims seen asked to checkpoint, the position of the last victim's deletion and of the first
    binding of an owner pod in the stream."""
    asked: set[str] = set()
    gone: dict[str, int] = {}
    bound: dict[str, int] = {}
    async with asyncio.timeout(WAIT):
        async for seq, event in _numbered(kube.watch("/api/v1/pods", params={"resourceVersion": version})):
            obj = event["object"]
            uid, name = obj["metadata"].get("uid"), obj["metadata"]["name"]
            if uid in uids:
                annotations = obj["metadata"].get("annotations") or {}
                if annotations.get("aisched.io/checkpoint-requested") == "true" and uid not in gone:
                    asked.add(uid)
                if event["type"] == "DELETED":
                    gone[uid] = seq
            elif name.startswith("owner-") and obj["spec"].get("nodeName"):
                bound.setdefault(name, seq)
            if gone.keys() == uids and len(bound) == 2:
                break
    return asked, max(gone.values()), min(bound.values())


async def _numbered(stream: AsyncIterator[JsonObject]) -> AsyncIterator[tuple[int, JsonObject]]:
    seq = 0
    async for event in stream:
        seq += 1
        yield seq, event
