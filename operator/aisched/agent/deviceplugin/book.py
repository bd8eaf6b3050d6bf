"""The pods bound to this node that wait for devices, and what was handed to each. Pure: no I/O.

The kubelet's Allocate names devices, not the pod: like GPU-sharing device plugins, the plugin
takes the pod being admitted to be the earliest-bound pending pod of this node that asks for the
resource and has containers not yet allocated. The book is fed by an informer of the node's pods
(`spec.nodeName=<node>`) and remembers, by pod uid, which containers were allocated and with which
devices; a pod that ends or is deleted gives its devices back.

Each pod is parsed once, at the edge: a malformed request or annotation becomes the claim's
`problem`, refused at Allocate with that reason, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aisched.api import keys
from aisched.api.objects import PodView, parse_time
from aisched.api.quantity import Quantity, QuantityError

__all__ = ["Claim", "Handed", "PodBook", "claim"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """What one pod asks of one resource, and which devices aisched chose for it."""

    uid: str
    key: str
    #: When the pod was bound (its PodScheduled condition), else created: the admission order.
    bound_at: float
    #: Devices per container (app containers, in order) that ask for the resource; zeros left out.
    containers: tuple[int, ...]
    #: aisched's choice (`aisched.io/gpus`): UUIDs, or indices when the node published none.
    devices: tuple[str, ...] = ()
    #: Why the pod cannot be served as it is (malformed annotation or request), else None.
    problem: str | None = None

    @property
    def asked(self) -> int:
        return sum(self.containers)


@dataclass(slots=True)
class Handed:
    """The containers of one pod allocated so far, and the devices they got."""

    pod: str
    containers: int = 0
    #: As the annotation names them (UUIDs, or indices).
    names: list[str] = field(default_factory=list)
    #: Their device IDs.
    devices: list[str] = field(default_factory=list)


def _count(raw: object, *, where: str) -> tuple[int, str | None]:
    try:
        quantity = Quantity(str(raw))
    except QuantityError as exc:
        return 0, f"{where}: {exc}"
    value = quantity.value()
    if quantity.milli() != value * 1000 or value < 0:
        return 0, f"{where}: {raw!r} is not a whole number of devices"
    return value, None


def _asks(container: Mapping[str, Any], resource: str, *, where: str) -> tuple[int, str | None]:
    """Devices of `resource` one container asks for (limits; a request must equal them)."""
    res = container.get("resources")
    res = res if isinstance(res, Mapping) else {}
    limits, requests = (res.get(k) for k in ("limits", "requests"))
    raw = (limits if isinstance(limits, Mapping) else {}).get(resource)
    if raw is None and isinstance(requests, Mapping):
        raw = requests.get(resource)
    return (0, None) if raw is None else _count(raw, where=where)


def claim(pod: Mapping[str, Any], resource: str) -> Claim | None:
    """What `pod` asks of `resource`; None when it asks for none of it."""
    view = PodView(pod)
    spec = view.spec
    problems: list[str] = []
    containers: list[int] = []
    for kind in ("containers", "initContainers"):
        listed = spec.get(kind)
        for position, container in enumerate(listed if isinstance(listed, list) else ()):
            if not isinstance(container, Mapping):
                continue
            name = container.get("name") or position
            count, problem = _asks(container, resource, where=f"{kind}[{name}] {resource}")
            if problem is not None:
                problems.append(problem)
            elif count and kind == "initContainers":
                problems.append(
                    f"init container {name} asks for {resource}, which this plugin does not serve"
                )
            elif count:
                containers.append(count)
    if not containers and not problems:
        return None
    scheduled = view.condition("PodScheduled")
    bound_at = parse_time(scheduled.get("lastTransitionTime")) if scheduled is not None else None
    raw = view.annotations.get(keys.ANNOTATION_GPUS)
    devices = tuple(d.strip() for d in (raw or "").split(",") if d.strip())
    if raw is None:
        problems.append(f"it has no {keys.ANNOTATION_GPUS} annotation: aisched did not bind it")
    elif len(set(devices)) != len(devices):
        problems.append(f"{keys.ANNOTATION_GPUS}={raw!r} names a device twice")
    return Claim(
        uid=view.uid or view.key,
        key=view.key,
        bound_at=bound_at if bound_at is not None else (view.created or 0.0),
        containers=tuple(containers),
        devices=devices,
        problem="; ".join(problems) or None,
    )


class PodBook:
    """The pods of one node that ask for `resource`, for an informer (`InformerHandler`)."""

    def __init__(self, *, resource: str, on_change: Callable[[], None] | None = None) -> None:
        self.resource = resource
        self._on_change = on_change
        self._pending: dict[str, Claim] = {}  # uid → claim, pods not yet running or ended
        self._handed: dict[str, Handed] = {}  # uid → containers allocated, of live pods
        self.synced = False

    # -- InformerHandler ---------------------------------------------------------------------

    def on_add(self, obj: dict[str, Any]) -> None:
        self._apply(obj)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._apply(new)

    def on_delete(self, obj: dict[str, Any]) -> None:
        uid = PodView(obj).uid or PodView(obj).key
        self._pending.pop(uid, None)
        self._handed.pop(uid, None)
        self._changed()

    def on_synced(self) -> None:
        self.synced = True
        self._changed()

    def _apply(self, obj: Mapping[str, Any]) -> None:
        view = PodView(obj)
        uid = view.uid or view.key
        if view.terminal or view.meta.get("deletionTimestamp"):
            self._pending.pop(uid, None)
            self._handed.pop(uid, None)  # its devices are free again
        elif view.phase != "Pending":
            self._pending.pop(uid, None)  # admitted: it keeps what it was handed
        elif (found := claim(obj, self.resource)) is not None:
            self._pending[uid] = found
        else:
            self._pending.pop(uid, None)
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- what Allocate reads and records -------------------------------------------------

    def waiting(self) -> list[Claim]:
        """Pending pods with containers not yet allocated (or that cannot be served, until they
        fail admission), earliest-bound first."""
        found = [
            c
            for c in self._pending.values()
            if c.problem is not None or self.handed(c.uid).containers < len(c.containers)
        ]
        return sorted(found, key=lambda c: (c.bound_at, c.key))

    def handed(self, uid: str) -> Handed:
        return self._handed.get(uid) or Handed(pod=uid)

    def holder(self, device: str) -> str | None:
        """The pod (`namespace/name`) a device was handed to and that has not ended."""
        return next((h.pod for h in self._handed.values() if device in h.devices), None)

    def record(self, pod: Claim, *, names: list[str], devices: list[str]) -> None:
        """One more container of `pod` was allocated `devices` (named `names` by its annotation)."""
        handed = self._handed.setdefault(pod.uid, Handed(pod=pod.key))
        handed.containers += 1
        handed.names.extend(names)
        handed.devices.extend(devices)
