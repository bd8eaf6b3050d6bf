"""kubernetes-asyncio, a client written elsewhere, against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

from aisched.emulator.runner import Emulator


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Any]]:
    async with Emulator() as emulator:
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(emulator.kubeconfig(tmp_path / "kubeconfig")), client_configuration=configuration
        )
        async with client.ApiClient(configuration) as api_client:
            yield emulator, client.CoreV1Api(api_client)


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"schedulerName": "aisched", "containers": [{"name": "c", "image": "busybox"}]},
    }


async def test_crud_with_optimistic_concurrency(core: tuple[Emulator, Any]) -> None:
    _, api = core
    created = await api.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    assert created.metadata.uid
    read = await api.read_namespaced_config_map("cm", "default")
    assert read.data == {"a": "1"}
    read.data["a"] = "2"
    updated = await api.replace_namespaced_config_map("cm", "default", read)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    read.data["a"] = "3"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        await api.replace_namespaced_config_map("cm", "default", read)
    assert stale.value.status == 409
    patched = await api.patch_namespaced_config_map("cm", "default", {"data": {"b": "x"}})
    assert patched.data == {"a": "2", "b": "x"}
    with pytest.raises(ApiException) as exists:
        await api.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    assert exists.value.status == 409
    await api.delete_namespaced_config_map("cm", "default")
    with pytest.raises(ApiException) as gone:
        await api.read_namespaced_config_map("cm", "default")
    assert gone.value.status == 404


async def test_watch_resumes_from_a_resource_version(core: tuple[Emulator, Any]) -> None:
    _, api = core
    await api.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    listed = await api.list_namespaced_config_map("default")
    revision = listed.metadata.resource_version
    await api.create_namespaced_config_map("default", {"metadata": {"name": "after-1"}})
    await api.create_namespaced_config_map("default", {"metadata": {"name": "after-2"}})
    seen = []
    async with watch.Watch().stream(
        api.list_namespaced_config_map, "default", resource_version=revision, timeout_seconds=5
    ) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                break
    assert seen == [("ADDED", "after-1"), ("ADDED", "after-2")]


async def test_a_watch_from_a_compacted_revision_gets_410(tmp_path: Path) -> None:
    async with Emulator(history=10) as emulator:
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(emulator.kubeconfig(tmp_path / "kubeconfig")), client_configuration=configuration
        )
        async with client.ApiClient(configuration) as api_client:
            api: Any = client.CoreV1Api(api_client)
            first = await api.create_namespaced_config_map("default", {"metadata": {"name": "cm-0"}})
            for i in range(1, 30):
                await api.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{i}"}})
            stream = watch.Watch().stream(
                api.list_namespaced_config_map,
                "default",
                resource_version=first.metadata.resource_version,
                timeout_seconds=5,
            )
            with pytest.raises(ApiException) as expired:
                await stream.__anext__()
            await stream.close()
            assert expired.value.status == 410


async def test_binding_is_created_once_then_conflicts(core: tuple[Emulator, Any]) -> None:
    _emulator, api = core
    await api.create_namespaced_pod("default", _pod("p"))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p", "annotations": {"aisched.io/gpus": "GPU-1,GPU-2"}},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
    }
    response = await api.create_namespaced_pod_binding("p", "default", binding, _preload_content=False)
    assert response.status == 201
    pod = await api.read_namespaced_pod("p", "default")
    assert pod.spec.node_name == "node-1"
    assert pod.metadata.annotations["aisched.io/gpus"] == "GPU-1,GPU-2"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions)
    # Without preloading, the client hands back the raw response instead of raising.
    again = await api.create_namespaced_pod_binding("p", "default", binding, _preload_content=False)
    assert again.status == 409
    assert (await again.json())["reason"] == "Conflict"
    with pytest.raises(ApiException) as missing:
        await api.create_namespaced_pod_binding("nope", "default", {**binding, "metadata": {"name": "nope"}})
    assert missing.value.status == 404


async def test_selectors_filter_lists_and_watches(core: tuple[Emulator, Any]) -> None:
    _, api = core
    for name, tier in (("a", "gpu"), ("b", "cpu"), ("c", "gpu")):
        await api.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": {"tier": tier}}}
        )
    gpu = await api.list_namespaced_config_map("default", label_selector="tier in (gpu)")
    assert [i.metadata.name for i in gpu.items] == ["a", "c"]
    not_gpu = await api.list_namespaced_config_map("default", label_selector="tier!=gpu")
    assert [i.metadata.name for i in not_gpu.items] == ["b"]
    by_name = await api.list_namespaced_config_map("default", field_selector="metadata.name=c")
    assert [i.metadata.name for i in by_name.items] == ["c"]
    listed = await api.list_namespaced_config_map("default")
    events = []
    async with watch.Watch().stream(
        api.list_namespaced_config_map,
        "default",
        label_selector="tier=gpu",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    ) as stream:
        await api.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"tier": "cpu"}}})
        await api.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"tier": "gpu"}}})
        async for event in stream:
            events.append((event["type"], event["object"].metadata.name))
            if len(events) == 2:
                break
    # An object leaving the selection is DELETED for this watcher; one entering it is ADDED.
    assert events == [("DELETED", "a"), ("ADDED", "b")]
