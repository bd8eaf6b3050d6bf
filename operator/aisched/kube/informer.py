"""The operator's own list+watch of one collection (pods, nodes, GPUNodeTopology objects).

This is the hot path (DESIGN.md §2): events stay plain dicts and go straight to a synchronous
handler that updates the cache or the queue; nothing is deserialised into client models.

What the handler is promised:
- `on_synced()` comes once, after the first full list has been delivered, so that nobody
  decides on a partial view.
- Every change is delivered once and in order. An event whose resourceVersion is not newer than
  what the informer already holds (for that object, or for the whole stream) is dropped.
- After a watch expires (410) the informer lists again and delivers the difference against
  what it had: adds, updates, and deletes for objects that vanished meanwhile (deleted with the
  last state the informer knew). An object recreated under the same name (a new uid) arrives as
  a delete of the old one and an add of the new one.
- An object leaving a server-side selection (`fieldSelector`, `labelSelector`) arrives as a delete.

Outages (no answer, or an `ApiError.transient` one: throttling, 5xx, timeouts) are retried with
capped exponential backoff and jitter, resuming from the last seen resourceVersion; other API
errors (400 bad selector, 403 forbidden, 404 unknown resource) are configuration faults and end
`run()` with the ApiError. An `optional` informer is for a resource that may not be installed (a
job framework's CRD): there a 404 reads as an empty collection (so it syncs, and objects known
before are delivered as deleted), and the list is tried again every `absent_retry` seconds. A 403
(access not granted) is logged as an error and tried again as often; it changes nothing delivered
(a view that cannot be refreshed is kept, not emptied), and syncs an informer that had none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final, Protocol, cast

from aisched.api.objects import ObjectView, revision
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, Params
from aisched.kube.retry import Backoff, until_stopped
from aisched.observability.logging import get_logger

__all__ = [
    "Informer",
    "InformerHandler",
    "ListWatchClient",
    "ObjectKey",
    "index_key",
]

log = get_logger(__name__)

ObjectKey = tuple[str, str]  # (namespace, or "" for cluster-scoped objects; name)
WATCH_TIMEOUT_SECONDS: Final = 300
#: How often an optional informer looks again for a resource that is not served.
ABSENT_RETRY_SECONDS: Final = 60.0
_EXPIRED: Final = 410
_NOT_FOUND: Final = 404
_FORBIDDEN: Final = 403


class InformerHandler(Protocol):
    """Where an informer delivers changes. Synchronous: cache and queue updates never await."""

    def on_add(self, obj: JsonObject) -> None: ...

    def on_update(self, old: JsonObject, new: JsonObject) -> None: ...

    def on_delete(self, obj: JsonObject) -> None: ...

    def on_synced(self) -> None: ...


class ListWatchClient(Protocol):
    """The two verbs an informer needs (`aisched.kube.client.KubeClient` has them)."""

    async def get(self, path: str, *, params: Params | None = None) -> JsonObject: ...

    def watch(self, path: str, *, params: Params | None = None) -> AsyncIterator[JsonObject]: ...


def index_key(obj: JsonObject) -> ObjectKey:
    """The informer's index key of an object: (namespace or "", name)."""
    view = ObjectView(obj)
    return (view.namespace, view.name)


def _resource_version(obj: JsonObject) -> str | None:
    return ObjectView(obj).resource_version or None


def _newer(new: str | None, old: str | None) -> bool:
    """Whether `new` comes after `old`; servers with opaque versions get "differs" instead."""
    new_rev, old_rev = revision(new), revision(old)
    if new_rev is None or old_rev is None:
        return new != old
    return new_rev > old_rev


class Informer:
    """List+watch of one collection, feeding a synchronous handler; `run()` until stopped."""

    def __init__(
        self,
        client: ListWatchClient,
        *,
        path: str,
        handler: InformerHandler,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        known: Iterable[JsonObject] = (),
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        backoff: Backoff | None = None,
        on_list: Callable[[], None] | None = None,
        optional: bool = False,
        absent_retry: float = ABSENT_RETRY_SECONDS,
        trim: Callable[[JsonObject], JsonObject] | None = None,
    ) -> None:
        """`resource_version` resumes from a view the handler already holds (`known`, as of that
        version): no initial list, `on_synced` at once, and a list only if the watch has expired.
        `on_list` is told of every full list once its difference has been delivered (the first
        list, and each relist), for metrics; it must be quick and must not raise. `optional`: the
        resource may not be served (see the module docstring). `trim` makes each object as
        listed or watched into what is kept and delivered (what the handler reads of it, so that
        the index holds no more); it must keep the metadata."""
        self._client = client
        self.path = path
        self._handler = handler
        self._selectors: dict[str, str] = {}
        if label_selector:
            self._selectors["labelSelector"] = label_selector
        if field_selector:
            self._selectors["fieldSelector"] = field_selector
        self._watch_timeout = watch_timeout
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._on_list = on_list
        self._optional = optional
        self._trim = trim
        self._absent_retry = absent_retry
        #: Whether an optional resource was not served at the last list.
        self.absent = False
        #: Whether an optional resource could not be read (403) at the last attempt.
        self.forbidden = False
        self._index: dict[ObjectKey, JsonObject] = {index_key(obj): obj for obj in known}
        self._resource_version = resource_version
        self._must_list = resource_version is None
        self._failures = 0  # consecutive, for the backoff
        self._running = False
        #: Set once the first full view has been delivered (after `on_synced`).
        self.synced = asyncio.Event()
        #: Handler calls made (adds, updates, deletes), for metrics.
        self.events_delivered = 0
        #: Lists made after the first view, because a watch expired.
        self.relists = 0
        #: Failed attempts (outages, throttling), each followed by a backoff.
        self.retries = 0
        self._log = log.bind(path=path, **self._selectors)

    @property
    def resource_version(self) -> str | None:
        """The newest resourceVersion seen: the last list, event or bookmark."""
        return self._resource_version

    @property
    def index(self) -> Mapping[ObjectKey, JsonObject]:
        """The objects delivered so far, by (namespace, name); read-only."""
        return MappingProxyType(self._index)

    async def run(self, stop: asyncio.Event) -> None:
        """List and watch until `stop` is set; may be called again later to resume."""
        if self._running:
            raise RuntimeError(f"informer for {self.path} is already running")
        self._running = True
        try:
            if stop.is_set():
                return
            # Race the work against `stop`, so that a quiet stream or a backoff ends at once.
            # An error that ends the work (a configuration fault) surfaces from here.
            work = asyncio.create_task(self._list_and_watch(), name=f"informer {self.path}")
            await until_stopped(work, stop)
        finally:
            self._running = False

    async def _list_and_watch(self) -> None:
        if not self._must_list:
            self._mark_synced()
        while True:
            try:
                if self._must_list:
                    await self._list()
                await self._watch()
                continue  # the server ended the stream (timeoutSeconds): watch again from here
            except ApiError as exc:
                if exc.status == _EXPIRED:
                    self._log.info("informer_watch_expired", resource_version=self._resource_version)
                    self._must_list = True
                    continue
                if self._optional and exc.status in (_NOT_FOUND, _FORBIDDEN):
                    if exc.status == _NOT_FOUND:
                        self._not_served(exc)
                    else:
                        self._forbidden(exc)
                    await self._sleep(self._absent_retry)
                    continue
                if not exc.transient:
                    raise
                error: Exception = exc
            except ApiUnavailable as exc:
                error = exc
            delay = self._backoff.delay(self._failures)
            self._failures += 1
            self.retries += 1
            self._log.warning("informer_retry", error=str(error), delay_s=round(delay, 3))
            await self._sleep(delay)

    async def _list(self) -> None:
        body = await self._client.get(self.path, params=self._selectors)
        version = _resource_version(body)
        if version is None:
            raise ApiUnavailable(f"LIST {self.path}: the list carries no metadata.resourceVersion")
        items: list[JsonObject] = body.get("items") or []
        if self._trim is not None:
            items = [self._trim(item) for item in items]
        # A real API server leaves kind and apiVersion off list items; watch events carry them.
        kind = str(body.get("kind") or "").removesuffix("List")
        api_version = body.get("apiVersion")
        for item in items:
            if kind:
                item.setdefault("kind", kind)
            if api_version:
                item.setdefault("apiVersion", api_version)
        if self.synced.is_set():
            self.relists += 1
            self._log.info("informer_relist", objects=len(items), resource_version=version)
        if self.absent or self.forbidden:
            self._log.info("informer_resource_served", objects=len(items))
            self.absent = self.forbidden = False
        self._replace(items)
        self._resource_version = version
        self._must_list = False
        self._failures = 0
        if self._on_list is not None:
            self._on_list()
        self._mark_synced()

    def _not_served(self, exc: ApiError) -> None:
        """An optional resource is not served (or not granted): an empty collection until it is."""
        if not self.absent:
            self._log.info("informer_resource_absent", status=exc.status, error=str(exc))
        self.absent = True
        self._replace([])
        self._resource_version = None
        self._must_list = True
        self._failures = 0
        self._mark_synced()

    def _forbidden(self, exc: ApiError) -> None:
        """An optional resource this account may not read: keep what was delivered, list again later."""
        if not self.forbidden:
            self._log.error("informer_forbidden", status=exc.status, error=str(exc))
        self.forbidden = True
        self._must_list = True
        self._failures = 0
        self._mark_synced()

    def _replace(self, items: list[JsonObject]) -> None:
        """Deliver the difference between the index and a fresh list: deletes first (so a cache
        never counts both a vanished object and its successor), then adds and updates in order."""
        fresh = {index_key(item): item for item in items}
        for key in [k for k in self._index if k not in fresh]:
            self._deliver_delete(self._index.pop(key))
        for key, item in fresh.items():
            old = self._index.get(key)
            if old is None:
                self._deliver_add(key, item)
            elif _newer(_resource_version(item), _resource_version(old)):
                self._deliver_change(key, old, item)

    async def _watch(self) -> None:
        params: dict[str, str | int | bool] = {
            **self._selectors,
            "allowWatchBookmarks": True,
            "timeoutSeconds": self._watch_timeout,
        }
        if self._resource_version is not None:
            params["resourceVersion"] = self._resource_version
        stream = cast(AsyncGenerator[JsonObject, None], self._client.watch(self.path, params=params))
        async with contextlib.aclosing(stream):
            async for event in stream:
                self._failures = 0
                self._apply(event)
        self._failures = 0

    def _apply(self, event: JsonObject) -> None:
        kind = event.get("type")
        obj: JsonObject = event["object"]
        if self._trim is not None and kind != "BOOKMARK":
            obj = self._trim(obj)
        version = _resource_version(obj)
        if version is None:
            self._log.warning("informer_event_without_resource_version", type=kind)
            return
        if not _newer(version, self._resource_version):
            return  # replayed or stale: already delivered, or superseded
        if kind == "BOOKMARK":
            self._resource_version = version
            return
        key = index_key(obj)
        old = self._index.get(key)
        if kind in ("ADDED", "MODIFIED"):
            if old is None:
                self._deliver_add(key, obj)
            elif _newer(version, _resource_version(old)):
                self._deliver_change(key, old, obj)
        elif kind == "DELETED":
            if old is not None and _newer(version, _resource_version(old)):
                del self._index[key]
                self._deliver_delete(obj)
        else:
            self._log.warning("informer_unknown_event", type=kind)
            return
        self._resource_version = version

    def _deliver_add(self, key: ObjectKey, obj: JsonObject) -> None:
        self._index[key] = obj
        self.events_delivered += 1
        self._handler.on_add(obj)

    def _deliver_change(self, key: ObjectKey, old: JsonObject, new: JsonObject) -> None:
        if ObjectView(old).uid != ObjectView(new).uid:
            # The same name, another object: the old one was deleted while we were not looking.
            del self._index[key]
            self._deliver_delete(old)
            self._deliver_add(key, new)
            return
        self._index[key] = new
        self.events_delivered += 1
        self._handler.on_update(old, new)

    def _deliver_delete(self, obj: JsonObject) -> None:
        self.events_delivered += 1
        self._handler.on_delete(obj)

    def _mark_synced(self) -> None:
        if not self.synced.is_set():
            self._handler.on_synced()
            self.synced.set()
