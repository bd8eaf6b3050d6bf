"""Server-side apply over HTTP as the real API server answers it: field ownership in
metadata.managedFields, merging by keys, removal of fields no longer applied, conflicts and force."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, cast

import aiohttp
import pytest
import yaml

from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient

CRDS: Final = Path(__file__).parents[2] / "crds"
CONFIGMAPS: Final = "/api/v1/namespaces/default/configmaps"
PODS: Final = "/api/v1/namespaces/default/pods"
TENANTQUOTAS: Final = "/apis/aisched.io/v1alpha1/tenantquotas"
APPLY: Final = "application/apply-patch+yaml"


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emulator.url) as session:
        yield session


def _configmap(name: str, **data: str) -> JsonObject:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def _apply(
    kube: KubeClient, path: str, body: JsonObject, manager: str, *, force: bool = False
) -> JsonObject:
    return await kube.patch(path, body, patch="apply", field_manager=manager, force=force)


async def _refused(kube: KubeClient, path: str, body: JsonObject, manager: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await _apply(kube, path, body, manager)
    return caught.value


def _owners(obj: JsonObject) -> dict[tuple[str, str], Any]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])}


def _pod(**container: Any) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "main", "image": "nginx", **container}]},
    }


def _quota(**spec: Any) -> JsonObject:
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "TenantQuota",
        "metadata": {"name": "research"},
        "spec": spec,
    }


async def _install_tenantquotas(kube: KubeClient) -> None:
    crd = cast(JsonObject, yaml.safe_load((CRDS / "aisched.io_tenantquotas.yaml").read_text()))
    await kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)


# -- creating and recording ----------------------------------------------------------------------


async def test_apply_to_a_missing_object_creates_it_with_201(http: aiohttp.ClientSession) -> None:
    body = json.dumps(_configmap("fresh", a="1"))
    async with http.patch(
        f"{CONFIGMAPS}/fresh", params={"fieldManager": "gitops"}, data=body, headers={"Content-Type": APPLY}
    ) as response:
        assert response.status == 201
        created = await response.json()
    assert created["data"] == {"a": "1"}
    assert created["metadata"]["uid"]
    assert _owners(created) == {("gitops", "Apply"): {"f:data": {"f:a": {}}}}


async def test_apply_without_a_field_manager_is_invalid_patch_options(http: aiohttp.ClientSession) -> None:
    async with http.patch(
        f"{CONFIGMAPS}/x", data=json.dumps(_configmap("x")), headers={"Content-Type": APPLY}
    ) as response:
        assert response.status == 422
        status = await response.json()
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert status["details"]["causes"][0]["field"] == "fieldManager"


async def test_force_on_a_merge_patch_is_forbidden(kube: KubeClient, http: aiohttp.ClientSession) -> None:
    await kube.post(CONFIGMAPS, _configmap("cm", a="1"))
    async with http.patch(
        f"{CONFIGMAPS}/cm",
        params={"force": "true"},
        data="{}",
        headers={"Content-Type": "application/merge-patch+json"},
    ) as response:
        assert response.status == 422
        assert (
            "force: Forbidden: may not be specified for non-apply patch" in (await response.json())["message"]
        )


async def test_an_apply_of_another_api_version_is_refused(kube: KubeClient) -> None:
    body = {**_configmap("cm"), "apiVersion": "v2"}
    error = await _refused(kube, f"{CONFIGMAPS}/cm", body, "me")
    assert (error.status, error.message) == (
        400,
        "Incorrect version specified in apply patch. Specified patch version: v2, expected: v1",
    )


async def test_an_applied_configuration_may_not_carry_managed_fields(kube: KubeClient) -> None:
    body = _configmap("cm")
    body["metadata"]["managedFields"] = [{"manager": "me"}]
    error = await _refused(kube, f"{CONFIGMAPS}/cm", body, "me")
    assert (error.status, error.message) == (400, "metadata.managedFields must be nil")


async def test_ordinary_writes_are_recorded_as_updates_by_their_manager(kube: KubeClient) -> None:
    created = await kube.post(CONFIGMAPS, _configmap("cm", a="1"), params={"fieldManager": "creator"})
    assert _owners(created) == {("creator", "Update"): {"f:data": {".": {}, "f:a": {}}}}
    patched = await kube.patch(f"{CONFIGMAPS}/cm", {"data": {"b": "2"}}, field_manager="patcher")
    owners = _owners(patched)
    assert owners[("patcher", "Update")] == {"f:data": {"f:b": {}}}
    assert owners[("creator", "Update")] == {"f:data": {".": {}, "f:a": {}}}


async def test_reapplying_the_same_configuration_changes_nothing(kube: KubeClient) -> None:
    first = await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1"), "gitops")
    again = await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1"), "gitops")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


# -- merging and removing -------------------------------------------------------------------------


async def test_fields_a_manager_stops_applying_are_removed(kube: KubeClient) -> None:
    await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1", b="2"), "gitops")
    applied = await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1"), "gitops")
    assert applied["data"] == {"a": "1"}
    assert _owners(applied) == {("gitops", "Apply"): {"f:data": {"f:a": {}}}}


async def test_a_field_another_manager_also_owns_stays_when_one_stops_applying_it(kube: KubeClient) -> None:
    await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1", b="2"), "one")
    await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", b="2"), "two")  # same value: co-owned
    applied = await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1"), "one")
    assert applied["data"] == {"a": "1", "b": "2"}
    assert _owners(applied)[("two", "Apply")] == {"f:data": {"f:b": {}}}


async def test_containers_merge_by_name_and_ports_by_port_and_protocol(kube: KubeClient) -> None:
    await _apply(kube, f"{PODS}/web", _pod(ports=[{"containerPort": 80}]), "team")
    sidecar = _pod()
    sidecar["spec"]["containers"] = [{"name": "proxy", "image": "envoy"}]
    merged = await _apply(kube, f"{PODS}/web", sidecar, "mesh")
    assert [c["name"] for c in merged["spec"]["containers"]] == ["main", "proxy"]
    team = _owners(merged)[("team", "Apply")]["f:spec"]["f:containers"]['k:{"name":"main"}']
    assert team["f:ports"] == {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}


async def test_a_keyed_item_without_its_key_is_a_bad_request(kube: KubeClient) -> None:
    body = _pod()
    del body["spec"]["containers"][0]["name"]
    error = await _refused(kube, f"{PODS}/web", body, "me")
    assert error.status == 400
    assert 'omits key field "name"' in error.message


async def test_custom_resource_lists_follow_the_crd_list_types(kube: KubeClient) -> None:
    await _install_tenantquotas(kube)
    quota = _quota(namespaces=["ml-a"], weight=2)
    await _apply(kube, f"{TENANTQUOTAS}/research", quota, "one")
    other = {**quota, "spec": {"namespaces": ["ml-b"]}}
    merged = await _apply(kube, f"{TENANTQUOTAS}/research", other, "two")
    assert merged["spec"]["namespaces"] == ["ml-a", "ml-b"], "a set merges by value"
    assert merged["spec"]["weight"] == 2


# -- conflicts ----------------------------------------------------------------------------------


async def test_a_second_manager_changing_a_field_conflicts_naming_owner_and_field(kube: KubeClient) -> None:
    await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1"), "mgr1")
    error = await _refused(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="2"), "mgr2")
    assert (error.status, error.reason) == (409, "Conflict")
    assert error.message == 'Apply failed with 1 conflict: conflict with "mgr1": .data.a'
    assert error.body["details"]["causes"] == [
        {"type": "FieldManagerConflict", "message": 'conflict with "mgr1"', "field": ".data.a"}
    ]
    assert (await kube.get(f"{CONFIGMAPS}/cm"))["data"] == {"a": "1"}


async def test_several_conflicts_are_listed_by_manager(kube: KubeClient) -> None:
    await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1", b="1"), "mgr1")
    error = await _refused(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="2", b="2"), "mgr2")
    assert error.message == 'Apply failed with 2 conflicts: conflicts with "mgr1":\n- .data.a\n- .data.b'


async def test_a_conflict_with_an_updater_names_its_api_version_and_time(kube: KubeClient) -> None:
    await kube.post(CONFIGMAPS, _configmap("cm", a="1"), params={"fieldManager": "editor"})
    error = await _refused(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="2"), "gitops")
    assert error.message.startswith('Apply failed with 1 conflict: conflict with "editor" using v1 at ')
    assert error.message.endswith(": .data.a")


async def test_force_takes_the_field_over(kube: KubeClient) -> None:
    await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1", b="1"), "mgr1")
    taken = await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="2"), "mgr2", force=True)
    assert taken["data"] == {"a": "2", "b": "1"}
    owners = _owners(taken)
    assert owners[("mgr1", "Apply")] == {"f:data": {"f:b": {}}}
    assert owners[("mgr2", "Apply")] == {"f:data": {"f:a": {}}}
    # mgr1 no longer owns .data.a: leaving it out of its next apply does not remove it.
    again = await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", b="1"), "mgr1")
    assert again["data"] == {"a": "2", "b": "1"}


async def test_an_update_takes_fields_from_an_applier(kube: KubeClient) -> None:
    await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1"), "gitops")
    edited = await kube.patch(f"{CONFIGMAPS}/cm", {"data": {"a": "5"}}, field_manager="kubectl-edit")
    assert ("gitops", "Apply") not in _owners(edited)
    assert _owners(edited)[("kubectl-edit", "Update")] == {"f:data": {"f:a": {}}}


# -- the shared write path --------------------------------------------------------------------------


async def test_apply_runs_validation_and_defaults_like_any_write(kube: KubeClient) -> None:
    await _install_tenantquotas(kube)
    quota = _quota(weight=0)
    error = await _refused(kube, f"{TENANTQUOTAS}/research", quota, "me")
    assert (error.status, error.reason) == (422, "Invalid")
    assert "spec.weight" in error.message
    created = await _apply(kube, f"{TENANTQUOTAS}/research", {**quota, "spec": {}}, "me")
    assert created["spec"]["weight"] == 1.0, "the CRD's default"
    assert "f:weight" not in json.dumps(_owners(created)), "nobody owns what defaulting set"


async def test_apply_tells_watchers(kube: KubeClient) -> None:
    listed = await kube.get(CONFIGMAPS)
    await _apply(kube, f"{CONFIGMAPS}/cm", _configmap("cm", a="1"), "gitops")
    params = {"resourceVersion": listed["metadata"]["resourceVersion"], "timeoutSeconds": "5"}
    async for event in kube.watch(CONFIGMAPS, params=params):
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "cm")
        break


async def test_apply_to_the_status_subresource_owns_status_only(kube: KubeClient) -> None:
    await _install_tenantquotas(kube)
    quota = _quota(weight=2)
    await _apply(kube, f"{TENANTQUOTAS}/research", quota, "gitops")
    status = {**quota, "status": {"pendingJobs": 3}}
    stored = await _apply(kube, f"{TENANTQUOTAS}/research/status", status, "controller")
    assert stored["status"]["pendingJobs"] == 3
    entry = next(e for e in stored["metadata"]["managedFields"] if e["manager"] == "controller")
    assert (entry["subresource"], entry["fieldsV1"]) == ("status", {"f:status": {"f:pendingJobs": {}}})
