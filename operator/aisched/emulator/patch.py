"""PATCH semantics of the Kubernetes API server: JSON merge patch, JSON patch, strategic merge patch.

Pure data manipulation over decoded JSON (dicts, lists, scalars): no I/O, stdlib only. Inputs are
never mutated; every function returns a new document. `PatchError` means the patch cannot apply
(the caller answers 422), `UnsupportedPatch` means the media type is refused (415).

The strategic merge follows k8s.io/apimachinery `pkg/util/strategicpatch` (apply half, as the API
server runs it: parallel lists merged, unmatched nulls ignored), with the merge keys of the
k8s.io/api struct tags in `STRATEGIC_MERGE_KEYS`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, TypeAlias

__all__ = [
    "PATCH_TYPES",
    "STRATEGIC_MERGE_KEYS",
    "ListStrategy",
    "MergeKeyTable",
    "PatchError",
    "PatchTestFailed",
    "UnsupportedPatch",
    "apply_patch",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"

#: Content-Type → name of the function in this module that applies it.
PATCH_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {MERGE_PATCH: "merge_patch", JSON_PATCH: "json_patch", STRATEGIC_MERGE_PATCH: "strategic_merge_patch"}
)

CUSTOM_RESOURCE_SMP: Final = "strategic merge patch is not supported for custom resources; use a merge patch"


class PatchError(Exception):
    """The patch is malformed or does not apply to the document."""


class PatchTestFailed(PatchError):  # noqa: N818 (the name callers know it by)
    """A JSON patch `test` operation found a different value."""


class UnsupportedPatch(Exception):  # noqa: N818 (the name callers know it by)
    """The patch media type is not accepted for this resource."""


# -- JSON merge patch (RFC 7386) -------------------------------------------------------------


def merge_patch(document: Any, patch: Any) -> Any:
    """`document` with the RFC 7386 merge `patch` applied: objects merge, null deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(document) if isinstance(document, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


# -- JSON patch (RFC 6902) -------------------------------------------------------------------

_ARRAY_INDEX: Final = re.compile(r"0|[1-9][0-9]*")
_VALUE_OPS: Final = frozenset({"add", "replace", "test"})
_FROM_OPS: Final = frozenset({"move", "copy"})


def json_patch(document: Any, operations: Any) -> Any:
    """`document` with the RFC 6902 `operations` applied in order; the first failure aborts all."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for number, operation in enumerate(operations):
        result = _apply_operation(result, operation, number)
    return result


def _apply_operation(document: Any, operation: Any, number: int) -> Any:
    if not isinstance(operation, dict):
        raise PatchError(f"operation {number} is not an object")
    op = operation.get("op")
    if op not in _VALUE_OPS | _FROM_OPS | {"remove"}:
        raise PatchError(f"operation {number}: unknown op {op!r}")
    path = _pointer(operation, "path", number)
    if op in _VALUE_OPS and "value" not in operation:
        raise PatchError(f"operation {number} ({op} {_show(path)}): missing value")
    value = copy.deepcopy(operation.get("value"))
    if op == "add":
        return _add(document, path, value)
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        return _replace(document, path, value)
    if op == "test":
        if not _json_equal(_get(document, path), value):
            raise PatchTestFailed(f"test failed: the value at {_show(path)} is not {value!r}")
        return document
    source = _pointer(operation, "from", number)
    if op == "copy":
        return _add(document, path, copy.deepcopy(_get(document, source)))
    if path[: len(source)] == source and len(path) > len(source):
        raise PatchError(f"operation {number}: cannot move {_show(source)} into its own child {_show(path)}")
    document, moved = _remove(document, source)
    return _add(document, path, moved)


def _pointer(operation: Mapping[str, Any], field: str, number: int) -> list[str]:
    """The RFC 6901 pointer in `operation[field]`, as unescaped reference tokens."""
    text = operation.get(field)
    if not isinstance(text, str):
        raise PatchError(f"operation {number}: {field!r} must be a JSON pointer string")
    if text == "":
        return []
    if not text.startswith("/") or re.search(r"~(?![01])", text):
        raise PatchError(f"operation {number}: invalid JSON pointer {text!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in text[1:].split("/")]


def _show(tokens: Sequence[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens) or '""'


def _index(array: list[Any], token: str, tokens: Sequence[str], *, end_ok: bool) -> int:
    if token == "-" and end_ok:
        return len(array)
    if not _ARRAY_INDEX.fullmatch(token) or int(token) > len(array) - (0 if end_ok else 1):
        raise PatchError(f"path {_show(tokens)} does not exist: bad array index {token!r}")
    return int(token)


def _get(document: Any, tokens: Sequence[str]) -> Any:
    node = document
    for depth, token in enumerate(tokens):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, tokens[: depth + 1], end_ok=False)]
        else:
            raise PatchError(f"path {_show(tokens[: depth + 1])} does not exist")
    return node


def _add(document: Any, tokens: Sequence[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _get(document, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], tokens, end_ok=True), value)
    else:
        raise PatchError(f"path {_show(tokens[:-1])} is not an object or array")
    return document


def _replace(document: Any, tokens: Sequence[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _get(document, tokens[:-1])
    if isinstance(parent, dict) and tokens[-1] in parent:
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent[_index(parent, tokens[-1], tokens, end_ok=False)] = value
    else:
        raise PatchError(f"path {_show(tokens)} does not exist")
    return document


def _remove(document: Any, tokens: Sequence[str]) -> tuple[Any, Any]:
    """(document without the value at `tokens`, that value)."""
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _get(document, tokens[:-1])
    if isinstance(parent, dict) and tokens[-1] in parent:
        return document, parent.pop(tokens[-1])
    if isinstance(parent, list):
        return document, parent.pop(_index(parent, tokens[-1], tokens, end_ok=False))
    raise PatchError(f"path {_show(tokens)} does not exist")


def _json_equal(left: Any, right: Any) -> bool:
    """JSON equality: numbers by value, but booleans are not numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(v, right[k]) for k, v in left.items())
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    return type(left) is type(right) and left == right


# -- strategic merge patch: merge keys -------------------------------------------------------


@dataclass(frozen=True)
class ListStrategy:
    """A list field with patchStrategy "merge": its items match by `merge_key`, or it is a set of scalars."""

    merge_key: str | None = None


#: Field path (object keys from the top of the kind; list positions left out) → list strategy.
#: Lists not in the table are atomic: a patch replaces them wholesale.
MergeKeyTable: TypeAlias = Mapping[tuple[str, ...], ListStrategy]

SCALAR_SET: Final = ListStrategy()


def _by(key: str) -> ListStrategy:
    return ListStrategy(merge_key=key)


def _under(prefix: tuple[str, ...], table: MergeKeyTable) -> dict[tuple[str, ...], ListStrategy]:
    return {prefix + path: strategy for path, strategy in table.items()}


_OBJECT_META: Final[MergeKeyTable] = {("finalizers",): SCALAR_SET, ("ownerReferences",): _by("uid")}
_CONTAINER: Final[MergeKeyTable] = {
    ("ports",): _by("containerPort"),
    ("env",): _by("name"),
    ("volumeMounts",): _by("mountPath"),
    ("volumeDevices",): _by("devicePath"),
}
_POD_SPEC: Final[MergeKeyTable] = {
    **{(field,): _by("name") for field in ("containers", "initContainers", "ephemeralContainers")},
    **_under(("containers",), _CONTAINER),
    **_under(("initContainers",), _CONTAINER),
    **_under(("ephemeralContainers",), _CONTAINER),
    ("volumes",): _by("name"),
    ("imagePullSecrets",): _by("name"),
    ("hostAliases",): _by("ip"),
    ("topologySpreadConstraints",): _by("topologyKey"),
    ("schedulingGates",): _by("name"),
    ("resourceClaims",): _by("name"),
}
_POD_TEMPLATE_SPEC: Final[MergeKeyTable] = {
    **_under(("metadata",), _OBJECT_META),
    **_under(("spec",), _POD_SPEC),
}
_POD_STATUS: Final[MergeKeyTable] = {
    ("conditions",): _by("type"),
    ("podIPs",): _by("ip"),
    ("hostIPs",): _by("ip"),
    ("resourceClaimStatuses",): _by("name"),
}
_STATUS_CONDITIONS: Final[MergeKeyTable] = {("status", "conditions"): _by("type")}


def _kind(*parts: MergeKeyTable) -> MergeKeyTable:
    merged: dict[tuple[str, ...], ListStrategy] = _under(("metadata",), _OBJECT_META)
    for part in parts:
        merged.update(part)
    return MappingProxyType(merged)


_WORKLOAD: Final = _kind(_under(("spec", "template"), _POD_TEMPLATE_SPEC), _STATUS_CONDITIONS)

#: Kind → its merge keys. Kinds missing here are not built in: they get no strategic merge patch.
STRATEGIC_MERGE_KEYS: Final[Mapping[str, MergeKeyTable]] = MappingProxyType(
    {
        "Pod": _kind(_under(("spec",), _POD_SPEC), _under(("status",), _POD_STATUS)),
        "Node": _kind(
            {("spec", "podCIDRs"): SCALAR_SET, ("status", "addresses"): _by("type")}, _STATUS_CONDITIONS
        ),
        "Service": _kind({("spec", "ports"): _by("port")}, _STATUS_CONDITIONS),
        "Namespace": _kind(_STATUS_CONDITIONS),
        "ServiceAccount": _kind({("secrets",): _by("name")}),
        "PersistentVolumeClaim": _kind(_STATUS_CONDITIONS),
        "PodTemplate": _kind(_under(("template",), _POD_TEMPLATE_SPEC)),
        "ReplicationController": _WORKLOAD,
        "Deployment": _WORKLOAD,
        "DaemonSet": _WORKLOAD,
        "ReplicaSet": _WORKLOAD,
        "StatefulSet": _WORKLOAD,
        "Job": _WORKLOAD,
        "CronJob": _kind(
            _under(("spec", "jobTemplate"), _OBJECT_META),
            _under(("spec", "jobTemplate", "spec", "template"), _POD_TEMPLATE_SPEC),
        ),
        "PodDisruptionBudget": _kind(_STATUS_CONDITIONS),
        **{
            kind: _kind()
            for kind in (
                "ConfigMap",
                "Secret",
                "Event",
                "Endpoints",
                "EndpointSlice",
                "Lease",
                "LimitRange",
                "ResourceQuota",
                "PersistentVolume",
                "PriorityClass",
                "CustomResourceDefinition",
            )
        },
    }
)


# -- strategic merge patch: the merge ---------------------------------------------------------

_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"
_DELETE_FROM: Final = "$deleteFromPrimitiveList/"

Path: TypeAlias = tuple[str, ...]


def strategic_merge_patch(
    document: Mapping[str, Any],
    patch: Mapping[str, Any],
    *,
    kind: str,
    merge_keys: Mapping[str, MergeKeyTable] = STRATEGIC_MERGE_KEYS,
) -> dict[str, Any]:
    """`document` (a built-in `kind`) with a Kubernetes strategic merge `patch` applied."""
    table = merge_keys.get(kind)
    if table is None:
        raise PatchError(CUSTOM_RESOURCE_SMP)
    if not isinstance(document, Mapping) or not isinstance(patch, Mapping):
        raise PatchError("a strategic merge patch and its document must be JSON objects")
    # The merge works in place, like apimachinery's: on copies, so the inputs stay untouched.
    return _merge_map(copy.deepcopy(dict(document)), copy.deepcopy(dict(patch)), (), table)


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], path: Path, table: MergeKeyTable
) -> dict[str, Any]:
    if _PATCH in patch:
        directive = patch.pop(_PATCH)
        if directive == "replace":
            return _clean_map(patch)
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {directive!r} in map at {_dotted(path)}")
    _retain_keys(original, patch, path)
    _merge_ordered_lists(original, patch, path, table)
    for key, value in patch.items():
        field, is_delete_list = key, False
        if key.startswith(_DELETE_FROM):
            field, is_delete_list = key.removeprefix(_DELETE_FROM), True
        elif key.startswith("$"):
            raise PatchError(f"unknown strategic merge patch directive {key!r} at {_dotted(path)}")
        if value is None:
            original.pop(field, None)
            continue
        current = original.get(field)
        if field not in original or _shape(current) != _shape(value):
            # A delete list for a field that is not there has nothing to delete.
            if not is_delete_list:
                _set_cleaned(original, field, value)
        elif isinstance(current, dict):
            original[field] = _merge_map(current, value, (*path, field), table)
        elif isinstance(current, list):
            original[field] = _merge_list_field(
                current, value, (*path, field), table, is_delete_list=is_delete_list
            )
        else:
            original[field] = value
    return original


def _retain_keys(original: dict[str, Any], patch: dict[str, Any], path: Path) -> None:
    """`$retainKeys`: clear the fields of `original` it does not list."""
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise PatchError(f"invalid patch format of retainKeys at {_dotted(path)}")
    for key, value in patch.items():
        if value is not None and not key.startswith((_SET_ORDER, _DELETE_FROM)) and key not in retained:
            raise PatchError(
                f"invalid patch format of retainKeys at {_dotted(path)}: {key!r} is not retained"
            )
    for key in [k for k in original if k not in retained]:
        del original[key]


def _merge_ordered_lists(
    original: dict[str, Any], patch: dict[str, Any], path: Path, table: MergeKeyTable
) -> None:
    """`$setElementOrder/<field>`: merge <field> now, in the listed order; server-only items stay."""
    for key in [k for k in patch if k.startswith(_SET_ORDER)]:
        order, field = patch.pop(key), key.removeprefix(_SET_ORDER)
        current, patch_list = original.get(field), patch.pop(field, None)
        if not isinstance(order, list) or not all(isinstance(v, list | None) for v in (current, patch_list)):
            raise PatchError(f"invalid patch format of setElementOrder list at {_dotted((*path, field))}")
        strategy = table.get((*path, field))
        merge_key = strategy.merge_key if strategy else None
        if (
            any(isinstance(item, dict) for item in (*order, *(current or ()), *(patch_list or ())))
            and not merge_key
        ):
            raise PatchError(f"$setElementOrder needs a list with a merge key at {_dotted((*path, field))}")
        _check_order(patch_list or [], order, merge_key, (*path, field))
        if current is None and patch_list is None:
            continue
        if patch_list is None:
            merged = current
        elif current is None:
            merged = _clean_list(patch_list)
        else:
            merged = _merge_list_field(current, patch_list, (*path, field), table, is_delete_list=False)
        original[field] = _order(
            merged or [], patch_order=order, server_order=current or [], merge_key=merge_key
        )


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str | None, path: Path) -> None:
    """The patch list's items must appear in `order`, in the same relative order."""
    if not patch_list or not order:
        return
    items = [v for v in patch_list if not (isinstance(v, dict) and v.get(_PATCH) == "delete")]
    at, wanted = 0, 0
    while at < len(items) and wanted < len(order):
        if isinstance(items[at], dict) and _PATCH in items[at]:
            at += 1
            continue
        if _same_item(items[at], order[wanted], merge_key, path):
            at += 1
        wanted += 1
    if at < len(items):
        raise PatchError(
            f"the order in the patch list at {_dotted(path)} does not match its $setElementOrder list"
        )


def _merge_list_field(
    current: list[Any], patch: list[Any], path: Path, table: MergeKeyTable, *, is_delete_list: bool
) -> list[Any]:
    strategy = table.get(path)
    if strategy is None and not is_delete_list:
        return _clean_list(patch)
    merge_key = strategy.merge_key if strategy else None
    if not current and not patch:
        return current
    if _element_shape(current, patch, path) != "object":
        if is_delete_list:
            return [v for v in current if not any(_json_equal(v, d) for d in patch)]
        merged = list(current)
        for item in patch:
            if not any(_json_equal(item, m) for m in merged):
                merged.append(item)
        return _order(merged, patch_order=patch, server_order=current, merge_key=None)
    if merge_key is None:
        raise PatchError(f"cannot merge lists without a merge key at {_dotted(path)}")
    current, patch = _list_directives(current, patch, merge_key, path)
    merged = list(current)
    for item in patch:
        found = _find(merged, merge_key, item[merge_key])
        if found is None:
            merged.append(_clean_map(item))
        else:
            merged[found] = _merge_map(merged[found], item, path, table)
    return _order(merged, patch_order=patch, server_order=current, merge_key=merge_key)


def _list_directives(
    current: list[Any], patch: list[Any], merge_key: str, path: Path
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Apply `$patch: delete` / `$patch: replace` items: (what is left of `current`, the plain items)."""
    plain, replace = [], False
    for item in patch:
        _require_key(item, merge_key, path)
        directive = item.get(_PATCH)
        if _PATCH not in item:
            plain.append(item)
        elif directive == "delete":
            current = [
                v for v in current if not (merge_key in v and _json_equal(v[merge_key], item[merge_key]))
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError(f"merging lists cannot yet be specified in the patch (at {_dotted(path)})")
        else:
            raise PatchError(f"unknown patch type: {directive!r} in list at {_dotted(path)}")
    if replace:
        return _clean_list(plain), []
    return current, plain


def _require_key(item: Any, merge_key: str, path: Path) -> None:
    if not isinstance(item, dict):
        raise PatchError(f"expected an object in the list at {_dotted(path)}, got {item!r}")
    directive = item.get(_PATCH)
    if merge_key not in item and directive != "replace":
        raise PatchError(f"{item!r} at {_dotted(path)} does not contain declared merge key: {merge_key}")


def _order(
    merged: list[Any], *, patch_order: list[Any], server_order: list[Any], merge_key: str | None
) -> list[Any]:
    """apimachinery's normalizeElementOrder: the patch's items in patch order, the server-only items
    in server order, interleaved where the server order relates them; new items come first."""

    def identity(item: Any) -> Any:
        return item.get(merge_key) if merge_key is not None and isinstance(item, dict) else item

    def position(order: list[Any], item: Any) -> int | None:
        wanted = identity(item)
        return next((i for i, v in enumerate(order) if _json_equal(identity(v), wanted)), None)

    in_patch = [item for item in merged if position(patch_order, item) is not None]
    server_only = [item for item in merged if position(patch_order, item) is None]
    in_patch.sort(key=lambda item: position(patch_order, item) or 0)
    server_only.sort(key=lambda item: _or_end(position(server_order, item), server_order))
    ordered: list[Any] = []
    while server_only and in_patch:
        left, right = position(server_order, server_only[0]), position(server_order, in_patch[0])
        if left is not None and right is not None and left < right:
            ordered.append(server_only.pop(0))
        else:
            ordered.append(in_patch.pop(0))
    return ordered + server_only + in_patch


def _or_end(position: int | None, order: list[Any]) -> int:
    return len(order) if position is None else position


def _same_item(left: Any, right: Any, merge_key: str | None, path: Path) -> bool:
    if merge_key is None:
        return _json_equal(left, right)
    for item in (left, right):
        _require_key(item, merge_key, path)
    return _json_equal(left[merge_key], right[merge_key])


def _find(items: list[Any], merge_key: str, value: Any) -> int | None:
    return next((i for i, v in enumerate(items) if merge_key in v and _json_equal(v[merge_key], value)), None)


def _shape(value: Any) -> str:
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "scalar"


def _element_shape(current: list[Any], patch: list[Any], path: Path) -> str:
    """The one JSON type every item of both lists has (apimachinery sliceElementType)."""
    shapes = {_json_type(item) for item in (*current, *patch)}
    if "array" in shapes:
        raise PatchError(f"lists of lists are not supported (at {_dotted(path)})")
    if len(shapes) > 1:
        raise PatchError(f"list element types are not identical at {_dotted(path)}: {sorted(shapes)}")
    return shapes.pop()


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "null"


def _set_cleaned(target: dict[str, Any], key: str, value: Any) -> None:
    cleaned, keep = _clean(value)
    if keep:
        target[key] = cleaned
    else:
        target.pop(key, None)


def _clean(value: Any) -> tuple[Any, bool]:
    """A patch value as the server stores it when nothing merges into it, and whether to keep it:
    a map holding `$patch` goes, so do directive keys and nulls (apimachinery removeDirectives
    and discardNullValuesFromPatch, then the typed decode that drops unknown `$` fields)."""
    if isinstance(value, dict):
        return (None, False) if _PATCH in value else (_clean_map(value), True)
    if isinstance(value, list):
        return _clean_list(value), True
    return value, True


def _clean_map(value: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if item is None or key.startswith("$"):
            continue
        cleaned, keep = _clean(item)
        if keep:
            kept[key] = cleaned
    return kept


def _clean_list(value: list[Any]) -> list[Any]:
    return [cleaned for cleaned, keep in map(_clean, value) if keep]


def _dotted(path: Path) -> str:
    return ".".join(path) or "<root>"


# -- dispatch --------------------------------------------------------------------------------


def apply_patch(
    document: Mapping[str, Any],
    patch_body: Any,
    *,
    content_type: str,
    kind: str,
    is_custom: bool,
    merge_keys: Mapping[str, MergeKeyTable] = STRATEGIC_MERGE_KEYS,
) -> dict[str, Any]:
    """`document` patched with the decoded `patch_body` as its `content_type` says."""
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    if media_type == APPLY_PATCH:
        raise UnsupportedPatch(
            "server-side apply (application/apply-patch+yaml) merges by field ownership, not as a patch"
            " of the document: the server runs it through emulator.apply"
        )
    function = PATCH_TYPES.get(media_type)
    if function is None:
        accepted = ", ".join(t for t in PATCH_TYPES if not (is_custom and t == STRATEGIC_MERGE_PATCH))
        raise UnsupportedPatch(
            f"the body of the request was in an unknown format - accepted media types include: {accepted}"
        )
    if function == "strategic_merge_patch":
        if is_custom:
            raise UnsupportedPatch(CUSTOM_RESOURCE_SMP)
        if not isinstance(patch_body, dict):
            raise PatchError("a strategic merge patch must be a JSON object")
        return strategic_merge_patch(document, patch_body, kind=kind, merge_keys=merge_keys)
    result = (
        merge_patch(document, patch_body) if function == "merge_patch" else json_patch(document, patch_body)
    )
    if not isinstance(result, dict):
        raise PatchError("the patched document is not a JSON object")
    return result
