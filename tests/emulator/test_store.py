"""What the emulator's store promises through the API: object identity and resourceVersions,
generation, finalizers, and watches (initial state, replay, expiry, bookmarks, timeouts)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Final, cast

import aiohttp
import pytest
import yaml

from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient

CRDS: Final = Path(__file__).parents[2] / "crds"
CONFIGMAPS: Final = "/api/v1/namespaces/default/configmaps"


@contextlib.asynccontextmanager
async def _watching(kube: KubeClient, path: str, **params: str) -> AsyncIterator[AsyncIterator[JsonObject]]:
    stream = cast(AsyncGenerator[JsonObject, None], kube.watch(path, params=params))
    async with contextlib.aclosing(stream):
        yield stream


async def _next(stream: AsyncIterator[JsonObject]) -> JsonObject:
    async with asyncio.timeout(5):
        return await anext(stream)


def _seen(events: list[JsonObject]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


async def _revision(kube: KubeClient, path: str = CONFIGMAPS) -> str:
    return str((await kube.get(path))["metadata"]["resourceVersion"])


# -- object identity ----------------------------------------------------------------------------


async def test_create_sets_uid_resource_version_creation_timestamp_and_generation(kube: KubeClient) -> None:
    created = await kube.post(CONFIGMAPS, {"metadata": {"name": "cm", "uid": "mine", "generation": 9}})
    meta = created["metadata"]
    assert meta["uid"] != "mine"
    uuid.UUID(meta["uid"])
    assert meta["resourceVersion"].isdigit()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["generation"] == 1
    assert (created["apiVersion"], created["kind"]) == ("v1", "ConfigMap")


async def test_one_resource_version_counter_spans_every_resource(kube: KubeClient) -> None:
    written = [
        await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}}),
        await kube.post("/api/v1/namespaces", {"metadata": {"name": "team-a"}}),
        await kube.post(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases", {"metadata": {"name": "l"}}
        ),
        await kube.patch(f"{CONFIGMAPS}/cm", {"data": {"a": "1"}}),
    ]
    revisions = [int(w["metadata"]["resourceVersion"]) for w in written]
    assert revisions == list(range(revisions[0], revisions[0] + 4))
    assert await _revision(kube) == str(revisions[-1]), "a list answers with the global revision"


async def test_generation_is_bumped_by_spec_changes_only(kube: KubeClient) -> None:
    await kube.post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        yaml.safe_load((CRDS / "aisched.io_aijobs.yaml").read_text()),
    )
    job = "/apis/aisched.io/v1alpha1/namespaces/default/aijobs/job"
    template = {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    await kube.post(
        job.rsplit("/", 1)[0],
        {
            "apiVersion": "aisched.io/v1alpha1",
            "kind": "AIJob",
            "metadata": {"name": "job"},
            "spec": {"replicas": [{"name": "worker", "count": 1, "template": template}]},
        },
    )
    labelled = await kube.patch(job, {"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}}})
    with_status = await kube.patch(f"{job}/status", {"status": {"phase": "Running"}})
    same_spec = await kube.patch(job, {"spec": {"priority": 0}})  # the default: no change
    new_spec = await kube.patch(job, {"spec": {"priority": 5}})
    generations = [o["metadata"]["generation"] for o in (labelled, with_status, same_spec, new_spec)]
    assert generations == [1, 1, 1, 2]


async def test_a_write_that_changes_nothing_is_not_committed(kube: KubeClient) -> None:
    created = await kube.post(
        CONFIGMAPS, {"metadata": {"name": "cm", "labels": {"a": "b"}}, "data": {"k": "1"}}
    )
    revision = created["metadata"]["resourceVersion"]
    async with _watching(kube, CONFIGMAPS, resourceVersion=revision) as stream:
        patched = await kube.patch(
            f"{CONFIGMAPS}/cm", {"metadata": {"labels": {"a": "b"}}, "data": {"k": "1"}}
        )
        put = await kube.put(f"{CONFIGMAPS}/cm", {k: v for k, v in created.items() if k != "status"})
        assert patched == put == created
        changed = await kube.patch(f"{CONFIGMAPS}/cm", {"data": {"k": "2"}})
        event = await _next(stream)
    assert (event["type"], event["object"]["data"]) == ("MODIFIED", {"k": "2"})
    assert int(changed["metadata"]["resourceVersion"]) == int(revision) + 1, "nothing was committed between"


# -- finalizers ---------------------------------------------------------------------------------


async def test_finalizers_hold_a_deleted_object_until_the_last_one_is_removed(kube: KubeClient) -> None:
    body = {"metadata": {"name": "held", "finalizers": ["a.example.com/x", "b.example.com/y"]}}
    created = await kube.post(CONFIGMAPS, body)
    async with _watching(kube, CONFIGMAPS, resourceVersion=created["metadata"]["resourceVersion"]) as stream:
        marked = await kube.delete(f"{CONFIGMAPS}/held")
        assert marked["metadata"]["deletionTimestamp"]
        again = await kube.delete(f"{CONFIGMAPS}/held")
        assert again["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
        await kube.patch(f"{CONFIGMAPS}/held", {"metadata": {"finalizers": ["b.example.com/y"]}})
        still = await kube.get(f"{CONFIGMAPS}/held")
        assert still["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
        await kube.patch(f"{CONFIGMAPS}/held", {"metadata": {"finalizers": None}})
        events = [await _next(stream) for _ in range(3)]
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert events[0]["object"]["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiError) as gone:
        await kube.get(f"{CONFIGMAPS}/held")
    assert gone.value.status == 404


# -- watches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("since", ["", "0"])
async def test_a_watch_from_now_sends_the_current_state_as_added_then_changes(
    kube: KubeClient, since: str
) -> None:
    for name in ("a", "b"):
        await kube.post(CONFIGMAPS, {"metadata": {"name": name}})
    async with _watching(kube, CONFIGMAPS, resourceVersion=since) as stream:
        initial = [await _next(stream) for _ in range(2)]
        await kube.post(CONFIGMAPS, {"metadata": {"name": "c"}})
        later = await _next(stream)
    assert sorted(_seen(initial)) == [("ADDED", "a"), ("ADDED", "b")]
    assert _seen([later]) == [("ADDED", "c")]


async def test_a_watch_from_a_revision_replays_every_change_after_it(kube: KubeClient) -> None:
    await kube.post(CONFIGMAPS, {"metadata": {"name": "a"}})
    revision = await _revision(kube)
    await kube.patch(f"{CONFIGMAPS}/a", {"data": {"k": "v"}})
    await kube.post(CONFIGMAPS, {"metadata": {"name": "b"}})
    await kube.delete(f"{CONFIGMAPS}/a")
    async with _watching(kube, CONFIGMAPS, resourceVersion=revision) as stream:
        events = [await _next(stream) for _ in range(3)]
    assert _seen(events) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    assert events[0]["object"]["data"] == {"k": "v"}


async def test_a_watch_sees_only_its_namespace(kube: KubeClient) -> None:
    await kube.post("/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    revision = await _revision(kube)
    await kube.post("/api/v1/namespaces/team-a/configmaps", {"metadata": {"name": "elsewhere"}})
    await kube.post(CONFIGMAPS, {"metadata": {"name": "here"}})
    async with _watching(kube, CONFIGMAPS, resourceVersion=revision) as stream:
        assert _seen([await _next(stream)]) == [("ADDED", "here")]
    async with _watching(kube, "/api/v1/configmaps", resourceVersion=revision) as stream:
        assert _seen([await _next(stream), await _next(stream)]) == [
            ("ADDED", "elsewhere"),
            ("ADDED", "here"),
        ]


async def test_a_watch_from_a_revision_older_than_the_history_is_410_expired() -> None:
    async with Emulator(history=5) as small, KubeClient(base_url=small.url) as kube:
        for i in range(8):
            await kube.post(CONFIGMAPS, {"metadata": {"name": f"cm-{i}"}})
        latest = int(await _revision(kube))
        async with (
            aiohttp.ClientSession(base_url=small.url) as http,
            http.get(CONFIGMAPS, params={"watch": "true", "resourceVersion": "1"}) as response,
        ):
            assert response.status == 200
            lines = (await response.text()).splitlines()
        assert len(lines) == 1
        event = yaml.safe_load(lines[0])
        assert event["type"] == "ERROR"
        assert (event["object"]["kind"], event["object"]["code"], event["object"]["reason"]) == (
            "Status",
            410,
            "Expired",
        )
        # The last few revisions are still kept: a watch from there replays.
        async with _watching(kube, CONFIGMAPS, resourceVersion=str(latest - 2)) as stream:
            assert _seen([await _next(stream), await _next(stream)]) == [("ADDED", "cm-6"), ("ADDED", "cm-7")]


async def test_a_watch_that_allows_bookmarks_gets_them_with_the_current_revision(
    emulator: Emulator, kube: KubeClient
) -> None:
    emulator.server.bookmark_every = 0.05
    await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}})
    revision = await _revision(kube)
    async with _watching(kube, CONFIGMAPS, resourceVersion=revision, allowWatchBookmarks="true") as stream:
        bookmark = await _next(stream)
    assert bookmark["type"] == "BOOKMARK"
    assert (bookmark["object"]["kind"], bookmark["object"]["metadata"]["resourceVersion"]) == (
        "ConfigMap",
        revision,
    )


async def test_timeout_seconds_ends_the_stream_without_unasked_for_bookmarks(
    emulator: Emulator, kube: KubeClient
) -> None:
    emulator.server.bookmark_every = 0.05
    revision = await _revision(kube)
    async with asyncio.timeout(5):
        events = [
            e async for e in kube.watch(CONFIGMAPS, params={"resourceVersion": revision, "timeoutSeconds": 1})
        ]
    assert events == []
