"""The job index Kopf feeds, and the AIJob controller's writes against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Final, cast

import pytest
from opentelemetry.sdk.trace import TracerProvider

from aisched.api.objects import rfc3339
from aisched.controllers.aijob.controller import JobController, QueueView
from aisched.controllers.index import JobIndex, owning_job
from aisched.emulator.runner import Emulator
from aisched.framework.reservations import Reservation
from aisched.kube.client import JsonObject, KubeClient
from aisched.kube.informer import Informer
from aisched.observability.tracing import Tracing
from aisched.scheduler.queueing import QueueStatus
from tests.support.objects import aijob

NAMESPACE: Final = "ml-research"
AIJOBS: Final = f"/apis/aisched.io/v1alpha1/namespaces/{NAMESPACE}/aijobs"
PODS: Final = f"/api/v1/namespaces/{NAMESPACE}/pods"


def versioned(name: str, version: str, **status: Any) -> JsonObject:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": version},
        "spec": {},
        "status": status,
    }


def test_an_older_copy_never_replaces_a_newer_one() -> None:
    index = JobIndex()
    seen: list[str] = []
    index.subscribe(seen.append, lambda: None)
    index.job_event(None, versioned("a", "10", restarts=1))
    index.job_event("MODIFIED", versioned("a", "9", restarts=0))  # Kopf's event, older than our write
    assert index.jobs[f"{NAMESPACE}/a"]["status"]["restarts"] == 1
    assert seen == [f"{NAMESPACE}/a"], "an ignored copy tells nobody"
    index.job_event("DELETED", versioned("a", "11"))
    assert index.jobs == {}


def test_a_fresh_list_drops_jobs_deleted_while_unwatched() -> None:
    index = JobIndex()
    index.job_event(None, versioned("a", "1"))
    index.job_event(None, versioned("b", "2"))
    dropped = index.replace_jobs([versioned("b", "3")])
    assert dropped == {f"{NAMESPACE}/a"}
    assert list(index.jobs) == [f"{NAMESPACE}/b"]


def test_tenants_follow_their_quotas_namespaces() -> None:
    index = JobIndex()
    quota_changes: list[None] = []
    index.subscribe(lambda key: None, lambda: quota_changes.append(None))
    index.tenant_event(None, {"metadata": {"name": "research"}, "spec": {"namespaces": ["ml", "ml-2"]}})
    assert index.tenant_of(None, "ml").tenant == "research"
    index.tenant_event("MODIFIED", {"metadata": {"name": "research"}, "spec": {"namespaces": ["ml-2"]}})
    assert index.tenant_of(None, "ml").tenant is None
    index.tenant_event("DELETED", {"metadata": {"name": "research"}, "spec": {}})
    assert index.tenant_of(None, "ml-2").tenant is None
    assert len(quota_changes) == 3


def test_only_pods_an_aijob_controls_belong_to_a_job() -> None:
    owned = {
        "metadata": {
            "namespace": "ml",
            "ownerReferences": [{"kind": "AIJob", "apiVersion": "aisched.io/v1alpha1", "name": "j"}],
        }
    }
    labelled_only = {"metadata": {"namespace": "ml", "labels": {"aisched.io/job": "j"}}}
    assert owning_job(owned) == "ml/j"
    assert owning_job(labelled_only) is None


class Running:
    def __init__(self, kube: KubeClient, index: JobIndex, controller: JobController) -> None:
        self.kube = kube
        self.index = index
        self.controller = controller


@pytest.fixture
async def controller(emulator_cluster: Emulator) -> AsyncIterator[Running]:
    """A JobController on the demo cluster, its pod view fed by hand (no scheduler runs)."""
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        index = JobIndex()
        synced = asyncio.Event()
        jobs = JobController(kube, index, clock=time.time, pods_synced=synced)
        stop = asyncio.Event()
        task = asyncio.create_task(jobs.run(stop))
        try:
            yield Running(kube, index, jobs)
        finally:
            stop.set()
            await task


async def test_no_pods_are_made_for_a_job_deleted_before_the_news_arrived(emulator_cluster: Emulator) -> None:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        created = await kube.post(AIJOBS, aijob())
        await kube.delete(f"{AIJOBS}/{created['metadata']['name']}")
        index = JobIndex()
        index.job_event(None, created)  # Kopf's DELETED is late, or was lost in a watch gap
        jobs = JobController(kube, index, clock=time.time, pods_synced=asyncio.Event())
        await jobs._reconcile(f"{NAMESPACE}/llama-pretrain")
        assert index.jobs == {}, "the controller learnt that the job is gone"
        assert (await kube.get(PODS))["items"] == []
        assert (await kube.get(f"/api/v1/namespaces/{NAMESPACE}/services"))["items"] == []


async def test_pods_of_a_job_that_no_longer_exists_are_deleted(controller: Running) -> None:
    orphan = {
        "metadata": {
            "name": "gone-worker-0",
            "namespace": NAMESPACE,
            "ownerReferences": [
                {
                    "apiVersion": "aisched.io/v1alpha1",
                    "kind": "AIJob",
                    "name": "gone",
                    "uid": "u-gone",
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    pod = await controller.kube.post(PODS, orphan)
    controller.controller.pod_event(pod, False)
    controller.controller._pods_synced.set()
    async with asyncio.timeout(10):
        listing = await controller.kube.get(PODS)
        version = listing["metadata"]["resourceVersion"]
        if listing["items"]:
            async for event in controller.kube.watch(PODS, params={"resourceVersion": version}):
                if event["type"] == "DELETED":
                    break
    assert (await controller.kube.get(PODS))["items"] == []


class _PodFeed:
    """What the scheduler's pod informer tells the job controller."""

    def __init__(self, jobs: JobController, synced: asyncio.Event) -> None:
        self.jobs = jobs
        self.synced = synced

    def on_add(self, obj: JsonObject) -> None:
        self.jobs.pod_event(obj, False)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self.jobs.pod_event(new, False)

    def on_delete(self, obj: JsonObject) -> None:
        self.jobs.pod_event(obj, True)

    def on_synced(self) -> None:
        self.synced.set()


@contextlib.asynccontextmanager
async def _term(
    kube: KubeClient, *, queue_view: QueueView | None = None, queue_status_every: float = 10.0
) -> AsyncIterator[JobController]:
    """One leadership term: a JobController that knows nothing yet, fed by its own pod informer."""
    synced = asyncio.Event()
    jobs = JobController(
        kube,
        JobIndex(),
        clock=time.time,
        pods_synced=synced,
        queue_view=queue_view,
        queue_status_every=queue_status_every,
    )
    informer = Informer(kube, path=PODS, handler=_PodFeed(jobs, synced))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(informer.run(stop)), asyncio.create_task(jobs.run(stop))]
    try:
        yield jobs
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def _pods_once(
    kube: KubeClient, wanted: Callable[[dict[str, JsonObject]], bool]
) -> dict[str, JsonObject]:
    """The namespace's pods by name, as soon as they are as `wanted`."""
    listing = await kube.get(PODS)
    pods = {p["metadata"]["name"]: p for p in listing["items"]}
    if wanted(pods):
        return pods
    stream = cast(
        AsyncGenerator[JsonObject, None],
        kube.watch(PODS, params={"resourceVersion": listing["metadata"]["resourceVersion"]}),
    )
    async with contextlib.aclosing(stream), asyncio.timeout(10):
        async for event in stream:
            name = event["object"]["metadata"]["name"]
            if event["type"] == "DELETED":
                pods.pop(name, None)
            else:
                pods[name] = event["object"]
            if wanted(pods):
                return pods
    raise AssertionError("the watch ended before the pods came")


def _sequence(pod: JsonObject) -> str:
    return str(pod["metadata"]["annotations"]["aisched.io/queue-sequence"])


async def test_pods_carry_the_jobs_creation_revision_runtime_limit_and_class(
    emulator_cluster: Emulator,
) -> None:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        body = aijob()
        body["metadata"]["labels"] = {
            "aisched.io/job-class": "llama-pretrain",
            "aisched.io/queue-sequence": "1",
        }
        body["spec"]["runtimeLimitSeconds"] = 3600
        body["spec"]["queueSequence"] = 1  # not a field of the spec: pruned
        body["status"] = {"queueSequence": 1}  # a client cannot write the status on create
        created = await kube.post(AIJOBS, body)
        revision = created["metadata"]["resourceVersion"]
        assert int(revision) > 1
        async with _term(kube):
            pods = await _pods_once(kube, lambda pods: len(pods) == 2)
        assert {_sequence(p) for p in pods.values()} == {revision}
        assert {p["spec"]["activeDeadlineSeconds"] for p in pods.values()} == {3600}
        assert {p["metadata"]["labels"]["aisched.io/job-class"] for p in pods.values()} == {"llama-pretrain"}
        job = await kube.get(f"{AIJOBS}/llama-pretrain")
        assert job["status"]["queueSequence"] == int(revision)


async def test_the_sequence_survives_a_restart_and_reaches_a_replacement_pod(
    emulator_cluster: Emulator,
) -> None:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        revision = (await kube.post(AIJOBS, aijob()))["metadata"]["resourceVersion"]
        async with _term(kube):
            first = await _pods_once(kube, lambda pods: len(pods) == 2)
        # Meanwhile the job changes (a new resourceVersion) and a pod is lost.
        await kube.patch(f"{AIJOBS}/llama-pretrain", {"metadata": {"labels": {"team": "llm"}}})
        await kube.delete(f"{PODS}/llama-pretrain-worker-0")
        lost = first["llama-pretrain-worker-0"]["metadata"]["uid"]
        async with _term(kube):
            pods = await _pods_once(
                kube,
                lambda pods: (
                    "llama-pretrain-worker-0" in pods
                    and pods["llama-pretrain-worker-0"]["metadata"]["uid"] != lost
                ),
            )
        job = await kube.get(f"{AIJOBS}/llama-pretrain")
        assert job["metadata"]["resourceVersion"] != revision
        assert job["status"]["queueSequence"] == int(revision)
        assert {_sequence(p) for p in pods.values()} == {revision}


# -- a waiting job's place in its queue -------------------------------------------------------------

GANG: Final = f"{NAMESPACE}/gang:llama-pretrain"
EVERY: Final = 0.2  # the controller's queue_status_every in these tests, seconds


class _QueueView:
    """The scheduler's answer on where each gang waits, set by the test; counts what it is asked."""

    def __init__(self) -> None:
        self.places: dict[str, QueueStatus] = {}
        self.asked: list[str] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __call__(self, gang: str) -> QueueStatus | None:
        self.asked.append(gang)
        for count, waiter in self._waiters:
            if len(self.asked) >= count and not waiter.done():
                waiter.set_result(None)
        return self.places.get(gang)

    async def asked_at_least(self, count: int) -> None:
        if len(self.asked) >= count:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((count, waiter))
        async with asyncio.timeout(10):
            await waiter


async def _job_once(kube: KubeClient, wanted: Callable[[JsonObject], bool]) -> JsonObject:
    """The job as soon as it is as `wanted`."""
    path = f"{AIJOBS}/llama-pretrain"
    job = await kube.get(path)
    if wanted(job):
        return job
    stream = cast(
        AsyncGenerator[JsonObject, None],
        kube.watch(AIJOBS, params={"resourceVersion": job["metadata"]["resourceVersion"]}),
    )
    async with contextlib.aclosing(stream), asyncio.timeout(10):
        async for event in stream:
            changed: JsonObject = event["object"]
            if event["type"] != "DELETED" and wanted(changed):
                return changed
    raise AssertionError("the watch ended before the job was as wanted")


def _held_nodes(held: Reservation) -> list[tuple[str, str]]:
    """Each pod of the job with the held node it is bound to."""
    return list(zip(("llama-pretrain-master-0", "llama-pretrain-worker-0"), held.nodes, strict=True))


def _position(job: JsonObject) -> int | None:
    queue = (job.get("status") or {}).get("queue")
    return None if queue is None else int(queue["position"])


async def test_a_waiting_jobs_place_in_its_queue_reaches_its_status_and_follows_the_queue(
    emulator_cluster: Emulator,
) -> None:
    view = _QueueView()
    view.places[GANG] = QueueStatus(
        queue="tenant/research", strategy="StrictFIFO", position=3, length=7, reservation=None
    )
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        await kube.post(AIJOBS, aijob())
        async with _term(kube, queue_view=view, queue_status_every=EVERY):
            job = await _job_once(kube, lambda job: _position(job) == 3)
            assert job["status"]["phase"] == "Queued"
            assert job["status"]["queue"] == {
                "name": "tenant/research",
                "strategy": "StrictFIFO",
                "position": 3,
                "length": 7,
            }
            assert job["status"]["message"].endswith("; position 3 of 7 in tenant/research (StrictFIFO)")
            assert set(view.asked) == {GANG}

            # The gangs ahead start: nothing happens to this job, and yet its place moves up.
            start = time.time() + 600
            held = Reservation(
                gang=GANG,
                queue="tenant/research",
                order=(-100, 0.0, 0, GANG),
                nodes=("h100-000", "h100-001"),
                start=start,
                end=None,
                since=time.time(),
                wants=(8, 8),
                ready_nodes=1,
            )
            view.places[GANG] = QueueStatus(
                queue="tenant/research", strategy="StrictFIFO", position=1, length=6, reservation=held
            )
            job = await _job_once(kube, lambda job: _position(job) == 1)
            queue = job["status"]["queue"]
            assert (queue["length"], queue["reservedNodes"], queue["readyNodes"]) == (6, 2, 1)
            assert queue["estimatedStart"] == rfc3339(start)
            assert (
                "position 1 of 6 in tenant/research (StrictFIFO); reserved: 1 of 2 nodes"
                in (job["status"]["message"])
            )

            # A place that holds still is looked up once a period, and never written.
            loop = asyncio.get_running_loop()
            since, asked = loop.time(), len(view.asked)
            await view.asked_at_least(asked + 3)
            periods = (loop.time() - since) / EVERY
            assert len(view.asked) - asked <= periods + 2, "at most one lookup a period, and no busy loop"
            again = await kube.get(f"{AIJOBS}/llama-pretrain")
            assert again["metadata"]["resourceVersion"] == job["metadata"]["resourceVersion"]

            # Placed and running, the job has no place in a queue any more.
            for name, node in _held_nodes(held):
                binding = {"metadata": {"name": name}, "target": {"kind": "Node", "name": node}}
                await kube.post(f"{PODS}/{name}/binding", binding)
            job = await _job_once(kube, lambda job: job["status"]["phase"] == "Running")
            assert "queue" not in job["status"]


async def test_a_job_queued_too_recently_to_be_ranked_is_looked_up_again_within_a_ranking(
    emulator_cluster: Emulator,
) -> None:
    view = _QueueView()
    view.places[GANG] = QueueStatus(
        queue="namespace/ml-research", strategy="BestEffortFIFO", position=0, length=0, reservation=None
    )
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        await kube.post(AIJOBS, aijob())
        async with _term(kube, queue_view=view, queue_status_every=3600.0):
            job = await _job_once(kube, lambda job: _position(job) == 0)
            assert job["status"]["message"].endswith("; queued in namespace/ml-research (BestEffortFIFO)")
            view.places[GANG] = QueueStatus(
                queue="namespace/ml-research",
                strategy="BestEffortFIFO",
                position=2,
                length=2,
                reservation=None,
            )
            job = await _job_once(kube, lambda job: _position(job) == 2)  # not an hour later
            assert job["status"]["message"].endswith(
                "; position 2 of 2 in namespace/ml-research (BestEffortFIFO)"
            )


async def test_a_jobs_trace_is_the_one_aisched_records_not_one_its_creator_wrote(
    emulator_cluster: Emulator,
) -> None:
    forged = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    provider = TracerProvider()
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        job = aijob()
        job["metadata"].setdefault("annotations", {})["aisched.io/trace-context"] = forged
        created = await kube.post(AIJOBS, job)
        index = JobIndex()
        index.job_event(None, created)
        jobs = JobController(
            kube,
            index,
            clock=time.time,
            pods_synced=asyncio.Event(),
            tracing=Tracing(provider.get_tracer("t")),
        )
        key = f"{NAMESPACE}/{created['metadata']['name']}"

        await jobs._reconcile(key)
        await jobs._reconcile(key)  # once more: the trace recorded stays

        stored = await kube.get(f"{AIJOBS}/{created['metadata']['name']}")
        recorded = stored["status"]["traceContext"]
        assert recorded != forged
        assert recorded.split("-")[1] != forged.split("-")[1]  # another trace altogether
        assert stored["metadata"]["annotations"]["aisched.io/trace-context"] == recorded
        pods = (await kube.get(PODS))["items"]
        assert pods
        assert {p["metadata"]["annotations"]["aisched.io/trace-context"] for p in pods} == {recorded}
    provider.shutdown()
