"""The simulated kubelet: bound pods start Running; demo pods finish; failed or deleted nodes fail theirs.

Pods annotated `aisched.io/sim-duration` (seconds, e.g. "30" or "1.5") end after that long:
Succeeded, or Failed when `aisched.io/sim-exit-code` is not 0. A pod with `spec.activeDeadlineSeconds`
that runs that long is ended as the kubelet does it: Failed, reason `DeadlineExceeded` (when both
fall at the same moment the deadline wins, as the kubelet counts a pod that has run its whole
deadline as past it). Other pods run until deleted.

A pod deleted gracefully (the API server set its `deletionTimestamp`) is stopped as a kubelet
stops it: each container is sent its stop signal (`lifecycle.stopSignal`, else SIGTERM), which is
recorded as a `Killing` Event naming the signal; the containers exit after
`aisched.io/sim-stop-seconds` (default 0: at once), or are killed when the grace period ends,
whichever is first; then the pod is removed. A pod on a node that is not ready stays Terminating,
as it does with no kubelet to stop it.

Each pod has at most one timer: its start while it waits, then its end while it runs (or its stop
while it is being deleted), set again when a change to the pod moves its end (a deadline shortened
while it runs). No polling.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any, Final

from aisched.api import keys
from aisched.api.objects import TERMINAL_PHASES, PodView, rfc3339
from aisched.emulator.cluster import with_ready
from aisched.emulator.store import Event

if TYPE_CHECKING:
    from aisched.emulator.server import ApiServer

__all__ = [
    "ANNOTATION_SIM_DURATION",
    "ANNOTATION_SIM_EXIT_CODE",
    "ANNOTATION_SIM_STOP_SECONDS",
    "DEADLINE_EXCEEDED_MESSAGE",
    "Kubelet",
    "whole_node_template",
]

ANNOTATION_SIM_DURATION: Final = "aisched.io/sim-duration"
ANNOTATION_SIM_EXIT_CODE: Final = "aisched.io/sim-exit-code"
#: How long a container takes to exit once sent its stop signal (seconds; default 0).
ANNOTATION_SIM_STOP_SECONDS: Final = "aisched.io/sim-stop-seconds"
#: The kubelet's words for a pod ended by its `activeDeadlineSeconds` (reason `DeadlineExceeded`).
DEADLINE_EXCEEDED_MESSAGE: Final = "Pod was active on the node for longer than the specified deadline"
_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
_KILLED: Final = 137  # 128 + SIGKILL
_DEFAULT_STOP_SIGNAL: Final = "SIGTERM"

# How a running pod ends: (loop time it is due, which end). The deadline sorts first at a tie.
_End = tuple[float, int]
_BY_DEADLINE: Final = 0
_BY_SIM_DURATION: Final = 1


class Kubelet:
    """One simulated kubelet for every node of the emulator."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self._pods = server.resource("", "v1", "pods")
        self._nodes = server.resource("", "v1", "nodes")
        self._timers: dict[str, asyncio.TimerHandle] = {}  # pod key -> its start, or its end
        self._started: dict[str, float] = {}  # running pod -> loop time it started
        self._ends: dict[str, _End] = {}  # running pod -> the end its timer is set for
        self._events = server.resource("", "v1", "events")
        self._stopping: set[str] = set()  # pods being deleted whose containers are stopping
        self._exits: dict[str, float] = {}  # stopping pod -> loop time its containers are done
        self._kill_at: dict[str, float] = {}  # stopping pod -> loop time they are killed
        self._events_made = 0
        self._claims = server.resource("resource.k8s.io", "v1", "resourceclaims")
        #: Per started pod (key), the DRA devices each container would get: `driver/pool/device`.
        self.devices: dict[str, dict[str, list[str]]] = {}
        self._unprepared: dict[str, str] = {}  # waiting pod -> why its claims are not ready (said once)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_ip = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.server.on_change(self._changed)
        for obj in list(self.server.store.objects(self._pods).values()):
            self._consider(obj)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._started.clear()
        self._ends.clear()
        self._stopping.clear()
        self._exits.clear()
        self._kill_at.clear()

    def _changed(self, event: Event) -> None:
        if event.resource == self._claims.key and event.type != "DELETED":
            self._claim_changed(event.object)
            return
        if event.resource == self._pods.key and event.type != "DELETED":
            self._consider(event.object)
        elif event.resource == self._pods.key:
            self._forget(_key(event.object))
            self.devices.pop(_key(event.object), None)
        elif event.resource == self._nodes.key and event.type == "DELETED":
            self._fail_pods_on(event.object["metadata"]["name"], "NodeLost", "the node was deleted")
        elif event.resource == self._nodes.key and _ready(event.object) and not _ready(event.old or {}):
            self._node_back(event.object["metadata"]["name"])  # its kubelet answers (again)

    def _forget(self, key: str) -> None:
        """The pod is gone or has ended: no timer of it may fire."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._started.pop(key, None)
        self._ends.pop(key, None)
        self._stopping.discard(key)
        self._exits.pop(key, None)
        self._kill_at.pop(key, None)
        self._unprepared.pop(key, None)

    def _consider(self, pod: dict[str, Any]) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp") and node_name:
            self._stop(pod, node_name)
            return
        if phase == "Running":
            self._arm_end(_key(pod), pod)
            return
        if phase in TERMINAL_PHASES:
            self._forget(_key(pod))
            return
        if (
            not node_name
            or phase != "Pending"
            or pod["metadata"].get("deletionTimestamp")
            or self._loop is None
        ):
            return
        node = self.server.store.find(self._nodes, None, node_name)
        if node is None or not _ready(node):
            return
        key = _key(pod)
        if key in self._timers:
            return
        # Start on the next loop turn: the binding that triggered this returns first, as on a real node.
        self._timers[key] = self._loop.call_soon(self._start, key)  # type: ignore[assignment]

    def _start(self, key: str) -> None:
        self._timers.pop(key, None)
        namespace, name = key.split("/", 1)
        current = self.server.store.find(self._pods, namespace, name)
        if current is None or (current.get("status") or {}).get("phase") != "Pending":
            return
        prepared = self._prepare(current)
        if isinstance(prepared, str):  # its claims are not allocated for it: it waits, as on a node
            if self._unprepared.get(key) != prepared:
                self._unprepared[key] = prepared
                self._record(current, "FailedPrepareDynamicResources", prepared)
            return
        self._unprepared.pop(key, None)
        if prepared:
            self.devices[key] = prepared
        now = self._timestamp()
        if self._loop is not None:
            self._started[key] = self._loop.time()
        self._next_ip += 1
        running = copy.deepcopy(current)
        status = running.setdefault("status", {})
        node = self.server.store.find(self._nodes, None, running["spec"]["nodeName"])
        status.update(
            {
                "phase": "Running",
                "podIP": f"10.244.{self._next_ip // 250}.{self._next_ip % 250 + 1}",
                "hostIP": _internal_ip(node),
                "startTime": now,
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c.get("image", ""),
                        "imageID": "",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    }
                    for c in running["spec"].get("containers", [])
                ],
            }
        )
        status["conditions"] = _conditions(status.get("conditions") or [], now, ready=True)
        self.server.store.replace(self._pods, current, running)
        self._arm_end(key, running)  # done already if the write's own event came through here

    def _arm_end(self, key: str, pod: dict[str, Any]) -> None:
        """Set the running pod's timer for the first of its ends: its sim-duration, its deadline."""
        if self._loop is None:
            return
        started = self._started.get(key)
        if started is None:  # running before this kubelet saw it: count from its startTime
            began = PodView(pod).started
            elapsed = 0.0 if began is None else max(0.0, self.server.clock().timestamp() - began)
            started = self._started[key] = self._loop.time() - elapsed
        ends: list[_End] = []
        duration = (pod["metadata"].get("annotations") or {}).get(ANNOTATION_SIM_DURATION)
        if duration is not None:
            ends.append((started + _seconds(duration), _BY_SIM_DURATION))
        deadline = _active_deadline(pod)
        if deadline is not None:
            ends.append((started + deadline, _BY_DEADLINE))
        end = min(ends, default=None)
        if end == self._ends.get(key):
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._ends.pop(key, None)
        if end is not None:
            due, kind = end
            callback = self._exceed if kind == _BY_DEADLINE else self._finish
            self._timers[key] = self._loop.call_at(due, callback, key)
            self._ends[key] = end

    def _running(self, key: str) -> dict[str, Any] | None:
        """The pod, if it is still running; its timer has fired either way."""
        self._timers.pop(key, None)
        self._ends.pop(key, None)
        namespace, name = key.split("/", 1)
        current = self.server.store.find(self._pods, namespace, name)
        if current is None or (current.get("status") or {}).get("phase") != "Running":
            return None
        if not self._node_ready(current):
            return None  # its kubelet is silent: the end is written once the node is back
        return current

    def _node_ready(self, pod: dict[str, Any]) -> bool:
        node = self.server.store.find(self._nodes, None, (pod.get("spec") or {}).get("nodeName") or "")
        return node is not None and _ready(node)

    def _exceed(self, key: str) -> None:
        current = self._running(key)
        if current is not None:
            self._terminate(current, "Failed", _KILLED, _DEADLINE_EXCEEDED, message=DEADLINE_EXCEEDED_MESSAGE)

    def _finish(self, key: str) -> None:
        current = self._running(key)
        if current is None:
            return
        code_text = (current["metadata"].get("annotations") or {}).get(ANNOTATION_SIM_EXIT_CODE, "0")
        code = int(code_text) if code_text.lstrip("-").isdigit() else 1
        self._terminate(
            current, "Succeeded" if code == 0 else "Failed", code, "Completed" if code == 0 else "Error"
        )

    def _terminate(
        self, current: dict[str, Any], phase: str, code: int, reason: str, *, message: str | None = None
    ) -> None:
        """End the pod's containers with `code`; a `message` also sets the pod's reason and message."""
        now = self._timestamp()
        ended = copy.deepcopy(current)
        status = ended.setdefault("status", {})
        status["phase"] = phase
        if message is not None:
            status["reason"] = reason
            status["message"] = message
        for container in status.get("containerStatuses") or []:
            started = ((container.get("state") or {}).get("running") or {}).get("startedAt", now)
            container["ready"] = False
            container["started"] = False
            container["state"] = {
                "terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now}
            }
        status["conditions"] = _conditions(status.get("conditions") or [], now, ready=False)
        self.server.store.replace(self._pods, current, ended)

    # -- graceful deletion -------------------------------------------------------------------

    def _stop(self, pod: dict[str, Any], node_name: str) -> None:
        """Stop a pod being deleted: send the stop signals, then remove it once its containers
        exit (or its grace period ends)."""
        key = _key(pod)
        if self._loop is None:
            return
        grace = pod["metadata"].get("deletionGracePeriodSeconds") or 0
        if key in self._stopping:
            self._shorten(key, grace)
            return
        node = self.server.store.find(self._nodes, None, node_name)
        if node is None or not _ready(node):
            return  # no kubelet answers: it stays Terminating until the node is back or it is forced
        self._forget(key)
        if (pod.get("status") or {}).get("phase") != "Running":
            self._timers[key] = self._loop.call_soon(self._remove, key)  # type: ignore[assignment]
            self._stopping.add(key)
            return
        for container in pod["spec"].get("containers", []):
            signal = _stop_signal(container)
            self._record(pod, "Killing", f"Stopping container {container['name']} with signal {signal}")
        annotations = pod["metadata"].get("annotations") or {}
        takes = _seconds(annotations.get(ANNOTATION_SIM_STOP_SECONDS, "0"))
        self._stopping.add(key)
        self._exits[key] = self._loop.time() + takes
        self._stop_at(key, self._loop.time() + grace)

    def _stop_at(self, key: str, deadline: float) -> None:
        """The containers exit when they are done stopping, or are killed at `deadline`."""
        if self._loop is None:
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        exits = self._exits[key]
        self._kill_at[key] = deadline
        killed = exits >= deadline
        self._timers[key] = self._loop.call_at(min(exits, deadline), self._stopped, key, killed)

    def _shorten(self, key: str, grace: float) -> None:
        """A second deletion with a shorter grace period: the kill comes sooner, as on a node."""
        if self._loop is None or key not in self._kill_at:
            return
        deadline = min(self._kill_at[key], self._loop.time() + grace)
        if deadline < self._kill_at[key]:
            self._stop_at(key, deadline)

    def _stopped(self, key: str, killed: bool) -> None:
        """The containers of a pod being deleted have exited (or were killed): record it, remove it."""
        self._timers.pop(key, None)
        namespace, name = key.split("/", 1)
        current = self.server.store.find(self._pods, namespace, name)
        if current is not None and not self._node_ready(current):
            self._forget(key)  # its kubelet went silent: stopped again once it is back
            return
        if current is not None and (current.get("status") or {}).get("phase") == "Running":
            first = (current["spec"].get("containers") or [{}])[0]
            code = _KILLED if killed else 128 + _SIGNAL_NUMBERS.get(_stop_signal(first), 15)
            self._terminate(current, "Failed", code, "Error")
        self._remove(key)

    def _remove(self, key: str) -> None:
        self._timers.pop(key, None)
        self._stopping.discard(key)
        self._exits.pop(key, None)
        self._kill_at.pop(key, None)
        namespace, name = key.split("/", 1)
        if self.server.store.find(self._pods, namespace, name) is not None:
            self.server.delete(self._pods, namespace, name, {"gracePeriodSeconds": 0})

    # -- dynamic resources ---------------------------------------------------------------------

    def _prepare(self, pod: dict[str, Any]) -> dict[str, list[str]] | str:
        """The DRA devices each container of `pod` gets (`driver/pool/device`), or why it cannot
        start: a claim it names is missing, not allocated, not reserved for it, or allocated on
        another node's pool."""
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        entries = [e for e in spec.get("resourceClaims") or [] if isinstance(e, dict)]
        if not entries:
            return {}
        generated = {
            s.get("name"): s.get("resourceClaimName")
            for s in status.get("resourceClaimStatuses") or []
            if isinstance(s, dict)
        }
        namespace, uid, node = pod["metadata"]["namespace"], pod["metadata"].get("uid"), spec.get("nodeName")
        results: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            name = entry.get("name")
            claim_name = entry.get("resourceClaimName") or generated.get(name)
            if not claim_name:
                return f"claim {name!r}: no ResourceClaim made for it yet"
            claim = self.server.store.find(self._claims, namespace, claim_name)
            if claim is None:
                return f"ResourceClaim {namespace}/{claim_name} does not exist"
            claim_status = claim.get("status") or {}
            allocated = ((claim_status.get("allocation") or {}).get("devices") or {}).get("results") or []
            if not claim_status.get("allocation"):
                return f"ResourceClaim {namespace}/{claim_name} is not allocated"
            if not any(r.get("uid") == uid for r in claim_status.get("reservedFor") or []):
                return f"ResourceClaim {namespace}/{claim_name} is not reserved for this pod"
            elsewhere = sorted({str(r.get("pool")) for r in allocated if r.get("pool") != node})
            if elsewhere:
                return (
                    f"ResourceClaim {namespace}/{claim_name} has devices of pool {elsewhere[0]}, not {node}"
                )
            results[str(name)] = allocated
        devices: dict[str, list[str]] = {}
        for container in spec.get("containers") or []:
            for use in (container.get("resources") or {}).get("claims") or []:
                for result in results.get(use.get("name"), []):
                    if use.get("request") in (None, result.get("request")):
                        devices.setdefault(container["name"], []).append(
                            f"{result['driver']}/{result['pool']}/{result['device']}"
                        )
        return devices

    def _claim_changed(self, claim: dict[str, Any]) -> None:
        """A claim was allocated or reserved: pods waiting for it are looked at again."""
        namespace = claim["metadata"].get("namespace")
        for key in list(self._unprepared):
            if key.startswith(f"{namespace}/"):
                pod = self.server.store.find(self._pods, *key.split("/", 1))
                if pod is not None:
                    self._consider(pod)

    def _record(self, pod: dict[str, Any], reason: str, message: str) -> None:
        """An Event about `pod` from this node's kubelet."""
        meta = pod["metadata"]
        now = self._timestamp()
        self._events_made += 1
        self.server.store.create(
            self._events,
            {
                "metadata": {
                    "name": f"{meta['name']}.k{self._events_made:x}",
                    "namespace": meta["namespace"],
                },
                "involvedObject": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                },
                "reason": reason,
                "message": message,
                "type": "Normal",
                "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )

    # -- nodes -------------------------------------------------------------------------------

    def fail_node(self, name: str, *, reason: str = "NodeStatusUnknown") -> None:
        """Make a node NotReady (as when its kubelet stops reporting); its pods keep running."""
        self._set_ready(name, ready=False, reason=reason)

    def heal_node(self, name: str) -> None:
        """Make a node Ready again; pods bound to it while it was down start."""
        self._set_ready(name, ready=True, reason=None)

    def _node_back(self, name: str) -> None:
        """The node is ready: pods bound to it, or deleted, while it was down are seen to."""
        for pod in list(self.server.store.objects(self._pods).values()):
            if (pod.get("spec") or {}).get("nodeName") == name:
                self._consider(pod)

    def _set_ready(self, name: str, *, ready: bool, reason: str | None) -> None:
        node = self.server.store.get(self._nodes, None, name)
        self.server.store.replace(self._nodes, node, with_ready(node, ready, reason, at=self._timestamp()))

    def _fail_pods_on(self, node: str, reason: str, message: str) -> None:
        for pod in list(self.server.store.objects(self._pods).values()):
            if (pod.get("spec") or {}).get("nodeName") != node:
                continue
            if PodView(pod).terminal:
                continue
            # One write: no watcher may see the pod Failed without its reason.
            self._terminate(pod, "Failed", 137, reason, message=message)
            if pod["metadata"].get("deletionTimestamp"):  # nothing is left to stop: remove it
                self._remove(_key(pod))

    def _timestamp(self) -> str:
        return rfc3339(self.server.clock())


def whole_node_template(duration: str | None, *, gpus: int = 8) -> dict[str, Any]:
    """A training pod's template that takes a whole DGX node (`gpus` GPUs, 32 CPUs, 256Gi) and
    that this kubelet ends after `duration` (`aisched.io/sim-duration`, e.g. "6" or "6s"; None:
    it runs until deleted)."""
    return {
        "metadata": {"annotations": {ANNOTATION_SIM_DURATION: duration} if duration is not None else {}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "train",
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "resources": {
                        "requests": {"cpu": "32", "memory": "256Gi"},
                        "limits": {keys.GPU_RESOURCE: gpus, "memory": "256Gi"},
                    },
                }
            ],
        },
    }


def _key(pod: dict[str, Any]) -> str:
    return PodView(pod).key


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _internal_ip(node: dict[str, Any] | None) -> str:
    for address in ((node or {}).get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address", ""))
    return ""


_SIGNAL_NUMBERS: Final = {"SIGINT": 2, "SIGKILL": 9, "SIGUSR1": 10, "SIGUSR2": 12, "SIGTERM": 15}


def _stop_signal(container: dict[str, Any]) -> str:
    lifecycle = container.get("lifecycle")
    signal = lifecycle.get("stopSignal") if isinstance(lifecycle, dict) else None
    return signal if isinstance(signal, str) and signal else _DEFAULT_STOP_SIGNAL


def _active_deadline(pod: dict[str, Any]) -> int | None:
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not isinstance(deadline, bool) and deadline > 0:
        return deadline
    return None


def _seconds(text: str) -> float:
    text = text.strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    try:
        return float(text)
    except ValueError:
        return 0.0


def _conditions(existing: list[dict[str, Any]], now: str, *, ready: bool) -> list[dict[str, Any]]:
    kept = {c["type"]: c for c in existing}
    for kind in ("Initialized", "PodReadyToStartContainers", "ContainersReady", "Ready"):
        status = "True" if (ready or kind in ("Initialized", "PodReadyToStartContainers")) else "False"
        kept[kind] = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
    return list(kept.values())
