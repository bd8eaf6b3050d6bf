"""`Accept: application/json;as=Table`: server-side printing, as `kubectl get` asks for it.

Custom resources print their CRD's additionalPrinterColumns; pods, nodes, namespaces and events
get the columns kubectl users know; anything else prints its name and age.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from aisched.api.objects import parse_datetime
from aisched.emulator.resources import ResourceType

__all__ = ["human_age", "table"]

Obj = Mapping[str, Any]
Column = tuple[str, str, int, Callable[[Obj, datetime], Any]]  # name, type, priority, cell


def human_age(timestamp: Any, now: datetime) -> str:
    """`5m`, `3h12m`, `2d` as kubectl shows ages; `<unknown>` when absent or unreadable."""
    then = parse_datetime(timestamp)
    if then is None:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60}m" if hours < 8 and minutes % 60 else f"{hours}h"
    return f"{hours // 24}d"


def _age(obj: Obj, now: datetime) -> str:
    return human_age((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _name(obj: Obj, now: datetime) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


_PATH_PART: Final = re.compile(r"(?:\\\.|[^.\[\]])+|\[\d+\]")


def json_path(obj: Any, path: str) -> Any:
    """The value at a simple JSONPath (`.status.phase`, `.spec.replicas[0].count`, escaped dots)."""
    node = obj
    for part in _PATH_PART.findall(path.strip().lstrip(".")):
        if part.startswith("["):
            index = int(part[1:-1])
            node = node[index] if isinstance(node, list) and index < len(node) else None
        else:
            key = part.replace("\\.", ".")
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            return None
    return node


def _pod_ready(obj: Obj, now: datetime) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(obj: Obj, now: datetime) -> str:
    status = obj.get("status") or {}
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _pod_restarts(obj: Obj, now: datetime) -> int:
    return sum(s.get("restartCount", 0) for s in (obj.get("status") or {}).get("containerStatuses") or [])


def _node_status(obj: Obj, now: datetime) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    text = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if (obj.get("spec") or {}).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


_BUILTIN: Final[dict[tuple[str, str], Sequence[Column]]] = {
    ("", "pods"): (
        ("Name", "string", 0, _name),
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "integer", 0, _pod_restarts),
        ("Age", "string", 0, _age),
        ("IP", "string", 1, lambda o, n: (o.get("status") or {}).get("podIP") or "<none>"),
        ("Node", "string", 1, lambda o, n: (o.get("spec") or {}).get("nodeName") or "<none>"),
    ),
    ("", "nodes"): (
        ("Name", "string", 0, _name),
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, lambda o, n: "<none>"),
        ("Age", "string", 0, _age),
        (
            "Version",
            "string",
            0,
            lambda o, n: ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""),
        ),
    ),
    ("", "namespaces"): (
        ("Name", "string", 0, _name),
        ("Status", "string", 0, lambda o, n: (o.get("status") or {}).get("phase", "Active")),
        ("Age", "string", 0, _age),
    ),
    ("", "events"): (
        ("Last Seen", "string", 0, lambda o, n: human_age(o.get("lastTimestamp") or o.get("eventTime"), n)),
        ("Type", "string", 0, lambda o, n: o.get("type", "")),
        ("Reason", "string", 0, lambda o, n: o.get("reason", "")),
        (
            "Object",
            "string",
            0,
            lambda o, n: (
                f"{(o.get('involvedObject') or {}).get('kind', '').lower()}/"
                f"{(o.get('involvedObject') or {}).get('name', '')}"
            ),
        ),
        ("Message", "string", 0, lambda o, n: o.get("message", "")),
    ),
}
_DEFAULT: Final[Sequence[Column]] = (("Name", "string", 0, _name), ("Age", "string", 0, _age))


def _custom_columns(resource: ResourceType) -> list[Column]:
    columns: list[Column] = [("Name", "string", 0, _name)]
    for column in resource.printer_columns:
        path, kind = column["jsonPath"], column.get("type", "string")

        def cell(obj: Obj, now: datetime, path: str = path, kind: str = kind) -> Any:
            value = json_path(obj, path)
            if kind == "date":
                return human_age(value, now)
            return value

        columns.append(
            (column["name"], "string" if kind == "date" else kind, int(column.get("priority", 0)), cell)
        )
    return columns


def table(resource: ResourceType, objects: Sequence[Obj], *, revision: int, now: datetime) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of `objects`."""
    columns = _custom_columns(resource) if resource.custom else _BUILTIN.get(resource.key, _DEFAULT)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(revision)},
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": prio,
            }
            for name, kind, prio, _ in columns
        ],
        "rows": [
            {
                "cells": [cell(obj, now) for _, _, _, cell in columns],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {}),
                },
            }
            for obj in objects
        ],
    }
