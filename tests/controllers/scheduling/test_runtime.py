"""The scheduling runtime end to end against the in-process emulator: pods created over HTTP,
placed by the runtime (plain pods and gangs), bound with their GPUs annotated, and its metrics.

Also the helpers the other runtime tests share: a client wrapper that injects faults and tells
when the runtime has taken in a watch event, metrics that can be waited on, and pod waits that
watch rather than poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import pytest

from aisched.binder import Binder
from aisched.controllers.scheduling import PodListener, SchedulerRuntime
from aisched.controllers.scheduling.reporting import pod_scheduled_condition
from aisched.emulator.runner import Emulator
from aisched.framework.profile import Profile
from aisched.framework.registry import Registry
from aisched.kube.client import JsonObject, KubeClient, Params, PatchType
from aisched.observability.metrics import DEFAULT_PROFILE, BindingErrorReason, Metrics, SchedulingResult
from aisched.observability.metrics import QueueState as DepthState
from aisched.queue import QueueState
from aisched.topology.node import DomainLabels
from tests.binder.fakes import FakeClock
from tests.observability.test_metrics import value

NAMESPACE: Final = "default"
PODS: Final = f"/api/v1/namespaces/{NAMESPACE}/pods"
EVENTS: Final = f"/api/v1/namespaces/{NAMESPACE}/events"
TOPOLOGIES: Final = "/apis/aisched.io/v1alpha1/gpunodetopologies"
WAIT: Final = 15.0


@dataclass
class Running:
    kube: KubeClient
    runtime: SchedulerRuntime


@pytest.fixture
async def running(emulator_cluster: Emulator) -> AsyncIterator[Running]:
    """The runtime, scheduling against the demo cluster; its errors surface at teardown."""
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        runtime = SchedulerRuntime(kube, clock=time.monotonic)
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:
            yield Running(kube, runtime)
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                await task


# -- waiting on state, never on time ----------------------------------------------------------------


class Signal:
    """Wakes the waiters whose predicate has become true, checked each time `changed()` is called."""

    def __init__(self) -> None:
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def changed(self) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds (at once if it does already); bounded by WAIT."""
        if predicate():
            return
        waiter = (predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(WAIT):
                await waiter[1]
        finally:
            self._waiters.remove(waiter)


class RecordingMetrics(Metrics):
    """The real metrics, also kept as plain values that a test can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.signal = Signal()
        self.cycles: Counter[str] = Counter()
        self.binding_errors: Counter[str] = Counter()
        self.e2e: list[float] = []
        self.depth: dict[str, int] = {}
        self.gpus = 0

    def observe_cycle(self, result: SchedulingResult, seconds: float, profile: str = DEFAULT_PROFILE) -> None:
        super().observe_cycle(result, seconds, profile)
        self.cycles[result] += 1
        self.signal.changed()

    def observe_e2e(self, seconds: float) -> None:
        super().observe_e2e(seconds)
        self.e2e.append(seconds)
        self.signal.changed()

    def set_queue_depth(self, depth: Mapping[DepthState, int]) -> None:
        super().set_queue_depth(depth)
        self.depth = {str(state): count for state, count in depth.items()}
        self.signal.changed()

    def binding_error(self, reason: BindingErrorReason) -> None:
        super().binding_error(reason)
        self.binding_errors[reason] += 1
        self.signal.changed()

    def set_gpus_allocated(self, count: int) -> None:
        super().set_gpus_allocated(count)
        self.gpus = count
        self.signal.changed()

    async def until(self, predicate: Callable[[], bool]) -> None:
        await self.signal.until(predicate)


#: A one-shot action run instead of passing a Binding POST on: it may do anything, then raise to
#: make the POST fail (returning lets the POST through).
BindingFault = Callable[[JsonObject], Awaitable[None]]


class WatchedClient:
    """The runtime's client in tests: passes every call to the emulator, and

    - runs the faults queued for a pod's Binding POSTs (`fault_binding`),
    - records the Binding POSTs, pod status patches and deletes the runtime makes,
    - tells when the runtime's informers have handled a watch event (`until_handled`): the
      informer asks for the next event only once its handler has returned.
    """

    def __init__(self, inner: KubeClient) -> None:
        self.inner = inner
        self.signal = Signal()
        self.handled: list[tuple[str, JsonObject]] = []  # (path, event)
        self.binding_posts: list[str] = []  # pod names, every attempt
        self.bound: list[str] = []  # pod names whose Binding POST went through
        self.status_patches: list[str] = []  # pod names
        self.deletes: list[str] = []  # paths
        self._faults: dict[str, list[BindingFault]] = {}

    def fault_binding(self, pod_name: str, fault: BindingFault) -> None:
        """Run `fault` for the next Binding POST of `pod_name` (several queue up, one per POST)."""
        self._faults.setdefault(pod_name, []).append(fault)

    async def until_handled(
        self, kind: str, path: str, name: str, *, where: Callable[[JsonObject], bool] = lambda _: True
    ) -> None:
        """Until an informer of `path` has handled a `kind` event (ADDED, MODIFIED, DELETED) of
        `name` whose object satisfies `where`."""

        def seen() -> bool:
            return any(
                p == path
                and e["type"] == kind
                and e["object"]["metadata"]["name"] == name
                and where(e["object"])
                for p, e in self.handled
            )

        await self.signal.until(seen)

    async def get(self, path: str, *, params: Params | None = None) -> JsonObject:
        return await self.inner.get(path, params=params)

    async def watch(self, path: str, *, params: Params | None = None) -> AsyncGenerator[JsonObject, None]:
        events = cast(AsyncGenerator[JsonObject, None], self.inner.watch(path, params=params))
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                yield event
                # Resumed: the informer asks for the next event, so it has handled this one.
                self.handled.append((path, event))
                self.signal.changed()

    async def post(self, path: str, body: JsonObject) -> JsonObject:
        if path.endswith("/binding"):
            name = str(body["metadata"]["name"])
            self.binding_posts.append(name)
            faults = self._faults.get(name)
            if faults:
                await faults.pop(0)(body)
            answer = await self.inner.post(path, body)
            self.bound.append(name)
            self.signal.changed()
            return answer
        return await self.inner.post(path, body)

    async def delete(
        self, path: str, *, params: Params | None = None, body: JsonObject | None = None
    ) -> JsonObject:
        self.deletes.append(path)
        return await self.inner.delete(path, params=params, body=body)

    async def patch(self, path: str, body: JsonObject, *, patch: PatchType = "merge") -> JsonObject:
        if path.startswith(PODS) and path.endswith("/status"):
            self.status_patches.append(path.split("/")[-2])
        return await self.inner.patch(path, body, patch=patch)


@dataclass
class Harness:
    """A runtime on a fake clock, over a watched client, with metrics that can be waited on."""

    kube: KubeClient
    client: WatchedClient
    clock: FakeClock
    metrics: RecordingMetrics
    runtime: SchedulerRuntime


def harness(
    kube: KubeClient,
    *,
    clock: FakeClock | None = None,
    profile: Profile | None = None,
    registry: Registry | None = None,
    pod_listeners: Sequence[PodListener] = (),
) -> Harness:
    """A runtime whose every wait (backoffs, the binder's retries) passes only when the test
    moves `clock`."""
    clock = clock if clock is not None else FakeClock(now=1000.0)
    client = WatchedClient(kube)
    metrics = RecordingMetrics()
    runtime = SchedulerRuntime(
        client,
        clock=clock,
        binder=Binder(client, clock=clock, sleep=clock.sleep),
        metrics=metrics,
        profile=profile,
        registry=registry,
        pod_listeners=pod_listeners,
    )
    return Harness(kube, client, clock, metrics, runtime)


@contextlib.asynccontextmanager
async def started(runtime: SchedulerRuntime) -> AsyncIterator[SchedulerRuntime]:
    """`runtime` running, once its informers have listed everything; stopped (and its errors
    raised) on the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        async with asyncio.timeout(WAIT):
            synced = asyncio.gather(*(informer.synced.wait() for informer in runtime.informers))
            either: set[asyncio.Future[Any]] = {task, synced}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            assert not task.done(), "the runtime ended before it had synced"
        yield runtime
    finally:
        stop.set()
        async with asyncio.timeout(WAIT):
            await task


def advance(h: Harness, seconds: float) -> None:
    """Let `seconds` pass for the runtime (backoffs end), and make its loop look again."""
    h.clock.now += seconds
    h.runtime.wake()


# -- pods -------------------------------------------------------------------------------------------


def pod(
    name: str,
    *,
    gpus: int,
    gang: str | None = None,
    min_member: int | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    node: str | None = None,
) -> JsonObject:
    """A pending pod for aisched; `node` pins it there with a nodeSelector."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "annotations": dict(annotations or {}),
        "labels": dict(labels or {}),
    }
    if gang is not None:
        meta["labels"]["aisched.io/gang"] = gang
    if min_member is not None:
        meta["annotations"]["aisched.io/gang-min-member"] = str(min_member)
    spec: dict[str, Any] = {
        "schedulerName": "aisched",
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "main",
                "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                "resources": {
                    "requests": {"cpu": "4", "memory": "16Gi"},
                    "limits": {"nvidia.com/gpu": gpus, "memory": "16Gi"},
                },
            }
        ],
    }
    if node is not None:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


async def create(kube: KubeClient, *pods: JsonObject) -> None:
    for body in pods:
        await kube.post(PODS, body)


async def delete(kube: KubeClient, name: str) -> None:
    await kube.delete(f"{PODS}/{name}")


def is_bound(obj: JsonObject) -> bool:
    return bool(obj["spec"].get("nodeName"))


def unschedulable(reason: str = "Unschedulable") -> Callable[[JsonObject], bool]:
    """Whether a pod carries PodScheduled=False for `reason`."""

    def check(obj: JsonObject) -> bool:
        condition = pod_scheduled_condition(obj)
        return (
            condition is not None and condition.get("status") == "False" and condition.get("reason") == reason
        )

    return check


async def wait_pods(
    kube: KubeClient,
    names: Iterable[str],
    done: Callable[[JsonObject], bool],
    *,
    namespace: str = NAMESPACE,
) -> dict[str, JsonObject]:
    """The pods `names` (of `namespace`) once `done` holds for each, watched (not polled) from a list."""
    wanted = set(names)
    found: dict[str, JsonObject] = {}
    pods = f"/api/v1/namespaces/{namespace}/pods"
    async with asyncio.timeout(WAIT):
        listing = await kube.get(pods)
        for item in listing["items"]:
            if item["metadata"]["name"] in wanted and done(item):
                found[item["metadata"]["name"]] = item
        version = listing["metadata"]["resourceVersion"]
        while not wanted <= found.keys():
            events = cast(
                AsyncGenerator[JsonObject, None], kube.watch(pods, params={"resourceVersion": version})
            )
            async with contextlib.aclosing(events) as stream:
                async for event in stream:
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    named = obj["metadata"]["name"] in wanted
                    if named and event["type"] not in ("BOOKMARK", "DELETED") and done(obj):
                        found[obj["metadata"]["name"]] = obj
                    if wanted <= found.keys():
                        break
    return found


async def wait_bound(
    kube: KubeClient, names: Iterable[str], *, namespace: str = NAMESPACE
) -> dict[str, JsonObject]:
    """The pods `names` (of `namespace`) once every one has a node."""
    return await wait_pods(kube, names, is_bound, namespace=namespace)


async def failed_scheduling_events(kube: KubeClient, name: str) -> list[JsonObject]:
    """The FailedScheduling Events about pod `name`."""
    events = (await kube.get(EVENTS))["items"]
    return [
        e for e in events if e["involvedObject"].get("name") == name and e.get("reason") == "FailedScheduling"
    ]


async def node_of(kube: KubeClient, name: str) -> JsonObject:
    return await kube.get(f"/api/v1/nodes/{name}")


async def gpu_uuids(kube: KubeClient, node: str) -> set[str]:
    topologies = await kube.get(TOPOLOGIES)
    (topology,) = [t for t in topologies["items"] if t["spec"]["nodeName"] == node]
    return {gpu["uuid"] for gpu in topology["status"]["gpus"]}


async def unbound(kube: KubeClient, name: str) -> bool:
    return not (await kube.get(f"{PODS}/{name}"))["spec"].get("nodeName")


# -- the behaviours ---------------------------------------------------------------------------------


async def test_a_single_gpu_pod_is_bound_with_its_gpu_uuids_annotated(running: Running) -> None:
    await create(running.kube, pod("single", gpus=4))
    bound = (await wait_bound(running.kube, ["single"]))["single"]
    node = bound["spec"]["nodeName"]
    uuids = bound["metadata"]["annotations"]["aisched.io/gpus"].split(",")
    assert len(uuids) == len(set(uuids)) == 4
    assert set(uuids) <= await gpu_uuids(running.kube, node)


async def test_a_gang_of_two_8_gpu_pods_is_bound_whole_on_two_nodes_in_one_required_rack(
    running: Running,
) -> None:
    required = {"aisched.io/topology-policy": "Required", "aisched.io/topology-level": "rack"}
    await create(
        running.kube,
        *(pod(f"train-{i}", gpus=8, gang="train", min_member=2, annotations=required) for i in range(2)),
    )
    bound = await wait_bound(running.kube, ["train-0", "train-1"])
    nodes = {p["spec"]["nodeName"] for p in bound.values()}
    assert len(nodes) == 2
    racks = {(await node_of(running.kube, n))["metadata"]["labels"]["aisched.io/rack"] for n in nodes}
    assert len(racks) == 1
    for member in bound.values():
        uuids = member["metadata"]["annotations"]["aisched.io/gpus"].split(",")
        assert set(uuids) == await gpu_uuids(running.kube, member["spec"]["nodeName"])


async def test_a_rack_named_by_the_clusters_own_labels_is_what_a_required_gang_keeps_to(
    emulator_cluster: Emulator,
) -> None:
    """Leaves pair each 8-GPU node of aisched's rack-a with one of rack-b: a gang Required in one
    rack, with racks read from the leaf label, must land on a leaf's pair, which aisched's own
    rack labels would never choose."""
    leaf = "network.topology.nvidia.com/leaf"
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as kube:
        nodes = (await kube.get("/api/v1/nodes"))["items"]
        racks: dict[str, list[str]] = {}
        for n in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            if n["status"]["allocatable"].get("nvidia.com/gpu") == "8":
                racks.setdefault(n["metadata"]["labels"]["aisched.io/rack"], []).append(n["metadata"]["name"])
        pairs = list(zip(racks["rack-a"], racks["rack-b"], strict=False))
        leaves = {name: f"leaf-{i}" for i, pair in enumerate(pairs) for name in pair}
        for n in nodes:
            name = n["metadata"]["name"]
            label = leaves.get(name, f"alone-{name}")
            await kube.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": {leaf: label}}})
        runtime = SchedulerRuntime(kube, clock=time.monotonic, domains=DomainLabels(rack=leaf))
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:
            required = {"aisched.io/topology-policy": "Required", "aisched.io/topology-level": "rack"}
            members = (
                pod(f"leaf-{i}", gpus=8, gang="leaf", min_member=2, annotations=required) for i in range(2)
            )
            await create(kube, *members)
            bound = await wait_bound(kube, ["leaf-0", "leaf-1"])
            placed = {p["spec"]["nodeName"] for p in bound.values()}
            assert len(placed) == 2
            assert len({leaves.get(n) for n in placed} - {None}) == 1, f"one leaf's pair, not {placed}"
            assert all(n in leaves for n in placed)
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                await task


async def test_an_incomplete_gang_waits_until_its_last_member_appears(running: Running) -> None:
    await create(running.kube, *(pod(f"ddp-{i}", gpus=2, gang="ddp", min_member=3) for i in range(2)))
    # A later pod, bound only after the runtime has seen (and tried) the gang's two members.
    await create(running.kube, pod("fence", gpus=1))
    await wait_bound(running.kube, ["fence"])
    assert await unbound(running.kube, "ddp-0")
    assert await unbound(running.kube, "ddp-1")
    assert running.runtime.queue.state("default/gang:ddp") is QueueState.UNSCHEDULABLE
    assert "waiting for the rest" in running.runtime.queue.reason("default/gang:ddp")

    await create(running.kube, pod("ddp-2", gpus=2, gang="ddp", min_member=3))
    bound = await wait_bound(running.kube, ["ddp-0", "ddp-1", "ddp-2"])
    assert all(p["metadata"]["annotations"]["aisched.io/gpus"] for p in bound.values())


async def test_a_pod_that_fits_nowhere_stays_pending_while_later_pods_are_bound(running: Running) -> None:
    await create(running.kube, pod("huge", gpus=16), pod("small", gpus=1))
    await wait_bound(running.kube, ["small"])
    assert await unbound(running.kube, "huge")
    assert running.runtime.queue.state("default/huge") is QueueState.UNSCHEDULABLE
    assert "nvidia.com/gpu" in running.runtime.queue.reason("default/huge")


async def test_a_bound_pod_is_never_scheduled_twice(running: Running) -> None:
    await create(running.kube, pod("once", gpus=8))
    first = (await wait_bound(running.kube, ["once"]))["once"]
    # The kubelet's status updates keep arriving; none may put the pod back in the queue.
    await create(running.kube, pod("fence", gpus=1))
    await wait_bound(running.kube, ["fence"])
    assert "default/once" not in running.runtime.queue
    usage = running.runtime.cache.pod("default/once")
    assert usage is not None
    assert not usage.assumed
    assert usage.node == first["spec"]["nodeName"]


async def test_metrics_show_attempts_by_result_queue_depth_gpus_allocated_and_e2e_latency(
    kube: KubeClient,
) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, pod("four", gpus=4), pod("two", gpus=2), pod("nine", gpus=9))
        await wait_bound(kube, ["four", "two"])
        await wait_pods(kube, ["nine"], unschedulable())
        # Both bindings confirmed by the informer, and the loop gone idle with one gang parked.
        await h.metrics.until(lambda: len(h.metrics.e2e) == 2)
        await h.metrics.until(
            lambda: h.metrics.depth == {"active": 0, "backoff": 0, "unschedulable": 1, "blocked": 0}
        )

        m = h.runtime.metrics
        assert value(m, "aisched_scheduling_attempts_total", result="scheduled", profile="aisched") == 2
        assert value(m, "aisched_scheduling_attempts_total", result="unschedulable", profile="aisched") == 1
        assert value(m, "aisched_scheduling_attempts_total", result="error", profile="aisched") == 0
        assert value(m, "aisched_scheduling_cycle_duration_seconds_count") == 3
        assert value(m, "aisched_queue_gangs", state="unschedulable") == 1
        assert value(m, "aisched_queue_gangs", state="active") == 0
        assert value(m, "aisched_queue_gangs", state="backoff") == 0
        assert value(m, "aisched_gpus_allocated") == 6
        assert value(m, "aisched_pod_scheduling_e2e_duration_seconds_count") == 2
        for reason in ("conflict", "not_found", "unavailable", "other"):
            assert value(m, "aisched_binding_errors_total", reason=reason) == 0
        for resource in ("pods", "nodes", "gpunodetopologies"):
            assert value(m, "aisched_informer_relists_total", resource=resource) == 1
        # The demo cluster: 8 nodes, 7 of them with GPUs and a published topology.
        assert value(m, "aisched_informer_events_total", resource="nodes") == 8
        assert value(m, "aisched_informer_events_total", resource="gpunodetopologies") == 7
        assert value(m, "aisched_informer_events_total", resource="pods") >= 3


async def test_gpus_allocated_follows_bindings_and_deletions(kube: KubeClient) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, pod("a", gpus=8), pod("b", gpus=3))
        await wait_bound(kube, ["a", "b"])
        await h.metrics.until(lambda: h.metrics.gpus == 11)
        await delete(kube, "a")
        await h.client.until_handled("DELETED", "/api/v1/pods", "a")
        assert h.metrics.gpus == 3
        assert value(h.runtime.metrics, "aisched_gpus_allocated") == 3
