"""What a container gets: aisched's devices for the pod being admitted, or a refusal with a reason.

Pure: reads the `Inventory` and the `PodBook`, no I/O. A refusal is a value (`Refusal`), turned
into a gRPC error by `service`; the kubelet then fails the pod's admission with that message. The
plugin never hands out devices other than those aisched chose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aisched.agent.deviceplugin.book import Claim, PodBook
from aisched.agent.deviceplugin.devices import Device, Inventory
from aisched.api import keys

__all__ = ["VISIBLE_DEVICES", "Grant", "Refusal", "decide", "preferred"]

#: The variable NVIDIA's container runtime reads to choose the devices a container sees.
VISIBLE_DEVICES: Final = "NVIDIA_VISIBLE_DEVICES"


@dataclass(frozen=True, slots=True)
class Grant:
    """The devices one container of `pod` gets (`names`: as its annotation names them)."""

    pod: Claim
    devices: tuple[Device, ...]
    names: tuple[str, ...]

    @property
    def envs(self) -> dict[str, str]:
        return {VISIBLE_DEVICES: ",".join(d.id for d in self.devices)}

    @property
    def cdi_devices(self) -> list[str]:
        return [d.cdi_name for d in self.devices]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the container cannot be served, as the kubelet will report it."""

    reason: str


def _next_container(book: PodBook, pod: Claim) -> int:
    return pod.containers[book.handed(pod.uid).containers]


def _remaining(book: PodBook, pod: Claim) -> list[str]:
    handed = set(book.handed(pod.uid).names)
    return [d for d in pod.devices if d not in handed]


def _admitted(book: PodBook, asked: Sequence[str]) -> Claim | None:
    """The pod being admitted: the one whose remaining devices are exactly the kubelet's choice
    (the kubelet took our preference), else the earliest-bound pod still waiting."""
    waiting = book.waiting()
    wanted = set(asked)
    for pod in waiting:
        if pod.problem is None and wanted and set(_remaining(book, pod)[: len(asked)]) == wanted:
            return pod
    return waiting[0] if waiting else None


def decide(*, asked: Sequence[str], inventory: Inventory, book: PodBook, node: str) -> Grant | Refusal:
    """The devices for the container the kubelet is allocating `asked` (its device IDs) to.

    1. Find the pod being admitted (`_admitted`).
    2. Its claim must be well formed, and the kubelet must ask as many devices as its next
       container requests.
    3. Its next devices (in the annotation's order) must be known on this node, healthy, and held
       by no other pod.
    """
    resource = inventory.resource
    pod = _admitted(book, asked)
    if pod is None:
        return Refusal(
            f"no pending pod bound to node {node} asks for {resource} with devices chosen by aisched"
            f" ({keys.ANNOTATION_GPUS}); pods placed by other schedulers are not served by this plugin"
        )
    if pod.problem is not None:
        return Refusal(f"pod {pod.key}: {pod.problem}")
    if len(pod.devices) != pod.asked:
        return Refusal(
            f"pod {pod.key}: {keys.ANNOTATION_GPUS} names {len(pod.devices)} device(s)"
            f" but its containers ask for {pod.asked} {resource}"
        )
    count = _next_container(book, pod)
    if len(asked) != count:
        return Refusal(
            f"pod {pod.key}: the kubelet allocates {len(asked)} {resource} to a container"
            f" that asks for {count}"
        )
    names = _remaining(book, pod)[:count]
    devices, unknown = inventory.resolve(names)
    if unknown:
        return Refusal(f"pod {pod.key}: {', '.join(unknown)} is not a {resource} device of node {node}")
    sick = [d for d in devices if not d.healthy]
    if sick:
        reasons = ", ".join(f"{d.id} ({d.reason or 'unhealthy'})" for d in sick)
        return Refusal(f"pod {pod.key}: device(s) chosen for it are unhealthy: {reasons}")
    held = [(d.id, holder) for d in devices if (holder := book.holder(d.id)) not in (None, pod.key)]
    if held:
        owners = ", ".join(f"{device} by {holder}" for device, holder in held)
        return Refusal(f"pod {pod.key}: device(s) chosen for it are held: {owners}")
    return Grant(pod, tuple(devices), tuple(names))


def preferred(
    *, available: Sequence[str], must_include: Sequence[str], size: int, inventory: Inventory, book: PodBook
) -> list[str]:
    """The kubelet's GetPreferredAllocation: aisched's devices for the next container of the pod
    being admitted, when they are all available; else no preference (Allocate decides)."""
    pod = _admitted(book, ())
    if pod is None or pod.problem is not None or _next_container(book, pod) != size:
        return []
    devices, unknown = inventory.resolve(_remaining(book, pod)[:size])
    ids = [d.id for d in devices]
    if unknown or not set(must_include) <= set(ids) or not set(ids) <= set(available):
        return []
    return ids
