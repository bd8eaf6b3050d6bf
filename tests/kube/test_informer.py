"""The informer against the in-process API emulator: list then watch, in order and once, across
the list/watch window, selections, expired histories, outages and stops."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final, cast

import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient, Params
from aisched.kube.informer import Informer, InformerHandler
from aisched.kube.retry import Backoff

PODS: Final = "/api/v1/namespaces/default/pods"
ALL_PODS: Final = "/api/v1/pods"
CONFIGMAPS: Final = "/api/v1/namespaces/default/configmaps"

Seen = tuple[str, str]  # ("add" | "update" | "delete" | "synced", "namespace/name")


def pod(name: str, *, scheduler: str = "aisched", labels: dict[str, str] | None = None) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": {"schedulerName": scheduler, "containers": [{"name": "main", "image": "busybox"}]},
    }


def free_port() -> int:
    """A port nothing listens on now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _name(obj: JsonObject) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


@dataclass
class Recorder:
    """A handler that lines up what it is told, for tests to await in order."""

    seen: asyncio.Queue[Seen] = field(default_factory=asyncio.Queue)
    updates: list[tuple[JsonObject, JsonObject]] = field(default_factory=list)
    deleted: list[JsonObject] = field(default_factory=list)

    def on_add(self, obj: JsonObject) -> None:
        self.seen.put_nowait(("add", _name(obj)))

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self.updates.append((old, new))
        self.seen.put_nowait(("update", _name(new)))

    def on_delete(self, obj: JsonObject) -> None:
        self.deleted.append(obj)
        self.seen.put_nowait(("delete", _name(obj)))

    def on_synced(self) -> None:
        self.seen.put_nowait(("synced", ""))

    async def next(self, count: int) -> list[Seen]:
        async with asyncio.timeout(5):
            return [await self.seen.get() for _ in range(count)]


@dataclass
class GatedSleep:
    """An injected sleep that records each delay and, from the `gate_after`-th on, waits for
    `opened` (a backoff the test controls)."""

    gate_after: int
    delays: list[float] = field(default_factory=list)
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) >= self.gate_after:
            self.reached.set()
            await self.opened.wait()


@dataclass
class Tap:
    """A pass-through client that shows the test each watch request and event the informer gets."""

    client: KubeClient
    events: asyncio.Queue[JsonObject] = field(default_factory=asyncio.Queue)
    watches: list[dict[str, Any]] = field(default_factory=list)

    async def get(self, path: str, *, params: Params | None = None) -> JsonObject:
        return await self.client.get(path, params=params)

    async def watch(self, path: str, *, params: Params | None = None) -> AsyncIterator[JsonObject]:
        self.watches.append(dict(params or {}))
        stream = cast(AsyncGenerator[JsonObject, None], self.client.watch(path, params=params))
        async with contextlib.aclosing(stream):
            async for event in stream:
                self.events.put_nowait(event)
                yield event


@dataclass
class Rewinding(Tap):
    """A client whose every re-watch starts again from the first watch's resourceVersion, so the
    server replays events the informer has already had (as a lagging watch cache might)."""

    async def watch(self, path: str, *, params: Params | None = None) -> AsyncIterator[JsonObject]:
        query = dict(params or {})
        if self.watches:
            query["resourceVersion"] = self.watches[0]["resourceVersion"]
        async for event in super().watch(path, params=query):
            yield event


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[asyncio.Task[None]]:
    """Run `informer` for the body of the block; stop it after, and surface its errors."""
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task


async def fence(kube: KubeClient, recorder: Recorder) -> None:
    """Nothing else is pending: the next delivery is the add of a fresh object."""
    await kube.post(PODS, pod("fence"))
    assert await recorder.next(1) == [("add", "default/fence")]


# -- listing and watching ------------------------------------------------------------------------


async def test_initial_list_is_delivered_as_adds_then_synced_once(kube: KubeClient) -> None:
    for name in ("a", "b", "c"):
        await kube.post(PODS, pod(name))
    recorder = Recorder()
    informer = Informer(kube, path=PODS, handler=recorder)
    async with running(informer):
        assert await recorder.next(4) == [
            ("add", "default/a"),
            ("add", "default/b"),
            ("add", "default/c"),
            ("synced", ""),
        ]
        assert informer.synced.is_set()
        await fence(kube, recorder)
    assert informer.events_delivered == 4
    assert informer.relists == 0
    assert set(informer.index) == {("default", n) for n in ("a", "b", "c", "fence")}


async def test_synced_waits_for_the_list_even_when_it_is_empty(kube: KubeClient) -> None:
    recorder = Recorder()
    informer = Informer(kube, path=PODS, handler=recorder)
    async with running(informer):
        assert await recorder.next(1) == [("synced", "")]
        assert informer.resource_version is not None
        await fence(kube, recorder)


async def test_cluster_scoped_nodes_and_topologies_are_keyed_by_name(emulator_cluster: Emulator) -> None:
    async with KubeClient(base_url=emulator_cluster.url) as kube:
        nodes, topologies = Recorder(), Recorder()
        node_informer = Informer(kube, path="/api/v1/nodes", handler=nodes)
        topology_informer = Informer(
            kube, path="/apis/aisched.io/v1alpha1/gpunodetopologies", handler=topologies
        )
        async with running(node_informer), running(topology_informer):
            seen_nodes = await nodes.next(9)  # 8 nodes, one of them without GPUs
            seen_topologies = await topologies.next(8)
    assert seen_nodes[-1] == seen_topologies[-1] == ("synced", "")
    names = {name for kind, name in seen_nodes[:-1] if kind == "add"}
    assert len(names) == 8
    assert "/" not in "".join(names)
    assert {name for _, name in seen_topologies[:-1]} < names
    assert all(obj["kind"] == "Node" for obj in node_informer.index.values())


async def test_adds_updates_and_deletes_after_sync_arrive_in_order(kube: KubeClient) -> None:
    recorder = Recorder()
    informer = Informer(kube, path=PODS, handler=recorder)
    async with running(informer):
        assert await recorder.next(1) == [("synced", "")]
        await kube.post(PODS, pod("a"))
        await kube.post(PODS, pod("b"))
        await kube.patch(f"{PODS}/a", {"metadata": {"labels": {"step": "1"}}})
        await kube.delete(f"{PODS}/b")
        await kube.patch(f"{PODS}/a", {"metadata": {"labels": {"step": "2"}}})
        assert await recorder.next(5) == [
            ("add", "default/a"),
            ("add", "default/b"),
            ("update", "default/a"),
            ("delete", "default/b"),
            ("update", "default/a"),
        ]
        await fence(kube, recorder)
    [(old1, new1), (old2, new2)] = recorder.updates
    assert (old1["metadata"]["labels"], new1["metadata"]["labels"]) == ({}, {"step": "1"})
    assert (old2["metadata"]["labels"], new2["metadata"]["labels"]) == ({"step": "1"}, {"step": "2"})
    assert informer.resource_version == informer.index[("default", "fence")]["metadata"]["resourceVersion"]
    assert ("default", "b") not in informer.index


async def test_object_created_between_list_and_watch_is_not_lost(
    kube: KubeClient, emulator: Emulator
) -> None:
    await kube.post(PODS, pod("a"))
    pods = emulator.server.resource("", "v1", "pods")

    class CreatesWhenSynced(Recorder):
        def on_synced(self) -> None:
            super().on_synced()
            # The list is done and the watch not yet started: the gap a naive informer loses.
            emulator.server.create(pods, "default", pod("in-the-gap"))

    recorder = CreatesWhenSynced()
    async with running(Informer(kube, path=PODS, handler=recorder)):
        assert await recorder.next(3) == [
            ("add", "default/a"),
            ("synced", ""),
            ("add", "default/in-the-gap"),
        ]
        await fence(kube, recorder)


async def test_watch_asks_for_bookmarks_a_server_timeout_and_passes_selectors(kube: KubeClient) -> None:
    tap = Tap(kube)
    recorder = Recorder()
    informer = Informer(
        tap,
        path=PODS,
        handler=recorder,
        label_selector="app=x",
        field_selector="spec.nodeName=",
        watch_timeout=120,
    )
    async with running(informer):
        assert await recorder.next(1) == [("synced", "")]
        await kube.post(PODS, pod("x", labels={"app": "x"}))
        assert await recorder.next(1) == [("add", "default/x")]
    [params] = tap.watches
    assert params == {
        "labelSelector": "app=x",
        "fieldSelector": "spec.nodeName=",
        "allowWatchBookmarks": True,
        "timeoutSeconds": 120,
        "resourceVersion": params["resourceVersion"],
    }


async def test_events_replayed_by_a_rewound_watch_are_not_delivered_again(
    kube: KubeClient, emulator: Emulator
) -> None:
    client = Rewinding(kube)
    recorder = Recorder()
    async with running(Informer(client, path=PODS, handler=recorder)):
        assert await recorder.next(1) == [("synced", "")]
        await kube.post(PODS, pod("a"))
        await kube.patch(f"{PODS}/a", {"metadata": {"labels": {"v": "2"}}})
        await kube.delete(f"{PODS}/a")
        assert await recorder.next(3) == [
            ("add", "default/a"),
            ("update", "default/a"),
            ("delete", "default/a"),
        ]
        emulator.server.store.close_watchers()  # the re-watch replays all three
        await fence(kube, recorder)
    assert len(client.watches) == 2


# -- selections ----------------------------------------------------------------------------------


async def test_pod_leaving_a_field_selection_by_being_bound_is_a_delete(kube: KubeClient) -> None:
    await kube.post(PODS, pod("mine"))
    await kube.post(PODS, pod("theirs", scheduler="default-scheduler"))
    recorder = Recorder()
    informer = Informer(
        kube, path=ALL_PODS, handler=recorder, field_selector="spec.schedulerName=aisched,spec.nodeName="
    )
    async with running(informer):
        assert await recorder.next(2) == [("add", "default/mine"), ("synced", "")]
        await kube.post(f"{PODS}/mine/binding", {"target": {"kind": "Node", "name": "gpu-1"}})
        assert await recorder.next(1) == [("delete", "default/mine")]
        await fence(kube, recorder)
    # As from a real API server, the DELETED object is the last state that matched the selection.
    assert "nodeName" not in recorder.deleted[0]["spec"]
    assert set(informer.index) == {("default", "fence")}


async def test_pod_leaving_a_label_selection_is_a_delete_and_entering_it_an_add(kube: KubeClient) -> None:
    await kube.post(PODS, pod("in", labels={"aisched.io/gang": "g1"}))
    await kube.post(PODS, pod("out"))
    recorder = Recorder()
    informer = Informer(kube, path=PODS, handler=recorder, label_selector="aisched.io/gang=g1")
    async with running(informer):
        assert await recorder.next(2) == [("add", "default/in"), ("synced", "")]
        await kube.patch(f"{PODS}/in", {"metadata": {"labels": {"aisched.io/gang": "g2"}}})
        await kube.patch(f"{PODS}/out", {"metadata": {"labels": {"aisched.io/gang": "g1"}}})
        assert await recorder.next(2) == [("delete", "default/in"), ("add", "default/out")]


# -- resuming, expiry and relists ----------------------------------------------------------------


async def _listed_then_changed(kube: KubeClient) -> Informer:
    """An informer that listed a, b, c and stopped; then a changed, b went, d came."""
    for name in ("a", "b", "c"):
        await kube.post(PODS, pod(name))
    recorder = Recorder()
    first = Informer(kube, path=PODS, handler=recorder)
    async with running(first):
        await recorder.next(4)
    await kube.patch(f"{PODS}/a", {"metadata": {"labels": {"v": "2"}}})
    await kube.delete(f"{PODS}/b")
    await kube.post(PODS, pod("d"))
    return first


async def test_resuming_from_a_resource_version_replays_the_missed_events_without_a_list(
    kube: KubeClient,
) -> None:
    first = await _listed_then_changed(kube)
    recorder = Recorder()
    second = Informer(
        kube,
        path=PODS,
        handler=recorder,
        resource_version=first.resource_version,
        known=first.index.values(),
    )
    async with running(second):
        assert await recorder.next(4) == [
            ("synced", ""),
            ("update", "default/a"),
            ("delete", "default/b"),
            ("add", "default/d"),
        ]
        await fence(kube, recorder)
    assert second.relists == 0


async def test_expired_history_relists_and_delivers_only_the_difference() -> None:
    async with Emulator(history=5) as emulator, KubeClient(base_url=emulator.url) as kube:
        first = await _listed_then_changed(kube)
        for i in range(6):  # compacts the history past where `first` stopped
            await kube.post(CONFIGMAPS, {"metadata": {"name": f"filler-{i}"}})
        recorder = Recorder()
        second = Informer(
            kube,
            path=PODS,
            handler=recorder,
            resource_version=first.resource_version,
            known=first.index.values(),
        )
        async with running(second):
            assert await recorder.next(4) == [
                ("synced", ""),
                ("delete", "default/b"),
                ("update", "default/a"),
                ("add", "default/d"),
            ]
            await fence(kube, recorder)
        assert second.relists == 1
        [(old, new)] = recorder.updates
        assert (old["metadata"]["labels"], new["metadata"]["labels"]) == ({}, {"v": "2"})
        assert recorder.deleted[0]["metadata"]["name"] == "b"
        assert set(second.index) == {("default", n) for n in ("a", "c", "d", "fence")}


async def test_relist_turns_a_name_reused_by_a_new_object_into_delete_then_add() -> None:
    async with Emulator(history=5) as emulator, KubeClient(base_url=emulator.url) as kube:
        await kube.post(PODS, pod("a"))
        recorder = Recorder()
        first = Informer(kube, path=PODS, handler=recorder)
        async with running(first):
            await recorder.next(2)
        await kube.delete(f"{PODS}/a")
        await kube.post(PODS, pod("a"))
        for i in range(6):
            await kube.post(CONFIGMAPS, {"metadata": {"name": f"filler-{i}"}})
        recorder = Recorder()
        second = Informer(
            kube,
            path=PODS,
            handler=recorder,
            resource_version=first.resource_version,
            known=first.index.values(),
        )
        async with running(second):
            assert await recorder.next(3) == [("synced", ""), ("delete", "default/a"), ("add", "default/a")]
        assert second.index[("default", "a")]["metadata"]["uid"] != recorder.deleted[0]["metadata"]["uid"]


async def test_bookmarks_keep_a_quiet_watch_resumable_after_other_resources_compact_history() -> None:
    async with Emulator(history=5) as emulator, KubeClient(base_url=emulator.url) as kube:
        emulator.server.bookmark_every = 0.02
        tap = Tap(kube)
        recorder = Recorder()
        informer = Informer(tap, path=PODS, handler=recorder)
        async with running(informer):
            await recorder.next(1)
            listed = informer.resource_version
            for i in range(6):  # no pod changes, but the list's version falls out of history
                written = await kube.post(CONFIGMAPS, {"metadata": {"name": f"filler-{i}"}})
            latest = written["metadata"]["resourceVersion"]
            async with asyncio.timeout(5):
                while (event := await tap.events.get())["type"] != "BOOKMARK" or int(
                    event["object"]["metadata"]["resourceVersion"]
                ) < int(latest):
                    pass
            assert informer.resource_version == event["object"]["metadata"]["resourceVersion"] != listed
            emulator.server.store.close_watchers()  # the stream ends, as at the server's timeout
            await fence(kube, recorder)
        assert informer.relists == 0
        assert len(tap.watches) >= 2


# -- failures and stopping -----------------------------------------------------------------------


async def test_api_outage_backs_off_with_growing_delays_then_resumes_where_it_left_off() -> None:
    emulator = Emulator(port=free_port())
    await emulator.start()
    try:
        async with KubeClient(base_url=emulator.url, timeout=5) as kube:
            sleep = GatedSleep(gate_after=3)
            recorder = Recorder()
            informer = Informer(
                kube,
                path=PODS,
                handler=recorder,
                sleep=sleep,
                backoff=Backoff(initial=0.1, cap=10.0, rng=random.Random(7)),
                # The emulator's shutdown waits for open watches (a re-watch can slip in while it
                # stops), so keep the server-side watch short rather than wait out 300 s.
                watch_timeout=1,
            )
            async with running(informer):
                assert await recorder.next(1) == [("synced", "")]
                await emulator.stop()
                pods = emulator.server.resource("", "v1", "pods")
                emulator.server.create(pods, "default", pod("while-down"))
                async with asyncio.timeout(5):
                    await sleep.reached.wait()
                await emulator.start()
                sleep.opened.set()
                assert await recorder.next(1) == [("add", "default/while-down")]
                await fence(kube, recorder)
            first, second, third = sleep.delays[:3]
            assert first < second < third
            assert informer.retries == len(sleep.delays)
            assert informer.relists == 0
    finally:
        await emulator.stop()


async def test_stop_ends_run_promptly_while_the_watch_is_quiet(kube: KubeClient) -> None:
    recorder = Recorder()
    informer = Informer(kube, path=PODS, handler=recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    assert await recorder.next(1) == [("synced", "")]
    stop.set()
    async with asyncio.timeout(1):  # the server would hold the stream for 300 s
        await task


async def test_stop_ends_run_promptly_during_a_backoff() -> None:
    async with KubeClient(base_url=f"http://127.0.0.1:{free_port()}", timeout=5) as kube:
        sleep = GatedSleep(gate_after=1)  # never opened: the backoff would last forever
        handler: InformerHandler = Recorder()
        informer = Informer(kube, path=PODS, handler=handler, sleep=sleep)
        stop = asyncio.Event()
        task = asyncio.create_task(informer.run(stop))
        async with asyncio.timeout(5):
            await sleep.reached.wait()
        stop.set()
        async with asyncio.timeout(1):
            await task
        assert not informer.synced.is_set()
        assert informer.retries == 1


async def test_a_stopped_informer_runs_again_from_where_it_stopped(kube: KubeClient) -> None:
    recorder = Recorder()
    informer = Informer(kube, path=PODS, handler=recorder)
    async with running(informer):
        await recorder.next(1)
    await kube.post(PODS, pod("while-stopped"))
    async with running(informer):
        assert await recorder.next(1) == [("add", "default/while-stopped")]
        await fence(kube, recorder)
    assert informer.relists == 0


async def test_a_configuration_fault_ends_run_with_the_api_error(kube: KubeClient) -> None:
    informer = Informer(kube, path=PODS, handler=Recorder(), label_selector="app in (")
    with pytest.raises(ApiError) as caught:
        async with asyncio.timeout(5):
            await informer.run(asyncio.Event())
    assert caught.value.status == 400
    assert not informer.synced.is_set()
