"""`SchedulerRuntime`: informers feed the cache and the gang queue; a serial loop schedules; the
binder binds concurrently; the reporter tells waiting pods why, off the loop.

Handlers (in `controllers.handlers`) are synchronous and short (an event becomes a cache or queue
update). The loop starts only once pods, nodes and GPUNodeTopology objects have all been listed,
never on a partial view, and sleeps on an event set by the handlers or until the next backoff ends:
it never polls.
A cycle, a binding or a handler that raises (a bug, or data nobody foresaw) is logged and
contained: its gang backs off and every other gang is scheduled as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol

import pydantic

from aisched.api import keys
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.api.mig import MigAnnotation
from aisched.binder import Binder, BindOutcome
from aisched.cache import Cache, PodUsage
from aisched.controllers.gangs import GangBook
from aisched.controllers.handlers import Handler, NodeHandler, PodHandler, TopologyHandler, pod_key
from aisched.controllers.nodes import node_info
from aisched.controllers.preemption import Preemptor
from aisched.controllers.reporting import REASON_SCHEDULER_ERROR, REASON_UNSCHEDULABLE, FailureReporter
from aisched.framework.profile import Profile
from aisched.framework.registry import Registry
from aisched.framework.runtime import Framework
from aisched.framework.status import Code
from aisched.framework.types import Gang, GangPlacement, PodInfo
from aisched.kube.client import JsonObject, Params, PatchType
from aisched.kube.informer import Informer
from aisched.kube.retry import until_stopped
from aisched.observability.logging import get_logger
from aisched.observability.metrics import InformerResource, Metrics
from aisched.plugins import default_registry
from aisched.queue import ClusterEvent, GangQueue
from aisched.quota import QuotaLedger, quota_usage
from aisched.scheduler import Scheduler

__all__ = ["PodListener", "RuntimeClient", "SchedulerRuntime"]

log = get_logger(__name__)

PODS_PATH: Final = "/api/v1/pods"
NODES_PATH: Final = "/api/v1/nodes"
TOPOLOGIES_PATH: Final = "/apis/aisched.io/v1alpha1/gpunodetopologies"
_TERMINAL: Final = frozenset({"Succeeded", "Failed"})
#: While the loop is busy, the queue-depth gauge (a walk over every gang) is refreshed at most
#: this often; whenever the loop goes idle it is refreshed at once.
_QUEUE_DEPTH_EVERY: Final = 1.0


#: Told of every pod the informer sees: the object, and whether it was deleted. Listeners run inside
#: the informer's handler, so they must be quick (mark something dirty, never wait).
PodListener = Callable[[JsonObject, bool], None]


class RuntimeClient(Protocol):
    """What the runtime asks of `aisched.kube.client.KubeClient`: list and watch (informers), post,
    get and delete (binder), post and patch (reporter)."""

    async def get(self, path: str, *, params: Params | None = None) -> JsonObject: ...

    def watch(self, path: str, *, params: Params | None = None) -> AsyncIterator[JsonObject]: ...

    async def post(self, path: str, body: JsonObject) -> JsonObject: ...

    async def delete(self, path: str, *, params: Params | None = None) -> JsonObject: ...

    async def patch(self, path: str, body: JsonObject, *, patch: PatchType = "merge") -> JsonObject: ...


class SchedulerRuntime:
    """Everything the scheduler runs on, built once and passed around (no module-level state)."""

    def __init__(
        self,
        client: RuntimeClient,
        *,
        clock: Callable[[], float],
        profile: Profile | None = None,
        binder: Binder | None = None,
        pod_listeners: Sequence[PodListener] = (),
        metrics: Metrics | None = None,
        reporter: FailureReporter | None = None,
        registry: Registry | None = None,
        quota: QuotaLedger | None = None,
    ) -> None:
        """`registry` names the plugins the profile may use (default: the built-in ones); `quota`,
        when given, is charged with every placement assumed and released when one is undone (bound
        pods are charged by the TenantQuota controller sharing it)."""
        self.clock = clock
        self.client = client
        self.quota = quota
        #: Set by the operator to evict gangs for those that do not fit (see controllers.preemption).
        self.preemptor: Preemptor | None = None
        self.pod_listeners = tuple(pod_listeners)
        self.profile = profile if profile is not None else Profile()
        self.framework = Framework(self.profile, registry if registry is not None else default_registry())
        self.cache = Cache()
        self.scheduler = Scheduler(framework=self.framework, cache=self.cache)
        self.queue = GangQueue(
            less=self.framework.less,
            clock=clock,
            order_version=getattr(self.framework.queue_sort, "order_version", None),
        )
        self.binder = binder if binder is not None else Binder(client, clock=clock)
        self.metrics = metrics if metrics is not None else Metrics()
        self.reporter = reporter if reporter is not None else FailureReporter(client, clock=clock)
        self.gangs = GangBook()
        self._nodes: dict[str, JsonObject] = {}
        self._topologies: dict[str, GPUNodeTopologyStatus] = {}
        self._topology_node: dict[str, str] = {}  # GPUNodeTopology name -> node name
        self._pending_since: dict[str, float] = {}  # pod key -> when first seen pending
        self._gpus = 0  # GPUs held by bound or assumed pods, as the cache counts them
        self._queue_published = float("-inf")
        self._wake = asyncio.Event()
        self.informers = (
            self._informer(client, PODS_PATH, PodHandler(self), "pods"),
            self._informer(client, NODES_PATH, NodeHandler(self), "nodes"),
            self._informer(client, TOPOLOGIES_PATH, TopologyHandler(self), "gpunodetopologies"),
        )

    def _informer(
        self, client: RuntimeClient, path: str, handler: Handler, resource: InformerResource
    ) -> Informer:
        return Informer(
            client, path=path, handler=handler, on_list=lambda: self.metrics.informer_relist(resource)
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and schedule until `stop` is set; bindings in flight finish first."""
        async with asyncio.TaskGroup() as tasks:
            for informer in self.informers:
                tasks.create_task(informer.run(stop), name=f"informer {informer.path}")
            tasks.create_task(self.reporter.run(stop), name="failure reporter")
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
                while self.preemptor is not None and self.preemptor.ready:
                    held = self.preemptor.ready.pop()
                    bindings.create_task(self._bind(held), name=f"bind {held.gang.key} (preempted room)")
                gang = self.queue.pop()
                if gang is None:
                    self._publish_queue_depth()
                    await self._idle(stop)
                    continue
                placement = self._cycle(gang)
                if placement is not None:
                    bindings.create_task(self._bind(placement), name=f"bind {gang.key}")
                while self.preemptor is not None and self.preemptor.ready:
                    held = self.preemptor.ready.pop()
                    bindings.create_task(self._bind(held), name=f"bind {held.gang.key} (preempted room)")
                if self.clock() - self._queue_published >= _QUEUE_DEPTH_EVERY:
                    self._publish_queue_depth()
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
        started = self.clock()
        gang = popped
        try:
            fresh = self.gangs.gang(popped.key)  # the freshest view; members placed meanwhile left it
            if fresh is None:
                self.queue.delete(popped.key)
                return None
            gang = fresh
            result = self.scheduler.schedule(gang)
        except Exception as exc:
            log.bind(gang=gang.key).exception("scheduling_cycle_failed")
            message = f"scheduling cycle failed: {type(exc).__name__}: {exc}"
            self._cycle_failed(gang, message, seconds=self.clock() - started)
            return None
        seconds = max(0.0, self.clock() - started)
        placement = result.placement
        if placement is None and result.status.code is Code.ERROR:  # a plugin failed, not a verdict
            log.bind(gang=gang.key).error("scheduling_cycle_failed", reason=result.message)
            self._cycle_failed(gang, result.message, seconds=seconds)
            return None
        if placement is None:
            self.metrics.observe_cycle("unschedulable", seconds)
            try:
                held = self.preemptor.preempt_for(gang) if self.preemptor is not None else None
            except Exception as exc:  # a plugin failing inside a what-if: contained like a cycle's
                log.bind(gang=gang.key).exception("preemption_failed")
                self._cycle_failed(gang, f"preemption failed: {type(exc).__name__}: {exc}", seconds=seconds)
                return None
            if held is not None:  # room is being made: bound once the victims are gone
                self._placed(gang, held)
                return None
            self.queue.unschedulable(gang, reason=result.message)
            self._report(gang, message=result.message, reason=REASON_UNSCHEDULABLE)
            log.bind(gang=gang.key).info("gang_unschedulable", reason=result.message)
            return None
        self.metrics.observe_cycle("scheduled", seconds)
        self._placed(gang, placement)
        return placement

    def _placed(self, gang: Gang, placement: GangPlacement) -> None:
        """Book an assumed placement: GPUs held, quota charged, members placed, the gang dequeued."""
        self._held(sum(p.pod.gpus for p in placement.pods))
        placed = [p.pod.key for p in placement.pods]
        if self.quota is not None:
            for member in placement.pods:
                self._charge(member.pod)
        self.reporter.placed(placed)
        self.gangs.place(placed)
        rest = self.gangs.gang(gang.key)
        if rest is None:
            self.queue.succeeded(gang)
        else:
            self.queue.add(rest)

    def _cycle_failed(self, gang: Gang, message: str, *, seconds: float) -> None:
        """A cycle raised or a plugin failed: count it, undo what it may have assumed, and back the
        gang off (an error is no verdict on the cluster, so no cluster event is awaited)."""
        self.metrics.observe_cycle("error", max(0.0, seconds))
        self._forget(member.key for member in gang.members)
        self.queue.backoff(gang, reason=message)
        self._report(gang, message=message, reason=REASON_SCHEDULER_ERROR)

    def _report(self, gang: Gang, *, message: str, reason: str) -> None:
        """Hand the verdict on `gang` to the reporter, for each member still pending."""
        index = self.informers[0].index
        for member in gang.members:
            obj = index.get((member.namespace, member.name))
            if obj is not None and not (obj.get("spec") or {}).get("nodeName"):
                self.reporter.report(obj, message=message, reason=reason)

    async def _bind(self, placement: GangPlacement) -> None:
        try:
            outcome = await self.binder.bind(placement)
        except Exception as exc:  # a bug in the binder: whatever it bound, the informer will tell
            log.bind(gang=placement.gang.key).exception("binding_failed")
            outcome = BindOutcome(
                rolled_back=True,
                forget=[p.pod.key for p in placement.pods],
                reason=f"binding failed: {type(exc).__name__}: {exc}",
            )
        self._settle(placement, outcome)

    def _settle(self, placement: GangPlacement, outcome: BindOutcome) -> None:
        """Undo in the cache what the binder could not make real; requeue a rolled-back gang."""
        for kind in outcome.errors:
            self.metrics.binding_error(kind)
        self._forget(outcome.forget)
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

    def _publish_queue_depth(self) -> None:
        self._queue_published = self.clock()
        self.metrics.set_queue_depth({state.value: n for state, n in self.queue.depth().items()})

    # -- the GPUs held, kept in step with the cache ---------------------------------------------

    def _held(self, change: int) -> None:
        self._gpus += change
        self.metrics.set_gpus_allocated(self._gpus)

    def _set_pod(self, usage: PodUsage) -> None:
        old = self.cache.pod(usage.key)
        self.cache.set_pod(usage)
        self._held(usage.gpus - (old.gpus if old is not None else 0))

    def _remove_pod(self, key: str) -> bool:
        old = self.cache.pod(key)
        if old is None:
            return False
        self.cache.remove_pod(key)
        self._held(-old.gpus)
        return True

    def set_usage(self, usage: PodUsage) -> None:
        """Account a pod's usage (keeping the GPUs-held metric right)."""
        self._set_pod(usage)

    def remove_usage(self, key: str) -> bool:
        """Stop accounting a pod (keeping the GPUs-held metric right); whether it was."""
        return self._remove_pod(key)

    def drop_assumed(self, keys: Iterable[str]) -> None:
        """Undo placements assumed but never to be bound; their pods are pending again."""
        undone = list(keys)
        self._forget(undone)
        for gang_key in self.gangs.restore(undone):
            gang = self.gangs.gang(gang_key)
            if gang is not None:
                self.queue.add(gang)
        self._wake.set()

    def _forget(self, keys: Iterable[str]) -> None:
        """Drop assumed pods (never bound ones) from the cache."""
        assumed = [u for u in (self.cache.pod(k) for k in keys) if u is not None and u.assumed]
        if assumed:
            self.cache.forget(u.key for u in assumed)
            self._held(-sum(u.gpus for u in assumed))
            if self.quota is not None:
                for usage in assumed:
                    self.quota.release(usage.key)

    def _charge(self, pod: PodInfo) -> None:
        """Charge an assumed placement to its tenant's quota, until bound (or undone)."""
        assert self.quota is not None
        tenant = self.quota.charged_to(pod.tenant, pod.namespace)
        if tenant is not None:
            self.quota.charge(pod.key, tenant, quota_usage(pod))

    # -- handlers' side ------------------------------------------------------------------------

    def pod_seen(self, obj: JsonObject) -> None:
        """A pod was added or changed."""
        phase = (obj.get("status") or {}).get("phase")
        if self.preemptor is not None and self.preemptor.evicting(pod_key(obj)) and phase not in _TERMINAL:
            return  # a victim shutting down: already out of the cache, its room held for another gang
        known = self.cache.pod(pod_key(obj))
        if (
            known is not None
            and not known.assumed
            and phase not in _TERMINAL
            and known.node == (obj.get("spec") or {}).get("nodeName")
        ):
            return  # a status update of a pod already accounted where it runs (the kubelet's)
        try:
            pod = PodInfo.from_manifest(obj, created=self.clock())
        except ValueError as exc:
            log.warning("pod_unparseable", pod=pod_key(obj), error=str(exc))
            return
        if phase in _TERMINAL:
            self.pod_gone(obj)
            return
        if pod.node_name:
            self._bound(pod, obj)
            return
        if pod.scheduler_name != self.profile.scheduler_name or self.cache.pod(pod.key) is not None:
            return  # not ours, or assumed already: never schedule a pod twice
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            self.pod_gone(obj)  # being deleted (a finalizer holds it): nothing to place
            return
        self._pending_since.setdefault(pod.key, self.clock())
        self._requeue(self.gangs.pending(pod))

    def _bound(self, pod: PodInfo, obj: JsonObject) -> None:
        """`pod` has a node: our binding confirmed, or someone else's."""
        assumed = self.cache.pod(pod.key)
        since = self._pending_since.pop(pod.key, None)
        if since is not None and assumed is not None and assumed.assumed and assumed.node == pod.node_name:
            self.metrics.observe_e2e(max(0.0, self.clock() - since))
        self._set_pod(_usage(pod, obj, node=pod.node_name or ""))
        self.reporter.forget(pod.key)
        # A gang member counts as placed, whoever bound it.
        gang_key = self.gangs.placed(pod) if pod.gang else self.gangs.remove(pod.key)
        if gang_key is not None:
            self._requeue(gang_key)

    def pod_gone(self, obj: JsonObject) -> None:
        key = pod_key(obj)
        self._pending_since.pop(key, None)
        if self.preemptor is not None:
            if self.preemptor.evicting(key):
                self.preemptor.gone(key)
                self._wake.set()
            else:
                self.preemptor.member_gone(key)
        if self.quota is not None:
            self.quota.release(key)
        self.reporter.forget(key)
        if self._remove_pod(key):
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
        self._wake.set()  # also to refresh the queue-depth gauge


def _usage(pod: PodInfo, obj: JsonObject, *, node: str) -> PodUsage:
    """What a bound pod takes from its node; its GPUs by UUID when the binding named them.

    A sharing pod's GPU is the one `aisched.io/gpus` names (its milli and memory are the granted
    ones the binding wrote over the request); a MIG pod's GPU and slots come from
    `aisched.io/mig` (`<device>:<profile>@<start>`). A device written as an index (a node that
    published no topology) matches that node's uniform GPUs, whose UUIDs are their indices.
    """
    annotations: Mapping[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(keys.ANNOTATION_GPUS, "")
    devices = tuple(u.strip() for u in raw.split(",") if u.strip())
    if pod.mig_profile is not None:
        placed = MigAnnotation.parse(annotations.get(keys.ANNOTATION_MIG) or pod.mig_profile)
        device = (placed.device,) if placed.device is not None else devices[:1]
        return PodUsage(
            key=pod.key,
            node=node,
            requests=pod.requests,
            gpu_uuids=device,
            mig=(pod.mig_profile, placed.start),
        )
    if pod.shares_gpu:
        return PodUsage(
            key=pod.key,
            node=node,
            requests=pod.requests,
            gpu_uuids=devices[:1],
            gpu_milli=pod.gpu_milli,
            gpu_memory=pod.gpu_memory,
        )
    uuids = tuple(u for u in devices if not u.isdigit())
    return PodUsage(key=pod.key, node=node, requests=pod.requests, gpu_uuids=uuids)
