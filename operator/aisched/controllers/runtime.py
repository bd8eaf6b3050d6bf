"""`SchedulerRuntime`: informers feed the cache and the gang queue; a serial loop schedules; the
binder binds concurrently.

Handlers are synchronous and short (an event becomes a cache or queue update). The loop starts
only once pods, nodes and GPUNodeTopology objects have all been listed, never on a partial view,
and sleeps on an event set by the handlers or until the next backoff ends: it never polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import pydantic

from aisched.api import keys
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.binder import Binder, BindOutcome
from aisched.cache import Cache, PodUsage
from aisched.controllers.gangs import GangBook
from aisched.controllers.nodes import node_info
from aisched.framework.profile import Profile
from aisched.framework.runtime import Framework
from aisched.framework.types import Gang, GangPlacement, PodInfo
from aisched.kube.client import JsonObject, KubeClient
from aisched.kube.informer import Informer
from aisched.kube.retry import until_stopped
from aisched.observability.logging import get_logger
from aisched.plugins import default_registry
from aisched.queue import ClusterEvent, GangQueue
from aisched.scheduler import Scheduler

__all__ = ["PodListener", "SchedulerRuntime"]

log = get_logger(__name__)

PODS_PATH: Final = "/api/v1/pods"
NODES_PATH: Final = "/api/v1/nodes"
TOPOLOGIES_PATH: Final = "/apis/aisched.io/v1alpha1/gpunodetopologies"
_TERMINAL: Final = frozenset({"Succeeded", "Failed"})


#: Told of every pod the informer sees: the object, and whether it was deleted. Listeners run inside
#: the informer's handler, so they must be quick (mark something dirty, never wait).
PodListener = Callable[[JsonObject, bool], None]


class SchedulerRuntime:
    """Everything the scheduler runs on, built once and passed around (no module-level state)."""

    def __init__(
        self,
        client: KubeClient,
        *,
        clock: Callable[[], float],
        profile: Profile | None = None,
        binder: Binder | None = None,
        pod_listeners: Sequence[PodListener] = (),
    ) -> None:
        self.clock = clock
        self.pod_listeners = tuple(pod_listeners)
        self.profile = profile if profile is not None else Profile()
        self.framework = Framework(self.profile, default_registry())
        self.cache = Cache()
        self.scheduler = Scheduler(framework=self.framework, cache=self.cache)
        self.queue = GangQueue(less=self.framework.less, clock=clock)
        self.binder = binder if binder is not None else Binder(client, clock=clock)
        self.gangs = GangBook()
        self._nodes: dict[str, JsonObject] = {}
        self._topologies: dict[str, GPUNodeTopologyStatus] = {}
        self._topology_node: dict[str, str] = {}  # GPUNodeTopology name -> node name
        self._wake = asyncio.Event()
        self.informers = (
            Informer(client, path=PODS_PATH, handler=_PodHandler(self)),
            Informer(client, path=NODES_PATH, handler=_NodeHandler(self)),
            Informer(client, path=TOPOLOGIES_PATH, handler=_TopologyHandler(self)),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and schedule until `stop` is set; bindings in flight finish first."""
        async with asyncio.TaskGroup() as tasks:
            for informer in self.informers:
                tasks.create_task(informer.run(stop), name=f"informer {informer.path}")
            tasks.create_task(self._schedule(stop), name="scheduling loop")

    # -- the scheduling loop -------------------------------------------------------------------

    async def _schedule(self, stop: asyncio.Event) -> None:
        synced = asyncio.gather(*(informer.synced.wait() for informer in self.informers))
        if not await until_stopped(synced, stop):
            return
        log.info("scheduler_started", nodes=self.cache.node_count, gangs=len(self.queue))
        async with asyncio.TaskGroup() as bindings:
            while not stop.is_set():
                self._wake.clear()
                gang = self.queue.pop()
                if gang is None:
                    await self._idle(stop)
                    continue
                placement = self._cycle(gang)
                if placement is not None:
                    bindings.create_task(self._bind(placement), name=f"bind {gang.key}")
                await asyncio.sleep(0)  # let watch events and bindings in between cycles

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a handler to change the queue, `stop`, or the end of the next backoff."""
        ready_at = self.queue.next_ready_at()
        timeout = None if ready_at is None else max(0.0, ready_at - self.clock())
        woken = asyncio.ensure_future(self._wake.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({woken, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            stopping.cancel()
            await asyncio.gather(woken, stopping, return_exceptions=True)

    def _cycle(self, popped: Gang) -> GangPlacement | None:
        """One scheduling cycle; the placement to bind, already assumed, or None."""
        gang = self.gangs.gang(popped.key)  # the freshest view; members placed meanwhile left it
        if gang is None:
            self.queue.delete(popped.key)
            return None
        result = self.scheduler.schedule(gang)
        if result.placement is None:
            self.queue.unschedulable(gang, reason=result.message)
            log.bind(gang=gang.key).info("gang_unschedulable", reason=result.message)
            return None
        self.gangs.place(p.pod.key for p in result.placement.pods)
        rest = self.gangs.gang(gang.key)
        if rest is None:
            self.queue.succeeded(gang)
        else:
            self.queue.add(rest)
        return result.placement

    async def _bind(self, placement: GangPlacement) -> None:
        outcome = await self.binder.bind(placement)
        self._settle(placement, outcome)

    def _settle(self, placement: GangPlacement, outcome: BindOutcome) -> None:
        """Undo in the cache what the binder could not make real; requeue a rolled-back gang."""
        self.cache.forget(outcome.forget)
        # Pods confirmed bound meanwhile stay in the cache and stay placed.
        undone = [key for key in outcome.forget if self.cache.pod(key) is None]
        for gang_key in self.gangs.restore(undone):
            gang = self.gangs.gang(gang_key)
            if gang is not None and outcome.rolled_back:
                self.queue.backoff(gang, reason=outcome.reason)
            elif gang is not None:
                self.queue.add(gang)
        if outcome.forget:
            self.queue.on_event(ClusterEvent.POD_DELETED)  # its resources are free again
            self._wake.set()
        if outcome.rolled_back:
            log.bind(gang=placement.gang.key).warning("gang_requeued", reason=outcome.reason)

    # -- handlers' side ------------------------------------------------------------------------

    def pod_seen(self, obj: JsonObject) -> None:
        """A pod was added or changed."""
        try:
            pod = PodInfo.from_manifest(obj, created=self.clock())
        except ValueError as exc:
            log.warning("pod_unparseable", pod=_key(obj), error=str(exc))
            return
        phase = (obj.get("status") or {}).get("phase")
        if phase in _TERMINAL:
            self.pod_gone(obj)
            return
        if pod.node_name:
            self.cache.set_pod(_usage(pod, obj, node=pod.node_name))
            # Our binding confirmed, or bound by someone else: a gang member counts as placed.
            gang_key = self.gangs.placed(pod) if pod.gang else self.gangs.remove(pod.key)
            if gang_key is not None:
                self._requeue(gang_key)
            return
        if pod.scheduler_name != self.profile.scheduler_name or self.cache.pod(pod.key) is not None:
            return  # not ours, or assumed already: never schedule a pod twice
        self._requeue(self.gangs.pending(pod))

    def pod_gone(self, obj: JsonObject) -> None:
        key = _key(obj)
        if self.cache.pod(key) is not None:
            self.cache.remove_pod(key)
            self.queue.on_event(ClusterEvent.POD_DELETED)
            self._wake.set()
        gang_key = self.gangs.remove(key)
        if gang_key is not None:
            self._requeue(gang_key)

    def node_seen(self, obj: JsonObject, *, added: bool) -> None:
        name = obj["metadata"]["name"]
        self._nodes[name] = obj
        self._refresh_node(name, ClusterEvent.NODE_ADDED if added else ClusterEvent.NODE_CHANGED)

    def node_gone(self, obj: JsonObject) -> None:
        name = obj["metadata"]["name"]
        self._nodes.pop(name, None)
        self.cache.remove_node(name)

    def topology_seen(self, obj: JsonObject) -> None:
        name = obj["metadata"]["name"]
        node = ((obj.get("spec") or {}).get("nodeName")) or name
        raw = obj.get("status")
        if not raw:
            return  # the agent has not published yet
        try:
            status = GPUNodeTopologyStatus.model_validate(raw)
        except pydantic.ValidationError as exc:
            log.warning("topology_invalid", topology=name, error=str(exc))
            return
        self._topology_node[name] = node
        self._topologies[node] = status
        self._refresh_node(node, ClusterEvent.NODE_CHANGED)

    def topology_gone(self, obj: JsonObject) -> None:
        node = self._topology_node.pop(obj["metadata"]["name"], None)
        if node is not None and self._topologies.pop(node, None) is not None:
            self._refresh_node(node, ClusterEvent.NODE_CHANGED)

    def _refresh_node(self, name: str, event: ClusterEvent) -> None:
        obj = self._nodes.get(name)
        if obj is None:
            return  # a topology ahead of its node: applied when the node arrives
        self.cache.set_node(node_info(obj, self._topologies.get(name)))
        if self.queue.on_event(event):
            self._wake.set()

    def wake(self) -> None:
        """Make the loop look at the queue again (an informer synced, or the queue changed)."""
        self._wake.set()

    def _requeue(self, gang_key: str) -> None:
        gang = self.gangs.gang(gang_key)
        if gang is None:
            self.queue.delete(gang_key)
        else:
            self.queue.add(gang)
            self._wake.set()


def _key(obj: JsonObject) -> str:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def _usage(pod: PodInfo, obj: JsonObject, *, node: str) -> PodUsage:
    """What a bound pod takes from its node; its GPUs by UUID when the binding named them."""
    annotations: Mapping[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(keys.ANNOTATION_GPUS, "")
    uuids = tuple(u.strip() for u in raw.split(",") if u.strip() and not u.strip().isdigit())
    return PodUsage(key=pod.key, node=node, requests=pod.requests, gpu_uuids=uuids)


class _PodHandler:
    def __init__(self, runtime: SchedulerRuntime) -> None:
        self._runtime = runtime

    def on_add(self, obj: JsonObject) -> None:
        self._runtime.pod_seen(obj)
        self._tell(obj, deleted=False)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self._runtime.pod_seen(new)
        self._tell(new, deleted=False)

    def on_delete(self, obj: JsonObject) -> None:
        self._runtime.pod_gone(obj)
        self._tell(obj, deleted=True)

    def _tell(self, obj: JsonObject, *, deleted: bool) -> None:
        for listener in self._runtime.pod_listeners:
            listener(obj, deleted)

    def on_synced(self) -> None:
        self._runtime.wake()


class _NodeHandler:
    def __init__(self, runtime: SchedulerRuntime) -> None:
        self._runtime = runtime

    def on_add(self, obj: JsonObject) -> None:
        self._runtime.node_seen(obj, added=True)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self._runtime.node_seen(new, added=False)

    def on_delete(self, obj: JsonObject) -> None:
        self._runtime.node_gone(obj)

    def on_synced(self) -> None:
        self._runtime.wake()


class _TopologyHandler:
    def __init__(self, runtime: SchedulerRuntime) -> None:
        self._runtime = runtime

    def on_add(self, obj: JsonObject) -> None:
        self._runtime.topology_seen(obj)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self._runtime.topology_seen(new)

    def on_delete(self, obj: JsonObject) -> None:
        self._runtime.topology_gone(obj)

    def on_synced(self) -> None:
        self._runtime.wake()
