"""Kubernetes Events about any object, written off the hot path and deduplicated as client-go's event
recorder does.

`EventRecorder.record` is synchronous and never waits: it notes the occurrence and, when something
is to be written, queues it for the writers `run()` keeps. What reaches the API server:

- one Event per distinct (object uid, reason, message); a repeat is counted in its `count` and
  `lastTimestamp`, repeats that come before the first write lands included (they are merged into it).
  A caller may instead name the Event a record belongs to (`group`), whatever its message: the
  Event then carries the latest message, and a message that changed in more than its numbers is
  written at once (a count that moved waits for the next update, as a repeat does);
- an Event already written is updated (count, lastTimestamp) at most once per `interval` (client-go's
  600 s), by the first repeat after that; if it is gone by then (Events expire), it is created anew;
- a create that fails is not remembered as written: the next repeat tries it again.

Memory is bounded: at most `capacity` Events are remembered (the least recently recorded go first),
at most `per_object` of them per object, and `forget(uid)` drops an object's Events once it is gone.
Up to `writers` writes are in flight, from a work queue (`aisched.kube.workqueue`) of at most
`queue_limit` Events (one more is dropped, and tried again on its next repeat). Failures are logged
and counted, never raised nor retried (the next repeat tries again): an Event is a courtesy, never a
reason to stop scheduling.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from aisched.api import keys
from aisched.api.objects import DEFAULT_NAMESPACE, ObjectView, rfc3339
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, PatchType, resource_path
from aisched.kube.workqueue import WorkQueue
from aisched.observability.logging import get_logger

__all__ = ["EVENT_INTERVAL", "EventClient", "EventRecorder", "without_numbers"]

log = get_logger(__name__)

#: client-go's default: a repeated Event is updated at most this often (seconds).
EVENT_INTERVAL: Final = 600.0
_NOT_FOUND: Final = 404
_MESSAGE_LIMIT: Final = 1024  # the API server refuses longer Event messages
# An Event name is a DNS subdomain (253 characters): the object's name, a dot, 16 hex digits.
_NAME_PREFIX_LIMIT: Final = 253 - 17

EventKey = tuple[str, str, str]  # (object uid, reason, message or group)
_NUMBERS: Final = re.compile(r"\d+")


class EventClient(Protocol):
    """The two verbs the recorder needs (`aisched.kube.client.KubeClient` has them)."""

    async def post(self, path: str, body: JsonObject) -> JsonObject: ...

    async def patch(self, path: str, body: JsonObject, *, patch: PatchType = "merge") -> JsonObject: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Event:
    """One Event: what was recorded, and what the API object (once `name` is set) says."""

    involved: JsonObject  # the involvedObject reference
    message: str  # the latest recorded
    namespace: str
    type: str
    action: str
    count: int
    first: str
    last: str
    name: str | None = None  # set once created
    written_at: float = 0.0  # clock() of the last create or update
    written_message: str = ""  # the message the API object has


class EventRecorder:
    """Writes core/v1 Events about objects; see the module's docstring."""

    def __init__(
        self,
        client: EventClient,
        *,
        clock: Callable[[], float],
        now: Callable[[], datetime] = _utcnow,
        interval: float = EVENT_INTERVAL,
        component: str = keys.SCHEDULER_NAME,
        instance: str = "",
        writers: int = 1,
        capacity: int = 10_000,
        per_object: int | None = None,
        queue_limit: int = 4096,
    ) -> None:
        """`clock` paces updates (seconds, monotonic); `now` stamps what is written; `instance` is the
        reportingInstance (the replica; `component` when empty)."""
        for what, value in (("writers", writers), ("capacity", capacity), ("queue_limit", queue_limit)):
            if value < 1:
                raise ValueError(f"{what} must be at least 1, not {value}")
        if per_object is not None and per_object < 1:
            raise ValueError(f"per_object must be at least 1, not {per_object}")
        self.client = client
        self.clock = clock
        self.now = now
        self.interval = interval
        self.component = component
        self.instance = instance
        self.writers = writers
        self.capacity = capacity
        self.per_object = per_object
        self._events: OrderedDict[EventKey, _Event] = OrderedDict()  # least recently recorded first
        self._by_object: dict[str, OrderedDict[EventKey, None]] = {}
        self._queue: WorkQueue[EventKey] = WorkQueue(name="events", limit=queue_limit)
        self._writing: asyncio.Task[None] | None = None
        self._last_name_stamp = 0
        self._failed = 0
        #: Writes made so far (for tests and debugging).
        self.created = 0
        self.updated = 0

    @property
    def failures(self) -> int:
        """Writes that failed or were dropped (the queue was full)."""
        return self._failed + self._queue.dropped

    # -- the caller's side (synchronous, never waits) --------------------------------------------

    def record(
        self,
        obj: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        warning: bool = False,
        action: str = "",
        group: str | None = None,
    ) -> None:
        """Say `reason: message` about `obj` (a Normal Event, or a Warning), once however often;
        records of one `group` (default: of one message) are one Event."""
        view = ObjectView(obj)
        message = message[:_MESSAGE_LIMIT]
        uid = view.uid or view.key
        key = (uid, reason, message if group is None else group)
        stamp = rfc3339(self.now())
        event = self._events.get(key)
        if event is None:
            new = _new_event(view, message=message, warning=warning, action=action, stamp=stamp)
            event = self._remember(key, new)
        else:
            self._events.move_to_end(key)
            self._by_object[uid].move_to_end(key)
        event.count += 1
        event.last = stamp
        event.message = message
        if not self._written_lately(event):  # otherwise counted only: the next write carries it
            self._queue.add(key)

    def forget(self, uid: str) -> None:
        """`uid`'s object is gone: its Events need not be remembered (nor written)."""
        for key in self._by_object.pop(uid, {}):
            self._events.pop(key, None)

    def __len__(self) -> int:
        """How many Events are remembered."""
        return len(self._events)

    # -- the writers -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Write until `stop` is set or `close()` is called. Events still queued then are dropped
        (what was written stays remembered; a later `record` queues again, for the next run)."""
        async with asyncio.TaskGroup() as tasks:  # a writers' task ended by close() ends it quietly
            self._writing = tasks.create_task(
                self._queue.run(self._write_safely, stop, workers=self.writers), name="event writers"
            )

    async def close(self) -> None:
        """End `run()` as its `stop` would (writes in flight are cut off), and wait until it has."""
        if self._writing is not None:
            self._writing.cancel()
            await asyncio.wait([self._writing])

    async def wait_idle(self) -> None:
        """Until no write is waiting or in flight."""
        await self._queue.wait_idle()

    def _remember(self, key: EventKey, event: _Event) -> _Event:
        uid = key[0]
        self._events[key] = event
        of_object = self._by_object.setdefault(uid, OrderedDict())
        of_object[key] = None
        if self.per_object is not None and len(of_object) > self.per_object:
            self._drop(next(iter(of_object)))
        if len(self._events) > self.capacity:
            self._drop(next(iter(self._events)))
        return event

    def _drop(self, key: EventKey) -> None:
        self._events.pop(key, None)
        of_object = self._by_object.get(key[0])
        if of_object is not None:
            of_object.pop(key, None)
            if not of_object:
                del self._by_object[key[0]]

    def _written_lately(self, event: _Event) -> bool:
        """Whether the Event's API object is recent enough to leave alone for now: written within
        the interval, with a message that differs from the latest in its numbers at most."""
        return (
            event.name is not None
            and self.clock() - event.written_at < self.interval
            and without_numbers(event.message) == without_numbers(event.written_message)
        )

    async def _write_safely(self, key: EventKey) -> None:
        event = self._events.get(key)
        if event is None or self._written_lately(event):
            return  # forgotten meanwhile, or written since it was queued (repeats came in flight)
        try:
            await self._write(key, event)
        except (ApiError, ApiUnavailable) as exc:
            self._failed += 1
            log.warning("event_write_failed", reason=key[1], object=key[0], error=str(exc))
        except Exception:  # a bug here must not reach the caller, nor be retried in a loop
            self._failed += 1
            log.exception("event_write_failed", reason=key[1], object=key[0])

    async def _write(self, key: EventKey, event: _Event) -> None:
        count, last, message = event.count, event.last, event.message
        if event.name is not None:
            update: JsonObject = {"count": count, "lastTimestamp": last}
            if message != event.written_message:
                update["message"] = message
            try:
                await self.client.patch(_events_path(event.namespace, event.name), update, patch="strategic")
            except ApiError as exc:
                if exc.status != _NOT_FOUND:
                    raise
                event.name = None  # expired (Events live an hour): created anew, as client-go does
            else:
                self.updated += 1
                event.written_at, event.written_message = self.clock(), message
                return
        name = self._name(str(event.involved.get("name") or ""))
        body = self._body(key, event, name=name, count=count, message=message)
        await self.client.post(_events_path(event.namespace), body)
        self.created += 1
        event.name, event.written_at, event.written_message = name, self.clock(), message

    def _body(self, key: EventKey, event: _Event, *, name: str, count: int, message: str) -> JsonObject:
        reason = key[1]
        body: JsonObject = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": event.namespace},
            "involvedObject": dict(event.involved),
            "type": event.type,
            "reason": reason,
            "message": message,
            "count": count,
            "firstTimestamp": event.first,
            "lastTimestamp": event.last,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance or self.component,
        }
        if event.action:
            body["action"] = event.action
        if self.instance:
            body["source"]["host"] = self.instance
        return body

    def _name(self, object_name: str) -> str:
        """client-go's `<object>.<unix nanoseconds in hex>`, kept increasing so names never clash."""
        stamp = max(int(self.now().timestamp() * 1e9), self._last_name_stamp + 1)
        self._last_name_stamp = stamp
        prefix = object_name[:_NAME_PREFIX_LIMIT].rstrip("-.") or "object"
        return f"{prefix}.{stamp:016x}"


def without_numbers(message: str) -> str:
    """`message` with each number as `#`: what it says, not how many."""
    return _NUMBERS.sub("#", message)


def _new_event(obj: ObjectView, *, message: str, warning: bool, action: str, stamp: str) -> _Event:
    reference = {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "name": obj.name,
        "namespace": obj.namespace,
        "uid": obj.uid,
        "resourceVersion": obj.resource_version,
    }
    return _Event(
        involved={field: value for field, value in reference.items() if value},
        message=message,
        # An Event about a cluster-scoped object (a Node) lives in `default`, as client-go puts it.
        namespace=obj.namespace or DEFAULT_NAMESPACE,
        type="Warning" if warning else "Normal",
        action=action,
        count=0,
        first=stamp,
        last=stamp,
    )


def _events_path(namespace: str, name: str | None = None) -> str:
    return resource_path(group="", version="v1", plural="events", namespace=namespace, name=name)
