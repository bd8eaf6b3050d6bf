"""Typed, read-only views over API objects as they come off the wire (plain JSON dicts).

The shell keeps objects as the dicts the API server sent (the hot path never deserialises them
into models); these views read them without chains of `.get(...) or {}`, tolerating absent or
null fields the way the API server's own defaults would. One place for an object's key (a
pod's namespace defaulting to `default`), a pod's phase and whether it ended, owner references,
and Kubernetes timestamps (`rfc3339` writes them, `parse_time` reads them).

Pure: no I/O, no clock (a timestamp is made from the moment given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from aisched.api import keys

__all__ = [
    "DEFAULT_NAMESPACE",
    "TERMINAL_PHASES",
    "ObjectView",
    "PodView",
    "decimal",
    "object_key",
    "parse_datetime",
    "parse_time",
    "pod_key",
    "revision",
    "rfc3339",
    "utc",
]

#: Pod phases after which a pod holds nothing and never runs again.
TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed"})
#: The namespace the API server gives a namespaced object (a pod) that names none.
DEFAULT_NAMESPACE: Final = "default"
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})  # shared by every view: never writable


def _in_utc(moment: datetime | float) -> datetime:
    if isinstance(moment, int | float):
        return datetime.fromtimestamp(moment, UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc(moment: datetime | float) -> datetime:
    """`moment` (a datetime, or epoch seconds) as an aware UTC datetime in whole seconds, the
    precision of Kubernetes timestamps; a naive datetime is taken as UTC."""
    return _in_utc(moment).replace(microsecond=0)


def rfc3339(moment: datetime | float, *, micro: bool = False) -> str:
    """`moment` (a datetime, or epoch seconds) as Kubernetes writes timestamps: UTC, whole seconds
    (`2026-11-28T12:00:00Z`), or with `micro` a MicroTime (`2026-11-28T12:00:00.000000Z`, as Leases
    carry). A naive datetime is taken as UTC."""
    return _in_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: object) -> datetime | None:
    """A Kubernetes timestamp as an aware datetime; None when absent or unreadable.

    Reads what clients post besides the server's own `...T12:00:00Z`: fractions of a second (Kopf's
    `isoformat()`, Go's nanoseconds), offsets, lower case; no offset at all is taken as UTC.
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_time(text: object) -> float | None:
    """A Kubernetes timestamp as epoch seconds; None when absent or unreadable."""
    parsed = parse_datetime(text)
    return None if parsed is None else parsed.timestamp()


def revision(resource_version: object) -> int | None:
    """A resourceVersion as a number (etcd's revision), or None where a server uses opaque ones:
    only numeric versions may be compared for order."""
    return decimal(resource_version)


def decimal(text: object) -> int | None:
    """`text` as a non-negative integer when it is written in ASCII digits only, else None
    (`str.isdigit` alone also passes superscripts and other scripts' digits, which int() refuses
    or which no Kubernetes controller writes)."""
    if isinstance(text, str) and text.isascii() and text.isdigit():
        return int(text)
    return None


def object_key(namespace: str | None, name: str) -> str:
    """`namespace/name`, or the bare name of a cluster-scoped object."""
    return f"{namespace}/{name}" if namespace else name


def pod_key(namespace: str | None, name: str) -> str:
    """A pod's `namespace/name`; a pod that names no namespace is in `default`, as the API server
    puts it."""
    return f"{namespace or DEFAULT_NAMESPACE}/{name}"


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # what JSON decodes to: spares the hot path the ABC check
        return value
    return value if isinstance(value, Mapping) else _EMPTY


class ObjectView:
    """Metadata of any object, read from its JSON; absent or null fields read as empty."""

    __slots__ = ("meta", "raw")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.meta: Mapping[str, Any] = _mapping(raw.get("metadata"))

    @property
    def api_version(self) -> str:
        return str(self.raw.get("apiVersion") or "")

    @property
    def kind(self) -> str:
        return str(self.raw.get("kind") or "")

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace") or "")

    @property
    def key(self) -> str:
        return object_key(self.namespace, self.name)

    @property
    def uid(self) -> str:
        return str(self.meta.get("uid") or "")

    @property
    def resource_version(self) -> str:
        return str(self.meta.get("resourceVersion") or "")

    @property
    def revision(self) -> int | None:
        """The resourceVersion as a number, where the server's versions are numeric."""
        return revision(self.resource_version)

    @property
    def generation(self) -> int | None:
        value = self.meta.get("generation")
        return value if isinstance(value, int) else None

    @property
    def labels(self) -> Mapping[str, str]:
        return _mapping(self.meta.get("labels"))

    @property
    def annotations(self) -> Mapping[str, str]:
        return _mapping(self.meta.get("annotations"))

    @property
    def owner_references(self) -> Sequence[Mapping[str, Any]]:
        refs = self.meta.get("ownerReferences")
        return [r for r in refs if isinstance(r, Mapping)] if isinstance(refs, list) else []

    def aijob_reference(self, *, controller: bool = False) -> Mapping[str, Any] | None:
        """The owner reference naming an AIJob (with `controller`: only as the controller), if any."""
        for ref in self.owner_references:
            if (
                ref.get("kind") == "AIJob"
                and str(ref.get("apiVersion", "")).startswith("aisched.io/")
                and (ref.get("controller") or not controller)
            ):
                return ref
        return None

    def controller_reference(self) -> Mapping[str, Any] | None:
        """The owner reference marked as the object's controller, if any."""
        return next((r for r in self.owner_references if r.get("controller") is True), None)

    def owned_by(self, uid: str, *, controller: bool = False) -> bool:
        """Whether an owner reference names the object `uid` (with `controller`: as the controller)."""
        return any(
            r.get("uid") == uid and (r.get("controller") or not controller) for r in self.owner_references
        )

    @property
    def deleting(self) -> bool:
        """Whether deletion has begun (a finalizer or a grace period may hold it a while)."""
        return bool(self.meta.get("deletionTimestamp"))

    @property
    def created(self) -> float | None:
        return parse_time(self.meta.get("creationTimestamp"))

    @property
    def spec(self) -> Mapping[str, Any]:
        return _mapping(self.raw.get("spec"))

    @property
    def status(self) -> Mapping[str, Any]:
        return _mapping(self.raw.get("status"))


class PodView(ObjectView):
    """A pod: its key, where it runs, in what phase, and whether it has ended."""

    __slots__ = ()

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace") or DEFAULT_NAMESPACE)

    @property
    def key(self) -> str:
        return pod_key(self.namespace, self.name)

    @property
    def node_name(self) -> str | None:
        return self.spec.get("nodeName") or None

    @property
    def scheduler_name(self) -> str:
        return str(self.spec.get("schedulerName") or "default-scheduler")

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "Pending")

    @property
    def terminal(self) -> bool:
        """Succeeded or Failed: it holds nothing any more."""
        return self.phase in TERMINAL_PHASES

    @property
    def started(self) -> float | None:
        """When the kubelet started it (status.startTime), epoch seconds."""
        return parse_time(self.status.get("startTime"))

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        for condition in self.status.get("conditions") or ():
            if isinstance(condition, Mapping) and condition.get("type") == kind:
                return condition
        return None

    @property
    def fault(self) -> Mapping[str, Any] | None:
        """The DisruptionTarget condition by which aisched ended the pod for a fault under it
        (reason NodeNotReady, NodeLost or GPUUnhealthy), if it did."""
        condition = self.condition(keys.CONDITION_DISRUPTION)
        if condition is None or condition.get("status") != "True":
            return None
        return condition if condition.get("reason") in keys.FAULT_REASONS else None
