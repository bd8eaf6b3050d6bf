"""The OpenAPI documents: every kind's schema, named and tagged as the real server does, so that
`kubectl explain` finds it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final, cast

import aiohttp
import pytest
import yaml

from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient

CRDS: Final = Path(__file__).parents[2] / "crds"
AISCHED: Final = "/openapi/v3/apis/aisched.io/v1alpha1"


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emulator.url) as session:
        yield session


async def _install_crds(kube: KubeClient) -> None:
    for path in sorted(CRDS.glob("*.yaml")):
        crd = cast(JsonObject, yaml.safe_load(path.read_text()))
        await kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


async def test_the_v3_index_points_at_each_group_versions_document(kube: KubeClient) -> None:
    await _install_crds(kube)
    index = await kube.get("/openapi/v3")
    url = index["paths"]["apis/aisched.io/v1alpha1"]["serverRelativeURL"]
    assert url.startswith(AISCHED + "?hash=")
    assert "api/v1" in index["paths"]


async def test_a_custom_kinds_schema_is_its_crds_named_and_tagged_with_its_kind(kube: KubeClient) -> None:
    await _install_crds(kube)
    schemas = (await kube.get(AISCHED))["components"]["schemas"]
    job = schemas["io.aisched.v1alpha1.AIJob"]
    assert job["x-kubernetes-group-version-kind"] == [
        {"group": "aisched.io", "kind": "AIJob", "version": "v1alpha1"}
    ]
    crd = yaml.safe_load((CRDS / "aisched.io_aijobs.yaml").read_text())
    published = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert job["properties"]["spec"] == published
    assert job["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert (
        schemas["io.aisched.v1alpha1.AIJobList"]["x-kubernetes-group-version-kind"][0]["kind"] == "AIJobList"
    )


@pytest.mark.parametrize("path", [AISCHED, "/openapi/v3/api/v1"])
async def test_every_reference_in_a_document_resolves_within_it(kube: KubeClient, path: str) -> None:
    await _install_crds(kube)
    document = await kube.get(path)
    names = set(document["components"]["schemas"])
    refs = set(_refs(document))
    assert refs, "kinds point at their metadata's schema"
    assert {ref.removeprefix("#/components/schemas/") for ref in refs} <= names


async def test_core_kinds_have_schemas_under_their_real_names(kube: KubeClient) -> None:
    schemas = (await kube.get("/openapi/v3/api/v1"))["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    containers = pod["properties"]["spec"]["properties"]["containers"]
    assert containers["x-kubernetes-list-map-keys"] == ["name"]


async def test_v2_is_served_as_json_and_refuses_protobuf_only(http: aiohttp.ClientSession) -> None:
    async with http.get("/openapi/v2", headers={"Accept": "application/json"}) as response:
        assert response.status == 200
        swagger = await response.json()
    assert swagger["swagger"] == "2.0"
    assert set(_refs(swagger)) <= {f"#/definitions/{name}" for name in swagger["definitions"]}
    assert "io.k8s.api.core.v1.Pod" in swagger["definitions"]
    protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    async with http.get("/openapi/v2", headers={"Accept": protobuf}) as response:
        assert response.status == 406
        assert json.loads(await response.text())["reason"] == "NotAcceptable"
