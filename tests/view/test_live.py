"""The cluster view of a running operator (Kopf, leader election, informers, scheduler, binder)
against the emulator: served on its metrics port, then read by a real headless Chromium.

The cluster: 32 DGX H100 nodes in 4 racks, one GPU reported unhealthy; a 16-GPU AIJob of tenant
`research`, a pod on a quarter of a GPU, a pod too big for any node, and a pod whose tenant
annotation is markup. The browser tests need Chromium (`apt-get install chromium`): without it
they are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from aisched.controllers.kopf_handlers import Connection, run_operator
from aisched.controllers.manager import Manager
from aisched.emulator.faults import gpu_health
from aisched.emulator.runner import Emulator
from aisched.kube.client import JsonObject, KubeClient
from aisched.runner import DEFAULT_CLUSTER, ensure_namespace
from aisched.view.browser import dump_dom, find_chromium, screenshot
from tests.support.objects import gpu_quota
from tests.test_operator import AIJOBS, NAMESPACE, PODS, WAIT, job, phase, settings, until

EVIL: Final = "<script>alert(1)</script>"
SICK_NODE: Final = "b-013"
NODES: Final = [f"{group}-{i:03d}" for group in "ab" for i in range(16)]


@dataclass
class Live:
    kube: KubeClient
    manager: Manager
    url: str


def pod(name: str, *, gpus: int = 0, annotations: dict[str, str] | None = None) -> JsonObject:
    limits: dict[str, Any] = {"nvidia.com/gpu": gpus} if gpus else {}
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations or {}},
        "spec": {
            "schedulerName": "aisched",
            "containers": [{"name": "c", "image": "x", "resources": {"limits": limits}}],
        },
    }


def turned_away(pods: dict[str, JsonObject], name: str) -> bool:
    conditions = (pods.get(name, {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conditions)


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    """The operator on the 4-rack cluster, once the job runs, the shared pod is bound and the two
    pods that cannot run have been turned away."""
    async with Emulator(cluster=DEFAULT_CLUSTER) as api, KubeClient(base_url=api.url, timeout=10.0) as kube:
        ensure_namespace(api, "aisched-system")
        await kube.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        await gpu_health(kube, SICK_NODE, 2, xid=79)  # before the operator lists it: no wait
        await kube.post(
            "/apis/aisched.io/v1alpha1/tenantquotas",
            gpu_quota("research", [NAMESPACE], guaranteed=32, maximum=64),
        )
        made = asyncio.Event()
        managers: list[Manager] = []

        def keep(manager: Manager) -> None:
            managers.append(manager)
            made.set()

        stop = asyncio.Event()
        task = asyncio.create_task(
            run_operator(Connection(server=api.url), settings(), stop=stop, on_manager=keep)
        )
        try:
            async with asyncio.timeout(WAIT):
                await made.wait()
                await managers[0].leading.wait()
            await kube.post(AIJOBS, job("ddp"))
            await kube.post(PODS, pod("notebook", annotations={"aisched.io/gpu-milli": "250"}))
            await kube.post(PODS, pod("too-big", gpus=9))
            await kube.post(PODS, pod("intruder", gpus=1, annotations={"aisched.io/tenant": EVIL}))
            await until(kube, AIJOBS, lambda jobs: phase(jobs, "ddp") == "Running")
            await until(
                kube,
                PODS,
                lambda pods: (
                    bool(pods.get("notebook", {}).get("spec", {}).get("nodeName"))
                    and turned_away(pods, "too-big")
                    and turned_away(pods, "intruder")
                ),
            )
            url = managers[0].url
            assert url is not None
            yield Live(kube, managers[0], url)
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                assert await task == 0, "the operator exited with an error"


async def test_the_operator_serves_the_view_of_its_cluster_on_its_metrics_port(live: Live) -> None:
    async with aiohttp.ClientSession(base_url=live.url) as http:
        async with http.get("/") as response:
            assert response.status == 200
            page = await response.text()
        async with http.get("/api/view") as response:
            view = (await response.json())["view"]
        async with http.get("/metrics") as response:
            assert response.status == 200

    assert all(f'data-node="{name}"' in page for name in NODES)  # before any script runs
    summary = view["summary"]
    assert (summary["nodes"], summary["gpus"], summary["gpus_unhealthy"]) == (32, 256, 1)
    assert summary["used"] == 16_250  # the job's 16 GPUs and the notebook's quarter
    assert summary["jobs"] == {"Running": 1}
    assert {w["job"] for w in view["queue"]["waiting"]} == {"too-big", "intruder"}
    (research,) = [t for t in view["tenants"] if t["name"] == "research"]
    assert (research["used"], research["guaranteed"]) == (16_250, 32_000)
    assert any(d["gang"] == f"{NAMESPACE}/gang:ddp" and d["result"] == "scheduled" for d in view["decisions"])


# -- in a real browser ----------------------------------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    found = find_chromium()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true and no Chromium is installed (.ci/run installs it: apt-get install chromium)"
            )
        pytest.skip("no Chromium installed (apt-get install chromium); under CI=true this fails instead")
    return found


class Dom(HTMLParser):
    """The elements and text of the DOM Chromium dumped."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    @property
    def text(self) -> str:
        return " ".join(self.texts)

    def values(self, attribute: str) -> list[str]:
        return [attrs[attribute] for _, attrs in self.elements if attribute in attrs]

    def gpus(self, kind: str) -> list[dict[str, str]]:
        """The GPU squares of the map (not the legend's) whose classes include `kind`."""
        return [a for _, a in self.elements if "data-gpu" in a and kind in a.get("class", "").split()]


async def test_a_browser_shows_every_node_the_gpus_a_job_holds_the_queue_and_the_tenants(
    chromium: str, live: Live, tmp_path: Path
) -> None:
    # 6.5 s of virtual time: the page's script refreshes it once from /api/view (every 5 s).
    dom = Dom(await dump_dom(f"{live.url}/", virtual_ms=6500, chromium=chromium))

    (body,) = [attrs for tag, attrs in dom.elements if tag == "body"]
    assert body["data-refreshes"] == "1", "the page's script ran under its policy and refreshed the page"
    assert dom.values("data-node") == NODES
    held = [t for t in dom.values("title") if "job ddp · tenant research" in t]
    assert len(held) == 16, "every GPU of the job names it and its tenant"
    assert any("0.25 of the GPU · job notebook" in t for t in dom.values("title"))
    (sick,) = dom.gpus("bad")
    assert sick["title"].splitlines()[0] == "GPU 2 · H100-80GB · 80 GiB · UNHEALTHY"
    assert set(dom.values("data-gang")) == {f"{NAMESPACE}/too-big", f"{NAMESPACE}/intruder"}
    assert "0/32 nodes are available" in dom.text
    assert "research" in dom.values("data-tenant")
    assert EVIL in dom.text, "the annotation's markup is shown as text"
    assert [tag for tag, _ in dom.elements].count("script") == 1, "no script but the page's own"

    shot = tmp_path / "view.png"
    await screenshot(f"{live.url}/", shot, width=1400, height=1000, chromium=chromium)
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1400, 1000)
