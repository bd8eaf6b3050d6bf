"""The sizes of the gangs job frameworks declare (`aisched.queue.frameworks`), as informers of
those frameworks' objects deliver them, and which gang each pending pod of theirs waits in.

`GangSizes.lookup` answers from what has been delivered: a size, "no gang" (a basic policy, a Job
that is not Indexed), or why the size is not known (the object is not there yet, or a field of it
cannot be read). Every change of such an object is told to `on_change` (its kind, namespace and
name), so that the pods of its gang are filed again with the new size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aisched.api.objects import ObjectView
from aisched.kube.client import JsonObject
from aisched.observability.logging import get_logger
from aisched.queue.frameworks import Framework, SizeRef, Sizes

__all__ = ["GangSizes", "Lookup", "ObjectRef"]

log = get_logger(__name__)

ObjectRef = tuple[str, str, str]  # (framework kind, namespace, name)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A gang's size as far as it is known: `size` (None: no gang) unless `waiting` says why not."""

    size: int | None = None
    waiting: str = ""


class _Handler:
    """One framework's informer callbacks."""

    def __init__(self, sizes: GangSizes, framework: Framework) -> None:
        self._sizes = sizes
        self._framework = framework

    def on_add(self, obj: JsonObject) -> None:
        self._sizes.seen(self._framework, obj)

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self._sizes.seen(self._framework, new)

    def on_delete(self, obj: JsonObject) -> None:
        self._sizes.gone(self._framework, obj)

    def on_synced(self) -> None:
        return None


class GangSizes:
    """Sizes by (kind, namespace, name), from the informers of the frameworks' objects."""

    def __init__(self, on_change: Callable[[ObjectRef], None]) -> None:
        self._on_change = on_change
        self._sizes: dict[ObjectRef, Sizes | str] = {}  # a str: why the object cannot be read

    def handler(self, framework: Framework) -> _Handler:
        return _Handler(self, framework)

    def seen(self, framework: Framework, obj: Mapping[str, Any]) -> None:
        view = ObjectView(obj)
        ref = (framework.kind, view.namespace, view.name)
        try:
            sizes: Sizes | str = dict(framework.sizes(obj))
        except ValueError as exc:
            sizes = str(exc)
            log.warning("gang_size_unreadable", kind=framework.kind, object=view.key, error=sizes)
        if self._sizes.get(ref) == sizes:
            return  # a status update: the size is as it was
        self._sizes[ref] = sizes
        self._on_change(ref)

    def gone(self, framework: Framework, obj: Mapping[str, Any]) -> None:
        view = ObjectView(obj)
        ref = (framework.kind, view.namespace, view.name)
        if self._sizes.pop(ref, None) is not None:
            self._on_change(ref)

    def lookup(self, ref: SizeRef) -> Lookup:
        sizes = self._sizes.get((ref.kind, ref.namespace, ref.name))
        if sizes is None:
            return Lookup(waiting=f"waiting for {ref}, which says how many pods the gang needs")
        if isinstance(sizes, str):
            return Lookup(waiting=f"{ref} cannot be read: {sizes}")
        if ref.part not in sizes:
            return Lookup(waiting=f"{ref.kind} {ref.namespace}/{ref.name} has no pod group {ref.part!r}")
        return Lookup(size=sizes[ref.part])
