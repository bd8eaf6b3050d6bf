"""The informers' handlers of `SchedulerRuntime`: each turns one informer's callbacks (pods, nodes,
GPUNodeTopology objects) into runtime calls, synchronously and briefly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aisched.kube.client import JsonObject
from aisched.observability.logging import get_logger
from aisched.observability.metrics import InformerResource

if TYPE_CHECKING:
    from aisched.controllers.runtime import SchedulerRuntime

__all__ = ["Handler", "NodeHandler", "PodHandler", "TopologyHandler", "pod_key"]

log = get_logger(__name__)


def pod_key(obj: JsonObject) -> str:
    """`namespace/name` of an object (`default/` when it names no namespace), as pods are keyed."""
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


class Handler:
    """Turns one informer's callbacks into runtime calls; counts each change for metrics. A change
    whose handling raises is logged and skipped: one bad object never stops the informer."""

    resource: InformerResource

    def __init__(self, runtime: SchedulerRuntime) -> None:
        self._runtime = runtime

    def on_add(self, obj: JsonObject) -> None:
        self._deliver(obj, added=True, deleted=False)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self._deliver(new, added=False, deleted=False)

    def on_delete(self, obj: JsonObject) -> None:
        self._deliver(obj, added=False, deleted=True)

    def on_synced(self) -> None:
        self._runtime.wake()

    def _deliver(self, obj: JsonObject, *, added: bool, deleted: bool) -> None:
        self._runtime.metrics.informer_event(self.resource)
        try:
            self._apply(obj, added=added, deleted=deleted)
        except Exception:
            log.exception(
                "event_handling_failed", resource=self.resource, object=pod_key(obj), deleted=deleted
            )

    def _apply(self, obj: JsonObject, *, added: bool, deleted: bool) -> None:
        raise NotImplementedError


class PodHandler(Handler):
    resource = "pods"

    def _apply(self, obj: JsonObject, *, added: bool, deleted: bool) -> None:
        try:
            if deleted:
                self._runtime.pod_gone(obj)
            else:
                self._runtime.pod_seen(obj)
        finally:  # listeners hear of every pod, even one the runtime choked on
            for listener in self._runtime.pod_listeners:
                listener(obj, deleted)


class NodeHandler(Handler):
    resource = "nodes"

    def _apply(self, obj: JsonObject, *, added: bool, deleted: bool) -> None:
        if deleted:
            self._runtime.node_gone(obj)
        else:
            self._runtime.node_seen(obj, added=added)


class TopologyHandler(Handler):
    resource = "gpunodetopologies"

    def _apply(self, obj: JsonObject, *, added: bool, deleted: bool) -> None:
        if deleted:
            self._runtime.topology_gone(obj)
        else:
            self._runtime.topology_seen(obj)
