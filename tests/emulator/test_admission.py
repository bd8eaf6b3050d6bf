"""Bad input is refused at the edge, naming the field, and never breaks a later request; a failure
of the emulator itself is a v1 Status 500, never aiohttp's plain text."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any, Final, cast

import aiohttp
import pytest

from aisched.emulator.resources import ResourceType
from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient

CONFIGMAPS: Final = "/api/v1/namespaces/default/configmaps"
PODS: Final = "/api/v1/namespaces/default/pods"
CRD_PATH: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS: Final = "/apis/example.com/v1/namespaces/default/widgets"


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emulator.url) as session:
        yield session


async def _send(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None
) -> tuple[int, JsonObject]:
    """Status code and Status body of a raw request (no client-side checks, no retries)."""
    async with http.request(method, path, json=body) as response:
        assert response.content_type == "application/json", await response.text()
        return response.status, cast(JsonObject, await response.json())


def _fields(status: JsonObject) -> set[str]:
    return {cause.get("field", "") for cause in (status.get("details") or {}).get("causes") or []}


def _pod(name: str, **spec: Any) -> JsonObject:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec},
    }


def _widget_crd(**overrides: Any) -> JsonObject:
    spec: JsonObject = {
        "group": "example.com",
        "names": {"plural": "widgets", "kind": "Widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"code": {"type": "string", "pattern": "^[a-z]+$"}},
                            }
                        },
                    }
                },
            }
        ],
    }
    spec.update(overrides)
    return {"metadata": {"name": "widgets.example.com"}, "spec": spec}


async def _still_serving(kube: KubeClient) -> None:
    """Requests that walk every object (garbage collection) or read every label still work."""
    await kube.post(CONFIGMAPS, {"metadata": {"name": "witness", "labels": {"tier": "web"}}})
    listed = await kube.get(CONFIGMAPS, params={"labelSelector": "tier=web"})
    assert [i["metadata"]["name"] for i in listed["items"]] == ["witness"]
    await kube.delete(f"{CONFIGMAPS}/witness")


# -- failures of the emulator itself ---------------------------------------------------------------


async def test_an_unexpected_failure_is_a_status_500_and_later_requests_still_work(
    emulator: Emulator, http: aiohttp.ClientSession, kube: KubeClient
) -> None:
    # A resource type whose printer column has no jsonPath: printing it is a bug in the emulator.
    emulator.server.register(
        ResourceType(
            group="example.com",
            version="v1",
            plural="broken",
            kind="Broken",
            namespaced=False,
            custom=True,
            printer_columns=({"name": "Oops"},),
        )
    )
    headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    async with http.get("/apis/example.com/v1/broken", headers=headers) as response:
        assert response.status == 500
        status = await response.json()
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 500, "InternalError")
    await _still_serving(kube)


@pytest.mark.parametrize("path", ["/openapi/v3/apis", "/openapi/v3/nothing", "/openapi/v3/api/v1/extra"])
async def test_an_unknown_openapi_path_is_404(http: aiohttp.ClientSession, path: str) -> None:
    code, status = await _send(http, "GET", path)
    assert (code, status["reason"]) == (404, "NotFound")


async def test_a_body_nested_too_deeply_is_400_and_later_requests_still_work(
    emulator: Emulator, kube: KubeClient
) -> None:
    depth = 100_000
    raw = '{"metadata":{"name":"deep"},"data":{"a":' + "[" * depth + "]" * depth + "}}"
    async with (
        aiohttp.ClientSession(base_url=emulator.url) as http,
        http.post(CONFIGMAPS, data=raw, headers={"Content-Type": "application/json"}) as response,
    ):
        assert response.status == 400
        assert (await response.json())["reason"] == "BadRequest"
    await _still_serving(kube)


# -- metadata ------------------------------------------------------------------------------------

_BAD_METADATA: Final = [
    ({"name": 5}, "metadata.name"),
    ({"generateName": ["x"]}, "metadata.generateName"),
    ({"name": "cm", "namespace": 1}, "metadata.namespace"),
    ({"name": "cm", "labels": ["tier"]}, "metadata.labels"),
    ({"name": "cm", "labels": {"tier": 1}}, "metadata.labels"),
    ({"name": "cm", "annotations": "a=b"}, "metadata.annotations"),
    ({"name": "cm", "finalizers": "example.com/hold"}, "metadata.finalizers"),
    ({"name": "cm", "finalizers": [1]}, "metadata.finalizers"),
    ({"name": "cm", "ownerReferences": {"uid": "u"}}, "metadata.ownerReferences"),
    ({"name": "cm", "ownerReferences": ["u"]}, "metadata.ownerReferences[0]"),
    ({"name": "cm", "ownerReferences": [{"name": "o", "uid": 7}]}, "metadata.ownerReferences[0].uid"),
]


@pytest.mark.parametrize(("metadata", "field"), _BAD_METADATA)
async def test_creating_with_malformed_metadata_is_422_naming_the_field(
    http: aiohttp.ClientSession, kube: KubeClient, metadata: JsonObject, field: str
) -> None:
    code, status = await _send(http, "POST", CONFIGMAPS, {"metadata": metadata})
    assert (code, status["reason"]) == (422, "Invalid")
    assert field in _fields(status)
    assert field in status["message"]
    await _still_serving(kube)


@pytest.mark.parametrize(("metadata", "field"), _BAD_METADATA[3:])
async def test_patching_in_malformed_metadata_is_422_and_changes_nothing(
    http: aiohttp.ClientSession, kube: KubeClient, metadata: JsonObject, field: str
) -> None:
    created = await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}})
    async with http.patch(
        f"{CONFIGMAPS}/cm",
        json={"metadata": metadata},
        headers={"Content-Type": "application/merge-patch+json"},
    ) as response:
        assert response.status == 422
        assert field in _fields(await response.json())
    assert (await kube.get(f"{CONFIGMAPS}/cm")) == created
    await _still_serving(kube)


@pytest.mark.parametrize("metadata", [[], "cm", 3])
async def test_metadata_that_is_not_an_object_is_400_on_create_and_update(
    http: aiohttp.ClientSession, kube: KubeClient, metadata: Any
) -> None:
    code, status = await _send(http, "POST", CONFIGMAPS, {"metadata": metadata})
    assert (code, status["reason"]) == (400, "BadRequest")
    await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}})
    code, status = await _send(http, "PUT", f"{CONFIGMAPS}/cm", {"metadata": metadata})
    assert (code, status["reason"]) == (400, "BadRequest")
    assert "metadata" in status["message"]


# -- DeleteOptions and bindings --------------------------------------------------------------------


@pytest.mark.parametrize("options", [["Orphan"], "Orphan", {"preconditions": "uid"}, {"preconditions": [1]}])
async def test_malformed_delete_options_are_400_and_delete_nothing(
    http: aiohttp.ClientSession, kube: KubeClient, options: Any
) -> None:
    await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}})
    code, status = await _send(http, "DELETE", f"{CONFIGMAPS}/cm", options)
    assert (code, status["reason"]) == (400, "BadRequest")
    assert (await kube.get(f"{CONFIGMAPS}/cm"))["metadata"]["name"] == "cm"


@pytest.mark.parametrize(
    ("binding", "code", "field"),
    [
        ({"target": "node-1"}, 422, "target"),
        ({"target": {"kind": "Node"}}, 422, "target.name"),
        ({"target": {"name": ["node-1"]}}, 422, "target.name"),
        ({"target": {"name": "node-1"}, "metadata": {"annotations": {"a": 1}}}, 422, "metadata.annotations"),
        ({"target": {"name": "node-1"}, "metadata": "pod"}, 400, ""),
        (["node-1"], 400, ""),
    ],
)
async def test_a_malformed_binding_is_refused_and_leaves_the_pod_unbound(
    http: aiohttp.ClientSession, kube: KubeClient, binding: Any, code: int, field: str
) -> None:
    await kube.post(PODS, _pod("pod"))
    answered, status = await _send(http, "POST", f"{PODS}/pod/binding", binding)
    assert answered == code
    if field:
        assert field in _fields(status)
    assert "nodeName" not in (await kube.get(f"{PODS}/pod"))["spec"]


# -- query parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", ["abc", "0", "-5", "1.5", "½"])
async def test_a_watch_timeout_that_is_not_a_positive_integer_is_400(
    http: aiohttp.ClientSession, seconds: str
) -> None:
    async with http.get(CONFIGMAPS, params={"watch": "true", "timeoutSeconds": seconds}) as response:
        assert response.status == 400
        status = await response.json()
    assert status["reason"] == "BadRequest"
    assert "timeoutSeconds" in status["message"]


# -- pods ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.containers"),
        ({"containers": []}, "spec.containers"),
        ({"containers": "main"}, "spec.containers"),
        ({"containers": ["main"]}, "spec.containers[0]"),
        ({"containers": [{"image": "busybox"}]}, "spec.containers[0].name"),
        ({"containers": [{"name": "a"}, {"name": 2}]}, "spec.containers[1].name"),
    ],
)
async def test_a_pod_without_named_containers_is_422_naming_the_field(
    http: aiohttp.ClientSession, spec: JsonObject, field: str
) -> None:
    code, status = await _send(http, "POST", PODS, {"metadata": {"name": "pod"}, "spec": spec})
    assert (code, status["reason"]) == (422, "Invalid")
    assert field in _fields(status)


async def test_a_pod_update_cannot_take_away_its_containers(
    http: aiohttp.ClientSession, kube: KubeClient
) -> None:
    await kube.post(PODS, _pod("pod"))
    async with http.patch(
        f"{PODS}/pod",
        json={"spec": {"containers": [{"image": "nameless"}]}},
        headers={"Content-Type": "application/merge-patch+json"},
    ) as response:
        assert response.status == 422
        assert "spec.containers[0].name" in _fields(await response.json())


async def test_only_a_binding_sets_a_pods_node_which_is_then_immutable(kube: KubeClient) -> None:
    await kube.post(PODS, _pod("pod"))
    refused = await _refused(kube.patch(f"{PODS}/pod", {"spec": {"nodeName": "node-1"}}))
    assert (refused.status, refused.reason) == (422, "Invalid")
    assert "spec.nodeName" in refused.message
    assert "field is immutable" in refused.message
    await kube.post(f"{PODS}/pod/binding", {"target": {"kind": "Node", "name": "node-1"}})
    bound = await kube.get(f"{PODS}/pod")
    for change in ({"spec": {"nodeName": "node-2"}}, {"spec": {"nodeName": None}}):
        refused = await _refused(kube.patch(f"{PODS}/pod", change))
        assert (refused.status, refused.reason) == (422, "Invalid")
        assert "field is immutable" in refused.message
    moved = copy.deepcopy(bound)
    moved["spec"]["nodeName"] = "node-2"
    refused = await _refused(kube.put(f"{PODS}/pod", moved))
    assert (refused.status, refused.reason) == (422, "Invalid")
    relabelled = await kube.patch(f"{PODS}/pod", {"metadata": {"labels": {"a": "b"}}})
    assert relabelled["spec"]["nodeName"] == "node-1"


async def test_a_pod_created_with_a_node_keeps_it(kube: KubeClient) -> None:
    created = await kube.post(PODS, _pod("pod", nodeName="node-1"))
    assert created["spec"]["nodeName"] == "node-1"


async def _refused(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


# -- CustomResourceDefinitions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"group": None}, "spec.group"),
        ({"group": 5}, "spec.group"),
        ({"names": "widgets"}, "spec.names"),
        ({"names": {"kind": "Widget"}}, "spec.names.plural"),
        ({"names": {"plural": "widgets"}}, "spec.names.kind"),
        ({"names": {"plural": "widgets", "kind": "Widget", "shortNames": "w"}}, "spec.names.shortNames"),
        ({"scope": "Galaxy"}, "spec.scope"),
        ({"scope": None}, "spec.scope"),
        ({"versions": []}, "spec.versions"),
        ({"versions": "v1"}, "spec.versions"),
        ({"versions": [{"served": True}]}, "spec.versions[0].name"),
        ({"versions": [{"name": "v1", "schema": "object"}]}, "spec.versions[0].schema"),
    ],
)
async def test_a_malformed_crd_is_422_naming_the_field(
    http: aiohttp.ClientSession, kube: KubeClient, spec: JsonObject, field: str
) -> None:
    code, status = await _send(http, "POST", CRD_PATH, _widget_crd(**spec))
    assert (code, status["reason"]) == (422, "Invalid")
    assert field in _fields(status)
    error = await _refused(kube.get(WIDGETS))
    assert error.status == 404


@pytest.mark.parametrize(
    ("group", "plural", "kind"),
    [
        ("", "pods", "Pod"),
        ("", "gadgets", "Gadget"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition"),
        ("coordination.k8s.io", "leases", "Lease"),
    ],
)
async def test_a_crd_cannot_take_over_a_built_in_resource(
    http: aiohttp.ClientSession, kube: KubeClient, group: str, plural: str, kind: str
) -> None:
    crd = _widget_crd(group=group, names={"plural": plural, "kind": kind})
    crd["metadata"]["name"] = f"{plural}.{group}"
    code, status = await _send(http, "POST", CRD_PATH, crd)
    assert (code, status["reason"]) == (422, "Invalid")
    assert "spec.group" in _fields(status)
    await kube.post(PODS, _pod("still-a-pod"))
    assert (await kube.get(f"{PODS}/still-a-pod"))["kind"] == "Pod"


async def test_a_crd_whose_schema_has_an_invalid_pattern_is_refused_when_created(
    http: aiohttp.ClientSession, kube: KubeClient
) -> None:
    crd = _widget_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["code"]["pattern"] = "^[a-z+$"
    code, status = await _send(http, "POST", CRD_PATH, crd)
    assert (code, status["reason"]) == (422, "Invalid")
    [field] = _fields(status)
    assert field.endswith(".properties[code].pattern")
    await kube.post(CRD_PATH, _widget_crd())  # a valid one is served, its pattern enforced
    widget = {"metadata": {"name": "w"}, "spec": {"code": "ABC"}}
    error = await _refused(kube.post(WIDGETS, widget))
    assert (error.status, error.reason) == (422, "Invalid")


async def test_an_update_cannot_make_a_crd_invalid(kube: KubeClient) -> None:
    await kube.post(CRD_PATH, _widget_crd())
    error = await _refused(kube.patch(f"{CRD_PATH}/widgets.example.com", {"spec": {"versions": []}}))
    assert (error.status, error.reason) == (422, "Invalid")
    assert "spec.versions" in error.message
    assert (await kube.get(WIDGETS))["items"] == []
