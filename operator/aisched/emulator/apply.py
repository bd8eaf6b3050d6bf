"""Server-side apply (PATCH `application/apply-patch+yaml`) as the API server runs it
(sigs.k8s.io/structured-merge-diff `merge.Updater.Apply`, k8s.io/apiserver's fieldmanager).

Pure: no I/O; the time is given. `apply` merges the applied configuration into the live object
(maps by key, keyed lists by their keys, sets by value, everything else replaced whole), refuses
(409) values that change fields another manager owns unless forced (then they change hands),
removes the fields this manager applied last time and no longer applies (unless someone else owns
them), and records the manager's new set in `metadata.managedFields`. The caller stores the result
through its ordinary write path (admission, defaults, validation, resourceVersion, watch events).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from aisched.emulator import managedfields as mf
from aisched.emulator.errors import StatusError
from aisched.emulator.fields import FieldPathError, Path, Shape, item_element, render

__all__ = ["MANAGER_MAX_LENGTH", "apply", "check_config", "check_options"]

Obj = dict[str, Any]
MANAGER_MAX_LENGTH: Final = 128


def _options_invalid(causes: list[dict[str, str]]) -> StatusError:
    summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    return StatusError(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: {summary}',
        details={"group": "meta.k8s.io", "kind": "PatchOptions", "causes": causes},
    )


def check_options(*, is_apply: bool, manager: str | None, force: str | None) -> None:
    """The API server's PatchOptions validation (k8s.io/apimachinery `ValidatePatchOptions`)."""
    causes = []
    if not is_apply and force is not None:
        causes.append(
            {
                "reason": "FieldValueForbidden",
                "message": "Forbidden: may not be specified for non-apply patch",
                "field": "force",
            }
        )
    if is_apply and not manager:
        causes.append(
            {
                "reason": "FieldValueRequired",
                "message": "Required value: is required for apply patch",
                "field": "fieldManager",
            }
        )
    if manager and len(manager) > MANAGER_MAX_LENGTH:
        causes.append(
            {
                "reason": "FieldValueTooLong",
                "message": f"Too long: may not be more than {MANAGER_MAX_LENGTH} bytes",
                "field": "fieldManager",
            }
        )
    if manager and not manager.isprintable():
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": f"Invalid value: {manager!r}: all characters must be printable",
                "field": "fieldManager",
            }
        )
    if causes:
        raise _options_invalid(causes)


def check_config(config: Any, *, kind: str, api_version: str, name: str) -> Obj:
    """The applied configuration, checked as the API server checks it before merging."""
    if not isinstance(config, dict):
        raise StatusError.bad_request("error decoding YAML: the applied configuration must be an object")
    if config.get("apiVersion") != api_version:
        raise StatusError.bad_request(
            "Incorrect version specified in apply patch. "
            f"Specified patch version: {config.get('apiVersion') or ''}, expected: {api_version}"
        )
    if config.get("kind") != kind:
        raise StatusError.bad_request(
            f"failed to create typed patch object ({api_version}, Kind={config.get('kind') or ''}):"
            f" the kind does not match the resource's kind {kind}"
        )
    meta = config.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise StatusError.bad_request(f"{kind} in body is invalid: metadata: must be an object")
    meta = dict(meta or {})
    if meta.get("managedFields") is not None:
        raise StatusError.bad_request("metadata.managedFields must be nil")
    if meta.setdefault("name", name) != name:
        raise StatusError.bad_request("the name of the object does not match the name on the URL")
    return {**config, "metadata": meta}


def _conflict_error(conflicts: list[tuple[str, Path]]) -> StatusError:
    """409 as the API server words it: `Apply failed with 1 conflict: conflict with "m": .spec.x`."""
    causes = [
        {"type": "FieldManagerConflict", "message": f"conflict with {who}", "field": render(path)}
        for who, path in conflicts
    ]
    if len(conflicts) == 1:
        who, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {render(path)}"
    else:
        lines = []
        for who in sorted({who for who, _ in conflicts}):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {render(path)}" for other, path in conflicts if other == who]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, details={"causes": causes})


def apply(
    *,
    live: Obj | None,
    config: Obj,
    shape: Shape,
    manager: str,
    force: bool,
    subresource: str,
    has_status: bool,
    api_version: str,
    now: str,
) -> Obj:
    """`live` (None: the object does not exist yet) with `config` applied by `manager`, its
    `metadata.managedFields` brought up to date."""
    try:
        return _apply(
            live=live,
            config=_without_nulls(config),
            shape=shape,
            key=(manager, mf.APPLY, subresource),
            force=force,
            has_status=has_status,
            api_version=api_version,
            now=now,
        )
    except FieldPathError as exc:
        raise StatusError.bad_request(f"failed to create typed patch object: {exc}") from None


def _apply(
    *,
    live: Obj | None,
    config: Obj,
    shape: Shape,
    key: tuple[str, str, str],
    force: bool,
    has_status: bool,
    api_version: str,
    now: str,
) -> Obj:
    subresource = key[2]

    def values(obj: Any, *, applied: bool = False) -> dict[Path, Any]:
        return mf.owned_values(
            obj, shape, subresource=subresource, has_status=has_status, strict=applied, maps=not applied
        )

    managers = mf.starting({}, live)
    applied = values(config, applied=True)
    merged: Obj = _merge(live or {}, config, shape, ())
    before = values(live or {})
    changed, _ = mf.changes(before, values(merged))
    conflicts = sorted(
        (mf.describe(other, owned), path)
        for other, owned in managers.items()
        if other != key
        for path in owned.fields & changed
    )
    if conflicts and not force:
        raise _conflict_error(conflicts)
    managers = mf.without(managers, changed, but=key)
    last = managers[key].fields if key in managers else frozenset()
    managers[key] = mf.Owned(frozenset(applied), now, api_version)
    others = [owned.fields for other, owned in managers.items() if other != key]
    for path in sorted(last - set(applied), key=len, reverse=True):
        if not any(_owned_at_or_under(fields, path) for fields in others):
            _remove(merged, path, shape)
    _, removed = mf.changes(before, values(merged))
    managers = mf.without(managers, removed)
    merged.setdefault("metadata", {})["managedFields"] = mf.encode(managers)
    return merged


def _owned_at_or_under(fields: frozenset[Path], path: Path) -> bool:
    return any(owned[: len(path)] == path for owned in fields)


def _without_nulls(value: Any) -> Any:
    """An applied configuration's nulls say nothing: the field is neither set nor owned."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


# -- the merge -----------------------------------------------------------------------------------


def _merge(live: Any, config: Any, shape: Shape, path: Path) -> Any:
    if isinstance(live, dict) and isinstance(config, dict) and not shape.atomic_map():
        out = dict(live)
        for key, value in config.items():
            where = (*path, f"f:{key}")
            out[key] = (
                _merge(live[key], value, shape.child(key), where) if key in live else copy.deepcopy(value)
            )
        return out
    if isinstance(live, list) and isinstance(config, list) and shape.list_type()[0] != "atomic":
        return _merge_list(live, config, shape, path)
    return copy.deepcopy(config)


def _merge_list(live: list[Any], config: list[Any], shape: Shape, path: Path) -> list[Any]:
    """Items matched by key: the configuration's in its order, the live-only ones where they were
    (structured-merge-diff's `visitListItems` order)."""
    item_shape = shape.item()
    left = [item_element(item, shape, index=i, where=path) for i, item in enumerate(live)]
    right = [item_element(item, shape, index=i, where=path) for i, item in enumerate(config)]
    by_left, by_right = dict(zip(left, live, strict=True)), dict(zip(right, config, strict=True))
    shared = [element for element in right if element in by_left]

    def both(element: str) -> Any:
        if element in by_left:
            return _merge(by_left[element], by_right[element], item_shape, (*path, element))
        return copy.deepcopy(by_right[element])

    out: list[Any] = []
    done: set[str] = set()
    at_left = at_right = 0
    while at_left < len(left) or at_right < len(right):
        if at_left < len(left) and at_right < len(right):
            element = left[at_left]
            if element == right[at_right]:
                done.add(element)
                out.append(both(element))
                at_left, at_right = at_left + 1, at_right + 1
                shared = shared[1:] if shared and shared[0] == element else shared
                continue
            if element in by_right and shared and shared[0] != element:
                at_left += 1
                continue
        if at_left < len(left):
            element = left[at_left]
            if element not in by_right:
                out.append(live[at_left])
                at_left += 1
                continue
            if element in done:
                at_left += 1
                continue
        if at_right < len(right):
            element = right[at_right]
            done.add(element)
            out.append(both(element))
            at_right += 1
            if shared and shared[0] == element:
                shared = shared[1:]
    return out


def _remove(obj: Any, path: Path, shape: Shape) -> None:
    """Remove the value at `path` from `obj` in place (nothing if it is not there)."""
    node, node_shape = obj, shape
    for depth, element in enumerate(path):
        last = depth == len(path) - 1
        if element.startswith("f:") and isinstance(node, dict):
            name = element[2:]
            if name not in node:
                return
            if last:
                del node[name]
                return
            node, node_shape = node[name], node_shape.child(name)
        elif isinstance(node, list):
            found = _find(node, element, node_shape)
            if found is None:
                return
            if last:
                del node[found]
                return
            node, node_shape = node[found], node_shape.item()
        else:
            return


def _find(items: list[Any], element: str, shape: Shape) -> int | None:
    for index, item in enumerate(items):
        try:
            if item_element(item, shape, index=index, where=()) == element:
                return index
        except FieldPathError:
            continue
    return None
