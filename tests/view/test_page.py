"""The page and its sections: every node named on a small cluster, racks as links on a big one,
cluster-given names shown as text wherever they appear, the page's own script the only one."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from typing import cast

from aisched.api import keys
from aisched.framework.reservations import Reservation
from aisched.quota import Tenant
from aisched.topology.gpu import GPUTopology
from aisched.topology.node import NodeInfo
from aisched.view import build_view
from aisched.view.assets import CSP
from aisched.view.markup import Markup, el, join, text
from aisched.view.model import ClusterView
from aisched.view.page import SECTIONS, page, payload, sections, standby_page
from tests.view.cluster import WALL, Cluster, Unreadable, held, node, pending, unhealthy

EVIL = "<script>alert(1)</script>"
QUOTED = '"><img src=x onerror=alert(2)>'


class Parsed(HTMLParser):
    """The elements, attributes and text of a page, as a browser's parser reads them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self._in_script = False
        self.scripts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.texts).append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def attribute_values(self, name: str) -> list[str]:
        return [value for _, attrs in self.tags if (value := attrs.get(name)) is not None]


def view_of(cluster: Cluster, *, rack: str | None = None) -> ClusterView:
    return build_view(cluster.runtime, now=WALL, rack=rack)


def test_markup_escapes_text_and_attribute_values_and_passes_only_markup_through() -> None:
    made = el(
        "a",
        {"href": QUOTED, "hidden": True, "title": None, "open": False},
        EVIL,
        3,
        [None, el("b", None, "&")],
    )

    assert made == (
        '<a href="&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" hidden>'
        "&lt;script&gt;alert(1)&lt;/script&gt;3<b>&amp;</b></a>"
    )
    assert join(EVIL, Markup("<br>")) == "&lt;script&gt;alert(1)&lt;/script&gt;<br>"
    assert text("<&>") == "&lt;&amp;&gt;"
    assert el("br") == "<br>"


def hostile() -> Cluster:
    """A cluster where every name a user or an admin chooses is markup."""
    tenant = Tenant(name=EVIL, namespaces=frozenset({"ml"}), guaranteed={keys.GPU_RESOURCE: 8000})
    cluster = Cluster(node(EVIL, rack=QUOTED, block=EVIL), tenants=[tenant])
    cluster.bind(held(f"ml/{EVIL}", EVIL, gpus=8, mask=0xFF, gang=f"ml/gang:{EVIL}"))
    cluster.submit(pending(EVIL, namespace="web", gpus=9))  # the reason will name the node
    cluster.cycle()
    cluster.submit(pending(f"{QUOTED}x", namespace="web", gpus=1, created="2026-12-01T00:03:00Z"))
    return cluster


def test_names_from_the_cluster_show_as_text_and_no_markup_of_theirs_is_parsed() -> None:
    html = page(view_of(hostile()))
    parsed = Parsed(html)

    assert EVIL in parsed.text  # the pod, job, tenant, node and block names, shown as they are
    assert parsed.text.count(EVIL) >= 4
    assert [tag for tag, _ in parsed.tags].count("script") == 1  # the page's own, nothing else
    assert "img" not in [tag for tag, _ in parsed.tags]
    assert not any(name.startswith("on") for _, attrs in parsed.tags for name in attrs)
    assert any(EVIL in title for title in parsed.attribute_values("title"))  # tooltips too
    assert "<script>alert" not in html


def test_a_hostile_rack_name_stays_inside_its_link() -> None:
    cluster = Cluster(*(node(f"n{i}", rack=QUOTED if i == 0 else "r1") for i in range(70)))

    parsed = Parsed(page(view_of(cluster)))

    assert "./?rack=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E" in parsed.attribute_values("href")
    assert "img" not in [tag for tag, _ in parsed.tags]


def test_a_small_cluster_page_names_every_node_before_any_script_runs() -> None:
    cluster = Cluster(*(node(f"gpu-{i}", rack=f"r{i // 8}", block="b") for i in range(64)))
    cluster.bind(held("ml/train-0", "gpu-3", gpus=8, mask=0xFF, gang="ml/gang:train"))

    parsed = Parsed(page(view_of(cluster)))

    names = set(parsed.attribute_values("data-node"))
    assert names == {f"gpu-{i}" for i in range(64)}
    assert all(f"gpu-{i}" in parsed.text for i in range(64))
    held_titles = [t for t in parsed.attribute_values("title") if "job train" in t]
    assert len(held_titles) == 8  # one tooltip per GPU the job holds


def test_a_big_cluster_page_shows_racks_as_links_and_a_zoomed_one_its_nodes() -> None:
    cluster = Cluster(*(node(f"gpu-{i}", rack=f"r{i // 8}") for i in range(80)))
    cluster.runtime.cache.set_node(unhealthy(node("gpu-17", rack="r2"), 0))

    whole = Parsed(page(view_of(cluster)))
    zoomed = Parsed(page(view_of(cluster, rack="r2")))

    assert whole.attribute_values("data-node") == []
    assert set(whole.attribute_values("data-rack")) == {f"r{i}" for i in range(10)}
    assert "./?rack=r2" in whole.attribute_values("href")
    assert "1 ✕" in whole.text
    assert zoomed.attribute_values("data-node") == [f"gpu-{i}" for i in range(16, 24)]
    assert "all racks" in zoomed.text


def test_a_rack_that_does_not_exist_is_said_and_the_racks_offered() -> None:
    cluster = Cluster(*(node(f"gpu-{i}", rack=f"r{i // 8}") for i in range(80)))

    parsed = Parsed(page(view_of(cluster, rack="r99")))

    assert "No rack is named r99." in parsed.text
    assert len(parsed.attribute_values("data-rack")) == 10


def test_every_section_fills_an_element_of_the_page() -> None:
    view = view_of(hostile())
    ids = set(Parsed(page(view)).attribute_values("id"))

    assert set(SECTIONS) <= ids
    assert set(sections(view)) == set(SECTIONS)


def test_the_policy_lets_exactly_the_pages_script_run() -> None:
    scripts = Parsed(page(view_of(Cluster(node("n1"))))).scripts
    digest = base64.b64encode(hashlib.sha256("".join(scripts).encode()).digest()).decode()

    assert f"script-src 'sha256-{digest}'" in CSP
    assert "default-src 'none'" in CSP


def test_the_json_is_the_view_as_plain_data_with_the_sections_when_asked() -> None:
    view = view_of(hostile())

    plain = json.loads(json.dumps(payload(view, html=False)))
    with_html = payload(view, html=True)

    assert plain["leading"] is True
    assert plain["view"]["summary"]["nodes"] == 1
    assert plain["view"]["queue"]["total"] == 2
    assert "html" not in plain
    assert set(with_html["html"]) == set(SECTIONS)
    assert EVIL not in "".join(with_html["html"].values())
    assert payload(None, html=True) == {"leading": False}


def test_a_replica_that_does_not_lead_says_so() -> None:
    parsed = Parsed(standby_page())

    assert "This replica is not leading" in parsed.text
    assert ("body", {"data-leading": "false", "data-refreshes": "0"}) in parsed.tags


def test_what_could_not_be_read_is_said_on_the_page() -> None:
    view = view_of(Cluster(node("n1")))
    broken = replace(view, problems=("the queue could not be read: KeyError: 'x'",))

    assert "the queue could not be read: KeyError: 'x'" in Parsed(page(broken)).text


def test_the_page_counts_and_times_read_as_a_person_reads_them() -> None:
    cluster = Cluster(node("n1"))
    cluster.bind(held("ml/a", "n1", mask=1, gpu_milli=250))

    text_ = Parsed(page(view_of(cluster))).text

    assert re.search(r"GPUs in use\s*0\.25\s*/ 8", text_)
    assert "updated 08:00:00Z" in text_  # WALL, in UTC


def test_nodes_held_for_a_waiting_gang_are_marked_where_it_will_start_and_where_it_may() -> None:
    cluster = Cluster(node("n1"), node("n2"), node("n3"))
    reservation = Reservation(
        gang="ml/gang:ddp", queue="namespace/ml", order=(0, 0.0, 0, "ml/gang:ddp"), nodes=("n1",),
        spare=("n2",), start=None, end=None, since=WALL,
    )  # fmt: skip
    cluster.runtime.scheduler.reservations.hold(reservation)

    parsed = Parsed(page(view_of(cluster)))

    classes = {attrs["data-node"]: attrs.get("class") for _, attrs in parsed.tags if "data-node" in attrs}
    assert classes == {"n1": "node reserved", "n2": "node held", "n3": "node"}
    assert "reserved: ddp" in parsed.text


def test_a_node_that_cannot_be_read_is_named_with_its_error_and_the_page_still_served() -> None:
    broken = NodeInfo(name="broken", labels={keys.LABEL_RACK: "r1"}, gpus=cast("GPUTopology", Unreadable()))
    cluster = Cluster(broken, node("fine", rack="r1"))

    parsed = Parsed(page(view_of(cluster)))

    assert parsed.attribute_values("data-node") == ["broken", "fine"]
    assert any(
        "could not be read: ValueError: cannot read gpus" in t for t in parsed.attribute_values("title")
    )
