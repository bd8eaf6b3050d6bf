"""The informers' handlers: each pod, node or GPUNodeTopology change becomes a cache, gang-book or
queue update of the `SchedulerRuntime`, synchronously and briefly.

- A pod with a node is accounted in the cache (the one book: quota and gauges follow) and counts
  as placed in its gang; a pending pod of ours joins its gang in the queue; a pod deleted or ended
  leaves both, which frees room (`POD_DELETED` / `POD_TERMINATED`).
- A pod whose aisched annotations do not parse: pending and ours, it is told why on itself
  (PodScheduled=False, reason `InvalidRequest`, and an Event naming the annotation), once per
  pod and error, and left out of the queue until it is fixed; bound, it is still accounted, by
  its resource requests without those annotations, so its GPUs are never given twice.
- A node's view is kept with its topology; a change the scheduler reads updates the cache and
  is the cluster events it amounts to (`nodes.node_events`); heartbeats change nothing. Nodes not
  ready, nodes deleted and GPUs turned unhealthy are also told to the runtime's `FaultWatch`.
- A pod no `aisched.io/gang` label groups joins the gang its job framework put it in
  (`queue.frameworks`: a PodGroup, a Workload, a JobSet, a RayCluster, an Indexed Job...), with
  the size the framework's object says. While that size is not known (the object has not arrived,
  or cannot be read) the pod waits out of the queue and is told why; when the object changes,
  the pending pods of its gang are filed again.
A change whose handling raises is logged and skipped: one bad object never stops an informer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import pydantic

from aisched.api import keys
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.api.mig import MigAnnotation
from aisched.api.objects import ObjectView, PodView
from aisched.cache import PodUsage
from aisched.controllers.scheduling.frameworks import FrameworkPods, ObjectRef
from aisched.controllers.scheduling.nodes import NodeView, node_events
from aisched.controllers.scheduling.reporting import REASON_INVALID, REASON_UNSCHEDULABLE
from aisched.framework.events import ClusterEvent
from aisched.framework.types import PodInfo
from aisched.kube.client import JsonObject
from aisched.observability.logging import get_logger
from aisched.observability.metrics import InformerResource
from aisched.queue import gang_key, group_key
from aisched.queue.frameworks import FrameworkGang
from aisched.quota import quota_capacity
from aisched.scheduler.usage import pod_usage

if TYPE_CHECKING:
    from aisched.controllers.scheduling.runtime import SchedulerRuntime

__all__ = ["ClusterWatch", "PodListener", "bound_usage"]

log = get_logger(__name__)

#: Told of every pod the informer sees: the object, and whether it was deleted. Listeners run inside
#: the informer's handler, so they must be quick (mark something dirty, never wait).
PodListener = Callable[[JsonObject, bool], None]
_CAPACITY_EVENTS: Final = frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_ALLOCATABLE_CHANGED})
#: The annotations by which a pod asks for part of a GPU; left out of a bound pod they make unreadable.
_SHARE_ANNOTATIONS: Final = (keys.ANNOTATION_GPU_MILLI, keys.ANNOTATION_GPU_MEMORY, keys.ANNOTATION_MIG)


class _Handler:
    """One informer's callbacks, counted for metrics; an exception is logged, never raised."""

    def __init__(
        self, watch: ClusterWatch, resource: InformerResource, apply: Callable[[JsonObject, bool], None]
    ) -> None:
        self._watch = watch
        self._resource = resource
        self._apply = apply

    def on_add(self, obj: JsonObject) -> None:
        self._deliver(obj, deleted=False)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self._deliver(new, deleted=False)

    def on_delete(self, obj: JsonObject) -> None:
        self._deliver(obj, deleted=True)

    def on_synced(self) -> None:
        self._watch.runtime.wake()

    def _deliver(self, obj: JsonObject, *, deleted: bool) -> None:
        self._watch.runtime.metrics.informer_event(self._resource)
        try:
            self._apply(obj, deleted)
        except Exception:
            log.exception("event_handling_failed", resource=self._resource, object=ObjectView(obj).key)


class ClusterWatch:
    """What the runtime's informers deliver, applied to the runtime (see the module docstring)."""

    def __init__(self, runtime: SchedulerRuntime, pod_listeners: Sequence[PodListener] = ()) -> None:
        self.runtime = runtime
        self.pod_listeners = tuple(pod_listeners)
        self.pods = _Handler(self, "pods", self._pod)
        self.nodes = _Handler(self, "nodes", self._node)
        self.topologies = _Handler(self, "gpunodetopologies", self._topology)
        self._nodes: dict[str, JsonObject] = {}
        self._views: dict[str, NodeView] = {}
        self._topologies: dict[str, GPUNodeTopologyStatus] = {}
        self._topology_node: dict[str, str] = {}  # GPUNodeTopology name -> node name
        self._pending_since: dict[str, float] = {}  # pod key -> when first seen pending
        self._invalid: dict[str, tuple[str, str]] = {}  # pod key -> (uid, error) told to the pod
        self._framework_pods = FrameworkPods()
        # While set, gangs to queue again once a batch of pods has been filed (not once per pod).
        self._deferred: set[str] | None = None

    # -- pods --------------------------------------------------------------------------------

    def _pod(self, obj: JsonObject, deleted: bool) -> None:
        try:
            if deleted:
                self._pod_gone(PodView(obj), terminated=False)
            else:
                self._pod_seen(obj)
        finally:  # listeners hear of every pod, even one the runtime choked on
            for listener in self.pod_listeners:
                listener(obj, deleted)

    def _pod_seen(self, obj: JsonObject) -> None:
        runtime, view = self.runtime, PodView(obj)
        known = runtime.cache.pod(view.key)
        if (
            known is not None
            and not known.assumed
            and not view.terminal
            and not view.deleting
            and known.node == view.node_name
        ):
            return  # a status update of a pod already accounted where it runs (the kubelet's)
        if view.terminal:
            self._pod_gone(view, terminated=True)
            return
        try:
            pod = PodInfo.from_manifest(obj)
        except ValueError as exc:
            if view.node_name:
                self._bound_unreadable(obj, exc)
            elif known is None:
                self._unreadable(obj, view, exc)
            return
        if self._invalid.pop(view.key, None) is not None:
            runtime.reporter.forget(view.key)  # fixed: its next verdict is a new one
        pod, found, waiting = self._framework_gang(pod, obj)
        if pod.node_name:
            self._bound(pod, view)
            return
        if pod.scheduler_name != runtime.profile.scheduler_name or known is not None:
            return  # not ours, or assumed already: never schedule a pod twice
        forged = _forged_devices(view)
        if forged is not None:
            self._unreadable(obj, view, ValueError(forged))
            return
        if view.deleting:
            self._pod_gone(view, terminated=False)  # being deleted (a finalizer holds it): nothing to place
            return
        self._pending_since.setdefault(pod.key, runtime.clock())
        self._framework_pods.track(pod.key, (view.namespace, view.name), found)
        if waiting:
            self._wait(obj, view, gang_key(pod), waiting)
            return
        if self._framework_pods.stop_waiting(pod.key):
            runtime.reporter.forget(pod.key)
        seen = runtime.gangs.pending_pod(pod.key)
        if seen is not None and seen.sequence != pod.sequence:  # keeps its place when updated
            pod = dataclasses.replace(pod, sequence=seen.sequence)
        if seen is not None and gang_key(seen) != gang_key(pod):  # moved to another gang
            self._leave_gang(pod.key)
            seen = None
        key = runtime.gangs.pending(pod)
        if seen is None and key in runtime.queue and runtime.gangs.short(key):
            return  # one more member of a gang still short of its size: nothing can be placed yet,
            # and building the whole gang again for each arrival would cost O(members²)
        self._requeue(key)

    def _framework_gang(self, pod: PodInfo, obj: JsonObject) -> tuple[PodInfo, FrameworkGang | None, str]:
        """`pod` in the gang its job framework put it in, when no `aisched.io/gang` label names one;
        that gang; and why its size is not known yet ("" when it is)."""
        runtime = self.runtime
        resolved = None if pod.gang else runtime.gang_sizes.resolve(obj, runtime.gang_frameworks)
        if resolved is None:
            return pod, None, ""
        found, lookup = resolved
        if lookup.waiting:
            return dataclasses.replace(pod, gang=lookup.gang), found, lookup.waiting
        if lookup.size is None:  # a basic policy, a Job that is not Indexed: one pod at a time
            return pod, found, ""
        return dataclasses.replace(pod, gang=lookup.gang, gang_min_member=lookup.size), found, ""

    def _finished_in(self, view: PodView) -> str | None:
        """The job framework's gang a pod that succeeded was in (its key), if any: it still counts
        towards that gang's size."""
        labels = view.labels
        if view.phase != "Succeeded" or labels.get(keys.LABEL_GANG) or labels.get(keys.LABEL_JOB):
            return None
        resolved = self.runtime.gang_sizes.resolve(view.raw, self.runtime.gang_frameworks)
        if resolved is None:
            return None
        lookup = resolved[1]
        return group_key(view.namespace, lookup.gang) if lookup.waiting or lookup.size is not None else None

    def gang_size_changed(self, obj: ObjectRef) -> None:
        """A framework object came, changed or went: the pending pods of its gangs are filed again,
        and each gang queued once after (a gang is built from all its pods: once per pod would
        cost the square of its size). Gone, its gangs' succeeded members count no more."""
        kind, namespace, name = obj
        if not self.runtime.gang_sizes.has(obj):
            self.runtime.gangs.forget_finished(group_key(namespace, f"{kind}:{name}"))
        deferred: set[str] = set()
        self._deferred = deferred
        try:
            for pod_key in self._framework_pods.pods_of(obj):
                pod = self.runtime.pods.index.get(pod_key)
                if pod is None:
                    continue
                try:
                    self._pod_seen(pod)
                except Exception:
                    log.exception("event_handling_failed", resource="pods", object="/".join(pod_key))
        finally:
            self._deferred = None
        for key in sorted(deferred):
            self._requeue(key)

    def frameworks_synced(self) -> None:
        """Every framework's objects are listed: the pods still waiting for theirs are told why
        (not before, when the object may only not have been listed yet)."""
        for pod, gang, why in self._framework_pods.waiting():
            self._tell_waiting(pod, gang, why)

    def _wait(self, obj: JsonObject, view: PodView, gang: str, why: str) -> None:
        """A pending pod whose framework gang's size is not known: out of the queue, told why (once,
        and only once every framework's objects have been listed)."""
        self._leave_gang(view.key)
        if not self._framework_pods.wait(view.key, obj, gang, why):
            return
        log.info("pod_waiting_for_gang_size", pod=view.key, reason=why)
        if self.runtime.gang_sizes.is_synced:
            self._tell_waiting(obj, gang, why)

    def _tell_waiting(self, obj: JsonObject, gang: str, why: str) -> None:
        """Pod `obj`'s condition, and its gang's one Event (about the gang's first waiting pod)."""
        first, count = self._framework_pods.gang_waiting(gang)
        self.runtime.reporter.report_gang(
            gang,
            [obj],
            message=f"pod cannot be scheduled yet: {why}",
            reason=REASON_UNSCHEDULABLE,
            about=first,
            count=count,
        )

    def _leave_gang(self, key: str) -> None:
        """Pod `key` leaves the gang it was filed in; that gang is queued again without it."""
        gang = self.runtime.gangs.remove(key)
        if gang is not None:
            self._requeue(gang)

    def _unreadable(self, obj: JsonObject, view: PodView, exc: ValueError) -> None:
        """A pending pod whose request cannot be read: out of the queue, and told why (once)."""
        runtime, key = self.runtime, view.key
        self._pending_since.pop(key, None)
        self._framework_pods.forget(key)
        self._leave_gang(key)  # filed before its annotations changed: not placed as it was
        if view.scheduler_name != runtime.profile.scheduler_name or view.deleting:
            return
        error = str(exc)
        if self._invalid.get(key) == (view.uid, error):
            return  # told already (this is, say, our own condition write coming back)
        self._invalid[key] = (view.uid, error)
        log.warning("pod_unparseable", pod=key, error=error)
        runtime.reporter.report(obj, message=f"pod cannot be scheduled: {error}", reason=REASON_INVALID)

    def _bound_unreadable(self, obj: JsonObject, exc: ValueError) -> None:
        """A bound pod whose aisched annotations cannot be read: accounted without them."""
        meta = obj.get("metadata") or {}
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SHARE_ANNOTATIONS
        }
        plain = {**obj, "metadata": {**meta, "annotations": annotations}}
        view = PodView(plain)
        try:
            pod = PodInfo.from_manifest(plain)
        except ValueError as again:  # its resource requests themselves do not parse
            log.error("pod_unaccountable", pod=view.key, node=view.node_name, error=str(again))
            return
        log.warning("pod_annotations_ignored", pod=view.key, node=view.node_name, error=str(exc))
        self._bound(pod, view)

    def _bound(self, pod: PodInfo, view: PodView) -> None:
        """`pod` has a node: our binding confirmed, or someone else's."""
        runtime = self.runtime
        assumed = runtime.cache.pod(pod.key)
        since = self._pending_since.pop(pod.key, None)
        self._framework_pods.forget(pod.key)
        if since is not None and assumed is not None and assumed.assumed and assumed.node == pod.node_name:
            runtime.metrics.observe_e2e(max(0.0, runtime.clock() - since))
        started = view.started
        if started is None:  # not started by its kubelet yet: from now (or when we placed it)
            started = assumed.started if assumed is not None else runtime.scheduler.clock()
        usage = bound_usage(pod, view, started=started)
        runtime.cache.set_pod(usage)
        runtime.reporter.forget(pod.key)
        runtime.faults.pod_bound(dict(view.raw), usage)
        # A gang member counts as placed, whoever bound it; not once it is being deleted (the gang
        # it leaves, or a new one under the same name, needs pods that will run).
        key = runtime.gangs.placed(pod) if pod.gang and not view.deleting else runtime.gangs.remove(pod.key)
        if key is not None:
            self._requeue(key)

    def _pod_gone(self, view: PodView, *, terminated: bool) -> None:
        runtime, key = self.runtime, view.key
        self._pending_since.pop(key, None)
        self._invalid.pop(key, None)
        self._framework_pods.forget(key)
        runtime.faults.forget(key)
        runtime.reporter.forget(key)
        dropped = runtime.preemptor.pod_gone(key)
        if runtime.cache.remove_pod(key):
            runtime.event(ClusterEvent.POD_TERMINATED if terminated else ClusterEvent.POD_DELETED)
        if dropped:  # a held gang lost a member: its other members' places go back
            runtime.undo(dropped)
        finished = self._finished_in(view) if terminated else None
        gang = runtime.gangs.finished(key, finished) if finished else runtime.gangs.remove(key)
        if gang is not None:
            self._requeue(gang)
        runtime.wake()  # a held placement may be ready to bind

    def _requeue(self, key: str) -> None:
        if self._deferred is not None:
            self._deferred.add(key)
            return
        runtime = self.runtime
        gang = runtime.gangs.gang(key)
        if gang is None:
            runtime.forget_gang(key)
        else:
            runtime.queue.add(gang)
        runtime.wake()  # also to refresh the queue-depth gauge

    # -- nodes and their topologies ------------------------------------------------------------

    def _node(self, obj: JsonObject, deleted: bool) -> None:
        name = ObjectView(obj).name
        if deleted:
            self._nodes.pop(name, None)
            self._views.pop(name, None)
            self.runtime.cache.remove_node(name)
            self._capacity_changed()
            self.runtime.faults.node_deleted(name)
            return
        self._nodes[name] = obj
        self.refresh(name)
        view = self._views.get(name)
        if view is not None:
            self.runtime.faults.node_seen(obj, view)

    def _topology(self, obj: JsonObject, deleted: bool) -> None:
        view = ObjectView(obj)
        if deleted:
            node = self._topology_node.pop(view.name, None)
            if node is not None and self._topologies.pop(node, None) is not None:
                self.refresh(node)
            return
        node = str(view.spec.get("nodeName") or view.name)
        if not view.status:
            return  # the agent has not published yet
        try:
            status = GPUNodeTopologyStatus.model_validate(view.status)
        except pydantic.ValidationError as exc:
            log.warning("topology_invalid", topology=view.name, error=str(exc))
            return
        self._topology_node[view.name] = node
        before = self._topologies.get(node)
        self._topologies[node] = status
        self.refresh(node)
        self.runtime.faults.gpus_changed(node, before, status)

    def node(self, name: str) -> JsonObject | None:
        """The Node object `name` as last seen."""
        return self._nodes.get(name)

    def refresh(self, name: str) -> None:
        """Apply what is known of node `name` (its object, topology and cooldown) to the cache."""
        obj = self._nodes.get(name)
        if obj is None:
            return  # a topology ahead of its node: applied when the node arrives
        runtime = self.runtime
        view = NodeView(
            obj, self._topologies.get(name), cooling=runtime.faults.cooling(name), domains=runtime.domains
        )
        events = node_events(self._views.get(name), view)
        if not events:
            return  # a heartbeat: nothing the scheduler reads changed
        self._views[name] = view
        self.runtime.cache.set_node(view.info())
        if events & _CAPACITY_EVENTS:
            self._capacity_changed()
        for event in events:
            self.runtime.event(event)

    def _capacity_changed(self) -> None:
        runtime = self.runtime
        runtime.ledger.set_capacity(quota_capacity(runtime.cache.allocatable_total()))


def _forged_devices(view: PodView) -> str | None:
    """Why a pod waiting to be placed may not be: it names devices itself, which only the binding
    aisched makes may do (they would be taken as its own once it is bound)."""
    annotations = view.annotations
    if annotations.get(keys.ANNOTATION_GPUS, "").strip():
        return f"{keys.ANNOTATION_GPUS}: aisched names the devices when it binds a pod; a pod may not"
    if ":" in annotations.get(keys.ANNOTATION_MIG, ""):
        return (
            f"{keys.ANNOTATION_MIG}: name a MIG profile only; aisched writes the device when it binds the pod"
        )
    return None


def bound_usage(pod: PodInfo, view: PodView, *, started: float) -> PodUsage:
    """What a bound pod takes from its node; its GPUs by UUID when the binding named them.

    A sharing pod's GPU is the one `aisched.io/gpus` names (its milli and memory are the granted
    ones the binding wrote over the request); a MIG pod's GPU and slots come from
    `aisched.io/mig` (`<device>:<profile>@<start>`). A device written as an index (a node that
    published no topology) matches that node's uniform GPUs, whose UUIDs are their indices.
    """
    annotations = view.annotations
    raw = annotations.get(keys.ANNOTATION_GPUS, "")
    devices = tuple(u.strip() for u in raw.split(",") if u.strip())
    node, gang = pod.node_name or "", gang_key(pod)
    if pod.mig_profile is not None:
        placed = MigAnnotation.parse(annotations.get(keys.ANNOTATION_MIG) or pod.mig_profile)
        device = (placed.device,) if placed.device is not None else devices[:1]
        return pod_usage(pod, node=node, gang=gang, started=started, gpu_uuids=device, mig_start=placed.start)
    if pod.shares_gpu:
        return pod_usage(
            pod,
            node=node,
            gang=gang,
            started=started,
            gpu_uuids=devices[:1],
            gpu_milli=pod.gpu_milli,
            gpu_memory=pod.gpu_memory,
        )
    uuids = tuple(u for u in devices if not u.isdigit())
    return pod_usage(pod, node=node, gang=gang, started=started, gpu_uuids=uuids)
