"""The sizes of the gangs job frameworks declare (`aisched.queue.frameworks`), as informers of
those frameworks' objects deliver them, and which pending pods of theirs wait on which object.

`GangSizes.lookup` answers from what has been delivered: the gang and its size, "no gang" (a
basic policy, a Job that is not Indexed), or why the size is not known (the object is not there
yet, or a field of it cannot be read). Every change of such an object's sizes is told to
`on_change` (its kind, namespace and name), so that the pods of its gangs are filed again; a
status update, which changes no size, is not. `on_synced` is told when every framework informer
has delivered its first list.

`FrameworkPods` is the watch's book of those pending pods: which framework object each waits on
(its changes file them again), and which of them wait for a size not known yet, by gang (one
Event per gang, about its first waiting pod).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aisched.api.objects import ObjectView
from aisched.kube.client import JsonObject
from aisched.observability.logging import get_logger
from aisched.queue.frameworks import Framework, FrameworkGang, Sizes, framework_gang

__all__ = ["FrameworkPods", "GangSizes", "Lookup", "ObjectRef"]

log = get_logger(__name__)

ObjectRef = tuple[str, str, str]  # (framework kind, namespace, name)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A pod's gang as far as it is known: its id and `size` (None: no gang, the pod goes alone)
    unless `waiting` says why it is not known yet."""

    gang: str
    size: int | None = None
    waiting: str = ""


class _Handler:
    """One framework's informer callbacks; an exception is logged, never raised (one object, or
    the pods it files again, never stops the informer, nor the runtime it runs in)."""

    def __init__(self, sizes: GangSizes, framework: Framework) -> None:
        self._sizes = sizes
        self._framework = framework

    def on_add(self, obj: JsonObject) -> None:
        self._contained(self._sizes.seen, obj)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self._contained(self._sizes.seen, new)

    def on_delete(self, obj: JsonObject) -> None:
        self._contained(self._sizes.gone, obj)

    def _contained(self, apply: Callable[[Framework, JsonObject], None], obj: JsonObject) -> None:
        try:
            apply(self._framework, obj)
        except Exception:
            log.exception("event_handling_failed", resource=self._framework.kind, object=ObjectView(obj).key)

    def on_synced(self) -> None:
        self._sizes.synced(self._framework)


class GangSizes:
    """Sizes by (kind, namespace, name), from the informers of the frameworks' objects."""

    def __init__(
        self,
        frameworks: Iterable[Framework],
        on_change: Callable[[ObjectRef], None],
        on_synced: Callable[[], None] = lambda: None,
    ) -> None:
        self._frameworks = {f.kind: f for f in frameworks}
        self._on_change = on_change
        self._on_synced = on_synced
        self._unsynced = set(self._frameworks)
        self._sizes: dict[ObjectRef, Sizes | str] = {}  # a str: why the object cannot be read

    def handler(self, framework: Framework) -> _Handler:
        return _Handler(self, framework)

    @property
    def is_synced(self) -> bool:
        """Whether every framework's objects have been listed once."""
        return not self._unsynced

    def synced(self, framework: Framework) -> None:
        if framework.kind in self._unsynced:
            self._unsynced.discard(framework.kind)
            if not self._unsynced:
                self._on_synced()

    def seen(self, framework: Framework, obj: Mapping[str, Any]) -> None:
        view = ObjectView(obj)
        ref = (framework.kind, view.namespace, view.name)
        try:
            sizes: Sizes | str = dict(framework.sizes(obj))
        except ValueError as exc:
            sizes = str(exc)
        if self._sizes.get(ref) == sizes:
            return  # a status update: the size is as it was
        if isinstance(sizes, str):
            log.warning("gang_size_unreadable", kind=framework.kind, object=view.key, error=sizes)
        self._sizes[ref] = sizes
        self._on_change(ref)

    def gone(self, framework: Framework, obj: Mapping[str, Any]) -> None:
        view = ObjectView(obj)
        ref = (framework.kind, view.namespace, view.name)
        if self._sizes.pop(ref, None) is not None:
            self._on_change(ref)

    def has(self, obj: ObjectRef) -> bool:
        """Whether object `obj` (kind, namespace, name) is known."""
        return obj in self._sizes

    def resolve(self, pod: Mapping[str, Any], names: frozenset[str]) -> tuple[FrameworkGang, Lookup] | None:
        """The gang the frameworks of `names` put `pod` in, and its size as far as it is known."""
        found = framework_gang(pod, names)
        return None if found is None else (found, self.lookup(found))

    def lookup(self, found: FrameworkGang) -> Lookup:
        ref = found.ref
        sizes = self._sizes.get((ref.kind, ref.namespace, ref.name))
        if sizes is None:
            return Lookup(found.gang, waiting=f"waiting for {ref}, which says how many pods the gang needs")
        if isinstance(sizes, str):
            return Lookup(found.gang, waiting=f"{ref} cannot be read: {sizes}")
        if ref.part in sizes:
            return Lookup(found.gang, size=sizes[ref.part])
        if found.sub and found.sub in sizes:  # the object splits its pods into a gang per part
            return Lookup(f"{found.gang}/{found.sub}", size=sizes[found.sub])
        framework = self._frameworks.get(ref.kind)
        part = framework.part if framework is not None else "part"
        missing = ref.part or found.sub
        return Lookup(found.gang, waiting=f"{ref.kind} {ref.namespace}/{ref.name} has no {part} {missing!r}")


PodName = tuple[str, str]  # (namespace, name), as the pods informer indexes it


class FrameworkPods:
    """Pending pods of framework gangs: the object each waits on, and those whose size is unknown."""

    def __init__(self) -> None:
        self._pods: dict[ObjectRef, set[PodName]] = {}
        self._object_of: dict[str, tuple[ObjectRef, PodName]] = {}  # pod key -> (its object, its name)
        self._waiting: dict[str, tuple[str, str]] = {}  # pod key -> (gang key, why)
        self._waiting_gangs: dict[str, dict[str, JsonObject]] = {}  # gang key -> pod key -> pod

    def track(self, key: str, name: PodName, found: FrameworkGang | None) -> None:
        """Pending pod `key` waits on the object `found` reads its size from (None: on none)."""
        ref = found.ref if found is not None else None
        obj = (ref.kind, ref.namespace, ref.name) if ref is not None else None
        tracked = self._object_of.get(key)
        if (tracked[0] if tracked is not None else None) == obj:
            return
        self.untrack(key)
        if obj is not None:
            self._object_of[key] = (obj, name)
            self._pods.setdefault(obj, set()).add(name)

    def untrack(self, key: str) -> None:
        tracked = self._object_of.pop(key, None)
        if tracked is None:
            return
        obj, name = tracked
        pods = self._pods[obj]
        pods.discard(name)
        if not pods:
            del self._pods[obj]

    def pods_of(self, obj: ObjectRef) -> list[PodName]:
        """The pending pods waiting on object `obj`, in name order."""
        return sorted(self._pods.get(obj, ()))

    def wait(self, key: str, pod: JsonObject, gang: str, why: str) -> bool:
        """Pod `key` of gang `gang` waits, for `why`; False when it already did, for that."""
        if self._waiting.get(key) == (gang, why):
            return False
        self.stop_waiting(key)
        self._waiting[key] = (gang, why)
        self._waiting_gangs.setdefault(gang, {})[key] = pod
        return True

    def stop_waiting(self, key: str) -> bool:
        """Pod `key` waits for its gang's size no more; whether it did."""
        found = self._waiting.pop(key, None)
        if found is None:
            return False
        pods = self._waiting_gangs[found[0]]
        del pods[key]
        if not pods:
            del self._waiting_gangs[found[0]]
        return True

    def forget(self, key: str) -> bool:
        """Pod `key` is no pending framework pod any more (bound, gone, unreadable); whether it waited."""
        self.untrack(key)
        return self.stop_waiting(key)

    def waiting(self) -> list[tuple[JsonObject, str, str]]:
        """Every waiting pod as (pod, gang key, why), in pod key order."""
        return [
            (self._waiting_gangs[gang][key], gang, why) for key, (gang, why) in sorted(self._waiting.items())
        ]

    def gang_waiting(self, gang: str) -> tuple[JsonObject, int]:
        """The first waiting pod of gang `gang`, and how many of its pods wait."""
        pods = self._waiting_gangs[gang]
        return next(iter(pods.values())), len(pods)
