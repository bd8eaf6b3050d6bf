"""Typed, read-only views over API objects as they come off the wire (plain JSON dicts).

The shell keeps objects as the dicts the API server sent (the hot path never deserialises them
into models); these views read them without `obj.get("metadata") or {}` chains, tolerating absent
or null fields the way the API server's own defaults would. One place for a pod's key, its phase
and whether it ended, and for Kubernetes timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "TERMINAL_PHASES",
    "ObjectView",
    "PodView",
    "object_key",
    "parse_time",
    "rfc3339",
]

#: Pod phases after which a pod holds nothing and never runs again.
TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed"})
_EMPTY: Final[Mapping[str, Any]] = {}


def rfc3339(moment: datetime | float) -> str:
    """`moment` (a datetime, or epoch seconds) as Kubernetes writes timestamps: UTC, whole seconds."""
    when = datetime.fromtimestamp(moment, UTC) if isinstance(moment, int | float) else moment
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> float | None:
    """A Kubernetes timestamp as epoch seconds; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def object_key(namespace: str | None, name: str) -> str:
    """`namespace/name`, or the bare name of a cluster-scoped object."""
    return f"{namespace}/{name}" if namespace else name


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


class ObjectView:
    """Metadata of any object."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    @property
    def meta(self) -> Mapping[str, Any]:
        return _mapping(self.raw.get("metadata"))

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
    """A pod: where it runs, in what phase, and whether it has ended."""

    __slots__ = ()

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace") or "default")

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
