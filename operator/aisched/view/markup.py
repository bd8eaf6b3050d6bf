"""HTML made so that escaping cannot be forgotten.

`el` builds an element: every text child and every attribute value is escaped, and only `Markup`
(what `el` and `join` return) is put in as it is. Tag and attribute names are the code's own,
never data. So a pod called `<script>alert(1)</script>` is text wherever it is shown.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["Attrs", "Child", "Markup", "el", "join", "text"]

_VOID: Final = frozenset({"br", "hr", "img", "input", "link", "meta", "wbr"})


class Markup(str):
    """HTML that is safe as it is: made by `el`, `join` or `text`."""

    __slots__ = ()


Child = Markup | str | int | float | None | Iterable["Child"]
Attrs = Mapping[str, str | int | float | bool | None]


def text(value: object) -> Markup:
    """`value` as text: every character that means something in HTML escaped."""
    return Markup(html.escape(str(value), quote=True))


def el(tag: str, attrs: Attrs | None = None, /, *children: Child) -> Markup:
    """`<tag attrs>children</tag>`. An attribute that is None or False is left out; True is a
    bare attribute. Strings and numbers among the children are escaped; iterables are flattened."""
    parts = [f"<{tag}"]
    for name, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(f" {name}")
        else:
            parts.append(f' {name}="{html.escape(str(value), quote=True)}"')
    parts.append(">")
    if tag not in _VOID:
        _append(children, parts)
        parts.append(f"</{tag}>")
    return Markup("".join(parts))


def join(*children: Child) -> Markup:
    """The children one after another, escaped as `el` escapes them."""
    parts: list[str] = []
    _append(children, parts)
    return Markup("".join(parts))


def _append(children: Iterable[Child], out: list[str]) -> None:
    for child in children:
        if child is None:
            continue
        if isinstance(child, Markup):
            out.append(child)
        elif isinstance(child, str | int | float):
            out.append(html.escape(str(child), quote=True))
        else:
            _append(child, out)
