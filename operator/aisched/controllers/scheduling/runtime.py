"""`SchedulerRuntime`: informers feed the core's cache and the gang queue; a serial loop schedules;
the binder binds concurrently; the preemptor evicts; the reporter tells waiting pods why; the
fault watch ends the pods a hardware fault hit.

The core (`scheduler.Scheduler`: cache, quota ledger, snapshot, framework, preemption evaluator)
is built here exactly as the simulator builds it; the runtime adds only I/O and time. The loop
starts once pods, nodes and GPUNodeTopology objects have all been listed, never on a partial view,
and sleeps on an event set by the handlers (`controllers.scheduling.watch`) or until the next
backoff ends: it never polls. Every attempt that does not end in a binding goes through one
failure path, `_retry`: back off after an error or a lost binding, else park the gang until one
of the cluster events its rejecting plugins registered. A cycle, a binding or a handler that
raises is logged and contained: its gang backs off and every other gang is scheduled as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Final, Protocol

from aisched.api.objects import PodView
from aisched.binder import Binder, BindOutcome
from aisched.controllers.aijob.admission import ClusterGpus
from aisched.controllers.scheduling.decisions import DecisionLog
from aisched.controllers.scheduling.faults import DEFAULT_COOLDOWN, DEFAULT_DETECTION, FaultWatch
from aisched.controllers.scheduling.frameworks import GangSizes
from aisched.controllers.scheduling.preemptor import Preemptor
from aisched.controllers.scheduling.reporting import (
    REASON_SCHEDULER_ERROR,
    REASON_UNSCHEDULABLE,
    FailureReporter,
)
from aisched.controllers.scheduling.watch import ClusterWatch, PodListener
from aisched.framework.events import ClusterEvent
from aisched.framework.profile import Profile
from aisched.framework.registry import Registry
from aisched.framework.status import Code
from aisched.framework.types import Gang, GangPlacement
from aisched.kube.client import JsonObject, Params, PatchType
from aisched.kube.informer import Informer, InformerHandler
from aisched.kube.retry import until_stopped, woken_or_stopped
from aisched.observability.logging import get_logger
from aisched.observability.metrics import InformerResource, Metrics
from aisched.observability.tracing import CycleTrace, Tracing, reservation_attributes
from aisched.queue import GangBook
from aisched.queue.frameworks import NAMES, frameworks, trimmed
from aisched.queue.policy import QueueingPolicy, QueueResolver
from aisched.quota import QuotaLedger, Tenant
from aisched.scheduler import Scheduler, ScheduleResult
from aisched.scheduler.queueing import (
    POSITIONS_EVERY,
    QueueStatus,
    explain,
    gang_queue,
    gone,
    queue_note,
    turned_away,
)
from aisched.scheduler.scheduler import finish_cycle
from aisched.topology.node import DEFAULT_DOMAINS, DomainLabels

__all__ = ["PodListener", "QueueStatus", "RuntimeClient", "SchedulerRuntime"]

log = get_logger(__name__)

PODS_PATH: Final = "/api/v1/pods"
NODES_PATH: Final = "/api/v1/nodes"
TOPOLOGIES_PATH: Final = "/apis/aisched.io/v1alpha1/gpunodetopologies"
#: While the loop is busy, the queue-depth gauge (a walk over every gang) is refreshed at most
#: this often; whenever the loop goes idle it is refreshed at once.
_QUEUE_DEPTH_EVERY: Final = 1.0


class RuntimeClient(Protocol):
    """What the runtime asks of `aisched.kube.client.KubeClient`: list and watch (informers), post,
    get and delete (binder, preemptor), post and patch (reporter, preemptor)."""

    async def get(self, path: str, *, params: Params | None = None) -> JsonObject: ...

    def watch(self, path: str, *, params: Params | None = None) -> AsyncIterator[JsonObject]: ...

    async def post(self, path: str, body: JsonObject) -> JsonObject: ...

    async def delete(
        self, path: str, *, params: Params | None = None, body: JsonObject | None = None
    ) -> JsonObject: ...

    async def patch(self, path: str, body: JsonObject, *, patch: PatchType = "merge") -> JsonObject: ...


class SchedulerRuntime:
    """Everything the scheduler runs on, built once per leadership term and passed around."""

    def __init__(
        self,
        client: RuntimeClient,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float] = time.time,
        profile: Profile | None = None,
        registry: Registry | None = None,
        ledger: QuotaLedger | None = None,
        binder: Binder | None = None,
        pod_listeners: Sequence[PodListener] = (),
        metrics: Metrics | None = None,
        reporter: FailureReporter | None = None,
        queueing: QueueingPolicy | None = None,
        detection: float = DEFAULT_DETECTION,
        cooldown: float = DEFAULT_COOLDOWN,
        domains: DomainLabels = DEFAULT_DOMAINS,
        gang_frameworks: frozenset[str] = NAMES,
        tracing: Tracing | None = None,
    ) -> None:
        """`clock` paces the queue and times cycles (monotonic); `wall` dates pods (epoch seconds,
        as their start times are) for preemption's minimum runtime. `registry` names the plugins
        the profile may use (default: the built-in ones); `ledger` is the quota book the core
        keeps from the cache (shared with the TenantQuota controller, which reports it);
        `queueing` the cluster's default queue policy (a TenantQuota's `spec.queueing` refines it);
        `detection` and `cooldown` how long a node may be not ready before its pods are ended, and
        how long nothing new goes to a node after a fault (`faults.FaultWatch`); `domains` the node
        labels that say each node's block and rack; `gang_frameworks` the job frameworks whose
        gangs are read (`queue.frameworks.NAMES`), each framework object kind by an informer that
        reads a kind not installed as none."""
        self.clock = clock
        self.domains = domains
        self.client = client
        self.profile = profile if profile is not None else Profile()
        self.metrics = metrics if metrics is not None else Metrics()
        if tracing is None:
            tracing = Tracing(metrics=self.metrics, profile=self.profile.scheduler_name)
        self.tracing = tracing
        self.scheduler = Scheduler(
            profile=self.profile, registry=registry, ledger=ledger, clock=wall, tracing=tracing
        )
        self.cache = self.scheduler.cache
        self.ledger = self.scheduler.ledger
        self.queues = QueueResolver(self.ledger, queueing)
        self.queue = gang_queue(self.scheduler, clock, self.queues)
        self.scheduler.reservations.subscribe(lambda _: self._wake.set())
        self.gangs = GangBook()
        self.binder = binder if binder is not None else Binder(client, clock=clock, tracing=tracing)
        self.reporter = reporter if reporter is not None else FailureReporter(client, clock=clock)
        self.decisions = DecisionLog(clock=wall)
        self.faults = FaultWatch(self, detection=detection, cooldown=cooldown, wall=wall)
        self.watch = ClusterWatch(self, pod_listeners)
        self.pods = self._informer(PODS_PATH, self.watch.pods, "pods")
        self.nodes = self._informer(NODES_PATH, self.watch.nodes, "nodes")
        self.topologies = self._informer(TOPOLOGIES_PATH, self.watch.topologies, "gpunodetopologies")
        self.gang_frameworks = gang_frameworks
        chosen = frameworks(gang_frameworks)
        self.gang_sizes = GangSizes(chosen, self.watch.gang_size_changed, self.watch.frameworks_synced)
        self.framework_informers = tuple(
            Informer(client, path=f.path, handler=self.gang_sizes.handler(f), optional=True, trim=trimmed)
            for f in chosen
        )
        self.preemptor = Preemptor(client, wall=wall, metrics=self.metrics, pods=self.pods)
        self.cache.subscribe(lambda old, new: self.metrics.set_gpus_allocated(self.cache.gpus_held))
        self._queue_published = float("-inf")
        self._positions: dict[str, tuple[str, int, int]] = {}
        self._positions_at = float("-inf")
        self._wake = asyncio.Event()

    def _informer(self, path: str, handler: InformerHandler, resource: InformerResource) -> Informer:
        return Informer(
            self.client, path=path, handler=handler, on_list=lambda: self.metrics.informer_relist(resource)
        )

    @property
    def informers(self) -> tuple[Informer, ...]:
        return self.pods, self.nodes, self.topologies, *self.framework_informers

    def cluster_gpus(self, models: frozenset[str] | None) -> ClusterGpus | None:
        """The GPUs of the nodes of `models` (None: every node), once the nodes are listed."""
        if not (self.nodes.synced.is_set() and self.topologies.synced.is_set()):
            return None
        total, largest = self.cache.gpu_nodes(models)
        return ClusterGpus(total=total, largest_node=largest)

    def strategy_of(self, tenant: str) -> str:
        """The queueing strategy of `tenant` (its TenantQuota's, else the cluster's default)."""
        return self.queues.policy_of(tenant).strategy

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and schedule until `stop` is set; bindings in flight finish first."""
        try:
            async with asyncio.TaskGroup() as tasks:
                for informer in self.informers:
                    tasks.create_task(informer.run(stop), name=f"informer {informer.path}")
                tasks.create_task(self.reporter.run(stop), name="failure reporter")
                tasks.create_task(self.faults.run(stop), name="fault watch")
                tasks.create_task(self._schedule(stop), name="scheduling loop")
        finally:
            await self.preemptor.close()

    def wake(self) -> None:
        """Make the loop look at the queue again (an informer synced, or the queue changed)."""
        self._wake.set()

    def event(self, event: ClusterEvent) -> None:
        """A cluster change: wake the parked gangs it may help."""
        if self.queue.on_event(event):
            self._wake.set()

    def set_tenants(self, tenants: Iterable[Tenant]) -> None:
        """The TenantQuotas as now listed: the ledger's tenants, and a wake-up for gangs waiting
        on quota."""
        self.ledger.set_tenants(tenants)
        for usage in self.cache.pods():  # a namespace may have moved to another tenant
            self.ledger.pod_changed(None, usage)
        self.queue.refile()
        self.event(ClusterEvent.QUOTA_CHANGED)

    # -- the scheduling loop -------------------------------------------------------------------

    async def _schedule(self, stop: asyncio.Event) -> None:
        synced = asyncio.gather(*(informer.synced.wait() for informer in self.informers))
        if not await until_stopped(synced, stop):
            return
        log.info("scheduler_started", nodes=self.cache.node_count, gangs=len(self.queue))
        async with asyncio.TaskGroup() as bindings:
            while not stop.is_set():
                self._wake.clear()
                self._bind_held(bindings)
                gang = self.queue.pop()
                if gang is None:
                    self._publish_queue_depth()
                    await self._idle(stop)
                    continue
                placement = self._cycle(gang)
                if placement is not None:
                    bindings.create_task(self._bind(placement), name=f"bind {gang.key}")
                if self.clock() - self._queue_published >= _QUEUE_DEPTH_EVERY:
                    self._publish_queue_depth()
                await asyncio.sleep(0)  # let watch events and bindings in between cycles

    def _bind_held(self, bindings: asyncio.TaskGroup) -> None:
        """Bind the placements held by preemption whose victims are all gone."""
        while self.preemptor.ready:
            held = self.preemptor.ready.pop()
            bindings.create_task(self._bind(held), name=f"bind {held.gang.key} (preempted room)")

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a handler to change the queue, `stop`, or the end of the next backoff."""
        ready_at = self.queue.next_ready_at()
        timeout = None if ready_at is None else max(0.0, ready_at - self.clock())
        await woken_or_stopped(self._wake, stop, timeout)

    def _cycle(self, popped: Gang) -> GangPlacement | None:
        """One scheduling cycle; the placement to bind, already assumed, or None. Its span stays
        open until what follows the verdict (a reservation held) is noted on it."""
        gang = self.gangs.gang(popped.key)  # the freshest view; members placed meanwhile left it
        if gang is None:
            self.forget_gang(popped.key)
            return None
        started = self.clock()
        cycle = self.tracing.cycle(gang)
        try:
            result = self.scheduler.schedule(gang, cycle=cycle)
        except Exception as exc:  # a bug, or data nobody foresaw: contained to this gang
            log.bind(gang=gang.key).exception("scheduling_cycle_failed")
            reason = f"scheduling cycle failed: {type(exc).__name__}: {exc}"
            if cycle is not None:
                cycle.finish(result="error", reason=reason)
            self.decisions.crashed(gang, exc)
            self.metrics.observe_cycle("error", max(0.0, self.clock() - started), self.profile.scheduler_name)
            self.scheduler.cache.forget(member.key for member in gang.members)
            self._retry(gang, reason, error=True)
            return None
        self.decisions.record(gang, result)
        try:
            return self._decided(gang, result, max(0.0, self.clock() - started), cycle)
        finally:
            if cycle is not None:
                finish_cycle(cycle, result)

    def _decided(
        self, gang: Gang, result: ScheduleResult, seconds: float, cycle: CycleTrace | None
    ) -> GangPlacement | None:
        """Act on a cycle's verdict: book a placement or a nomination, or park the gang."""
        if result.placement is not None:
            self.metrics.observe_cycle("scheduled", seconds, self.profile.scheduler_name)
            self._placed(gang, result.placement)
            return result.placement
        if result.status.code is Code.ERROR:  # a plugin failed: no verdict on the cluster
            log.bind(gang=gang.key).error("scheduling_cycle_failed", reason=result.message)
            self.metrics.observe_cycle("error", seconds, self.profile.scheduler_name)
            self._retry(gang, result.message, error=True)
            return None
        self.metrics.observe_cycle("unschedulable", seconds, self.profile.scheduler_name)
        if result.nomination is not None:  # room is being made: bound once the victims are gone
            tenant = self.ledger.charged_to(gang.tenant, gang.namespace)
            self.preemptor.hold(result.nomination, tenant=tenant)
            self._placed(gang, result.nomination.placement)
            return None
        self._retry(gang, result.message, result=result, cycle=cycle)
        return None

    def _placed(self, gang: Gang, placement: GangPlacement) -> None:
        """Book an assumed placement: members placed, the gang dequeued (or its rest requeued)."""
        placed = [p.pod.key for p in placement.pods]
        self.reporter.placed(placed)
        self.gangs.place(placed)
        line, since = self.queue.line_of(gang.key), self.queue.waiting_since(gang.key)
        if line is not None and since is not None:
            overtook = not self.queue.is_head(gang.key)
            self.metrics.queue_placed(line[0], waited=max(0.0, self.clock() - since), overtook=overtook)
        rest = self.gangs.gang(gang.key)
        if rest is None:
            self.queue.succeeded(gang)
        else:
            self.queue.add(rest)

    def _retry(
        self,
        gang: Gang,
        reason: str,
        *,
        result: ScheduleResult | None = None,
        error: bool = False,
        cycle: CycleTrace | None = None,
    ) -> None:
        """The one failure path. A gang the cluster turned away (`result`) is parked until one of
        the events that may help; an error or a lost binding backs off (it says nothing about the
        cluster). Its pending pods are told why, unless it only lost a binding."""
        if result is not None:
            reservation = turned_away(self.scheduler, self.queue, gang, result)
            if reservation is not None:
                reason += queue_note(reservation)
                if cycle is not None:
                    cycle.event("reservation", reservation_attributes(reservation))
            log.bind(gang=gang.key).info("gang_unschedulable", reason=reason)
            self._report(gang, reason, REASON_UNSCHEDULABLE)
            return
        self.queue.backoff(gang, reason=reason)
        if error:
            self._report(gang, reason, REASON_SCHEDULER_ERROR)

    def _report(self, gang: Gang, message: str, reason: str) -> None:
        """Hand the verdict on `gang` to the reporter, with the members still pending."""
        index = self.pods.index
        found = (index.get((member.namespace, member.name)) for member in gang.members)
        pending = [obj for obj in found if obj is not None and not PodView(obj).node_name]
        self.reporter.report_gang(gang.key, pending, message=message, reason=reason)

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
        self.undo(outcome.forget, rolled_back=outcome.reason if outcome.rolled_back else None)
        if outcome.rolled_back:
            log.bind(gang=placement.gang.key).warning("gang_requeued", reason=outcome.reason)

    def undo(self, keys: Iterable[str], *, rolled_back: str | None = None) -> None:
        """Drop placements assumed but never to be bound (pods confirmed bound meanwhile stay);
        their pods are pending again, and their gangs back off if `rolled_back` says why."""
        undone = self.scheduler.cache.forget(keys)
        for gang_key in self.gangs.restore(undone):
            gang = self.gangs.gang(gang_key)
            if gang is None:
                continue
            if rolled_back is not None:
                self._retry(gang, rolled_back)
            else:
                self.queue.add(gang)
        if undone:
            self.event(ClusterEvent.POD_DELETED)  # what they held is free again
        self._wake.set()

    def queue_status(self, gang_key: str) -> QueueStatus | None:
        """Where the gang `gang_key` waits: its queue, its place there, and what it holds; None
        when it is not queued (placed, gone, or not seen yet). Positions are computed at most
        once a second for all gangs at once."""
        line = self.queue.line_of(gang_key)
        if line is None:
            return None
        now = self.clock()
        if now - self._positions_at >= POSITIONS_EVERY:
            self._positions, self._positions_at = self.queue.positions(), now
        name, position, length = self._positions.get(gang_key, (line[0], 0, 0))
        return QueueStatus(
            queue=name,
            strategy=line[1].strategy,
            position=position,
            length=length,
            reservation=self.scheduler.reservations.get(gang_key),
            verdict=self.queue.reason(gang_key),
            explanation=explain(self.scheduler, self.queue, gang_key),
        )

    def forget_gang(self, key: str) -> None:
        """The gang `key` has nothing left to place: out of the queue, its reservation dropped."""
        gone(self.scheduler, self.queue, key)

    def _publish_queue_depth(self) -> None:
        self._queue_published = self.clock()
        self.metrics.set_queue_depth({state.value: n for state, n in self.queue.depth().items()})
        reservations = self.scheduler.reservations
        self.metrics.set_reservations(len(reservations), reservations.gpus())
