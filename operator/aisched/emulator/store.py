"""The emulator's storage: objects with one global resourceVersion counter, their history, and watchers.

Everything here runs on the event loop without awaiting between a read and the write that follows,
so each operation is atomic, and so is taking a list together with subscribing a watcher: a watch
started from "now" never misses an event. Watchers are offered each event inside the write that makes
it, so a watcher whose queue is empty has been told of every change up to `Store.revision`.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aisched.api.objects import rfc3339
from aisched.emulator.errors import StatusError
from aisched.emulator.resources import ResourceType
from aisched.emulator.selectors import Matcher
from aisched.observability.logging import get_logger

__all__ = ["WATCH_QUEUE_LIMIT", "Event", "Store", "Watcher"]

Obj = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace or "", name)
_HISTORY: Final = 100_000
#: Events a watcher may have waiting before it is closed as too slow (the real server drops slow
#: watchers too; the client re-watches from the last resourceVersion it saw).
WATCH_QUEUE_LIMIT: Final = 10_000

log = get_logger(__name__)


def _now(clock: Callable[[], datetime], *, after: float = 0.0) -> str:
    return rfc3339(clock() + timedelta(seconds=after))


@dataclass(frozen=True)
class Event:
    """One change: its resourceVersion, resource, type, the object after and before."""

    revision: int
    resource: tuple[str, str]
    type: str  # ADDED | MODIFIED | DELETED
    object: Obj
    old: Obj | None


@dataclass(eq=False)
class Watcher:
    """One watch stream's subscription: which objects it sees, and the events waiting to be sent."""

    resource: tuple[str, str]
    namespace: str | None
    labels: Matcher
    fields: Matcher
    #: The API version the stream was opened on (a CRD that stops serving it ends the stream).
    version: str = ""
    limit: int = WATCH_QUEUE_LIMIT
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)
    selected: set[ObjectKey] = field(default_factory=set)
    closed: bool = False
    #: Set once the store no longer offers this watcher anything (`Store.unwatch`).
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels(obj) and self.fields(obj)

    def offer(self, event: Event) -> None:
        """Queue `event` as this watcher sees it: objects entering or leaving its selection are
        ADDED or DELETED for it, whatever happened to them.

        A DELETED carries the last state the watcher would have matched (the object before the
        change), stamped with the event's resourceVersion, as the real API server sends it.
        """
        if self.closed:
            return
        key = _key(event.object)
        was = key in self.selected
        now = event.type != "DELETED" and self.matches(event.object)
        if now and not was:
            self.selected.add(key)
            self.queue.put_nowait(("ADDED", event.object))
        elif now and was:
            self.queue.put_nowait(("MODIFIED", event.object))
        elif was:
            self.selected.discard(key)
            last = event.old if event.old is not None else event.object
            self.queue.put_nowait(("DELETED", _as_of(last, event.revision)))
        else:
            return
        if self.queue.qsize() > self.limit:
            self.close(drop_pending=True)

    def close(self, *, drop_pending: bool = False) -> None:
        """End the stream after the events already queued (or without them, for a watcher too slow
        to keep: its client resumes from the last resourceVersion it received)."""
        if self.closed:
            return
        self.closed = True
        if drop_pending:
            while not self.queue.empty():
                self.queue.get_nowait()
        self.queue.put_nowait(None)


def _as_of(obj: Obj, revision: int) -> Obj:
    """`obj` with its resourceVersion set to `revision` (a copy: stored objects are shared)."""
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(revision)}}


def _key(obj: Obj) -> ObjectKey:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


class Store:
    """Every object the emulator holds, by resource, with history for watches from a revision."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        history: int = _HISTORY,
        watch_queue_limit: int = WATCH_QUEUE_LIMIT,
    ) -> None:
        self._clock = clock
        #: The bound on each new watcher's queue (see `WATCH_QUEUE_LIMIT`).
        self.watch_queue_limit = watch_queue_limit
        self.revision = 0
        self._objects: dict[tuple[str, str], dict[ObjectKey, Obj]] = {}
        #: Owner uid -> the objects whose ownerReferences name it, for the garbage collector.
        self._dependents: dict[str, set[tuple[tuple[str, str], ObjectKey]]] = {}
        self._uids: set[str] = set()  # of every object stored
        self._history: deque[Event] = deque(maxlen=history)
        self._compacted = 0  # the newest revision no longer in history
        self._watchers: set[Watcher] = set()
        #: Called after every change (the simulated kubelet listens here).
        self.listeners: list[Callable[[Event], None]] = []

    # -- reading -------------------------------------------------------------------------

    def objects(self, resource: ResourceType) -> dict[ObjectKey, Obj]:
        return self._objects.setdefault(resource.key, {})

    def get(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        found = self.objects(resource).get((namespace or "", name))
        if found is None:
            raise StatusError.not_found(resource.plural, name, group=resource.group)
        return found

    def find(self, resource: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self.objects(resource).get((namespace or "", name))

    def list(
        self, resource: ResourceType, namespace: str | None, labels: Matcher, fields: Matcher
    ) -> tuple[list[Obj], int]:
        items = [
            obj
            for (ns, _), obj in sorted(self.objects(resource).items())
            if (namespace is None or ns == namespace) and labels(obj) and fields(obj)
        ]
        return items, self.revision

    def _index(self, resource: tuple[str, str], key: ObjectKey, obj: Obj, sign: int) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("uid"):
            (self._uids.add if sign > 0 else self._uids.discard)(meta["uid"])
        for ref in meta.get("ownerReferences") or []:
            uid = ref.get("uid") if isinstance(ref, dict) else None
            if not uid:
                continue
            dependents = self._dependents.setdefault(uid, set())
            (dependents.add if sign > 0 else dependents.discard)((resource, key))
            if not dependents:
                del self._dependents[uid]

    def dependents(self, uid: str) -> Iterator[tuple[tuple[str, str], Obj]]:
        """The objects whose ownerReferences name `uid`, by resource (group, plural)."""
        found: list[tuple[tuple[str, str], Obj]] = []
        for resource, key in sorted(self._dependents.get(uid, ())):
            obj = self._objects.get(resource, {}).get(key)
            if obj is not None:
                found.append((resource, obj))
        return iter(found)  # a list underneath: the caller deletes while it goes

    def exists(self, uid: object) -> bool:
        """Whether an object with `uid` is stored."""
        return uid in self._uids

    # -- writing -------------------------------------------------------------------------

    def _commit(self, resource: ResourceType, kind: str, obj: Obj, old: Obj | None) -> Obj:
        """Apply the write, record it, then tell watchers and listeners.

        The write is whole before anyone is told, and one failing watcher or listener neither
        undoes it nor keeps the others from hearing of it: that watcher is closed (its client
        re-watches), the failure logged.
        """
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        key = _key(obj)
        if old is not None:
            self._index(resource.key, key, old, -1)
        if kind == "DELETED":
            self.objects(resource).pop(key, None)
        else:
            self.objects(resource)[key] = obj
            self._index(resource.key, key, obj, +1)
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].revision
        event = Event(self.revision, resource.key, kind, obj, old)
        self._history.append(event)
        for watcher in list(self._watchers):
            if watcher.resource != resource.key:
                continue
            try:
                watcher.offer(event)
            except Exception:
                log.exception("watcher_offer_failed", resource=resource.plural, revision=event.revision)
                watcher.close()
            if watcher.closed:
                self._watchers.discard(watcher)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("store_listener_failed", resource=resource.plural, revision=event.revision)
        return obj

    def create(self, resource: ResourceType, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise StatusError(
                422,
                "Invalid",
                f"{resource.kind} is invalid: metadata.name: Required value:"
                " name or generateName is required",
            )
        if (meta.get("namespace") or "", name) in self.objects(resource):
            raise StatusError.already_exists(resource.plural, name, group=resource.group)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now(self._clock)
        meta["generation"] = 1
        meta.pop("deletionTimestamp", None)
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        return self._commit(resource, "ADDED", obj, None)

    def replace(self, resource: ResourceType, current: Obj, new: Obj) -> Obj:
        """Store `new` in place of `current` (already checked by the caller); bumps generation on
        spec changes; finishes a deletion whose last finalizer went away.

        A write that changes nothing (resourceVersion and managed-field timestamps aside) is not
        committed: `current` comes back with its resourceVersion, and no watcher hears of it.
        """
        meta = new["metadata"]
        for immutable in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"):
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        meta["generation"] = current["metadata"].get("generation", 1)
        if _spec(new) != _spec(current):
            meta["generation"] += 1
        new["apiVersion"] = resource.api_version
        new["kind"] = resource.kind
        if _comparable(new) == _comparable(current):
            return current
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        ):
            # The last finalizer went: the deletion completes (one still in its grace period waits
            # for its kubelet instead).
            return self._commit(resource, "DELETED", new, current)
        return self._commit(resource, "MODIFIED", new, current)

    def delete(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        current = self.get(resource, namespace, name)
        if current["metadata"].get("finalizers"):
            if current["metadata"].get("deletionTimestamp"):
                return current
            marked = copy.deepcopy(current)
            marked["metadata"]["deletionTimestamp"] = _now(self._clock)
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(resource, "MODIFIED", marked, current)
        return self._commit(resource, "DELETED", copy.deepcopy(current), current)

    def terminate(self, resource: ResourceType, current: Obj, grace: int) -> Obj:
        """Begin a graceful deletion (a pod on a node): `deletionTimestamp` is when the grace
        period ends and the object stays until its kubelet removes it. A second request may only
        shorten the grace period, as on a real server."""
        meta = current["metadata"]
        if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds", grace) <= grace:
            return current
        marked = copy.deepcopy(current)
        marked["metadata"]["deletionTimestamp"] = _now(self._clock, after=grace)
        marked["metadata"]["deletionGracePeriodSeconds"] = grace
        return self._commit(resource, "MODIFIED", marked, current)

    def drop_resource(self, resource: ResourceType) -> None:
        """Remove every object of `resource` (its CRD went away), telling the watchers."""
        for obj in list(self.objects(resource).values()):
            self._commit(resource, "DELETED", copy.deepcopy(obj), obj)
        self._objects.pop(resource.key, None)
        for watcher in list(self._watchers):
            if watcher.resource == resource.key:
                watcher.close()

    # -- watching ------------------------------------------------------------------------

    def watch(
        self,
        resource: ResourceType,
        *,
        namespace: str | None,
        labels: Matcher,
        fields: Matcher,
        since: int | None,
    ) -> Watcher:
        """Subscribe; `since` None sends the current state as ADDED, a revision replays after it.

        Raises 410 Expired when `since` is older than the history kept.
        """
        # Unbounded while it takes the state or history it starts from; bounded after.
        watcher = Watcher(
            resource.key, namespace, labels, fields, version=resource.version, limit=sys.maxsize
        )
        if since is None:
            for obj in sorted(self.objects(resource).values(), key=_key):
                if watcher.matches(obj):
                    watcher.selected.add(_key(obj))
                    watcher.queue.put_nowait(("ADDED", obj))
        else:
            if since < self._compacted:
                raise StatusError(
                    410, "Expired", f"too old resource version: {since} ({self._compacted + 1})"
                )
            later = [e for e in self._history if e.revision > since and e.resource == resource.key]
            state_then: dict[ObjectKey, Obj | None] = {}
            for event in later:
                key = _key(event.object)
                if key not in state_then:
                    state_then[key] = event.old if event.type != "ADDED" else None
            for key, obj in self.objects(resource).items():
                state_then.setdefault(key, obj)
            watcher.selected = {
                k for k, obj in state_then.items() if obj is not None and watcher.matches(obj)
            }
            for event in later:
                watcher.offer(event)
        watcher.limit = self.watch_queue_limit + watcher.queue.qsize()
        self._watchers.add(watcher)
        return watcher

    def close_watchers(self, resource: ResourceType | None = None) -> None:
        """End every watch stream (the server is shutting down), or those opened on `resource`'s
        version of it (the version is no longer served)."""
        for watcher in list(self._watchers):
            if resource is None or (watcher.resource, watcher.version) == (resource.key, resource.version):
                watcher.close()

    def unwatch(self, watcher: Watcher) -> None:
        """Stop offering `watcher` events (its stream has ended)."""
        self._watchers.discard(watcher)
        watcher.done.set()

    @property
    def watchers(self) -> frozenset[Watcher]:
        """The subscriptions being offered events."""
        return frozenset(self._watchers)


def _comparable(obj: Obj) -> Obj:
    """`obj` without what every write changes by itself: its resourceVersion, managed-field times."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    if isinstance(meta.get("managedFields"), list):
        meta["managedFields"] = [
            {k: v for k, v in entry.items() if k != "time"} if isinstance(entry, dict) else entry
            for entry in meta["managedFields"]
        ]
    return {**obj, "metadata": meta}


def _spec(obj: Obj) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
