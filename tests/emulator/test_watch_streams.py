"""Watch streams over HTTP: bookmarks never run ahead of events, slow watchers are dropped, and a
stream whose client went away ends at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final, cast

import aiohttp

from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient

CONFIGMAPS: Final = "/api/v1/namespaces/default/configmaps"


@contextlib.asynccontextmanager
async def _watching(kube: KubeClient, path: str, **params: str) -> AsyncIterator[AsyncIterator[JsonObject]]:
    stream = cast(AsyncGenerator[JsonObject, None], kube.watch(path, params=params))
    async with contextlib.aclosing(stream):
        yield stream


async def _next(stream: AsyncIterator[JsonObject]) -> JsonObject:
    async with asyncio.timeout(5):
        return await anext(stream)


def _revision_of(event: JsonObject) -> int:
    return int(event["object"]["metadata"]["resourceVersion"])


async def test_a_bookmark_never_carries_a_revision_ahead_of_an_event_still_to_come(
    emulator: Emulator, kube: KubeClient
) -> None:
    # Bookmarks as often as the loop turns: one is due while the replayed events are still queued.
    emulator.server.bookmark_every = 0
    revision = (await kube.get(CONFIGMAPS))["metadata"]["resourceVersion"]
    made = [await kube.post(CONFIGMAPS, {"metadata": {"name": f"cm-{i}"}}) for i in range(3)]
    last = int(made[-1]["metadata"]["resourceVersion"])
    seen: list[JsonObject] = []
    async with _watching(kube, CONFIGMAPS, resourceVersion=revision, allowWatchBookmarks="true") as stream:
        async with asyncio.timeout(5):
            async for event in stream:
                assert not seen or _revision_of(event) >= _revision_of(seen[-1]), (seen[-1], event)
                seen.append(event)
                if event["type"] == "BOOKMARK" and _revision_of(event) >= last:
                    break
    assert [e["object"]["metadata"]["name"] for e in seen if e["type"] == "ADDED"] == ["cm-0", "cm-1", "cm-2"]
    assert _revision_of(seen[-1]) == emulator.server.store.revision


async def test_a_watcher_too_far_behind_is_closed_and_its_client_resumes_from_what_it_saw(
    emulator: Emulator, kube: KubeClient
) -> None:
    for i in range(10):
        await kube.post(CONFIGMAPS, {"metadata": {"name": f"cm-{i}"}})
    emulator.server.store.watch_queue_limit = 5
    revision = (await kube.get(CONFIGMAPS))["metadata"]["resourceVersion"]
    async with _watching(kube, CONFIGMAPS, resourceVersion=revision) as stream:
        fence = await kube.post(CONFIGMAPS, {"metadata": {"name": "fence"}})
        assert (await _next(stream))["object"]["metadata"]["name"] == "fence"  # the watch is on
        await kube.delete(CONFIGMAPS)  # eleven events in one go: more than it may hold
        async with asyncio.timeout(5):
            rest = [event async for event in stream]
    assert rest == [], "the stream ends without the backlog"
    resumed_from = fence["metadata"]["resourceVersion"]
    async with _watching(kube, CONFIGMAPS, resourceVersion=resumed_from) as stream:
        replayed = [await _next(stream) for _ in range(11)]
    assert {e["type"] for e in replayed} == {"DELETED"}
    assert {e["object"]["metadata"]["name"] for e in replayed} == {"fence", *(f"cm-{i}" for i in range(10))}


async def test_a_watch_whose_client_disconnects_is_unsubscribed(emulator: Emulator, kube: KubeClient) -> None:
    await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}})
    store = emulator.server.store
    before = store.watchers
    async with (
        aiohttp.ClientSession(base_url=emulator.url) as http,
        http.get(CONFIGMAPS, params={"watch": "true"}) as response,
    ):
        async with asyncio.timeout(5):
            assert b'"ADDED"' in await response.content.readline()
        [watcher] = store.watchers - before
        response.close()  # the client goes away; the stream itself is idle and would run on
    async with asyncio.timeout(5):
        await watcher.done.wait()
    assert watcher not in store.watchers
