"""The health server: `/metrics` serves the registry, `/healthz` and `/readyz` follow their callbacks."""

from __future__ import annotations

import aiohttp
import pytest

from aisched.observability.http import HealthServer
from aisched.observability.metrics import Metrics


class Switch:
    """A probe callback the test flips between requests."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self) -> bool:
        return self.on


async def test_metrics_endpoint_serves_the_rendered_text_format() -> None:
    metrics = Metrics()
    metrics.observe_cycle("scheduled", 0.001)
    metrics.set_gpus_allocated(16)

    async with (
        HealthServer(metrics, host="127.0.0.1", port=0, ready=Switch(True), live=Switch(True)) as server,
        aiohttp.ClientSession(base_url=server.url) as http,
        http.get("/metrics") as response,
    ):
        body = await response.text()
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'aisched_scheduling_attempts_total{profile="aisched",result="scheduled"} 1.0' in body
    assert "aisched_gpus_allocated 16.0" in body


async def test_metrics_endpoint_reflects_observations_made_while_serving() -> None:
    metrics = Metrics()
    async with (
        HealthServer(metrics, host="127.0.0.1", port=0, ready=Switch(True), live=Switch(True)) as server,
        aiohttp.ClientSession(base_url=server.url) as http,
    ):
        metrics.binding_error("not_found")
        async with http.get("/metrics") as response:
            body = await response.text()
    assert 'aisched_binding_errors_total{reason="not_found"} 1.0' in body


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probe_endpoints_follow_their_callbacks(path: str) -> None:
    live, ready = Switch(True), Switch(True)
    probed = live if path == "/healthz" else ready
    other = ready if probed is live else live

    async with (
        HealthServer(Metrics(), host="127.0.0.1", port=0, ready=ready, live=live) as server,
        aiohttp.ClientSession(base_url=server.url) as http,
    ):
        async with http.get(path) as response:
            assert response.status == 200
        probed.on = False
        async with http.get(path) as response:
            assert response.status == 503
            assert "not" in await response.text()
        other.on = False
        probed.on = True
        async with http.get(path) as response:
            assert response.status == 200


async def test_port_zero_binds_a_free_port_and_stopping_releases_it() -> None:
    server = HealthServer(Metrics(), host="127.0.0.1", port=0, ready=Switch(True), live=Switch(True))
    async with server:
        port = int(server.url.rsplit(":", 1)[1])
        assert port > 0
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/healthz") as response:
            assert response.status == 200
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{port}/healthz")


async def test_the_server_listens_on_the_address_it_is_given() -> None:
    async with HealthServer(
        Metrics(), host="127.0.0.1", port=0, ready=Switch(True), live=Switch(True)
    ) as server:
        assert server.url.startswith("http://127.0.0.1:")


async def test_an_address_this_machine_does_not_have_is_a_clear_error() -> None:
    server = HealthServer(Metrics(), host="192.0.2.1", port=0, ready=Switch(True), live=Switch(True))
    with pytest.raises(OSError, match=r"cannot serve metrics on 192\.0\.2\.1:0: "):
        await server.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


async def test_the_explain_endpoint_answers_knows_nothing_or_fails_alone() -> None:
    def explain(namespace: str, name: str) -> dict[str, object] | None:
        if name == "broken":
            raise RuntimeError("a bug")
        return {"object": {"namespace": namespace, "name": name}} if name == "known" else None

    async with (
        HealthServer(
            Metrics(), host="127.0.0.1", port=0, ready=Switch(True), live=Switch(True), explain=explain
        ) as server,
        aiohttp.ClientSession(base_url=server.url) as http,
    ):
        async with http.get("/api/explain/pods/ml/known") as response:
            assert response.status == 200
            assert await response.json() == {"object": {"namespace": "ml", "name": "known"}}
        async with http.get("/api/explain/pods/ml/other") as response:
            assert response.status == 404
            assert "does not know pod ml/other" in (await response.json())["error"]
        async with http.get("/api/explain/pods/ml/broken") as response:
            assert response.status == 500
            assert (await response.json())["error"] == "explain failed: RuntimeError"
        async with http.get("/healthz") as response:
            assert response.status == 200  # the rest still answers
