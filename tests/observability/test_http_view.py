"""The cluster view on the metrics port: `/` the page (a standby page while not leading), `/api/view`
the JSON; the rack asked for reaches the view source; a failing view breaks nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from aisched.observability.http import HealthServer
from aisched.observability.metrics import Metrics
from aisched.view import build_view
from aisched.view.model import ClusterView
from tests.observability.test_http import Switch
from tests.view.cluster import WALL, Cluster, held, node


class Views:
    """A view source over a small cluster; records the racks asked for. `leading` False: None."""

    def __init__(self) -> None:
        self.cluster = Cluster(node("gpu-a", rack="r1"), node("gpu-b", rack="r1"))
        self.cluster.bind(held("ml/train-0", "gpu-a", gpus=8, mask=0xFF, gang="ml/gang:train"))
        self.leading = True
        self.fail = False
        self.asked: list[str | None] = []

    def __call__(self, *, rack: str | None) -> ClusterView | None:
        self.asked.append(rack)
        if self.fail:
            raise RuntimeError("a bug")
        return build_view(self.cluster.runtime, now=WALL, rack=rack) if self.leading else None


@pytest.fixture
def views() -> Views:
    return Views()


@pytest.fixture
async def http(views: Views) -> AsyncIterator[aiohttp.ClientSession]:
    server = HealthServer(
        Metrics(), host="127.0.0.1", port=0, ready=Switch(True), live=Switch(True), view=views
    )
    async with server, aiohttp.ClientSession(base_url=server.url) as session:
        yield session


async def test_the_page_is_served_at_the_root_with_a_policy_that_runs_only_its_script(
    http: aiohttp.ClientSession, views: Views
) -> None:
    async with http.get("/") as response:
        body = await response.text()
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "script-src 'sha256-" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
    assert 'data-node="gpu-a"' in body
    assert 'data-node="gpu-b"' in body
    assert views.asked == [None]


async def test_the_rack_asked_for_reaches_the_view(http: aiohttp.ClientSession, views: Views) -> None:
    async with http.get("/", params={"rack": "r1"}) as response:
        assert response.status == 200
    async with http.get("/api/view", params={"rack": "r1"}) as response:
        assert (await response.json())["view"]["rack"] == "r1"
    async with http.get("/", params={"rack": "x" * 300}) as response:
        assert response.status == 400
    assert views.asked == ["r1", "r1"]


async def test_the_json_is_the_view_and_with_html_the_pages_sections(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/view") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        plain = await response.json()
    async with http.get("/api/view", params={"html": "1"}) as response:
        refresh = await response.json()

    assert plain["leading"] is True
    assert [r["name"] for b in plain["view"]["blocks"] for r in b["racks"]] == ["r1"]
    assert "html" not in plain
    assert "gpu-a" in refresh["html"]["map"]
    assert refresh["updated"] == "08:00:00Z"


async def test_a_replica_that_does_not_lead_answers_with_a_page_saying_so(
    http: aiohttp.ClientSession, views: Views
) -> None:
    views.leading = False

    async with http.get("/") as response:
        assert response.status == 200
        assert "This replica is not leading" in await response.text()
    async with http.get("/api/view") as response:
        assert await response.json() == {"leading": False}


async def test_a_failing_view_is_an_error_and_metrics_and_probes_still_answer(
    http: aiohttp.ClientSession, views: Views
) -> None:
    views.fail = True

    async with http.get("/") as response:
        assert response.status == 500
        assert "the cluster view failed: RuntimeError" in await response.text()
    async with http.get("/api/view") as response:
        assert response.status == 500
    for path in ("/metrics", "/healthz", "/readyz"):
        async with http.get(path) as response:
            assert response.status == 200


async def test_without_a_view_source_there_is_no_page() -> None:
    server = HealthServer(Metrics(), host="127.0.0.1", port=0, ready=Switch(True), live=Switch(True))
    async with server, aiohttp.ClientSession(base_url=server.url) as http, http.get("/") as response:
        assert response.status == 404
