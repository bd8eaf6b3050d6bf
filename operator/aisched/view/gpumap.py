"""The GPU map and its legend: blocks, racks, nodes and their GPUs, or racks as tiles.

Each GPU is a small square coloured by whoever holds it (its tenant, else its namespace: a hue
from a stable hash of the name); a shared GPU fills by each share's thousandths, a MIG GPU shows
its eight memory slots; an unhealthy GPU is crossed in red, one whose binding is in flight dashed,
one drawn where its pod is counted (devices unknown) dotted. Every square's tooltip names the pod,
job and tenant. A rack shown as a tile links to its own page (`?rack=NAME`).
"""

from __future__ import annotations

import zlib
from typing import Final
from urllib.parse import quote

from aisched.api.mig import MIG_MEMORY_SLOTS
from aisched.view.markup import Child, Markup, el, join
from aisched.view.model import MILLI, NO_DOMAIN, Block, ClusterView, Gpu, Holder, Node, Owner, Rack
from aisched.view.nodes import job_name

__all__ = ["gpus", "hue", "legend", "map_section", "rack_href"]

_HUES: Final = 360
_LEGEND_OWNERS: Final = 24
_LIGHTNESS: Final = (44, 54, 64)
#: The colour of the legend's sample squares (no owner's).
_SAMPLE: Final = "--h:215;--l:62%"


def hue(owner: str) -> tuple[int, int]:
    """The colour of `owner` as (hue, lightness %): from a stable hash of its name, so the same in
    every process and on every page; three lightnesses make owners of near hues easier to tell."""
    digest = zlib.crc32(owner.encode())
    return digest % _HUES, _LIGHTNESS[digest // _HUES % len(_LIGHTNESS)]


def colour(owner: str) -> str:
    """The style that colours an element `o` (see the stylesheet) as `owner`."""
    h, light = hue(owner)
    return f"--h:{h};--l:{light}%"


def gpus(milli: int) -> str:
    """Thousandths of a GPU as GPUs: `3`, `2.5`, `0.25`."""
    return f"{milli / MILLI:.3f}".rstrip("0").rstrip(".")


def rack_href(rack: str | None) -> str:
    """The page of `rack` (None: the whole cluster), relative to the page itself."""
    return "./" if rack is None else f"./?rack={quote(rack, safe='')}"


def domain(name: str, what: str) -> str:
    return f"no {what} label" if name == NO_DOMAIN else name


# -- the legend ------------------------------------------------------------------------------------


def legend(view: ClusterView) -> Markup:
    owners = view.owners[:_LEGEND_OWNERS]
    rest = len(view.owners) - len(owners)
    return join(
        (
            el("span", {"class": "sw"}, el("i", {"class": "dot o", "style": colour(o.name)}), _owner_label(o))
            for o in owners
        ),
        el("span", {"class": "sw"}, f"+{rest} more") if rest > 0 else None,
        el("span", {"class": "sw"}, "no GPU held yet") if not owners else None,
        el("span", {"class": "sep"}),
        _sample("free", el("span", {"class": "gpu"})),
        _sample(
            "shared",
            el(
                "span",
                {"class": "gpu shared"},
                (el("i", {"class": "o", "style": f"{_SAMPLE};height:{h}%"}) for h in (40, 25)),
            ),
        ),
        _sample("MIG slots", el("span", {"class": "gpu mig"}, _slots_sample())),
        _sample("binding", el("span", {"class": "gpu whole binding", "style": _SAMPLE})),
        _sample("device not known", el("span", {"class": "gpu whole guess", "style": _SAMPLE})),
        _sample("unhealthy", el("span", {"class": "gpu bad"})),
        el("span", {"class": "sw"}, el("span", {"class": "flag bad"}, "not ready")),
        el("span", {"class": "sw"}, el("span", {"class": "flag warn"}, "cooling down")),
        el("span", {"class": "sw"}, el("span", {"class": "flag res"}, "reserved")),
        el(
            "span",
            {"class": "sw", "title": "held for gangs that wait for nodes to drain"},
            el("span", {"class": "held-sample"}),
            "held",
        ),
    )


def _owner_label(owner: Owner) -> Markup:
    return join(owner.name, el("span", {"class": "node-use"}, f" {gpus(owner.used)}"))


def _sample(label: str, square: Markup) -> Markup:
    return el("span", {"class": "sw"}, square, label)


def _part(milli: int, owner: str) -> Markup:
    return el("i", {"class": "o", "style": f"{colour(owner)};height:{milli / 10:g}%"})


def _slots_sample() -> list[Markup]:
    kinds = ["o", "o", "o", "o", "foreign", "foreign", "", ""]
    return [el("i", {"class": k or None, "style": _SAMPLE if k == "o" else None}) for k in kinds]


# -- the map ----------------------------------------------------------------------------------------


def map_section(view: ClusterView) -> Markup:
    if not view.blocks:
        return el("p", {"class": "empty"}, "No nodes known yet.")
    if view.rack is not None:
        return _zoomed(view)
    if view.detailed:
        return el("div", {"class": "blocks"}, (_block(b) for b in view.blocks))
    return join(
        el(
            "p",
            {"class": "note"},
            f"{view.summary.nodes} nodes: each rack is shown by its totals; "
            "open one to see its nodes and GPUs.",
        ),
        _tiles(view, zoomed=None),
    )


def _zoomed(view: ClusterView) -> Markup:
    racks = [r for b in view.blocks for r in b.racks if r.nodes is not None]
    if not view.rack_found or not racks:
        return join(
            el(
                "p",
                {"class": "empty"},
                f"No rack is named {view.rack}. ",
                el("a", {"href": "./"}, "All racks"),
            ),
            _tiles(view, zoomed=None),
        )
    return join(
        (_rack(r) for r in racks),
        el("p", {"class": "note"}, "Other racks:")
        if len(view.blocks) > 1 or len(view.blocks[0].racks) > 1
        else None,
        _tiles(view, zoomed=view.rack),
    )


def _block(block: Block) -> Markup:
    return el(
        "section",
        {"class": "block"},
        el("h3", None, el("span", None, "block "), domain(block.name, "block")),
        el("div", {"class": "racks"}, (_rack(r) for r in block.racks)),
    )


def _rack(rack: Rack) -> Markup:
    hidden = (
        el("p", {"class": "note"}, f"{rack.hidden} more nodes of this rack are not drawn.")
        if rack.hidden
        else None
    )
    return el(
        "section",
        {"class": "rack", "data-rack": rack.name},
        el(
            "h4",
            None,
            el("a", {"href": rack_href(rack.name)}, f"rack {domain(rack.name, 'rack')}"),
            el("span", None, f"{gpus(rack.used)} of {rack.gpus} GPUs in use"),
        ),
        el("div", {"class": "nodes"}, (_node(n) for n in rack.nodes or ())),
        hidden,
    )


def _tiles(view: ClusterView, *, zoomed: str | None) -> Markup:
    racks = (r for b in view.blocks for r in b.racks)
    return el(
        "div", {"class": "tiles small" if zoomed else "tiles"}, (_tile(r, zoomed=zoomed) for r in racks)
    )


def _tile(rack: Rack, *, zoomed: str | None) -> Markup:
    total = max(rack.gpus, 1)
    segments = [
        el("i", {"class": "o", "style": f"{colour(owner)};width:{100 * milli / (total * MILLI):.2f}%"})
        for owner, milli in rack.owners
    ]
    owners = "\n".join(f"{owner}: {gpus(milli)} GPUs" for owner, milli in rack.owners[:8])
    down = rack.nodes_total - rack.nodes_ready
    title = (
        f"rack {domain(rack.name, 'rack')} · block {domain(rack.block, 'block')}\n"
        f"{rack.gpus_used} GPUs used, {rack.gpus_free} free, {rack.gpus_unhealthy} unhealthy of {rack.gpus}\n"
        f"{rack.nodes_total} nodes, {down} not ready\n{owners or 'nothing held'}"
    )
    return el(
        "a",
        {
            "class": "tile zoomed" if rack.name == zoomed else "tile",
            "href": rack_href(rack.name),
            "title": title,
            "data-rack": rack.name,
        },
        el(
            "div",
            {"class": "tile-head"},
            el("span", {"class": "tile-name"}, domain(rack.name, "rack")),
            el("span", {"class": "tile-use"}, f"{rack.gpus_used}/{rack.gpus}"),
        ),
        el("div", {"class": "bar"}, segments),
        el(
            "div",
            {"class": "tile-nums"},
            f"{rack.nodes_total} nodes · {rack.gpus_free} free",
            el("b", None, f" · {down} down") if down else None,
            el("b", None, f" · {rack.gpus_unhealthy} ✕") if rack.gpus_unhealthy else None,
        ),
    )


# -- one node -----------------------------------------------------------------------------------------


def _node(node: Node) -> Markup:
    used = sum(g.used for g in node.gpus)
    classes = ["node"]
    flags: list[Child] = []
    if not node.ready:
        classes.append("down")
        flags.append(el("span", {"class": "flag bad"}, "not ready"))
    if node.cooling:
        classes.append("cooling")
        flags.append(el("span", {"class": "flag warn"}, "cooling down"))
    if not node.schedulable:
        classes.append("cordoned")
        flags.append(el("span", {"class": "flag"}, "cordoned"))
    if node.reserved_for:
        classes.append("reserved")
        first = job_name(node.reserved_for[0], node.reserved_for[0])
        more = f" +{len(node.reserved_for) - 1}" if len(node.reserved_for) > 1 else ""
        planned = "start planned here for " + ", ".join(node.reserved_for)
        flags.append(el("span", {"class": "flag res", "title": planned}, f"reserved: {first}{more}"))
    elif node.spare_for:
        classes.append("held")
    if node.problems:
        flags.append(el("span", {"class": "flag bad", "title": "\n".join(node.problems)}, "⚠ data"))
    title = [f"{node.name}", f"{node.model or 'no GPU model'} · {node.pods} pods"]
    if node.spare_for:
        title.append(f"held while nodes drain for {', '.join(node.spare_for)}")
    if not node.wired:
        title.append("GPU wiring not published")
    title.extend(node.problems)
    return el(
        "div",
        {"class": " ".join(classes), "title": "\n".join(title), "data-node": node.name},
        el(
            "div",
            {"class": "node-head"},
            el("span", {"class": "node-name"}, node.name),
            el("span", {"class": "node-use"}, f"{gpus(used)}/{len(node.gpus)}"),
        ),
        el("div", {"class": "gpus"}, (_gpu(g) for g in node.gpus)) if node.gpus else None,
        el("div", {"class": "flags"}, flags) if flags else None,
    )


def _gpu(gpu: Gpu) -> Markup:
    classes = ["gpu"]
    style = None
    parts: list[Markup] = []
    holders = gpu.holders
    if gpu.mig:
        classes.append("mig")
        parts = _mig_slots(gpu)
    elif len(holders) == 1 and holders[0].milli >= MILLI:
        classes.append("whole")
        style = colour(holders[0].owner)
    elif holders:
        classes.append("shared")
        parts = [_part(h.milli, h.owner) for h in holders]
    if not gpu.healthy:
        classes.append("bad")
    if any(h.assumed for h in holders):
        classes.append("binding")
    if any(not h.exact for h in holders):
        classes.append("guess")
    return el(
        "span",
        {"class": " ".join(classes), "style": style, "title": _gpu_title(gpu), "data-gpu": gpu.index},
        parts,
    )


def _mig_slots(gpu: Gpu) -> list[Markup]:
    owner_of_slot: dict[int, str] = {}
    for holder in gpu.holders:
        for slot in range(MIG_MEMORY_SLOTS):
            if holder.slots >> slot & 1:
                owner_of_slot[slot] = holder.owner
    slots = []
    for slot in range(MIG_MEMORY_SLOTS):
        if slot in owner_of_slot:
            slots.append(el("i", {"class": "o", "style": colour(owner_of_slot[slot])}))
        elif gpu.foreign_slots >> slot & 1:
            slots.append(el("i", {"class": "foreign"}))
        else:
            slots.append(el("i"))
    return slots


def _gpu_title(gpu: Gpu) -> str:
    memory = f" · {gpu.memory / 2**30:.0f} GiB" if gpu.memory else ""
    lines = [
        f"GPU {gpu.index} · {gpu.model or 'unknown model'}{memory}" + ("" if gpu.healthy else " · UNHEALTHY")
    ]
    if gpu.mig:
        lines.append(
            f"MIG · {gpu.used * MIG_MEMORY_SLOTS // MILLI} of {MIG_MEMORY_SLOTS} memory slots in use"
        )
        if gpu.foreign_slots:
            lines.append(f"{gpu.foreign_slots.bit_count()} slots held by instances made outside aisched")
    lines.extend(_holder_line(h) for h in gpu.holders)
    if not gpu.holders:
        lines.append("free")
    return "\n".join(lines)


def _holder_line(holder: Holder) -> str:
    share = ""
    if holder.mig:
        share = f"MIG {holder.mig} · "
    elif holder.milli < MILLI:
        share = f"{gpus(holder.milli)} of the GPU · "
    who = f"tenant {holder.tenant}" if holder.tenant else holder.owner
    notes = []
    if holder.assumed:
        notes.append("binding")
    if not holder.exact:
        notes.append("device not known: drawn where it is counted")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"{share}job {holder.job} · {who} · pod {holder.pod}{tail}"
