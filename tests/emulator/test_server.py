"""The emulator's HTTP API as a real API server answers it: discovery, CRDs, verbs, patches, the
status and binding subresources, validation, selectors and Tables."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

import aiohttp
import pytest
import yaml

from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient

CRDS: Final = Path(__file__).parents[2] / "crds"
AIJOBS: Final = "/apis/aisched.io/v1alpha1/namespaces/default/aijobs"
CRD_PATH: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
PODS: Final = "/api/v1/namespaces/default/pods"
CONFIGMAPS: Final = "/api/v1/namespaces/default/configmaps"
TABLE: Final = "application/json;as=Table;v=v1;g=meta.k8s.io"


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A bare HTTP session, for status codes and headers the REST client hides."""
    async with aiohttp.ClientSession(base_url=emulator.url) as session:
        yield session


def _crd(plural: str) -> JsonObject:
    return cast(JsonObject, yaml.safe_load((CRDS / f"aisched.io_{plural}.yaml").read_text()))


async def _install_aijobs(kube: KubeClient) -> None:
    await kube.post(CRD_PATH, _crd("aijobs"))


def _aijob(name: str, **spec: Any) -> JsonObject:
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": [
                {
                    "name": "worker",
                    "count": 1,
                    "template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}},
                }
            ],
            **spec,
        },
    }


def _pod(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec},
    }


async def _error(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


@contextlib.asynccontextmanager
async def _watching(kube: KubeClient, path: str, **params: str) -> AsyncIterator[AsyncIterator[JsonObject]]:
    stream = cast(AsyncGenerator[JsonObject, None], kube.watch(path, params=params))
    async with contextlib.aclosing(stream):
        yield stream


async def _until(stream: AsyncIterator[JsonObject], wanted: Callable[[JsonObject], bool]) -> JsonObject:
    async with asyncio.timeout(5):
        async for event in stream:
            if wanted(event):
                return event
    raise AssertionError("the watch ended before the event came")


def _names(listed: JsonObject) -> set[str]:
    return {item["metadata"]["name"] for item in listed["items"]}


# -- discovery ----------------------------------------------------------------------------------


async def test_version_is_kubernetes_1_32(kube: KubeClient) -> None:
    version = await kube.get("/version")
    assert (version["major"], version["minor"]) == ("1", "32")
    assert version["gitVersion"].startswith("v1.32.")


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_endpoints_answer_ok(http: aiohttp.ClientSession, path: str) -> None:
    async with http.get(path) as response:
        assert response.status == 200
        assert await response.text() == "ok"


async def test_core_api_offers_v1(kube: KubeClient) -> None:
    versions = await kube.get("/api")
    assert versions["kind"] == "APIVersions"
    assert versions["versions"] == ["v1"]


async def test_core_resource_list_describes_pods_and_their_subresources(kube: KubeClient) -> None:
    listed = await kube.get("/api/v1")
    assert (listed["kind"], listed["groupVersion"]) == ("APIResourceList", "v1")
    by_name = {r["name"]: r for r in listed["resources"]}
    pods = by_name["pods"]
    assert (pods["kind"], pods["namespaced"], pods["shortNames"]) == ("Pod", True, ["po"])
    assert set(pods["verbs"]) >= {"create", "delete", "get", "list", "patch", "update", "watch"}
    assert (by_name["pods/status"]["kind"], set(by_name["pods/status"]["verbs"])) == (
        "Pod",
        {"get", "patch", "update"},
    )
    assert (by_name["pods/binding"]["kind"], by_name["pods/binding"]["verbs"]) == ("Binding", ["create"])
    assert by_name["nodes"]["namespaced"] is False
    assert "nodes/status" in by_name
    assert by_name["namespaces"]["shortNames"] == ["ns"]
    assert {"events", "services"} <= set(by_name)


async def test_group_list_names_built_in_groups_with_preferred_versions(kube: KubeClient) -> None:
    groups = {g["name"]: g for g in (await kube.get("/apis"))["groups"]}
    for name in ("events.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io"):
        assert groups[name]["preferredVersion"] == {"groupVersion": f"{name}/v1", "version": "v1"}
    assert "" not in groups


async def test_group_version_resource_list_has_its_group_version(kube: KubeClient) -> None:
    listed = await kube.get("/apis/coordination.k8s.io/v1")
    assert listed["groupVersion"] == "coordination.k8s.io/v1"
    leases = next(r for r in listed["resources"] if r["name"] == "leases")
    assert (leases["kind"], leases["namespaced"]) == ("Lease", True)
    crds = await kube.get("/apis/apiextensions.k8s.io/v1")
    crd = next(r for r in crds["resources"] if r["name"] == "customresourcedefinitions")
    assert (crd["namespaced"], set(crd["shortNames"])) == (False, {"crd", "crds"})


async def test_unknown_group_version_is_not_found(kube: KubeClient) -> None:
    error = await _error(kube.get("/apis/nowhere.example.com/v1"))
    assert (error.status, error.reason) == (404, "NotFound")


# -- CustomResourceDefinitions ------------------------------------------------------------------


async def test_creating_a_crd_serves_its_resource_at_once(kube: KubeClient) -> None:
    await kube.post(CRD_PATH, _crd("aijobs"))
    crd = await kube.get(f"{CRD_PATH}/aijobs.aisched.io")
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established == {"NamesAccepted": "True", "Established": "True"}
    assert "aisched.io" in {g["name"] for g in (await kube.get("/apis"))["groups"]}
    listed = await kube.get("/apis/aisched.io/v1alpha1")
    assert listed["groupVersion"] == "aisched.io/v1alpha1"
    by_name = {r["name"]: r for r in listed["resources"]}
    assert (by_name["aijobs"]["kind"], by_name["aijobs"]["namespaced"]) == ("AIJob", True)
    assert by_name["aijobs"]["shortNames"] == ["aij"]
    assert by_name["aijobs/status"]["verbs"] == ["get", "patch", "update"]
    job = await kube.post(AIJOBS, _aijob("first"))
    assert job["kind"] == "AIJob"
    assert (await kube.get(f"{AIJOBS}/first"))["metadata"]["uid"] == job["metadata"]["uid"]


async def test_deleting_a_crd_removes_its_objects_resource_and_watchers(kube: KubeClient) -> None:
    await _install_aijobs(kube)
    await kube.post(AIJOBS, _aijob("doomed"))
    async with _watching(kube, AIJOBS) as stream:
        assert (await _until(stream, lambda e: True))["type"] == "ADDED"  # the watch is on
        await kube.delete(f"{CRD_PATH}/aijobs.aisched.io")
        deleted = await _until(stream, lambda e: True)
        assert (deleted["type"], deleted["object"]["metadata"]["name"]) == ("DELETED", "doomed")
        async with asyncio.timeout(5):
            rest = [event async for event in stream]
        assert rest == [], "the watch ends when its resource goes away"
    for path in (AIJOBS, f"{AIJOBS}/doomed", "/apis/aisched.io/v1alpha1"):
        error = await _error(kube.get(path))
        assert error.status == 404, path


async def test_a_crd_deleted_through_its_last_finalizer_stops_serving_its_resource(kube: KubeClient) -> None:
    crd = _crd("aijobs")
    crd["metadata"]["finalizers"] = ["example.com/hold"]
    await kube.post(CRD_PATH, crd)
    await kube.post(AIJOBS, _aijob("job"))
    await kube.delete(f"{CRD_PATH}/aijobs.aisched.io")
    assert (await kube.get(f"{AIJOBS}/job"))["metadata"]["name"] == "job", "served while terminating"
    await kube.patch(f"{CRD_PATH}/aijobs.aisched.io", {"metadata": {"finalizers": None}})
    for path in (f"{CRD_PATH}/aijobs.aisched.io", AIJOBS, "/apis/aisched.io/v1alpha1"):
        error = await _error(kube.get(path))
        assert error.status == 404, path


def _widgets_crd(*versions: str, plural: str = "widgets") -> JsonObject:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": plural, "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [
                {"name": v, "served": True, "storage": i == 0, "schema": schema}
                for i, v in enumerate(versions)
            ],
        },
    }


async def test_a_version_removed_from_a_crd_is_no_longer_served_nor_watched(kube: KubeClient) -> None:
    await kube.post(CRD_PATH, _widgets_crd("v1", "v2beta1"))
    widgets = "/apis/example.com/{}/namespaces/default/widgets"
    await kube.post(widgets.format("v1"), {"metadata": {"name": "w"}})
    async with _watching(kube, widgets.format("v2beta1")) as stream:
        assert (await _until(stream, lambda e: True))["type"] == "ADDED"  # the watch is on
        await kube.put(
            f"{CRD_PATH}/widgets.example.com",
            {**_widgets_crd("v1"), "metadata": {"name": "widgets.example.com"}},
        )
        async with asyncio.timeout(5):
            rest = [event async for event in stream]
    assert rest == [], "the watch on the removed version ends, and no object was deleted"
    for path in (widgets.format("v2beta1"), "/apis/example.com/v2beta1"):
        assert (await _error(kube.get(path))).status == 404, path
    assert (await kube.get("/apis/example.com"))["versions"] == [
        {"groupVersion": "example.com/v1", "version": "v1"}
    ]
    assert _names(await kube.get(widgets.format("v1"))) == {"w"}


async def test_a_crd_whose_plural_changes_stops_serving_the_old_one(kube: KubeClient) -> None:
    await kube.post(CRD_PATH, _widgets_crd("v1"))
    await kube.post("/apis/example.com/v1/namespaces/default/widgets", {"metadata": {"name": "w"}})
    await kube.put(f"{CRD_PATH}/widgets.example.com", _widgets_crd("v1", plural="gizmos"))
    assert (await _error(kube.get("/apis/example.com/v1/namespaces/default/widgets"))).status == 404
    served = {r["name"] for r in (await kube.get("/apis/example.com/v1"))["resources"]}
    assert served == {"gizmos"}
    assert _names(await kube.get("/apis/example.com/v1/namespaces/default/gizmos")) == set()


# -- verbs --------------------------------------------------------------------------------------


async def test_create_answers_201_then_409_already_exists(http: aiohttp.ClientSession) -> None:
    body = {"metadata": {"name": "once"}, "data": {"a": "1"}}
    async with http.post(CONFIGMAPS, json=body) as response:
        assert response.status == 201
    async with http.post(CONFIGMAPS, json=body) as response:
        status = await response.json()
        assert response.status == 409
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "AlreadyExists", 409)


async def test_list_is_a_kind_list_with_a_resource_version(kube: KubeClient) -> None:
    await kube.post(CONFIGMAPS, {"metadata": {"name": "one"}})
    created = await kube.post(CONFIGMAPS, {"metadata": {"name": "two"}})
    listed = await kube.get(CONFIGMAPS)
    assert (listed["kind"], listed["apiVersion"]) == ("ConfigMapList", "v1")
    assert listed["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert _names(listed) == {"one", "two"}


async def test_update_with_a_stale_resource_version_is_409_conflict(kube: KubeClient) -> None:
    created = await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    await kube.put(f"{CONFIGMAPS}/cm", {**created, "data": {"a": "2"}})
    error = await _error(kube.put(f"{CONFIGMAPS}/cm", {**created, "data": {"a": "3"}}))
    assert (error.status, error.reason) == (409, "Conflict")
    assert (await kube.get(f"{CONFIGMAPS}/cm"))["data"] == {"a": "2"}


async def test_json_patch_with_a_failing_test_is_422_and_changes_nothing(kube: KubeClient) -> None:
    await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    operations = [
        {"op": "test", "path": "/data/a", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "3"},
    ]
    error = await _error(kube.patch(f"{CONFIGMAPS}/cm", operations, patch="json"))
    assert (error.status, error.reason) == (422, "Invalid")
    assert (await kube.get(f"{CONFIGMAPS}/cm"))["data"] == {"a": "1"}


async def test_strategic_merge_patch_merges_pod_containers_by_name(kube: KubeClient) -> None:
    pod = _pod("two-containers")
    pod["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    await kube.post(PODS, pod)
    patch = {"spec": {"containers": [{"name": "sidecar", "image": "envoy:2"}]}}
    patched = await kube.patch(f"{PODS}/two-containers", patch, patch="strategic")
    assert [(c["name"], c["image"]) for c in patched["spec"]["containers"]] == [
        ("main", "busybox"),
        ("sidecar", "envoy:2"),
    ]


async def test_merge_patch_on_a_custom_resource_merges_maps(kube: KubeClient) -> None:
    await _install_aijobs(kube)
    await kube.post(AIJOBS, _aijob("job", gang={"minMember": 1}))
    patched = await kube.patch(f"{AIJOBS}/job", {"spec": {"gang": {"timeoutSeconds": 60}}})
    assert patched["spec"]["gang"] == {"minMember": 1, "timeoutSeconds": 60}
    assert patched["spec"]["replicas"][0]["name"] == "worker"


async def test_strategic_merge_patch_on_a_custom_resource_is_415(kube: KubeClient) -> None:
    await _install_aijobs(kube)
    await kube.post(AIJOBS, _aijob("job"))
    error = await _error(kube.patch(f"{AIJOBS}/job", {"spec": {"priority": 5}}, patch="strategic"))
    assert (error.status, error.reason) == (415, "UnsupportedMediaType")


async def test_deleting_an_owner_deletes_its_dependents(kube: KubeClient) -> None:
    owner = await kube.post(CONFIGMAPS, {"metadata": {"name": "owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    await kube.post(CONFIGMAPS, {"metadata": {"name": "dependent", "ownerReferences": [reference]}})
    await kube.post(PODS, {**_pod("owned"), "metadata": {"name": "owned", "ownerReferences": [reference]}})
    await kube.post(CONFIGMAPS, {"metadata": {"name": "bystander"}})
    await kube.delete(f"{CONFIGMAPS}/owner")
    assert _names(await kube.get(CONFIGMAPS)) == {"bystander"}
    assert _names(await kube.get(PODS)) == set()


async def test_a_dependent_with_another_live_owner_is_kept(kube: KubeClient) -> None:
    owners = [await kube.post(CONFIGMAPS, {"metadata": {"name": n}}) for n in ("first", "second")]
    references = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}
        for o in owners
    ]
    await kube.post(CONFIGMAPS, {"metadata": {"name": "shared", "ownerReferences": references}})
    await kube.delete(f"{CONFIGMAPS}/first")
    assert _names(await kube.get(CONFIGMAPS)) == {"second", "shared"}
    await kube.delete(f"{CONFIGMAPS}/second")
    assert _names(await kube.get(CONFIGMAPS)) == set()


# -- namespaces ---------------------------------------------------------------------------------


async def test_the_namespace_comes_from_the_url(kube: KubeClient) -> None:
    await kube.post("/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    created = await kube.post("/api/v1/namespaces/team-a/configmaps", {"metadata": {"name": "cm"}})
    assert created["metadata"]["namespace"] == "team-a"
    assert _names(await kube.get(CONFIGMAPS)) == set()


async def test_a_body_namespace_unlike_the_url_namespace_is_400(kube: KubeClient) -> None:
    await kube.post("/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    body = {"metadata": {"name": "cm", "namespace": "team-a"}}
    error = await _error(kube.post(CONFIGMAPS, body))
    assert (error.status, error.reason) == (400, "BadRequest")


async def test_an_update_naming_another_namespace_is_400(kube: KubeClient) -> None:
    await kube.post("/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    created = await kube.post(CONFIGMAPS, {"metadata": {"name": "cm"}})
    moved = {**created, "metadata": {**created["metadata"], "namespace": "team-a"}}
    error = await _error(kube.put(f"{CONFIGMAPS}/cm", moved))
    assert (error.status, error.reason) == (400, "BadRequest")
    assert _names(await kube.get("/api/v1/namespaces/team-a/configmaps")) == set()


async def test_creating_into_a_missing_namespace_is_404(kube: KubeClient) -> None:
    error = await _error(kube.post("/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "cm"}}))
    assert (error.status, error.reason) == (404, "NotFound")
    assert "nowhere" in error.message


async def test_generate_name_makes_distinct_names_from_the_prefix(kube: KubeClient) -> None:
    made = [await kube.post(CONFIGMAPS, {"metadata": {"generateName": "job-"}}) for _ in range(3)]
    names = {m["metadata"]["name"] for m in made}
    assert len(names) == 3
    assert all(n.startswith("job-") and len(n) > len("job-") for n in names)


# -- status subresource -------------------------------------------------------------------------


async def test_status_subresource_changes_only_the_status_of_a_custom_resource(kube: KubeClient) -> None:
    await _install_aijobs(kube)
    job = await kube.post(AIJOBS, _aijob("job"))
    job["spec"]["priority"] = 7
    job["metadata"]["labels"] = {"sneaked": "in"}
    job["status"] = {"phase": "Running", "gpus": 8}
    written = await kube.put(f"{AIJOBS}/job/status", job)
    assert written["status"] == {"phase": "Running", "gpus": 8}
    assert written["spec"]["priority"] == 0
    assert "labels" not in written["metadata"]
    assert written["metadata"]["generation"] == 1


async def test_a_main_resource_write_ignores_the_status_of_a_custom_resource(kube: KubeClient) -> None:
    await _install_aijobs(kube)
    job = await kube.post(AIJOBS, {**_aijob("job"), "status": {"phase": "Running"}})
    assert "status" not in job
    await kube.patch(f"{AIJOBS}/job/status", {"status": {"phase": "Queued"}})
    patched = await kube.patch(f"{AIJOBS}/job", {"spec": {"priority": 3}, "status": {"phase": "Failed"}})
    assert (patched["spec"]["priority"], patched["status"]) == (3, {"phase": "Queued"})


async def test_status_subresource_changes_only_the_status_of_a_pod(kube: KubeClient) -> None:
    await kube.post(PODS, _pod("pod"))
    written = await kube.patch(
        f"{PODS}/pod/status", {"spec": {"nodeName": "elsewhere"}, "status": {"phase": "Running"}}
    )
    assert written["status"]["phase"] == "Running"
    assert "nodeName" not in written["spec"]


async def test_a_main_resource_write_ignores_the_status_of_a_pod(kube: KubeClient) -> None:
    await kube.post(PODS, _pod("pod"))
    patched = await kube.patch(
        f"{PODS}/pod", {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Failed"}}
    )
    assert patched["metadata"]["labels"] == {"a": "b"}
    assert patched["status"]["phase"] == "Pending"


async def test_a_pod_is_created_pending_whatever_status_it_is_sent_with(kube: KubeClient) -> None:
    created = await kube.post(PODS, {**_pod("pod"), "status": {"phase": "Running", "podIP": "1.2.3.4"}})
    assert created["status"]["phase"] == "Pending"
    assert "podIP" not in created["status"]


# -- validation ---------------------------------------------------------------------------------


async def test_an_invalid_aijob_is_422_invalid_naming_the_field(kube: KubeClient) -> None:
    await _install_aijobs(kube)
    bad = _aijob("bad", topology={"policy": "Sometimes"})
    bad["spec"]["replicas"][0]["count"] = 0
    error = await _error(kube.post(AIJOBS, bad))
    assert (error.status, error.reason) == (422, "Invalid")
    fields = {cause["field"] for cause in error.body["details"]["causes"]}
    assert {"spec.topology.policy", "spec.replicas[0].count"} <= fields
    assert "spec.topology.policy" in error.message
    assert error.body["details"]["kind"] == "AIJob"


async def test_strict_field_validation_refuses_an_unknown_field_naming_it(kube: KubeClient) -> None:
    await _install_aijobs(kube)
    body = _aijob("typo", prioritty=5)
    error = await _error(kube.post(AIJOBS, body, params={"fieldValidation": "Strict"}))
    assert (error.status, error.reason) == (400, "BadRequest")
    assert 'unknown field "spec.prioritty"' in error.message
    lenient = await kube.post(AIJOBS, body)
    assert "prioritty" not in lenient["spec"]


# -- selectors ----------------------------------------------------------------------------------

_LABELLED: Final = {"a": {"tier": "web", "env": "prod"}, "b": {"tier": "db"}, "c": {}}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", {"a"}),
        ("tier==db", {"b"}),
        ("tier!=web", {"b", "c"}),
        ("tier in (web, db)", {"a", "b"}),
        ("tier notin (web)", {"b", "c"}),
        ("env", {"a"}),
        ("!env", {"b", "c"}),
        ("tier,!env", {"b"}),
        ("tier in (web,db),env=prod", {"a"}),
    ],
)
async def test_label_selectors_filter_a_list(kube: KubeClient, selector: str, expected: set[str]) -> None:
    for name, labels in _LABELLED.items():
        await kube.post(CONFIGMAPS, {"metadata": {"name": name, "labels": labels}})
    assert _names(await kube.get(CONFIGMAPS, params={"labelSelector": selector})) == expected


async def test_a_malformed_label_selector_is_400(kube: KubeClient) -> None:
    error = await _error(kube.get(CONFIGMAPS, params={"labelSelector": "tier in web"}))
    assert (error.status, error.reason) == (400, "BadRequest")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=bound", {"bound"}),
        ("metadata.namespace=default", {"bound", "unbound", "other-scheduler"}),
        ("metadata.namespace!=default", set()),
        ("spec.nodeName=node-1", {"bound"}),
        ("spec.nodeName=", {"unbound", "other-scheduler"}),
        ("spec.schedulerName=aisched", {"bound", "unbound"}),
        ("spec.schedulerName=aisched,spec.nodeName=", {"unbound"}),
        ("status.phase=Pending", {"bound", "unbound", "other-scheduler"}),
        ("status.phase!=Pending", set()),
    ],
)
async def test_field_selectors_filter_a_list(kube: KubeClient, selector: str, expected: set[str]) -> None:
    await kube.post(PODS, _pod("bound", schedulerName="aisched", nodeName="node-1"))
    await kube.post(PODS, _pod("unbound", schedulerName="aisched"))
    await kube.post(PODS, _pod("other-scheduler"))
    assert _names(await kube.get(PODS, params={"fieldSelector": selector})) == expected


async def test_a_watch_sees_only_objects_its_selectors_select(kube: KubeClient) -> None:
    revision = (await kube.get(PODS))["metadata"]["resourceVersion"]
    async with _watching(
        kube,
        PODS,
        resourceVersion=revision,
        labelSelector="tier=web",
        fieldSelector="spec.schedulerName=aisched",
    ) as stream:
        await kube.post(PODS, _pod("db", labels={"tier": "db"}, schedulerName="aisched"))
        await kube.post(PODS, _pod("web-default", labels={"tier": "web"}))
        await kube.post(PODS, _pod("web", labels={"tier": "web"}, schedulerName="aisched"))
        await kube.post(PODS, _pod("last", labels={"tier": "web"}, schedulerName="aisched"))
        first = await _until(stream, lambda e: True)
        second = await _until(stream, lambda e: True)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in (first, second)] == [
        ("ADDED", "web"),
        ("ADDED", "last"),
    ]


async def test_an_object_leaving_a_watchers_selection_is_deleted_for_it_in_its_last_matching_state(
    kube: KubeClient,
) -> None:
    await kube.post(CONFIGMAPS, {"metadata": {"name": "cm", "labels": {"tier": "web"}}})
    async with _watching(kube, CONFIGMAPS, labelSelector="tier=web") as stream:
        added = await _until(stream, lambda e: True)
        assert added["type"] == "ADDED"
        moved = await kube.patch(f"{CONFIGMAPS}/cm", {"metadata": {"labels": {"tier": "db"}}})
        left = await _until(stream, lambda e: True)
        await kube.patch(f"{CONFIGMAPS}/cm", {"metadata": {"labels": {"tier": "web"}}})
        back = await _until(stream, lambda e: True)
    # As the real server sends it: the state the watcher last matched, at the change's revision.
    assert (left["type"], left["object"]["metadata"]["labels"]) == ("DELETED", {"tier": "web"})
    assert left["object"]["metadata"]["resourceVersion"] == moved["metadata"]["resourceVersion"]
    assert back["type"] == "ADDED"
    assert await kube.get(f"{CONFIGMAPS}/cm"), "the object itself was never deleted"


async def test_binding_takes_a_pod_out_of_an_unbound_pods_watch_as_it_was_unbound(kube: KubeClient) -> None:
    await kube.post(PODS, _pod("pod", schedulerName="aisched"))
    async with _watching(kube, PODS, fieldSelector="spec.nodeName=,spec.schedulerName=aisched") as stream:
        assert (await _until(stream, lambda e: True))["type"] == "ADDED"
        await kube.post(f"{PODS}/pod/binding", _binding("pod", "node-1"))
        left = await _until(stream, lambda e: True)
    bound = await kube.get(f"{PODS}/pod")
    assert (left["type"], left["object"]["spec"].get("nodeName")) == ("DELETED", None)
    assert left["object"]["metadata"]["resourceVersion"] == bound["metadata"]["resourceVersion"]


async def test_a_replayed_watch_applies_its_selector_to_past_changes(kube: KubeClient) -> None:
    await kube.post(CONFIGMAPS, {"metadata": {"name": "cm", "labels": {"tier": "web"}}})
    revision = (await kube.get(CONFIGMAPS))["metadata"]["resourceVersion"]
    await kube.patch(f"{CONFIGMAPS}/cm", {"metadata": {"labels": {"tier": "db"}}})
    await kube.post(CONFIGMAPS, {"metadata": {"name": "new", "labels": {"tier": "web"}}})
    async with _watching(kube, CONFIGMAPS, resourceVersion=revision, labelSelector="tier=web") as stream:
        events = [await _until(stream, lambda e: True) for _ in range(2)]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("DELETED", "cm"),
        ("ADDED", "new"),
    ]


# -- pods/binding -------------------------------------------------------------------------------


def _binding(pod: str, node: str, annotations: dict[str, str] | None = None) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod, "annotations": annotations or {}},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


async def test_binding_a_missing_pod_is_404(kube: KubeClient) -> None:
    error = await _error(kube.post(f"{PODS}/ghost/binding", _binding("ghost", "node-1")))
    assert (error.status, error.reason) == (404, "NotFound")


async def test_binding_sets_the_node_copies_annotations_and_marks_the_pod_scheduled(
    kube: KubeClient, http: aiohttp.ClientSession
) -> None:
    created = await kube.post(PODS, _pod("pod", schedulerName="aisched"))
    async with _watching(kube, PODS, resourceVersion=created["metadata"]["resourceVersion"]) as stream:
        body = _binding("pod", "node-1", {"aisched.io/gpus": "0,1"})
        async with http.post(f"{PODS}/pod/binding", json=body) as response:
            assert response.status == 201
            assert (await response.json())["status"] == "Success"
        event = await _until(stream, lambda e: True)
    assert event["type"] == "MODIFIED"
    bound = event["object"]
    assert bound["spec"]["nodeName"] == "node-1"
    assert bound["metadata"]["annotations"] == {"aisched.io/gpus": "0,1"}
    scheduled = [c for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert [c["status"] for c in scheduled] == ["True"]


async def test_binding_an_already_bound_pod_is_409(kube: KubeClient) -> None:
    await kube.post(PODS, _pod("pod"))
    await kube.post(f"{PODS}/pod/binding", _binding("pod", "node-1"))
    error = await _error(kube.post(f"{PODS}/pod/binding", _binding("pod", "node-2")))
    assert (error.status, error.reason) == (409, "Conflict")
    assert (await kube.get(f"{PODS}/pod"))["spec"]["nodeName"] == "node-1"


# -- Tables -------------------------------------------------------------------------------------


async def _table(http: aiohttp.ClientSession, path: str) -> JsonObject:
    async with http.get(path, headers={"Accept": TABLE}) as response:
        assert response.status == 200
        return cast(JsonObject, await response.json())


async def test_an_aijob_table_shows_its_printer_columns(
    kube: KubeClient, http: aiohttp.ClientSession
) -> None:
    await _install_aijobs(kube)
    await kube.post(AIJOBS, _aijob("job"))
    await kube.patch(
        f"{AIJOBS}/job/status", {"status": {"phase": "Running", "gpus": 16, "tenant": "research"}}
    )
    table = await _table(http, AIJOBS)
    assert table["kind"] == "Table"
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Phase", "GPUs", "Tenant", "Queue Position", "Est. Start", "Age"]
    [row] = table["rows"]
    assert row["cells"][:6] == ["job", "Running", 16, "research", None, None]
    assert row["object"]["metadata"]["name"] == "job"


async def test_a_pod_table_shows_readiness_and_status(kube: KubeClient, http: aiohttp.ClientSession) -> None:
    await kube.post(PODS, _pod("pod"))
    table = await _table(http, f"{PODS}/pod")
    columns = [c["name"] for c in table["columnDefinitions"]]
    [row] = table["rows"]
    cells = dict(zip(columns, row["cells"], strict=True))
    assert (cells["Name"], cells["Ready"], cells["Status"]) == ("pod", "0/1", "Pending")


async def test_an_event_table_reads_the_timestamps_kopf_posts(
    kube: KubeClient, http: aiohttp.ClientSession
) -> None:
    now = datetime.now(UTC)
    posted = (now - timedelta(minutes=5)).isoformat()  # microseconds and +00:00, as Kopf sends them
    await kube.post(
        "/api/v1/namespaces/default/events",
        {
            "metadata": {"generateName": "widget-"},
            "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default"},
            "type": "Normal",
            "reason": "Logging",
            "message": "handled",
            "firstTimestamp": posted,
            "lastTimestamp": posted,
        },
    )
    table = await _table(http, "/api/v1/namespaces/default/events")
    columns = [c["name"] for c in table["columnDefinitions"]]
    [row] = table["rows"]
    cells = dict(zip(columns, row["cells"], strict=True))
    assert (cells["Last Seen"], cells["Object"], cells["Message"]) == ("5m", "widget/w1", "handled")
