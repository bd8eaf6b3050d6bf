"""Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and field selectors."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["SelectorError", "field_selector", "label_selector"]

_SET: Final = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")
_EQUALITY: Final = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)\s*$")
_EXISTS: Final = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")

Matcher = Callable[[Mapping[str, Any]], bool]


class SelectorError(ValueError):
    """A selector that does not parse (the server answers 400 BadRequest)."""


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "==", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # != and notin


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _requirements(text: str) -> list[_Requirement]:
    found = []
    for part in _split(text):
        if match := _SET.match(part):
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            found.append(_Requirement(match["key"], match["op"], values))
        elif match := _EQUALITY.match(part):
            found.append(_Requirement(match["key"], match["op"], frozenset({match["value"]})))
        elif match := _EXISTS.match(part):
            found.append(_Requirement(match["key"], "!exists" if match["neg"] else "exists", frozenset()))
        else:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
    return found


def label_selector(text: str | None) -> Matcher:
    """A matcher over objects' `metadata.labels`; an empty selector matches everything."""
    if not text:
        return lambda obj: True
    requirements = _requirements(text)

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in requirements)

    return matches


def _field(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_selector(text: str | None) -> Matcher:
    """A matcher over dotted field paths (`metadata.name`, `spec.nodeName`, `status.phase`, ...)."""
    if not text:
        return lambda obj: True
    requirements = []
    for part in _split(text):
        match = _EQUALITY.match(part)
        if match is None:
            raise SelectorError(f"invalid field selector: {part.strip()!r}")
        requirements.append((match["key"], match["op"] != "!=", match["value"]))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, key) == value) is wanted for key, wanted, value in requirements)

    return matches
