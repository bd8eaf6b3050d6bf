"""`FaultWatch`: hardware faults under running pods, turned into ended pods within seconds.

Kubernetes itself evicts the pods of an unreachable node only after five minutes; a training job
would lose that long on every hardware fault. Three faults are read from what the informers
deliver:

- a node whose Ready condition has been False or Unknown for `detection` seconds, counted from
  the condition's lastTransitionTime (an operator that restarts does not wait again; the time
  is in whole seconds, so from the end of that second): its kubelet no longer answers;
- a node deleted;
- a GPU its node's agent now reports Unhealthy in GPUNodeTopology (reason `XID 79`, a double-bit
  ECC error, ...): the pods the binding gave that GPU to.

Each ends every running pod of this scheduler it hits: a `DisruptionTarget` condition (True,
reason `NodeNotReady`, `NodeLost` or `GPUUnhealthy`, a message naming the node, the GPU's UUID and
the XID), and, where no kubelet answers, phase Failed with that reason and message, as the pod
garbage collector marks the pods of a lost node (such a pod already being deleted is then removed
at once: nothing is left to stop it). A pod whose kubelet still answers (a GPU fault on a ready
node) is then deleted with its own grace period, so its containers get their stop signal. A
Warning Event on the pod says the same. The AIJob controller counts a pod with that condition as
failed at once and runs its job's recovery.

The node then cools down for `cooldown` seconds: nothing new is placed on it (NodeUnschedulable
says why), `aisched_nodes_cooling` counts such nodes, and a Warning Event on the node says until
when. The handlers' side only notes what happened; the writes and the timers are `run()`'s.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aisched.api import keys
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.api.objects import ObjectView, PodView, parse_time, rfc3339
from aisched.cache import PodUsage
from aisched.controllers.scheduling.nodes import NodeView, ready_condition
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, resource_path
from aisched.kube.retry import Backoff, woken_or_stopped
from aisched.observability.logging import get_logger
from aisched.observability.metrics import FaultReason

if TYPE_CHECKING:
    from aisched.controllers.scheduling.runtime import SchedulerRuntime

__all__ = ["DEFAULT_COOLDOWN", "DEFAULT_DETECTION", "Fault", "FaultWatch"]

log = get_logger(__name__)

DEFAULT_DETECTION: Final = 10.0
DEFAULT_COOLDOWN: Final = 300.0
#: Pods ended at once (their status writes and deletes in flight together).
_WRITERS: Final = 16
_ATTEMPTS: Final = 8
_NOT_FOUND: Final = 404
_CONFLICT: Final = 409
_XID: Final = re.compile(r"\bXID\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault under node `node`: why (`reason`), said in full (`message`); `gpu` the UUID of the
    unhealthy GPU (None: the whole node), `xid` its XID when the agent reported one;
    `kubelet` whether the node's kubelet still answers (it then stops the pods itself)."""

    node: str
    reason: FaultReason
    message: str
    gpu: str | None = None
    xid: int | None = None
    kubelet: bool = False


class FaultWatch:
    def __init__(
        self,
        runtime: SchedulerRuntime,
        *,
        detection: float = DEFAULT_DETECTION,
        cooldown: float = DEFAULT_COOLDOWN,
        wall: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        self.runtime = runtime
        self.detection = detection
        self.cooldown = cooldown
        self.wall = wall
        self.backoff = backoff if backoff is not None else Backoff(initial=0.2, cap=5.0)
        self._due: dict[str, float] = {}  # node not ready -> when it counts as failed (runtime clock)
        self._failed: set[str] = set()  # nodes not ready past their time, until ready again
        self._unhealthy: dict[str, frozenset[str]] = {}  # node -> UUIDs of its unhealthy GPUs
        self._cooling: dict[str, float] = {}  # node -> end of its cooldown (runtime clock)
        self._ended: dict[str, str] = {}  # pod key -> uid: ended already, never twice
        self._writes: deque[tuple[Fault, JsonObject]] = deque()
        self._wake = asyncio.Event()
        #: Faults detected, and pods ended, since the start.
        self.faults = 0
        self.pods_ended = 0

    # -- what the informers' handlers tell (synchronous, quick) --------------------------------

    def cooling(self, node: str) -> bool:
        return node in self._cooling

    def node_seen(self, obj: JsonObject, view: NodeView) -> None:
        """The node as now seen: a node not ready is failed once it has been so for `detection`
        (once: its later updates while still not ready are no new fault)."""
        if view.ready:
            self._failed.discard(view.name)
            if self._due.pop(view.name, None) is not None:
                self._wake.set()
            return
        if view.name in self._due or view.name in self._failed:
            return
        now = self.wall()
        since = _not_ready_since(obj)
        # The condition's time is in whole seconds: the node went in the second after it, at the
        # latest now; never count it failed before it has been so for the whole detection time.
        since = now if since is None else min(since + 1.0, now)
        wait = max(0.0, since + self.detection - now)
        self._due[view.name] = self.runtime.clock() + wait
        self._wake.set()

    def node_deleted(self, name: str) -> None:
        self._due.pop(name, None)
        self._failed.discard(name)
        self._unhealthy.pop(name, None)
        self._fault(Fault(name, keys.REASON_NODE_LOST, f"node {name} was deleted"))

    def gpus_changed(
        self, node: str, before: GPUNodeTopologyStatus | None, now: GPUNodeTopologyStatus
    ) -> None:
        """The node's agent published its GPUs again: each GPU that turned unhealthy is a fault
        (every unhealthy one when nothing was known of them before, which only cools the node
        down if a pod held it: a GPU long dead is no news on a restart of the scheduler)."""
        healthy = None if before is None else {g.uuid for g in before.gpus if g.health == "Healthy"}
        self._unhealthy[node] = frozenset(g.uuid for g in now.gpus if g.health == "Unhealthy")
        for gpu in now.gpus:
            if gpu.health != "Unhealthy" or (healthy is not None and gpu.uuid not in healthy):
                continue
            said = gpu.health_reason or "no reason given"
            found = _XID.search(said)
            self._fault(
                Fault(
                    node,
                    keys.REASON_GPU_UNHEALTHY,
                    f"GPU {gpu.uuid} (index {gpu.index}) on node {node} is unhealthy: {said}",
                    gpu=gpu.uuid,
                    xid=int(found.group(1)) if found else None,
                    kubelet=True,
                ),
                quiet=before is None,
            )

    # -- faults ----------------------------------------------------------------------------

    def pod_bound(self, obj: JsonObject, usage: PodUsage) -> None:
        """A pod of ours is confirmed on a node: one bound in flight as its node failed, or onto
        a GPU that turned unhealthy meanwhile, is ended as the fault would have."""
        view = PodView(obj)
        if view.scheduler_name != self.runtime.profile.scheduler_name or view.terminal:
            return
        node = usage.node
        if node in self._failed:
            fault = Fault(
                node, keys.REASON_NODE_NOT_READY, f"node {node} failed (not ready) as the pod was bound there"
            )
        else:
            bad = sorted(set(usage.gpu_uuids) & self._unhealthy.get(node, frozenset()))
            if not bad:
                return
            message = f"GPU {bad[0]} on node {node} turned unhealthy as the pod was bound to it"
            fault = Fault(node, keys.REASON_GPU_UNHEALTHY, message, gpu=bad[0], kubelet=True)
        if self._hits(fault, obj):
            self._ended[view.key] = view.uid
            self._writes.append((fault, obj))
            self._wake.set()

    def forget(self, pod_key: str) -> None:
        """The pod is gone or has ended: nothing more to end."""
        self._ended.pop(pod_key, None)

    def _fault(self, fault: Fault, *, quiet: bool = False) -> None:
        """End the pods `fault` hits and cool its node down (`quiet`: only if it hit any)."""
        runtime = self.runtime
        if fault.reason == keys.REASON_NODE_NOT_READY:
            self._failed.add(fault.node)
        # The node's own pods only: a fault costs what runs there, not what runs in the cluster.
        index = runtime.pods.index
        found = (index.get((u.namespace, u.key.partition("/")[2])) for u in runtime.cache.pods_on(fault.node))
        hit = [obj for obj in found if obj is not None and self._hits(fault, obj)]
        if quiet and not hit:
            return
        self.faults += 1
        runtime.metrics.fault(fault.reason, pods=len(hit))
        log.warning(
            "node_fault", node=fault.node, reason=fault.reason, gpu=fault.gpu, xid=fault.xid, pods=len(hit)
        )
        for obj in hit:
            view = PodView(obj)
            self._ended[view.key] = view.uid
            self._writes.append((fault, obj))
        self._cool(fault)
        self._wake.set()

    def _hits(self, fault: Fault, obj: JsonObject) -> bool:
        view = PodView(obj)
        if view.node_name != fault.node or view.terminal:
            return False
        if view.scheduler_name != self.runtime.profile.scheduler_name:
            return False  # another scheduler's pod: the cluster's own controllers look after it
        if self._ended.get(view.key) == view.uid and (fault.kubelet or not view.deleting):
            return False  # ended already; but one being deleted with no kubelet left goes at once
        if fault.gpu is None:
            return True
        usage = self.runtime.cache.pod(view.key)
        return usage is not None and fault.gpu in usage.gpu_uuids

    def _cool(self, fault: Fault) -> None:
        name = fault.node
        fresh = name not in self._cooling
        self._cooling[name] = self.runtime.clock() + self.cooldown
        self.runtime.metrics.set_nodes_cooling(len(self._cooling))
        node = self.runtime.watch.node(name)
        if node is not None:
            until = rfc3339(self.wall() + self.cooldown)
            self.runtime.reporter.events.record(
                node,
                reason="NodeCoolingDown",
                message=f"aisched places nothing new on node {name} until {until}: {fault.message}",
                warning=True,
            )
        if fresh:
            self.runtime.watch.refresh(name)

    # -- the writer --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Fail the nodes whose time is up, end the cooldowns that are over and write the pods'
        ends, until `stop` is set; sleeps until the next of those, or until woken."""
        while not stop.is_set():
            self._wake.clear()
            now = self.runtime.clock()
            for name, due in list(self._due.items()):
                if due <= now:
                    del self._due[name]
                    self._node_failed(name)
            for name, until in list(self._cooling.items()):
                if until <= now:
                    del self._cooling[name]
                    self.runtime.metrics.set_nodes_cooling(len(self._cooling))
                    self.runtime.watch.refresh(name)
            while self._writes:
                batch = [self._writes.popleft() for _ in range(min(_WRITERS, len(self._writes)))]
                await asyncio.gather(*(self._end(fault, obj) for fault, obj in batch))
            if self._wake.is_set():
                continue
            times = [*self._due.values(), *self._cooling.values()]
            timeout = None if not times else max(0.0, min(times) - self.runtime.clock())
            await woken_or_stopped(self._wake, stop, timeout)

    def _node_failed(self, name: str) -> None:
        node = self.runtime.watch.node(name)
        if node is None:
            return
        condition = ready_condition(ObjectView(node).status) or {}
        if condition.get("status") == "True":
            return
        said = condition.get("message") or condition.get("reason") or "no Ready condition"
        status = condition.get("status") or "Unknown"
        message = f"node {name} has not been ready for {self.detection:g}s (Ready={status}: {said})"
        self._fault(Fault(name, keys.REASON_NODE_NOT_READY, message))

    async def _end(self, fault: Fault, obj: JsonObject) -> None:
        """Write one pod's end: its condition (and phase, where no kubelet answers), an Event,
        then its deletion. Retried with backoff; a pod gone meanwhile needs nothing more."""
        view = PodView(obj)
        path = resource_path(group="", version="v1", plural="pods", namespace=view.namespace, name=view.name)
        condition = {
            "type": keys.CONDITION_DISRUPTION,
            "status": "True",
            "reason": fault.reason,
            "message": fault.message,
            "lastTransitionTime": rfc3339(self.wall()),
        }
        status: JsonObject = {"conditions": [condition]}
        if not fault.kubelet:
            status.update(phase="Failed", reason=fault.reason, message=fault.message)
        # Pinned to this very pod: a replacement made under the same name meanwhile is not touched.
        body: JsonObject = {"metadata": {"uid": view.uid}, "status": status}
        only: JsonObject = {"preconditions": {"uid": view.uid}}
        client = self.runtime.client
        for attempt in range(_ATTEMPTS):
            if attempt:
                await asyncio.sleep(self.backoff.delay(attempt - 1))
            try:
                await client.patch(f"{path}/status", body, patch="strategic")
                self.runtime.reporter.events.record(
                    obj, reason=fault.reason, message=fault.message, warning=True
                )
                if fault.kubelet:  # its own grace period: the containers get their stop signal
                    await client.delete(path, body=only)
                elif view.deleting:
                    await client.delete(path, params={"gracePeriodSeconds": 0}, body=only)
                self.pods_ended += 1
                return
            except ApiError as exc:
                if exc.status in (_NOT_FOUND, _CONFLICT):
                    return  # gone, or another pod by now
                if not exc.transient:
                    log.error("fault_write_refused", pod=view.key, status=exc.status, reason=exc.reason)
                    return
            except ApiUnavailable:
                continue
        log.error("fault_write_failed", pod=view.key, attempts=_ATTEMPTS)


def _not_ready_since(node: JsonObject) -> float | None:
    """When the node's Ready condition last changed (epoch seconds), if it says."""
    condition = ready_condition(ObjectView(node).status)
    if condition is None:
        return None
    return parse_time(condition.get("lastTransitionTime"))
