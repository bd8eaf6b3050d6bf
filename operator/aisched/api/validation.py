"""Parsing manifests into API models, and field-named errors for the ones that do not parse.

This is the edge where raw dicts become typed objects. Everything past it works on models;
everything refused here is reported as `FieldError`s such as
`spec.gang.minMember: must not exceed the total number of replicas (20 > 16)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from aisched.api import keys
from aisched.api.aijob import AIJob
from aisched.api.gpunodetopology import GPUNodeTopology
from aisched.api.meta import (
    API_VERSION,
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    GROUP,
    QUALIFIED_NAME_PATTERN,
    Resource,
)
from aisched.api.pod import Pod
from aisched.api.tenantquota import TenantQuota

__all__ = ["KIND_MODELS", "FieldError", "InvalidObjectError", "errors_of", "parse", "validate_manifest"]

M = TypeVar("M", bound=BaseModel)

#: The models of aisched's own kinds, by kind.
KIND_MODELS: Final[dict[str, type[Resource]]] = {m.KIND: m for m in (AIJob, TenantQuota, GPUNodeTopology)}


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with an object: where (a field path such as `spec.replicas[0].count`) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidObjectError(ValueError):
    """An object that does not satisfy its kind's schema or rules."""

    def __init__(self, kind: str, name: str, errors: list[FieldError]) -> None:
        self.kind = kind
        self.name = name
        self.errors = errors
        super().__init__(f"invalid {kind} {name or '(unnamed)'}: " + "; ".join(map(str, errors)))


def format_path(loc: Iterable[int | str]) -> str:
    """`("spec", "replicas", 0, "count")` → `spec.replicas[0].count`; odd keys go in brackets."""
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for an error in a map's key rather than its value
            continue
        if isinstance(part, int) or not _PLAIN_KEY.fullmatch(part):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _join(base: str, rel: str) -> str:
    if not rel:
        return base
    if not base:
        return rel
    return base + rel if rel.startswith("[") else f"{base}.{rel}"


def errors_of(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """The field errors in a pydantic `ValidationError`, with cross-field rules expanded."""
    found: list[FieldError] = []
    for error in exc.errors(include_url=False):
        base = _join(prefix, format_path(error["loc"]))
        ctx = error.get("ctx") or {}
        if error["type"] == "rule" and "violations" in ctx:
            found.extend(FieldError(_join(base, rel), message) for rel, message in ctx["violations"])
            continue
        message: str = error["msg"]
        pattern = ctx.get("pattern")
        if error["type"] == "string_pattern_mismatch" and pattern in _PATTERN_MEANINGS:
            message = _PATTERN_MEANINGS[pattern]
        elif error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a known field"
        elif error["type"] in {"literal_error", "enum"}:
            message = message.replace("Input should be", "must be")
        if error["loc"] and error["loc"][-1] == "[key]":
            message = f"key {message}"
        found.append(FieldError(base, _lowercase_first(message)))
    return found


_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PATTERN_MEANINGS: Final = {
    DNS_LABEL_PATTERN: "must be a lowercase RFC 1123 label: a-z, 0-9 and '-', alphanumeric at both ends",
    DNS_SUBDOMAIN_PATTERN: "must be a lowercase RFC 1123 subdomain: labels of a-z, 0-9 and '-' joined by '.'",
    QUALIFIED_NAME_PATTERN: "must be a resource name such as cpu, memory or nvidia.com/gpu",
}


def _lowercase_first(message: str) -> str:
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message


def parse(model: type[M], body: Mapping[str, Any]) -> M:
    """Parse `body` as `model`, raising `InvalidObjectError` with field-named errors."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        meta = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
        name = str(meta.get("name") or meta.get("generateName") or "")  # type: ignore[union-attr]
        raise InvalidObjectError(getattr(model, "KIND", model.__name__), name, errors_of(exc)) from None


def validate_manifest(body: Any) -> list[FieldError] | None:
    """Errors of one manifest document; `None` when the document is of a kind aisched does not check.

    aisched checks its own kinds and pods that name it as their scheduler.
    """
    if not isinstance(body, Mapping):
        return [FieldError("", "a manifest must be a mapping with apiVersion and kind")]
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        field, value = ("kind", kind) if isinstance(api_version, str) else ("apiVersion", api_version)
        return [FieldError(field, "is required" if value is None else f"must be a string, got {value!r}")]
    if api_version.split("/", 1)[0] == GROUP:
        if api_version != API_VERSION:
            return [FieldError("apiVersion", f"must be {API_VERSION}, got {api_version}")]
        model = KIND_MODELS.get(kind)
        if model is None:
            return [FieldError("kind", f"must be one of {', '.join(sorted(KIND_MODELS))}, got {kind}")]
        return _metadata_errors(body) + _model_errors(model, body)
    if api_version == "v1" and kind == "Pod":
        spec = body.get("spec")
        if isinstance(spec, Mapping) and spec.get("schedulerName") == keys.SCHEDULER_NAME:
            return _metadata_errors(body) + _model_errors(Pod, body)
    return None


def _model_errors(model: type[BaseModel], body: Mapping[str, Any]) -> list[FieldError]:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return errors_of(exc)
    return []


def _metadata_errors(body: Mapping[str, Any]) -> list[FieldError]:
    meta = body.get("metadata")
    if not isinstance(meta, Mapping) or not (meta.get("name") or meta.get("generateName")):
        return [FieldError("metadata.name", "is required (or metadata.generateName)")]
    return []
