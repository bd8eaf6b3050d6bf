"""The cluster view as one HTML page, and the same sections for the page's refresh.

`page(view)` is the whole page, readable before (or without) any script: summary cards, the GPU
map with its legend (`gpumap`), the queue, the tenants and the recent decisions. `sections(view)`
renders each section again for `/api/view?html=1`, keyed by the id of the element it fills, and
`payload(view)` is what `/api/view` answers. `standby_page()` is what a replica that does not
lead serves. Every name from the cluster goes through `markup`, which escapes it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from aisched.view.assets import SCRIPT, STYLE
from aisched.view.gpumap import colour, domain, gpus, legend, map_section, rack_href
from aisched.view.markup import Child, Markup, el, join
from aisched.view.model import ClusterView, Decision, Queue, TenantUsage, Waiting
from aisched.view.nodes import job_name

__all__ = ["SECTIONS", "page", "payload", "sections", "stamp", "standby_page"]

_TITLE: Final = "aisched · cluster view"
_NODES_IN_DECISION: Final = 4


def stamp(at: float) -> str:
    """`at` (epoch seconds) as a time of day in UTC: `14:03:07Z`."""
    return time.strftime("%H:%M:%SZ", time.gmtime(at))


def _waited(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


# -- the page ---------------------------------------------------------------------------------------


def _document(body: Markup, *, leading: bool, rack: str | None, live: str) -> str:
    head = el(
        "head",
        None,
        el("meta", {"charset": "utf-8"}),
        el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
        el("title", None, _TITLE if rack is None else f"rack {rack} · {_TITLE}"),
        el("style", None, Markup(STYLE)),
    )
    crumbs = (
        el("nav", {"class": "crumbs"}, el("a", {"href": rack_href(None)}, "all racks"), f" › rack {rack}")
        if rack is not None
        else el("nav", {"class": "crumbs"}, "all racks")
    )
    header = el(
        "header",
        {"class": "top"},
        el("div", {"class": "brand"}, "aisched", el("span", None, "cluster view")),
        crumbs if leading else None,
        el("div", {"id": "live", "class": "live ok" if leading else "live"}, live),
    )
    body_attrs = {"data-leading": "true" if leading else "false", "data-refreshes": "0"}
    return "<!doctype html>\n" + el(
        "html",
        {"lang": "en"},
        head,
        el("body", body_attrs, header, body, el("script", None, Markup(SCRIPT))),
    )


def page(view: ClusterView) -> str:
    """The whole page of `view`."""
    parts = sections(view)
    main = el(
        "main",
        None,
        el("section", {"id": "summary", "class": "cards"}, parts["summary"]),
        el("div", {"id": "problems"}, parts["problems"]),
        el(
            "section",
            {"class": "panel"},
            el("h2", None, "GPU map", el("small", None, _map_note(view))),
            el("div", {"id": "legend", "class": "legend"}, parts["legend"]),
            el("div", {"id": "map"}, parts["map"]),
        ),
        el(
            "div",
            {"class": "columns"},
            el(
                "section",
                {"class": "panel"},
                el("h2", None, "Queue"),
                el("div", {"id": "queue"}, parts["queue"]),
            ),
            el(
                "div",
                {"class": "stack"},
                el(
                    "section",
                    {"class": "panel"},
                    el("h2", None, "Tenants", el("small", None, "GPUs used against guarantee and max")),
                    el("div", {"id": "tenants"}, parts["tenants"]),
                ),
                el(
                    "section",
                    {"class": "panel"},
                    el("h2", None, "Recent decisions"),
                    el("div", {"id": "decisions"}, parts["decisions"]),
                ),
            ),
        ),
    )
    return _document(main, leading=True, rack=view.rack, live=f"updated {stamp(view.generated_at)}")


def standby_page() -> str:
    """What a replica that does not lead serves: it knows no cluster state."""
    main = el(
        "main",
        None,
        el(
            "section",
            {"class": "panel standby"},
            el("h1", None, "This replica is not leading"),
            el(
                "p",
                None,
                "Only the replica holding the leader Lease schedules and knows the cluster's state. "
                "Open this page on the leader (the Service in front of the scheduler sends you to "
                "any replica). This page reloads itself when this replica starts leading.",
            ),
        ),
    )
    return _document(main, leading=False, rack=None, live="standby")


def _map_note(view: ClusterView) -> str:
    if view.rack is not None:
        return f"rack {domain(view.rack, 'rack')} · blocks by {view.block_label}, racks by {view.rack_label}"
    return f"blocks by {view.block_label}, racks by {view.rack_label}"


# -- the sections -----------------------------------------------------------------------------------------


def sections(view: ClusterView) -> dict[str, Markup]:
    """Each section of the page, by the id of the element it fills."""
    return {name: render(view) for name, render in SECTIONS.items()}


def _summary(view: ClusterView) -> Markup:
    s = view.summary
    share = f"{100 * s.used / (s.gpus * 1000):.0f}% in use" if s.gpus else "no GPUs"
    depth = view.queue.states
    waiting = ", ".join(f"{n} {state}" for state, n in depth.items() if n) or "nothing waiting"
    by_count = sorted(s.jobs.items(), key=lambda item: (-item[1], item[0]))
    jobs = ", ".join(f"{n} {phase}" for phase, n in by_count) or "none"
    return join(
        _card("Nodes", f"{s.nodes_ready}", f"/ {s.nodes}", _nodes_note(view)),
        _card("GPUs in use", gpus(s.used), f"/ {s.gpus}", share),
        _card(
            "Unhealthy GPUs",
            str(s.gpus_unhealthy),
            "",
            "as the node agents report",
            alert=s.gpus_unhealthy > 0,
        ),
        _card("Queue", str(view.queue.total), "gangs", waiting),
        _card("Pods", str(s.pods), "", f"{s.binding} binding" if s.binding else "all bound"),
        _card("Reservations", str(s.reservations), "", "held for waiting gangs"),
        _card("AIJobs", str(sum(s.jobs.values())), "", jobs),
    )


def _nodes_note(view: ClusterView) -> str:
    s = view.summary
    notes = [f"{s.nodes - s.nodes_ready} not ready" if s.nodes > s.nodes_ready else "all ready"]
    if s.nodes_cooling:
        notes.append(f"{s.nodes_cooling} cooling down")
    return ", ".join(notes)


def _card(key: str, value: str, unit: str, note: str, *, alert: bool = False) -> Markup:
    return el(
        "div",
        {"class": "card alert" if alert else "card"},
        el("div", {"class": "k"}, key),
        el("div", {"class": "v"}, value, el("small", None, f" {unit}") if unit else None),
        el("div", {"class": "s", "title": note}, note),
    )


def _problems(view: ClusterView) -> Markup:
    if not view.problems:
        return Markup("")
    return el(
        "section",
        {"class": "panel problems"},
        "Shown in part:",
        el("ul", None, (el("li", None, p) for p in view.problems)),
    )


def _table(head: Sequence[str], rows: Iterable[Markup], *, css: str | None = None) -> Markup:
    """A table with one header row: each of `head` a column title, `:num` after it for a column of
    numbers (right-aligned)."""
    cells = (
        el("th", {"class": "num"}, title.removesuffix(":num"))
        if title.endswith(":num")
        else el("th", None, title)
        for title in head
    )
    return el(
        "table",
        {"class": css} if css else None,
        el("thead", None, el("tr", None, *cells)),
        el("tbody", None, rows),
    )


# -- the queue -------------------------------------------------------------------------------------------


def _queue(view: ClusterView) -> Markup:
    queue: Queue = view.queue
    if not queue.waiting:
        return el("p", {"class": "empty"}, "No gang is waiting.")
    rows = [_waiting_row(w) for w in queue.waiting]
    rest = queue.total - len(queue.waiting)
    head = ("#:num", "job", "tenant", "state", "pods:num", "GPUs:num", "waited:num", "why it waits")
    return join(
        _table(head, rows),
        el("p", {"class": "more"}, f"and {rest} more waiting") if rest > 0 else None,
    )


def _waiting_row(waiting: Waiting) -> Markup:
    place = f"{waiting.position}/{waiting.length}" if waiting.position else "aside"
    place_title = (
        f"queue {waiting.queue} ({waiting.strategy})"
        if waiting.position
        else f"queue {waiting.queue}: out of line, it fits no node even on an empty cluster"
    )
    why: list[Child] = [waiting.reason or "not tried yet"]
    if waiting.reservation:
        why = [el("span", {"class": "flag res"}, "reserved"), " ", *why]
    why_title = "\n".join(x for x in (waiting.reason, waiting.reservation) if x) or None
    size = f"{waiting.pods}" if waiting.pods == waiting.min_member else f"{waiting.min_member}–{waiting.pods}"
    return el(
        "tr",
        {"data-gang": waiting.gang},
        el("td", {"class": "num", "title": place_title}, place),
        el("td", {"class": "nowrap", "title": f"{waiting.gang} · priority {waiting.priority}"}, waiting.job),
        el("td", {"class": "nowrap"}, _swatch(waiting.owner), waiting.tenant or waiting.namespace),
        el("td", None, el("span", {"class": f"state {waiting.state}"}, waiting.state or "–")),
        el("td", {"class": "num"}, size),
        el("td", {"class": "num"}, gpus(waiting.gpus)),
        el("td", {"class": "num"}, _waited(waiting.waited)),
        el("td", {"class": "reason", "title": why_title}, el("div", {"class": "clamp"}, why)),
    )


def _swatch(owner: str) -> Markup:
    return el("i", {"class": "dot o", "style": colour(owner)})


# -- tenants ---------------------------------------------------------------------------------------------


def _tenants(view: ClusterView) -> Markup:
    if not view.tenants:
        return el("p", {"class": "empty"}, "No TenantQuota, and no GPU held.")
    head = ("tenant", "used:num", "", "guaranteed:num", "max:num", "borrowed:num")
    return _table(head, (_tenant_row(t) for t in view.tenants))


def _tenant_row(tenant: TenantUsage) -> Markup:
    scale = max(tenant.maximum or 0, tenant.guaranteed or 0, tenant.used, 1)
    marker = (
        el("b", {"style": f"left:{100 * tenant.guaranteed / scale:.1f}%", "title": "guaranteed"})
        if tenant.guaranteed
        else None
    )
    bar = el(
        "div",
        {"class": "quota"},
        el("i", {"class": "o", "style": f"{colour(tenant.owner)};width:{100 * tenant.used / scale:.1f}%"}),
        marker,
    )
    about = [f"namespaces: {', '.join(tenant.namespaces) or 'none'}"]
    if tenant.listed:
        about.append(f"cohort {tenant.cohort or 'none'} · weight {tenant.weight:g}")
    else:
        about.append("no TenantQuota lists this namespace")
    return el(
        "tr",
        {"data-tenant": tenant.name},
        el(
            "td",
            {"class": "nowrap", "title": "\n".join(about)},
            _swatch(tenant.owner),
            tenant.name if tenant.listed else f"{tenant.name} (namespace)",
        ),
        el("td", {"class": "num"}, gpus(tenant.used)),
        el("td", None, bar),
        el("td", {"class": "num"}, gpus(tenant.guaranteed) if tenant.guaranteed is not None else "–"),
        el("td", {"class": "num"}, gpus(tenant.maximum) if tenant.maximum is not None else "–"),
        el("td", {"class": "num"}, gpus(tenant.borrowed) if tenant.borrowed else "–"),
    )


# -- decisions -------------------------------------------------------------------------------------------


def _decisions(view: ClusterView) -> Markup:
    if not view.decisions:
        return el("p", {"class": "empty"}, "No scheduling decision yet.")
    return _table(("time", "gang and verdict"), (_decision_row(d) for d in view.decisions), css="decisions")


def _decision_row(decision: Decision) -> Markup:
    namespace = decision.gang.partition("/")[0]
    nodes = ", ".join(decision.nodes[:_NODES_IN_DECISION])
    if len(decision.nodes) > _NODES_IN_DECISION:
        nodes += f" +{len(decision.nodes) - _NODES_IN_DECISION}"
    said = f"on {nodes}" if nodes and decision.result == "scheduled" else decision.message
    title = "\n".join(x for x in (decision.gang, decision.message, ", ".join(decision.nodes)) if x)
    job = decision.job or job_name(decision.gang, decision.gang)
    return el(
        "tr",
        {"data-decision": decision.result},
        el("td", {"class": "nowrap"}, stamp(decision.at)),
        el(
            "td",
            {"class": "why", "title": title},
            el("span", {"class": f"state {decision.result}"}, decision.result),
            " ",
            el("b", None, f"{namespace}/{job}"),
            el("div", {"class": "said"}, said),
        ),
    )


#: The sections by the id of the element each fills, in page order.
SECTIONS: Final[Mapping[str, Callable[[ClusterView], Markup]]] = {
    "summary": _summary,
    "problems": _problems,
    "legend": legend,
    "map": map_section,
    "queue": _queue,
    "tenants": _tenants,
    "decisions": _decisions,
}


# -- the JSON endpoint ---------------------------------------------------------------------------------


def payload(view: ClusterView | None, *, html: bool) -> dict[str, Any]:
    """What `/api/view` answers: the view as plain data (and the sections rendered, for the page's
    refresh, with `html`); `{"leading": false}` while this replica does not lead."""
    if view is None:
        return {"leading": False}
    out: dict[str, Any] = {
        "leading": True,
        "updated": stamp(view.generated_at),
        "view": dataclasses.asdict(view),
    }
    if html:
        out["html"] = sections(view)
    return out
