"""Watch streams: a store subscription written out as newline-delimited JSON events.

A stream ends at `timeoutSeconds`, when its watcher is closed (its resource went away, it fell too
far behind, the server stops), or when the client disconnects: aiohttp then cancels the handler
(`handler_cancellation`), and the subscription is dropped on the way out.

Bookmarks are sent only while nothing is queued for the watcher, carrying `Store.revision`: the
store offers every event inside the write that makes it, so an empty queue means this watcher has
been sent every change up to that revision. A bookmark sent while events were still queued would
carry a revision ahead of them; a client resuming from it would never see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from aisched.emulator.errors import StatusError, status_body
from aisched.emulator.resources import ResourceType
from aisched.emulator.selectors import field_selector, label_selector
from aisched.emulator.store import Obj, Store, Watcher
from aisched.emulator.tables import table
from aisched.observability.logging import get_logger

__all__ = ["WATCH_TIMEOUT", "WatchOptions", "stream_watch"]

WATCH_TIMEOUT: Final = 1800
_JSON: Final = "application/json"
_DIGITS: Final = re.compile(r"[0-9]+")

log = get_logger(__name__)


def _line(body: Any) -> bytes:
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("true", "1")


class WatchOptions:
    """The query parameters of one watch request, checked (a bad value is 400 BadRequest)."""

    def __init__(self, request: web.Request) -> None:
        query = request.query
        since_raw = query.get("resourceVersion", "")
        if since_raw not in ("", "0") and not _DIGITS.fullmatch(since_raw):
            raise StatusError.bad_request(f"invalid resourceVersion {since_raw!r}")
        self.since: int | None = int(since_raw) if since_raw not in ("", "0") else None
        timeout_raw = query.get("timeoutSeconds", "")
        if timeout_raw and (not _DIGITS.fullmatch(timeout_raw) or int(timeout_raw) <= 0):
            raise StatusError.bad_request(
                f"invalid timeoutSeconds {timeout_raw!r}: must be a positive integer"
            )
        self.timeout = float(timeout_raw) if timeout_raw else float(WATCH_TIMEOUT)
        self.bookmarks = _flag(query, "allowWatchBookmarks")
        self.initial_events_end = self.since is None and _flag(query, "sendInitialEvents")
        self.as_table = "as=Table" in request.headers.get("Accept", "")
        self.labels = label_selector(query.get("labelSelector"))
        self.fields = field_selector(query.get("fieldSelector"))


async def stream_watch(
    request: web.Request,
    *,
    store: Store,
    resource: ResourceType,
    namespace: str | None,
    clock: Callable[[], datetime],
    bookmark_every: float,
) -> web.StreamResponse:
    """Serve one watch request until it times out, its watcher closes or the client goes away."""
    options = WatchOptions(request)
    response = web.StreamResponse(headers={"Content-Type": _JSON, "Transfer-Encoding": "chunked"})
    try:
        watcher = store.watch(
            resource, namespace=namespace, labels=options.labels, fields=options.fields, since=options.since
        )
    except StatusError as exc:
        if exc.code != 410:
            raise
        await response.prepare(request)
        await response.write(_line({"type": "ERROR", "object": exc.body()}))
        return response
    stream = _Stream(response, store=store, resource=resource, clock=clock, as_table=options.as_table)
    try:
        await response.prepare(request)
        if options.initial_events_end:
            await stream.initial(watcher)
        await stream.follow(watcher, options=options, bookmark_every=bookmark_every)
    except ConnectionResetError:
        return response  # the client went away; nothing more to write
    except Exception:
        log.exception("watch_failed", resource=resource.plural)
        with contextlib.suppress(ConnectionResetError):
            await response.write(
                _line({"type": "ERROR", "object": status_body(500, "InternalError", "the watch failed")})
            )
    finally:
        # Also when cancelled (the client disconnected): the store must stop offering events.
        store.unwatch(watcher)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


class _Stream:
    """Writes one watcher's events (and bookmarks) to a response."""

    def __init__(
        self,
        response: web.StreamResponse,
        *,
        store: Store,
        resource: ResourceType,
        clock: Callable[[], datetime],
        as_table: bool,
    ) -> None:
        self.response = response
        self.store = store
        self.resource = resource
        self.clock = clock
        self.as_table = as_table

    async def event(self, kind: str, obj: Obj) -> None:
        body = (
            table(self.resource, [obj], revision=self.store.revision, now=self.clock())
            if self.as_table
            else obj
        )
        await self.response.write(_line({"type": kind, "object": body}))

    async def bookmark(self, *, initial_events_end: bool = False) -> None:
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.revision)}
        if initial_events_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        body = {"kind": self.resource.kind, "apiVersion": self.resource.api_version, "metadata": metadata}
        await self.response.write(_line({"type": "BOOKMARK", "object": body}))

    async def initial(self, watcher: Watcher) -> None:
        """The initial state, then the bookmark that marks its end (`sendInitialEvents`)."""
        while not watcher.queue.empty():
            item = watcher.queue.get_nowait()
            if item is None:
                return
            await self.event(*item)
        # The queue is empty here (no await since the check): the store revision is safe to send.
        await self.bookmark(initial_events_end=True)

    async def follow(self, watcher: Watcher, *, options: WatchOptions, bookmark_every: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.timeout
        while (remaining := deadline - loop.time()) > 0:
            if not watcher.queue.empty():
                item = watcher.queue.get_nowait()
            else:
                wait = min(remaining, bookmark_every) if options.bookmarks else remaining
                try:
                    async with asyncio.timeout(wait):
                        item = await watcher.queue.get()
                except TimeoutError:
                    # An event may have arrived as the timer fired; it goes first, and a bookmark
                    # waits until the queue is empty again.
                    if options.bookmarks and watcher.queue.empty() and loop.time() < deadline:
                        await self.bookmark()
                    continue
            if item is None:
                return
            await self.event(*item)
