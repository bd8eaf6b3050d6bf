"""Kopf, an operator framework written elsewhere, against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Final, cast

import kopf
import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient

WIDGETS_PATH: Final = "/apis/example.com/v1/namespaces/default/widgets"

WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}
PEERINGS = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {
        "group": "kopf.dev",
        "names": {
            "kind": "ClusterKopfPeering",
            "plural": "clusterkopfpeerings",
            "singular": "clusterkopfpeering",
        },
        "scope": "Cluster",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator() as api, KubeClient(base_url=api.url) as kube:
        await kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS)
        await kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", PEERINGS)
        await kube.post(
            "/apis/kopf.dev/v1/clusterkopfpeerings",
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "default"}},
        )
        yield api


@contextlib.asynccontextmanager
async def _watching(kube: KubeClient, path: str, **params: str) -> AsyncIterator[AsyncIterator[JsonObject]]:
    stream = cast(AsyncGenerator[JsonObject, None], kube.watch(path, params=params))
    async with contextlib.aclosing(stream):
        yield stream


async def _until(stream: AsyncIterator[JsonObject], wanted: Callable[[JsonObject], bool]) -> JsonObject:
    async with asyncio.timeout(30):
        async for event in stream:
            if wanted(event):
                return event
    raise AssertionError("the watch ended before the event came")


def _operator(url: str, created: asyncio.Queue[str], deleted: asyncio.Queue[str]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.name = "default"
        settings.peering.mandatory = True
        settings.peering.clusterwide = True
        settings.watching.server_timeout = 30
        settings.posting.enabled = True

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    @kopf.on.create("example.com", "v1", "widgets", id="on_create", registry=registry)
    async def on_create(name: str, spec: Any, **_: Any) -> dict[str, Any]:
        created.put_nowait(name)
        return {"doubled": int(spec.get("size", 0)) * 2}

    @kopf.on.delete("example.com", "v1", "widgets", id="on_delete", registry=registry)
    async def on_delete(name: str, **_: Any) -> None:
        deleted.put_nowait(name)

    return registry


async def test_a_kopf_operator_handles_creation_status_finalizers_and_deletion(emulator: Emulator) -> None:
    created: asyncio.Queue[str] = asyncio.Queue()
    deleted: asyncio.Queue[str] = asyncio.Queue()
    ready = asyncio.Event()
    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=_operator(emulator.url, created, deleted),
            clusterwide=True,
            ready_flag=ready,
            stop_flag=stop,
            memo=kopf.Memo(),
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=30)
        async with KubeClient(base_url=emulator.url) as kube:
            # Created the instant the operator is ready: it must not fall between its list and watch.
            await kube.post(
                WIDGETS_PATH,
                {
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "metadata": {"name": "w1"},
                    "spec": {"size": 21},
                },
            )
            assert await asyncio.wait_for(created.get(), timeout=30) == "w1"
            async with _watching(kube, WIDGETS_PATH, fieldSelector="metadata.name=w1") as stream:
                handled = await _until(
                    stream, lambda e: bool((e["object"].get("status") or {}).get("on_create"))
                )
                widget = handled["object"]
                assert widget["status"]["on_create"] == {"doubled": 42}
                assert widget["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
                await kube.delete(f"{WIDGETS_PATH}/w1")
                assert await asyncio.wait_for(deleted.get(), timeout=30) == "w1"
                await _until(stream, lambda e: e["type"] == "DELETED")  # the operator let it go
            with pytest.raises(ApiError) as gone:
                await kube.get(f"{WIDGETS_PATH}/w1")
            assert gone.value.status == 404
            peering = await kube.get("/apis/kopf.dev/v1/clusterkopfpeerings/default")
            assert peering.get("status"), "the operator announced itself in the peering object"
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(operator, timeout=30)
