"""The fake API server behaves like the Kubernetes API where a REST client can tell.

Exercised with plain aiohttp, not with `aisched.kube.client`, so that a bug in the client cannot
hide a matching bug in the fake.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from tests.support.fake_apiserver import FakeApiServer, PatchError, json_patch, merge_patch

NODES = "/api/v1/nodes"
PODS = "/api/v1/namespaces/ns1/pods"
TOPOLOGIES = "/apis/aisched.io/v1alpha1/gpunodetopologies"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
START = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class Http:
    """Raw HTTP calls against the fake: (status code, decoded JSON body)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": content_type, **(headers or {})}
        async with self.session.request(
            method, self.base_url + path, data=data, headers=all_headers
        ) as response:
            return response.status, json.loads(await response.read())


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(status_subresources={"gpunodetopologies"}, clock=lambda: START) as fake:
        yield fake


@pytest.fixture
async def http(server: FakeApiServer) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(session, server.url)


def named(name: str, **fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, **fields}


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def test_create_answers_201_and_stamps_server_metadata(http: Http) -> None:
    code, node = await http("POST", NODES, named("n1", spec={"unschedulable": True}))

    assert code == 201
    assert node["spec"] == {"unschedulable": True}
    metadata = node["metadata"]
    assert metadata["name"] == "n1"
    assert metadata["resourceVersion"] == "1"
    assert metadata["creationTimestamp"] == "2025-01-02T03:04:05Z"
    assert metadata["generation"] == 1
    assert len(metadata["uid"]) == 36
    assert (await http("GET", f"{NODES}/n1")) == (200, node)


async def test_create_in_a_namespace_sets_it_and_refuses_a_different_one(http: Http) -> None:
    code, pod = await http("POST", PODS, named("p1"))
    assert (code, pod["metadata"]["namespace"]) == (201, "ns1")

    mismatch = {"metadata": {"name": "p2", "namespace": "other"}}
    code, status = await http("POST", PODS, mismatch)
    assert (code, status["reason"]) == (400, "BadRequest")


async def test_generate_name_gives_distinct_names(http: Http) -> None:
    template = {"metadata": {"generateName": "job-"}}
    _, first = await http("POST", PODS, template)
    _, second = await http("POST", PODS, template)

    assert first["metadata"]["name"].startswith("job-")
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_create_without_a_name_is_422_invalid(http: Http) -> None:
    code, status = await http("POST", NODES, {"metadata": {}})
    assert (code, status["reason"]) == (422, "Invalid")


async def test_resource_versions_come_from_one_counter_across_kinds(http: Http) -> None:
    _, node = await http("POST", NODES, named("n1"))
    _, topology = await http("POST", TOPOLOGIES, named("n1"))
    _, patched = await http("PATCH", f"{NODES}/n1", {"metadata": {"labels": {"a": "b"}}}, content_type=MERGE)

    assert [rv(node), rv(topology), rv(patched)] == [1, 2, 3]


async def test_missing_object_is_a_404_not_found_status(http: Http) -> None:
    code, status = await http("GET", f"{NODES}/nope")

    assert code == 404
    assert status["kind"] == "Status"
    assert (status["code"], status["reason"], status["status"]) == (404, "NotFound", "Failure")
    assert "nope" in status["message"]


async def test_unknown_path_is_404(http: Http) -> None:
    code, status = await http("GET", "/healthz/x")
    assert (code, status["reason"]) == (404, "NotFound")


async def test_creating_an_existing_name_is_409_already_exists(http: Http) -> None:
    await http("POST", NODES, named("n1"))
    code, status = await http("POST", NODES, named("n1"))
    assert (code, status["reason"], status["code"]) == (409, "AlreadyExists", 409)


async def test_put_with_a_stale_resource_version_is_409_conflict_and_changes_nothing(
    http: Http, server: FakeApiServer
) -> None:
    _, node = await http("POST", NODES, named("n1", spec={"podCIDR": "a"}))
    node["spec"] = {"podCIDR": "b"}
    code, updated = await http("PUT", f"{NODES}/n1", node)
    assert (code, updated["spec"], rv(updated)) == (200, {"podCIDR": "b"}, 2)

    node["spec"] = {"podCIDR": "c"}  # still carries resourceVersion 1
    code, status = await http("PUT", f"{NODES}/n1", node)

    assert (code, status["reason"]) == (409, "Conflict")
    assert server.objects[f"{NODES}/n1"]["spec"] == {"podCIDR": "b"}


async def test_put_of_a_missing_object_is_404(http: Http) -> None:
    code, _ = await http("PUT", f"{NODES}/n1", named("n1"))
    assert code == 404


async def test_writes_cannot_change_identity_metadata(http: Http) -> None:
    _, created = await http("POST", NODES, named("n1"))
    forged = {"metadata": {"name": "n1", "uid": "forged", "creationTimestamp": "1970-01-01T00:00:00Z"}}
    _, updated = await http("PUT", f"{NODES}/n1", forged)

    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [  # RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_json_patch_applies_add_replace_remove_and_test() -> None:
    document = {"a": {"b~c": 1, "d/e": [1, 2]}, "gone": True}
    operations = [
        {"op": "test", "path": "/a/b~0c", "value": 1},
        {"op": "replace", "path": "/a/b~0c", "value": 2},
        {"op": "add", "path": "/a/d~1e/-", "value": 3},
        {"op": "add", "path": "/a/d~1e/0", "value": 0},
        {"op": "remove", "path": "/gone"},
        {"op": "add", "path": "/new", "value": {"x": None}},
    ]

    patched = json_patch(document, operations)

    assert patched == {"a": {"b~c": 2, "d/e": [0, 1, 2, 3]}, "new": {"x": None}}
    assert document["gone"] is True  # the input is left alone


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "test", "path": "/a", "value": True},  # JSON true is not 1
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "remove", "path": "/list/2"},
        {"op": "add", "path": "/list/01", "value": 1},
        {"op": "move", "from": "/a", "path": "/b"},
        {"op": "add", "path": "no-slash", "value": 1},
    ],
)
def test_json_patch_rejects_what_cannot_apply(operation: dict[str, Any]) -> None:
    with pytest.raises(PatchError):
        json_patch({"a": 1, "list": [1, 2]}, [operation])


async def test_failed_json_patch_test_is_422_and_changes_nothing(http: Http, server: FakeApiServer) -> None:
    await http("POST", NODES, named("n1", spec={"x": 1}))
    operations = [
        {"op": "replace", "path": "/spec/x", "value": 2},
        {"op": "test", "path": "/spec/x", "value": 1},
    ]

    code, status = await http("PATCH", f"{NODES}/n1", operations, content_type=JSON_PATCH)

    assert (code, status["reason"]) == (422, "Invalid")
    assert server.objects[f"{NODES}/n1"]["spec"] == {"x": 1}
    assert server.revision == 1


async def test_merge_patch_with_a_stale_resource_version_is_409_conflict(http: Http) -> None:
    await http("POST", NODES, named("n1"))
    await http("PATCH", f"{NODES}/n1", {"spec": {"x": 1}}, content_type=MERGE)

    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"x": 2}}
    code, status = await http("PATCH", f"{NODES}/n1", stale, content_type=MERGE)

    assert (code, status["reason"]) == (409, "Conflict")


@pytest.mark.parametrize(
    "content_type", ["application/strategic-merge-patch+json", "application/apply-patch+yaml"]
)
async def test_patch_types_the_fake_does_not_implement_are_415(http: Http, content_type: str) -> None:
    await http("POST", NODES, named("n1"))
    code, status = await http("PATCH", f"{NODES}/n1", {"spec": {}}, content_type=content_type)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")


async def test_status_subresource_separates_status_from_the_rest(http: Http) -> None:
    path = f"{TOPOLOGIES}/n1"
    _, created = await http("POST", TOPOLOGIES, named("n1", spec={"gpus": 8}, status={"ready": True}))
    assert "status" not in created

    _, with_status = await http(
        "PUT", f"{path}/status", named("n1", spec={"gpus": 1}, status={"ready": True})
    )
    assert with_status["status"] == {"ready": True}
    assert with_status["spec"] == {"gpus": 8}
    assert with_status["metadata"]["generation"] == 1

    main = named("n1", spec={"gpus": 4}, status={"ready": False})
    _, updated = await http("PUT", path, main)
    assert updated["status"] == {"ready": True}
    assert updated["spec"] == {"gpus": 4}
    assert updated["metadata"]["generation"] == 2

    _, patched = await http(
        "PATCH", f"{path}/status", {"status": {"ready": None, "gpus": 4}}, content_type=MERGE
    )
    assert patched["status"] == {"gpus": 4}
    assert patched["metadata"]["generation"] == 2
    assert (await http("GET", f"{path}/status"))[1] == patched


async def test_generation_counts_changes_outside_metadata_and_status(http: Http) -> None:
    path = f"{TOPOLOGIES}/n1"
    await http("POST", TOPOLOGIES, named("n1", spec={"gpus": 8}))

    _, labelled = await http("PATCH", path, {"metadata": {"labels": {"a": "b"}}}, content_type=MERGE)
    _, same_spec = await http("PATCH", path, {"spec": {"gpus": 8}}, content_type=MERGE)
    _, new_spec = await http("PATCH", path, {"spec": {"gpus": 4}}, content_type=MERGE)

    generations = [obj["metadata"]["generation"] for obj in (labelled, same_spec, new_spec)]
    assert generations == [1, 1, 2]


async def test_kinds_without_a_status_subresource_write_status_with_the_object(http: Http) -> None:
    _, created = await http("POST", NODES, named("n1", status={"phase": "Running"}))
    assert created["status"] == {"phase": "Running"}

    code, status = await http("PUT", f"{NODES}/n1/status", named("n1", status={}))
    assert (code, status["reason"]) == (404, "NotFound")


async def test_delete_removes_the_object(http: Http, server: FakeApiServer) -> None:
    await http("POST", NODES, named("n1"))

    code, deleted = await http("DELETE", f"{NODES}/n1")

    assert (code, deleted["metadata"]["name"]) == (200, "n1")
    assert server.objects == {}
    assert (await http("DELETE", f"{NODES}/n1"))[0] == 404


async def test_lists_hold_one_namespace_or_all_of_them(http: Http) -> None:
    await http("POST", PODS, named("p1"))
    await http("POST", "/api/v1/namespaces/ns2/pods", named("p2"))
    await http("POST", NODES, named("n1"))

    _, in_ns1 = await http("GET", PODS)
    _, everywhere = await http("GET", "/api/v1/pods")

    assert [p["metadata"]["name"] for p in in_ns1["items"]] == ["p1"]
    assert [p["metadata"]["name"] for p in everywhere["items"]] == ["p1", "p2"]
    assert everywhere["metadata"]["resourceVersion"] == "3"


async def test_watch_streams_current_objects_as_added_events_then_closes(
    http: Http, server: FakeApiServer
) -> None:
    await http("POST", TOPOLOGIES, named("a"))
    await http("POST", TOPOLOGIES, named("b"))
    await http("POST", NODES, named("n1"))

    async with http.session.get(f"{server.url}{TOPOLOGIES}?watch=1") as response:
        lines = (await response.read()).splitlines()

    events = [json.loads(line) for line in lines]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_from_before_compaction_gets_an_expired_error_event(
    http: Http, server: FakeApiServer
) -> None:
    await http("POST", NODES, named("n1"))
    await http("POST", NODES, named("n2"))
    server.compact()

    async with http.session.get(f"{server.url}{NODES}?watch=true&resourceVersion=1") as response:
        (line,) = (await response.read()).splitlines()

    event = json.loads(line)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


async def test_fail_next_fails_exactly_that_many_requests(http: Http, server: FakeApiServer) -> None:
    server.fail_next(2, status=500)

    first, second, third = [(await http("GET", NODES))[0] for _ in range(3)]

    assert (first, second, third) == (500, 500, 200)


async def test_down_answers_503_until_up(http: Http, server: FakeApiServer) -> None:
    server.down()
    code, status = await http("GET", NODES)
    assert (code, status["reason"]) == (503, "ServiceUnavailable")

    server.up()
    assert (await http("GET", NODES))[0] == 200


async def test_request_log_records_method_path_query_content_type_and_body(
    http: Http, server: FakeApiServer
) -> None:
    await http("POST", NODES, named("n1"))
    await http("PATCH", f"{NODES}/n1?fieldManager=me", [], content_type=JSON_PATCH)

    create, patch = server.requests
    assert (create.method, create.path, create.body) == ("POST", NODES, named("n1"))
    assert create.content_type == "application/json"
    assert (patch.method, patch.path, patch.query) == ("PATCH", f"{NODES}/n1", {"fieldManager": "me"})
    assert (patch.content_type, patch.body) == (JSON_PATCH, [])


async def test_configured_token_is_required() -> None:
    async with FakeApiServer(token="s3cret") as server, aiohttp.ClientSession() as session:
        http = Http(session, server.url)
        anonymous, _ = await http("GET", NODES)
        wrong, status = await http("GET", NODES, headers={"Authorization": "Bearer nope"})
        right, _ = await http("GET", NODES, headers={"Authorization": "Bearer s3cret"})

    assert (anonymous, wrong, right) == (401, 401, 200)
    assert status["reason"] == "Unauthorized"
