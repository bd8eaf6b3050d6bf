"""The REST client against a fake API server over real HTTP (and TLS, where openssl exists)."""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import pytest
import yaml

from aisched.kube.client import (
    ApiError,
    ApiUnavailable,
    ConfigError,
    KubeClient,
    PatchType,
    resource_path,
)
from tests.support.fake_apiserver import FakeApiServer

NODES = resource_path(group="", version="v1", plural="nodes")
TOPOLOGIES = resource_path(group="aisched.io", version="v1alpha1", plural="gpunodetopologies")


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(status_subresources={"gpunodetopologies"}) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeApiServer) -> AsyncIterator[KubeClient]:
    async with KubeClient(base_url=server.url) as kube:
        yield kube


def node(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, **fields}


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"group": "", "version": "v1", "plural": "nodes"}, "/api/v1/nodes"),
        ({"group": "", "version": "v1", "plural": "nodes", "name": "n1"}, "/api/v1/nodes/n1"),
        (
            {
                "group": "",
                "version": "v1",
                "plural": "pods",
                "namespace": "ns",
                "name": "p",
                "subresource": "binding",
            },
            "/api/v1/namespaces/ns/pods/p/binding",
        ),
        ({"group": "", "version": "v1", "plural": "pods", "namespace": ""}, "/api/v1/pods"),
        (
            {
                "group": "aisched.io",
                "version": "v1alpha1",
                "plural": "gpunodetopologies",
                "name": "n1",
                "subresource": "status",
            },
            "/apis/aisched.io/v1alpha1/gpunodetopologies/n1/status",
        ),
        (
            {"group": "aisched.io", "version": "v1alpha1", "plural": "aijobs", "namespace": "team-a"},
            "/apis/aisched.io/v1alpha1/namespaces/team-a/aijobs",
        ),
    ],
)
def test_resource_path_puts_core_under_api_and_groups_under_apis(
    kwargs: dict[str, str], expected: str
) -> None:
    assert resource_path(**kwargs) == expected


def test_resource_path_refuses_a_subresource_without_a_name() -> None:
    with pytest.raises(ValueError, match="needs an object name"):
        resource_path(group="", version="v1", plural="pods", subresource="status")


# -- verbs -------------------------------------------------------------------------------------


async def test_crud_round_trip(client: KubeClient) -> None:
    created = await client.post(NODES, node("n1", spec={"podCIDR": "10.0.0.0/24"}))
    assert created["metadata"]["uid"]
    assert await client.get(f"{NODES}/n1") == created

    created["spec"]["unschedulable"] = True
    replaced = await client.put(f"{NODES}/n1", created)
    assert replaced["spec"] == {"podCIDR": "10.0.0.0/24", "unschedulable": True}

    patched = await client.patch(f"{NODES}/n1", {"metadata": {"labels": {"rack": "r1"}}})
    assert patched["metadata"]["labels"] == {"rack": "r1"}
    assert patched["metadata"]["resourceVersion"] != replaced["metadata"]["resourceVersion"]

    listed = await client.get(NODES, params={"limit": 10})
    assert [item["metadata"]["name"] for item in listed["items"]] == ["n1"]

    deleted = await client.delete(f"{NODES}/n1")
    assert deleted["metadata"]["name"] == "n1"
    with pytest.raises(ApiError) as missing:
        await client.get(f"{NODES}/n1")
    assert missing.value.status == 404


async def test_status_subresource_writes_go_to_the_status_path(
    client: KubeClient, server: FakeApiServer
) -> None:
    await client.post(TOPOLOGIES, {"metadata": {"name": "n1"}, "spec": {"gpus": 8}})

    await client.patch(f"{TOPOLOGIES}/n1/status", {"status": {"healthy": 8}})

    assert server.objects[f"{TOPOLOGIES}/n1"]["status"] == {"healthy": 8}
    assert server.requests[-1].path == f"{TOPOLOGIES}/n1/status"


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (408, True),
        (425, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (403, False),
        (404, False),
        (409, False),
        (422, False),
        (501, False),
    ],
)
def test_only_timeouts_throttling_and_overload_are_transient(status: int, transient: bool) -> None:
    assert ApiError(status=status, reason="", message="", body={}).transient is transient


async def test_missing_object_raises_not_found(client: KubeClient) -> None:
    with pytest.raises(ApiError) as raised:
        await client.get(f"{NODES}/nope")

    error = raised.value
    assert (error.status, error.reason) == (404, "NotFound")
    assert "nope" in error.message
    assert error.body["kind"] == "Status"
    assert not error.transient


async def test_creating_an_existing_name_raises_already_exists(client: KubeClient) -> None:
    await client.post(NODES, node("n1"))
    with pytest.raises(ApiError) as raised:
        await client.post(NODES, node("n1"))
    assert (raised.value.status, raised.value.reason) == (409, "AlreadyExists")


async def test_writing_a_stale_resource_version_raises_conflict(client: KubeClient) -> None:
    stale = await client.post(NODES, node("n1"))
    await client.patch(f"{NODES}/n1", {"spec": {"unschedulable": True}})

    with pytest.raises(ApiError) as raised:
        await client.put(f"{NODES}/n1", stale)
    assert (raised.value.status, raised.value.reason) == (409, "Conflict")


async def test_failed_json_patch_test_raises_invalid(client: KubeClient) -> None:
    await client.post(NODES, node("n1"))
    with pytest.raises(ApiError) as raised:
        await client.patch(f"{NODES}/n1", [{"op": "test", "path": "/spec", "value": {}}], patch="json")
    assert (raised.value.status, raised.value.reason) == (422, "Invalid")


@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "NotFound"), (502, "Bad Gateway"), (504, "Timeout")],
)
async def test_error_without_a_status_body_takes_its_reason_from_the_http_status(
    client: KubeClient, server: FakeApiServer, status: int, reason: str
) -> None:
    server.fail_next(1, status=status, body=b"<html>proxy says no</html>")

    with pytest.raises(ApiError) as raised:
        await client.get(NODES)

    assert (raised.value.status, raised.value.reason, raised.value.body) == (status, reason, {})
    assert "proxy says no" in raised.value.message


@pytest.mark.parametrize(
    ("patch", "body", "content_type"),
    [
        ("merge", {"spec": {"unschedulable": True}}, "application/merge-patch+json"),
        (
            "json",
            [{"op": "add", "path": "/spec", "value": {"unschedulable": True}}],
            "application/json-patch+json",
        ),
    ],
)
async def test_patch_type_reaches_the_server_as_its_content_type(
    client: KubeClient, server: FakeApiServer, patch: PatchType, body: Any, content_type: str
) -> None:
    await client.post(NODES, node("n1"))

    patched = await client.patch(f"{NODES}/n1", body, patch=patch)

    assert patched["spec"] == {"unschedulable": True}
    request = server.requests[-1]
    assert (request.method, request.content_type, request.body) == ("PATCH", content_type, body)


async def test_strategic_merge_patch_reaches_the_server_as_its_content_type(
    client: KubeClient, server: FakeApiServer
) -> None:
    await client.post(NODES, node("n1"))
    with pytest.raises(ApiError) as raised:  # the fake implements merge and JSON patches only
        await client.patch(f"{NODES}/n1", {"spec": {}}, patch="strategic")

    assert raised.value.reason == "UnsupportedMediaType"
    assert server.requests[-1].content_type == "application/strategic-merge-patch+json"


async def test_server_side_apply_sends_field_manager_and_force(
    client: KubeClient, server: FakeApiServer
) -> None:
    with pytest.raises(ApiError):  # the fake does not implement apply
        await client.patch(
            f"{NODES}/n1", node("n1"), patch="apply", field_manager="aisched-agent", force=True
        )

    request = server.requests[-1]
    assert request.content_type == "application/apply-patch+yaml"
    assert request.query == {"fieldManager": "aisched-agent", "force": "true"}


async def test_apply_without_a_field_manager_is_refused_before_sending(
    client: KubeClient, server: FakeApiServer
) -> None:
    with pytest.raises(ValueError, match="field_manager"):
        await client.patch(f"{NODES}/n1", node("n1"), patch="apply")
    assert server.requests == []


async def test_client_must_be_opened_before_use(server: FakeApiServer) -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await KubeClient(base_url=server.url).get(NODES)


# -- outages -----------------------------------------------------------------------------------


async def test_nothing_listening_raises_api_unavailable() -> None:
    async with KubeClient(base_url=f"http://127.0.0.1:{closed_port()}") as client:
        with pytest.raises(ApiUnavailable):
            await client.get(NODES)


async def test_server_down_raises_a_transient_service_unavailable_until_it_is_up(
    client: KubeClient, server: FakeApiServer
) -> None:
    server.down()
    with pytest.raises(ApiError) as raised:
        await client.get(NODES)
    assert (raised.value.status, raised.value.reason) == (503, "ServiceUnavailable")
    assert raised.value.transient

    server.up()
    assert (await client.get(NODES))["items"] == []


async def test_unanswered_request_times_out_as_api_unavailable(server: FakeApiServer) -> None:
    server.stall_next()
    async with KubeClient(base_url=server.url, timeout=0.05) as client:
        with pytest.raises(ApiUnavailable):
            await client.get(NODES)


# -- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    """A self-signed certificate for 127.0.0.1 that serves as CA, server and client cert."""

    cert: Path
    key: Path

    def server_context(self, *, require_client_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.cert)
        return context


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return Tls(cert, key)


def write_kubeconfig(
    path: Path, *, clusters: dict[str, dict[str, Any]], users: dict[str, dict[str, Any]], current: str
) -> str:
    """A kubeconfig with one context per cluster, named like it and its user."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster} for name, cluster in clusters.items()],
        "users": [{"name": name, "user": user} for name, user in users.items()],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}} for name in clusters],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


async def test_from_kubeconfig_sends_the_current_contexts_token(
    server: FakeApiServer, tmp_path: Path
) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters={"fake": {"server": server.url}, "other": {"server": "http://other.invalid"}},
        users={"fake": {"token": "t0ken"}, "other": {"token": "wrong"}},
        current="fake",
    )

    async with await KubeClient.from_kubeconfig(path) as client:
        await client.get(NODES)

    assert client.base_url == server.url
    assert server.requests[-1].headers["Authorization"] == "Bearer t0ken"


async def test_from_kubeconfig_honours_an_explicit_context(server: FakeApiServer, tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters={"fake": {"server": server.url}, "other": {"server": "http://other.invalid"}},
        users={"fake": {"token": "t0ken"}, "other": {"token": "wrong"}},
        current="other",
    )

    async with await KubeClient.from_kubeconfig(path, context="fake") as client:
        await client.get(NODES)

    assert server.requests[-1].headers["Authorization"] == "Bearer t0ken"


async def test_from_kubeconfig_trusts_its_ca_and_presents_its_client_certificate(
    tls: Tls, tmp_path: Path
) -> None:
    async with FakeApiServer(ssl_context=tls.server_context(require_client_cert=True)) as server:
        path = write_kubeconfig(
            tmp_path / "config",
            clusters={"tls": {"server": server.url, "certificate-authority-data": b64(tls.cert)}},
            users={"tls": {"client-certificate": str(tls.cert), "client-key-data": b64(tls.key)}},
            current="tls",
        )
        async with await KubeClient.from_kubeconfig(path) as client:
            assert (await client.get(NODES))["items"] == []
        assert client.token is None


async def test_from_kubeconfig_verifies_the_server_against_its_ca(tls: Tls, tmp_path: Path) -> None:
    async with FakeApiServer(ssl_context=tls.server_context(require_client_cert=False)) as server:
        path = write_kubeconfig(
            tmp_path / "config",
            clusters={"tls": {"server": server.url, "certificate-authority": certifi.where()}},
            users={"tls": {"token": "t"}},
            current="tls",
        )
        async with await KubeClient.from_kubeconfig(path) as client:
            with pytest.raises(ApiUnavailable, match=r"(?i)certificate"):
                await client.get(NODES)
        assert server.requests == []


async def test_from_kubeconfig_skips_verification_when_insecure(tls: Tls, tmp_path: Path) -> None:
    async with FakeApiServer(ssl_context=tls.server_context(require_client_cert=False)) as server:
        path = write_kubeconfig(
            tmp_path / "config",
            clusters={"tls": {"server": server.url, "insecure-skip-tls-verify": True}},
            users={"tls": {"token": "t"}},
            current="tls",
        )
        async with await KubeClient.from_kubeconfig(path) as client:
            assert (await client.get(NODES))["items"] == []


async def test_from_kubeconfig_without_a_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        await KubeClient.from_kubeconfig(str(tmp_path / "missing"))


def first_certificate_of(bundle: Path) -> str:
    text = bundle.read_text()
    end = "-----END CERTIFICATE-----"
    return text[text.index("-----BEGIN CERTIFICATE-----") : text.index(end) + len(end)] + "\n"


def service_account(directory: Path, *, token: str = "sa-token\n", ca: str | None = None) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "token").write_text(token)
    if ca is not None:
        (directory / "ca.crt").write_text(ca)
    return directory


def test_in_cluster_reads_the_service_account_and_service_address(tmp_path: Path) -> None:
    ca = first_certificate_of(Path(certifi.where()))
    directory = service_account(tmp_path / "sa", ca=ca)
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    client = KubeClient.in_cluster(directory=directory, environ=environ)

    assert client.base_url == "https://10.96.0.1:443"
    assert client.token == "sa-token"
    assert isinstance(client.ssl, ssl.SSLContext)
    assert client.ssl.verify_mode == ssl.CERT_REQUIRED
    assert client.ssl.get_ca_certs(binary_form=True) == [ssl.PEM_cert_to_DER_cert(ca)]


def test_in_cluster_brackets_an_ipv6_service_host(tmp_path: Path) -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    client = KubeClient.in_cluster(directory=service_account(tmp_path / "sa"), environ=environ)
    assert client.base_url == "https://[fd00::1]:6443"


@pytest.mark.parametrize(
    ("environ", "with_token"),
    [({}, True), ({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, False)],
)
def test_in_cluster_outside_a_cluster_raises_config_error(
    tmp_path: Path, environ: dict[str, str], with_token: bool
) -> None:
    directory = service_account(tmp_path / "sa") if with_token else tmp_path
    with pytest.raises(ConfigError):
        KubeClient.in_cluster(directory=directory, environ=environ)


async def test_rotated_token_file_is_reread_after_401(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("new\n")
    async with (
        FakeApiServer(token="new") as server,
        KubeClient(base_url=server.url, token="old", token_file=token_file) as client,
    ):
        await client.get(NODES)
        await client.get(NODES)

    sent = [request.headers["Authorization"] for request in server.requests]
    assert sent == ["Bearer old", "Bearer new", "Bearer new"]


async def test_401_with_an_unchanged_token_file_raises_unauthorized(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old")
    async with (
        FakeApiServer(token="new") as server,
        KubeClient(base_url=server.url, token="old", token_file=token_file) as client,
    ):
        with pytest.raises(ApiError) as raised:
            await client.get(NODES)

    assert (raised.value.status, raised.value.reason) == (401, "Unauthorized")
    assert len(server.requests) == 1


async def test_auto_prefers_explicit_then_kubeconfig_env_then_in_cluster_then_home(tmp_path: Path) -> None:
    def config(directory: str, host: str) -> str:
        (tmp_path / directory).mkdir(parents=True)
        cluster = {"c": {"server": f"http://{host}.invalid"}}
        return write_kubeconfig(
            tmp_path / directory / "config", clusters=cluster, users={"c": {}}, current="c"
        )

    explicit, from_env = config("explicit", "explicit"), config("env", "env")
    config("home/.kube", "home")
    account = service_account(tmp_path / "sa")
    cluster = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    every = {**cluster, "KUBECONFIG": from_env, "HOME": str(tmp_path / "home")}

    async def chosen(kubeconfig: str | None, environ: dict[str, str]) -> str:
        client = await KubeClient.auto(kubeconfig, environ=environ, service_account_dir=account)
        return client.base_url

    assert await chosen(explicit, every) == "http://explicit.invalid"
    assert await chosen(None, every) == "http://env.invalid"
    assert await chosen(None, {**every, "KUBECONFIG": ""}) == "https://10.96.0.1:443"
    assert await chosen(None, {"HOME": str(tmp_path / "home")}) == "http://home.invalid"


# -- watch -------------------------------------------------------------------------------------


async def collect(client: KubeClient, path: str, **params: str | int | bool) -> list[dict[str, Any]]:
    return [event async for event in client.watch(path, params=params)]


async def test_watch_yields_the_collections_events_then_ends(
    client: KubeClient, server: FakeApiServer
) -> None:
    await client.post(TOPOLOGIES, {"metadata": {"name": "a"}})
    await client.post(TOPOLOGIES, {"metadata": {"name": "b"}})
    await client.post(NODES, node("n1"))

    events = await collect(client, TOPOLOGIES, timeoutSeconds=30, allowWatchBookmarks=True)

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("ADDED", "b")]
    query = server.requests[-1].query
    assert query == {"watch": "true", "timeoutSeconds": "30", "allowWatchBookmarks": "true"}


async def test_watch_reads_events_longer_than_aiohttps_line_limit(client: KubeClient) -> None:
    big = "x" * 512 * 1024  # aiohttp's readline stops at 128 KiB
    await client.post(NODES, node("big", metadata={"name": "big", "annotations": {"a": big}}))
    await client.post(NODES, node("small"))

    events = await collect(client, NODES)

    assert [e["object"]["metadata"]["name"] for e in events] == ["big", "small"]
    assert events[0]["object"]["metadata"]["annotations"]["a"] == big


async def test_watch_from_a_compacted_resource_version_raises_expired(
    client: KubeClient, server: FakeApiServer
) -> None:
    await client.post(NODES, node("n1"))
    await client.post(NODES, node("n2"))
    server.compact()

    with pytest.raises(ApiError) as raised:
        await collect(client, NODES, resourceVersion="1")
    assert (raised.value.status, raised.value.reason) == (410, "Expired")


async def test_watch_of_a_down_server_raises_service_unavailable(
    client: KubeClient, server: FakeApiServer
) -> None:
    server.down()
    with pytest.raises(ApiError) as raised:
        await collect(client, NODES)
    assert raised.value.status == 503


async def test_watch_with_nothing_listening_raises_api_unavailable() -> None:
    async with KubeClient(base_url=f"http://127.0.0.1:{closed_port()}") as client:
        with pytest.raises(ApiUnavailable):
            await collect(client, NODES)
