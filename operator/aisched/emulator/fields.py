"""Field paths and field sets as server-side apply sees an object (sigs.k8s.io/structured-merge-diff).

Pure: no I/O, no clock. A path is a tuple of path elements written as `metadata.managedFields`
writes them: `f:spec` (a field or map key), `k:{"name":"main"}` (an item of a list keyed by some of
its fields), `v:"a"` (an item of a set), `i:0` (an item by position). A `Shape` tells, for a place
in a kind, which maps are structs, which lists are atomic (replaced whole), sets, or maps keyed by
some fields: from a CRD's openAPIV3Schema (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
`x-kubernetes-map-type`), and for built-in kinds from their merge keys (`patch.STRATEGIC_MERGE_KEYS`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from aisched.emulator.patch import SCALAR_SET, STRATEGIC_MERGE_KEYS, MergeKeyTable

__all__ = [
    "NODE",
    "FieldPathError",
    "Path",
    "Shape",
    "decode_fields",
    "encode_fields",
    "field_values",
    "item_element",
    "render",
    "shape_for",
]

Path: TypeAlias = tuple[str, ...]


class _Node:
    """The value recorded for a path that is a member of the set and has members under it."""

    def __repr__(self) -> str:
        return "NODE"


NODE: Final = _Node()

#: Built-in lists whose items are keyed by more than their strategic merge key (k8s.io/api's
#: `+listMapKey` tags), and the defaults of those keys (as the published schemas declare).
_KEYS_BY_MERGE_KEY: Final = MappingProxyType({"containerPort": ("containerPort", "protocol")})
_SERVICE_PORT_KEYS: Final = ("port", "protocol")
_BUILTIN_KEY_DEFAULTS: Final = MappingProxyType({"protocol": "TCP"})
_METADATA_TABLE: Final = STRATEGIC_MERGE_KEYS["ConfigMap"]
#: Built-in fields that are structs held by value (never absent in a typed object, so never added).
_BUILTIN_VALUE_STRUCTS: Final = frozenset({"metadata", "spec", "status", "template", "resources"})


class FieldPathError(Exception):
    """An object a field set cannot be made of (a keyed item without its key, a repeated key)."""


@dataclass(frozen=True)
class Shape:
    """A place in a kind's schema: a CRD schema node, or a built-in kind's path into its merge keys."""

    schema: Mapping[str, Any] | None = None
    path: tuple[str, ...] = ()
    table: MergeKeyTable = field(default_factory=dict)
    kind: str = ""

    def child(self, key: str) -> Shape:
        if self.schema is None:
            return Shape(path=(*self.path, key), table=self.table, kind=self.kind)
        if not self.path and key == "metadata":
            # A custom resource's metadata is an ObjectMeta, whatever its schema says.
            return Shape(path=("metadata",), table=_METADATA_TABLE, kind=self.kind)
        properties = self.schema.get("properties") or {}
        if key in properties:
            return Shape(schema=properties[key], path=(*self.path, key), kind=self.kind)
        extra = self.schema.get("additionalProperties")
        return Shape(schema=extra if isinstance(extra, dict) else {}, path=(*self.path, key), kind=self.kind)

    def item(self) -> Shape:
        if self.schema is None:
            return self
        items = self.schema.get("items")
        return Shape(schema=items if isinstance(items, dict) else {}, path=self.path, kind=self.kind)

    def is_field(self, key: str) -> bool:
        """Whether `key` is a named field of a struct (not inserted itself) or a map's key (inserted)."""
        if self.schema is None:
            return True
        return key in (self.schema.get("properties") or {})

    def always_there(self) -> bool:
        """Whether this struct exists in every object of the kind (a built-in struct held by value)."""
        return self.schema is None and bool(self.path) and self.path[-1] in _BUILTIN_VALUE_STRUCTS

    def atomic_map(self) -> bool:
        return self.schema is not None and self.schema.get("x-kubernetes-map-type") == "atomic"

    def list_type(self) -> tuple[str, tuple[str, ...]]:
        """("atomic" | "set" | "map", the keys of a map's items)."""
        if self.schema is not None:
            kind = self.schema.get("x-kubernetes-list-type", "atomic")
            keys = tuple(self.schema.get("x-kubernetes-list-map-keys") or ())
            return (kind, keys) if kind in ("set", "map") else ("atomic", ())
        strategy = self.table.get(self.path)
        if strategy is None:
            return "atomic", ()
        if strategy == SCALAR_SET or strategy.merge_key is None:
            return "set", ()
        if self.kind == "Service" and self.path == ("spec", "ports"):
            return "map", _SERVICE_PORT_KEYS
        return "map", _KEYS_BY_MERGE_KEY.get(strategy.merge_key, (strategy.merge_key,))

    def key_default(self, key: str) -> Any:
        if self.schema is None:
            return _BUILTIN_KEY_DEFAULTS.get(key)
        return ((self.item().schema or {}).get("properties") or {}).get(key, {}).get("default")


def shape_for(*, kind: str, schema: Mapping[str, Any] | None, custom: bool) -> Shape:
    """The shape of a whole object of `kind` (a custom resource's from its CRD `schema`)."""
    if custom:
        return Shape(schema=schema or {"x-kubernetes-preserve-unknown-fields": True}, kind=kind)
    return Shape(table=STRATEGIC_MERGE_KEYS.get(kind, _METADATA_TABLE), kind=kind)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def item_element(item: Any, shape: Shape, *, index: int, where: Path) -> str:
    """The path element of a list item: `k:{...}` for keyed lists, `v:...` for sets."""
    kind, keys = shape.list_type()
    if kind == "set":
        return "v:" + _compact(item)
    if kind != "map" or not keys:
        return f"i:{index}"
    if not isinstance(item, dict):
        raise FieldPathError(
            f"{render(where)}: element {index}: associative list with keys has an element that is not a map"
        )
    values = {}
    for key in keys:
        if key in item:
            values[key] = item[key]
        elif (default := shape.key_default(key)) is not None:
            values[key] = default
        else:
            raise FieldPathError(
                f"{render(where)}: element {index}: associative list with keys has an element that omits"
                f' key field "{key}" (and doesn\'t have default value)'
            )
    return "k:" + _compact(values)


def field_values(obj: Any, shape: Shape, *, strict: bool = False, maps: bool = False) -> dict[Path, Any]:
    """Every path of `obj`'s field set, with the value at each leaf (`NODE` for members with members
    under them): what a manager that applied all of `obj` would own. `strict` refuses repeated keys;
    `maps` adds the maps and structs that can be absent (what a write that adds them owns)."""
    found: dict[Path, Any] = {}
    _walk(obj, shape, (), found, strict=strict, maps=maps)
    return found


def _walk(value: Any, shape: Shape, path: Path, found: dict[Path, Any], *, strict: bool, maps: bool) -> None:
    if isinstance(value, dict) and not shape.atomic_map():
        if maps and path and not shape.always_there():
            found[path] = NODE
        for key, child in value.items():
            where = (*path, f"f:{key}")
            _walk(child, shape.child(key), where, found, strict=strict, maps=maps)
            if not shape.is_field(key):
                found.setdefault(where, NODE)
        return
    if isinstance(value, list) and shape.list_type()[0] != "atomic":
        item_shape = shape.item()
        seen: set[str] = set()
        for index, item in enumerate(value):
            element = item_element(item, shape, index=index, where=path)
            if element in seen and strict:
                raise FieldPathError(f"{render(path)}: duplicate entries for key {render((element,))}")
            seen.add(element)
            where = (*path, element)
            _walk(item, item_shape, where, found, strict=strict, maps=maps)
            found.setdefault(where, NODE)
        return
    found[path] = value


# -- rendering and the fieldsV1 encoding ------------------------------------------------------------


def render(path: Iterable[str]) -> str:
    """A path as the API server prints it in conflicts: `.spec.containers[name="main"].image`."""
    out = []
    for element in path:
        tag, text = element[:2], element[2:]
        if tag == "f:":
            out.append("." + text)
        elif tag == "k:":
            keys = json.loads(text)
            out.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in keys.items()) + "]")
        elif tag == "v:":
            out.append(f"[={text}]")
        else:
            out.append(f"[{text}]")
    return "".join(out)


def encode_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """The `fieldsV1` tree of a set of paths: members with members under them marked `.`."""
    root: dict[str, Any] = {}
    members = set(paths)
    for path in members:
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = root
        for element in path:
            node = node[element]
        if node and path:
            node["."] = {}
    return _sorted(root)


def _sorted(tree: dict[str, Any]) -> dict[str, Any]:
    return {key: _sorted(tree[key]) for key in sorted(tree, key=lambda k: (k != ".", k))}


def decode_fields(tree: Any, prefix: Path = ()) -> set[Path]:
    """The set of paths a `fieldsV1` tree holds; `ValueError` if it is not one."""
    if not isinstance(tree, dict):
        raise ValueError("fieldsV1 must be an object")
    found: set[Path] = set()
    for key, child in tree.items():
        if key == ".":
            found.add(prefix)
        elif not isinstance(key, str) or key[:2] not in ("f:", "k:", "v:", "i:"):
            raise ValueError(f"invalid fieldsV1 key {key!r}")
        elif child:
            found |= decode_fields(child, (*prefix, key))
        else:
            found.add((*prefix, key))
    return found
