"""`metadata.managedFields`: which manager owns which fields, kept on every write as the API server
keeps it (k8s.io/apiserver `pkg/endpoints/handlers/fieldmanager`).

Pure: no I/O; the time of a write is given. An ordinary write (create, update, patch) is an
`Update` by its manager: it takes the fields it added or changed from everyone else. A server-side
apply is an `Apply` (see `apply.py`). Fields a write removes leave every manager's set; a manager
left with no fields leaves the list. Entries are sorted as the real server sorts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from aisched.emulator.fields import NODE, Path, Shape, decode_fields, encode_fields, field_values

__all__ = [
    "APPLY",
    "UPDATE",
    "Managers",
    "Owned",
    "changes",
    "decode",
    "describe",
    "encode",
    "owned_values",
    "record_update",
    "starting",
    "without",
]

APPLY: Final = "Apply"
UPDATE: Final = "Update"

#: Fields nobody owns: the server sets them (managedfields' stripMeta).
_STRIPPED: Final = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata",),
        *(
            ("f:metadata", f"f:{name}")
            for name in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            )
        ),
    }
)


@dataclass(frozen=True)
class Owned:
    """One manager's entry: the fields it owns, when it last wrote, through which API version."""

    fields: frozenset[Path]
    time: str
    api_version: str


#: (manager, operation, subresource) → what it owns.
Managers: TypeAlias = dict[tuple[str, str, str], Owned]


def decode(entries: Any) -> Managers:
    """The managers of a `managedFields` list; `ValueError` if it is not one."""
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    managers: Managers = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("a managedFields entry must be an object")
        operation = entry.get("operation", "")
        if operation not in (APPLY, UPDATE, ""):
            raise ValueError(f"unknown managedFields operation {operation!r}")
        key = (str(entry.get("manager", "")), operation, str(entry.get("subresource", "")))
        fields = frozenset(decode_fields(entry.get("fieldsV1") or {}))
        managers[key] = Owned(fields, str(entry.get("time") or ""), str(entry.get("apiVersion", "")))
    return managers


def encode(managers: Managers) -> list[dict[str, Any]]:
    """The `managedFields` list of `managers` that own anything, in the real server's order."""
    entries = []
    for (manager, operation, subresource), owned in managers.items():
        if not owned.fields:
            continue
        entry: dict[str, Any] = {
            "manager": manager,
            "operation": operation,
            "apiVersion": owned.api_version,
            "time": owned.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode_fields(owned.fields),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    entries.sort(
        key=lambda e: (e["operation"], e["time"], e["manager"], e["apiVersion"], e.get("subresource", ""))
    )
    return entries


def describe(key: tuple[str, str, str], owned: Owned) -> str:
    """A manager as conflict messages name it: `"kubectl"`, or `"x" using v1 at <time>` for updaters."""
    manager, operation, subresource = key
    text = json.dumps(manager)
    if subresource:
        text += f" with subresource {json.dumps(subresource)}"
    if operation == UPDATE:
        text += f" using {owned.api_version}" + (f" at {owned.time}" if owned.time else "")
    return text


def _kept(path: Path, *, subresource: str, has_status: bool) -> bool:
    """Whether a write through `subresource` can own `path`: never what the server sets; the status
    of a kind with a status subresource only through it, and nothing else through it."""
    if not path or path in _STRIPPED:
        return False
    if has_status:
        return (path[0] == "f:status") == (subresource == "status")
    return True


def owned_values(
    obj: Any, shape: Shape, *, subresource: str, has_status: bool, strict: bool = False, maps: bool = True
) -> dict[Path, Any]:
    """`field_values` of `obj` (with its maps, unless it is an applied configuration's), without
    what the write cannot own."""
    return {
        path: value
        for path, value in field_values(obj, shape, strict=strict, maps=maps).items()
        if _kept(path, subresource=subresource, has_status=has_status)
    }


def _same(left: Any, right: Any) -> bool:
    return (
        type(left) is type(right) and left == right
        if isinstance(left, bool) or isinstance(right, bool)
        else left == right
    )


def changes(before: Mapping[Path, Any], after: Mapping[Path, Any]) -> tuple[set[Path], set[Path]]:
    """(paths added or changed, paths removed) from `before` to `after`."""
    changed = {
        path
        for path, value in after.items()
        if path not in before or (value is not NODE and not _same(before[path], value))
    }
    return changed, set(before) - set(after)


def without(
    managers: Managers, paths: Iterable[Path], *, but: tuple[str, str, str] | None = None
) -> Managers:
    """`managers` owning none of `paths` any more (but the manager `but`, which keeps its own)."""
    drop = frozenset(paths)
    return {
        key: owned if key == but else Owned(owned.fields - drop, owned.time, owned.api_version)
        for key, owned in managers.items()
    }


def starting(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> Managers:
    """The managers a write starts from: those the request sent (a client may rewrite or reset
    them), else the stored object's."""
    for source in (new, old):
        entries = ((source or {}).get("metadata") or {}).get("managedFields")
        if entries:
            try:
                return decode(entries)
            except ValueError:
                continue
    return {}


def record_update(
    *,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    shape: Shape,
    manager: str,
    subresource: str,
    has_status: bool,
    api_version: str,
    now: str,
) -> list[dict[str, Any]]:
    """`new`'s managedFields after an ordinary write by `manager` turned `old` into it."""
    managers = starting(new, old)
    before = owned_values(old or {}, shape, subresource=subresource, has_status=has_status)
    after = owned_values(new, shape, subresource=subresource, has_status=has_status)
    changed, removed = changes(before, after)
    key = (manager, UPDATE, subresource)
    managers = without(managers, changed)
    if changed:
        mine = managers.get(key)
        managers[key] = Owned((mine.fields if mine else frozenset()) | changed, now, api_version)
    return encode(without(managers, removed))
