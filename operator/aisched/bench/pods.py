"""What the end-to-end benchmarks with faults and elastic jobs see of their pods: each pod by uid,
when it ran, was ended by a fault, stopped holding anything, and its binding, for counting GPUs
given twice (`bench.queue.figures.gpu_conflicts`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aisched.api.objects import PodView
from aisched.bench.harness import EmulatorProcess, OperatorProcess, background, first
from aisched.bench.queue.figures import PodSightings, Seen, gpu_conflicts
from aisched.kube.client import JsonObject, KubeClient
from aisched.kube.informer import Informer

__all__ = ["Cluster", "PodHandler", "Watched", "watched_operator"]

T = TypeVar("T")


@dataclass
class _Pod:
    """One pod as the load saw it: when it ran, was ended by the fault, stopped holding anything;
    and its binding as `bench.queue.figures` counts GPUs given twice."""

    name: str
    job: str
    uid: str
    sightings: PodSightings
    running_since: float | None = None
    disrupted_at: float | None = None  #: its DisruptionTarget condition, or Failed
    ended_at: float | None = None  #: being deleted, ended or gone: its job is not whole


@dataclass
class Cluster:
    """What the load has seen of the pods: every pod by uid, and the one of each name now."""

    pods: dict[str, _Pod] = field(default_factory=dict)
    live: dict[str, str] = field(default_factory=dict)  # pod name -> uid
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _order: int = 0

    def seen(self, obj: JsonObject, *, deleted: bool = False) -> None:
        view, now = PodView(obj), time.time()
        self._order += 1
        at = Seen(self._order, now)
        job = view.labels.get("aisched.io/job", "")
        pod = self.pods.setdefault(view.uid, _Pod(view.name, job, view.uid, PodSightings(job, created=at)))
        sighting = pod.sightings
        if view.node_name and sighting.bound is None:
            sighting.bound, sighting.node = at, view.node_name
            sighting.gpus = tuple(g for g in view.annotations.get("aisched.io/gpus", "").split(",") if g)
        if view.phase == "Running" and pod.running_since is None and not deleted:
            pod.running_since = now
        if view.fault is not None or view.phase == "Failed":
            pod.disrupted_at = pod.disrupted_at or now
        if deleted or view.terminal or view.deleting:
            pod.ended_at = pod.ended_at or now
        if (deleted or view.terminal) and sighting.ended is None:
            sighting.ended, sighting.phase = at, view.phase  # its GPUs are free from here on
        if not deleted:
            self.live[view.name] = view.uid
        elif self.live.get(view.name) == view.uid:
            del self.live[view.name]
        self.changed.set()

    def gpu_conflicts(self) -> int:
        return gpu_conflicts(p.sightings for p in self.pods.values())

    def job_running(self, job: str, *, size: int, without: str = "") -> bool:
        """Whether the `size` pods of `job` all run, none of them the pod `without` (a uid)."""
        pods = [self.pods[u] for n, u in self.live.items() if self.pods[u].job == job]
        return (
            len(pods) == size
            and all(p.running_since is not None and p.ended_at is None for p in pods)
            and all(p.uid != without for p in pods)
        )

    async def until(self, done: Any, within: float) -> bool:
        async with asyncio.timeout(within):
            while not done():
                self.changed.clear()
                await self.changed.wait()
        return True


class PodHandler:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def on_add(self, obj: JsonObject) -> None:
        self.cluster.seen(obj)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self.cluster.seen(new)

    def on_delete(self, obj: JsonObject) -> None:
        self.cluster.seen(obj, deleted=True)

    def on_synced(self) -> None:
        self.cluster.changed.set()


@dataclass
class Watched:
    """An operator running against the emulator, the pods of `namespace` watched into `cluster`;
    `guards` fail if the emulator, the operator or the watch stops."""

    kube: KubeClient
    cluster: Cluster
    operator: OperatorProcess
    guards: tuple[asyncio.Task[None], ...]

    async def run(self, work: Awaitable[T]) -> T:
        """`work`'s result, unless a guard fails first."""
        task = asyncio.ensure_future(work)
        await first(task, *self.guards)
        return task.result()


@contextlib.asynccontextmanager
async def watched_operator(
    emulator: EmulatorProcess, namespace: str, *, settings: Mapping[str, str], within: float
) -> AsyncIterator[Watched]:
    """The emulator ready, `namespace` made, the operator started with `settings` and ready, and the
    namespace's pods listed: what a benchmark's load needs before it starts."""
    await emulator.ready(within=within)
    cluster = Cluster()
    async with KubeClient(base_url=emulator.url) as kube:
        await kube.post("/api/v1/namespaces", {"metadata": {"name": namespace}})
        operator = OperatorProcess(emulator.workdir, kubeconfig=emulator.kubeconfig, settings=settings)
        informer = Informer(kube, path=f"/api/v1/namespaces/{namespace}/pods", handler=PodHandler(cluster))
        async with (
            operator,
            background(emulator.exited(), name="emulator") as emulator_gone,
            background(informer.run(asyncio.Event()), name="pod watch") as watcher,
        ):
            await operator.ready(within=within)
            async with background(operator.exited(), name="operator") as operator_gone:
                guards = (emulator_gone, operator_gone, watcher)
                await first(informer.synced.wait(), *guards)
                yield Watched(kube, cluster, operator, guards)
