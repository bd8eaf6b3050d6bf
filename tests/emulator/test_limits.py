"""The API server's size and syntax limits: annotations, labels, request bodies, what etcd stores."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import aiohttp
import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient

CONFIGMAPS: Final = "/api/v1/namespaces/default/configmaps"
PODS: Final = "/api/v1/namespaces/default/pods"
ANNOTATION_LIMIT: Final = 262144
TOO_MANY_ANNOTATIONS: Final = (
    'ConfigMap "cm" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes'
)

Write = Callable[[KubeClient, JsonObject], Awaitable[JsonObject]]


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emulator.url) as session:
        yield session


def _configmap(**meta: Any) -> JsonObject:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", **meta}}


def _annotations(total: int) -> dict[str, str]:
    """Annotations whose keys and values add up to `total` bytes."""
    return {"a": "x" * (total // 2 - 1), "b": "y" * (total - total // 2 - 1)}


async def _create(kube: KubeClient, body: JsonObject) -> JsonObject:
    return await kube.post(CONFIGMAPS, body)


async def _put(kube: KubeClient, body: JsonObject) -> JsonObject:
    current = await kube.post(CONFIGMAPS, _configmap())
    return await kube.put(
        f"{CONFIGMAPS}/cm", {**body, "metadata": {**current["metadata"], **body["metadata"]}}
    )


async def _merge_patch(kube: KubeClient, body: JsonObject) -> JsonObject:
    await kube.post(CONFIGMAPS, _configmap())
    return await kube.patch(f"{CONFIGMAPS}/cm", {"metadata": body["metadata"]})


async def _apply(kube: KubeClient, body: JsonObject) -> JsonObject:
    return await kube.patch(f"{CONFIGMAPS}/cm", body, patch="apply", field_manager="gitops")


WRITES: Final = pytest.mark.parametrize("write", [_create, _put, _merge_patch, _apply])


async def _refused(call: Awaitable[Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


@WRITES
async def test_annotations_over_256_kib_are_refused_on_every_write(kube: KubeClient, write: Write) -> None:
    error = await _refused(write(kube, _configmap(annotations=_annotations(ANNOTATION_LIMIT + 1))))
    assert (error.status, error.reason, error.message) == (422, "Invalid", TOO_MANY_ANNOTATIONS)
    assert error.body["details"]["causes"] == [
        {
            "field": "metadata.annotations",
            "reason": "FieldValueTooLong",
            "message": "Too long: may not be more than 262144 bytes",
        }
    ]


@WRITES
async def test_annotations_of_exactly_256_kib_are_stored(kube: KubeClient, write: Write) -> None:
    stored = await write(kube, _configmap(annotations=_annotations(ANNOTATION_LIMIT)))
    assert sum(len(k) + len(v) for k, v in stored["metadata"]["annotations"].items()) == ANNOTATION_LIMIT


async def test_a_label_value_with_a_slash_is_invalid_with_the_api_servers_words(kube: KubeClient) -> None:
    error = await _refused(_create(kube, _configmap(labels={"team": "ml/research"})))
    assert error.status == 422
    assert error.message == (
        'ConfigMap "cm" is invalid: metadata.labels: Invalid value: "ml/research": a valid label must be an'
        " empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with"
        " an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation"
        " is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("Example.com/team", "prefix part a lowercase RFC 1123 subdomain must consist of"),
        ("/team", "prefix part must be non-empty"),
        ("a/b/c", "a qualified name must consist of"),
        ("x" * 64, "name part must be no more than 63 characters"),
        ("-team", "name part must consist of alphanumeric characters"),
    ],
)
async def test_a_bad_label_key_is_invalid(kube: KubeClient, key: str, problem: str) -> None:
    error = await _refused(_create(kube, _configmap(labels={key: "v"})))
    assert error.status == 422
    assert f"metadata.labels: Invalid value: {json.dumps(key)}: {problem}" in error.message


async def test_annotation_keys_are_qualified_names_in_any_case(kube: KubeClient) -> None:
    await _create(kube, _configmap(annotations={"Example.com/Note": "fine"}))
    error = await _refused(kube.patch(f"{CONFIGMAPS}/cm", {"metadata": {"annotations": {"a b": "x"}}}))
    assert 'metadata.annotations: Invalid value: "a b": name part must consist of' in error.message


async def test_a_body_over_3_mib_is_413(http: aiohttp.ClientSession, kube: KubeClient) -> None:
    body = json.dumps({**_configmap(), "data": {"a": "x" * (3 * 2**20)}})
    async with http.post(CONFIGMAPS, data=body, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 413
        status = await response.json()
    assert (status["reason"], status["message"]) == (
        "RequestEntityTooLarge",
        "Request entity too large: limit is 3145728",
    )
    assert (await kube.get(CONFIGMAPS))["items"] == []


def _pod(args: list[str]) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big"},
        "spec": {"containers": [{"name": "main", "image": "busybox", "args": args}]},
    }


async def test_an_object_etcd_would_refuse_is_not_stored(kube: KubeClient) -> None:
    error = await _refused(kube.post(PODS, _pod(["x" * (2 * 2**20)])))
    assert (error.status, error.message) == (500, "etcdserver: request is too large")
    assert (await kube.get(PODS))["items"] == []


async def test_a_patch_that_grows_an_object_past_etcds_limit_is_refused(kube: KubeClient) -> None:
    created = await kube.post(PODS, _pod(["x" * 2**20]))
    grow = [{"op": "add", "path": "/spec/containers/0/args/-", "value": "y" * 2**20}]
    error = await _refused(kube.patch(f"{PODS}/big", grow, patch="json"))
    assert (error.status, error.message) == (500, "etcdserver: request is too large")
    stored = await kube.get(f"{PODS}/big")
    assert stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
