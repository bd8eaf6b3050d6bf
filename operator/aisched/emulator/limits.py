"""Limits the API server puts on what it stores: label and annotation syntax, the total size of
annotations, and the size of one write to etcd.

Pure: no I/O. Messages are k8s.io/apimachinery's (`ValidateLabels`, `ValidateAnnotations`,
`IsQualifiedName`, `IsValidLabelValue`), so clients that match on them see what a cluster says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from aisched.emulator.errors import StatusError

__all__ = ["ETCD_MAX_REQUEST_BYTES", "TOTAL_ANNOTATION_BYTES", "check_size", "metadata_causes"]

#: apimachinery's TotalAnnotationSizeLimitB.
TOTAL_ANNOTATION_BYTES: Final = 256 * 1024
#: etcd's default --max-request-bytes, which the API server's writes must stay under.
ETCD_MAX_REQUEST_BYTES: Final = 1536 * 1024

_QUALIFIED_NAME: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_QUALIFIED_NAME_MESSAGE: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an"
    " alphanumeric character"
)
_LABEL_VALUE: Final = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_VALUE_MESSAGE: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.',"
    " and must start and end with an alphanumeric character"
)
_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SUBDOMAIN_MESSAGE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.',"
    " and must start and end with an alphanumeric character"
)


def _regex_error(message: str, pattern: re.Pattern[str], *examples: str) -> str:
    """apimachinery's RegexError, its doubled spaces included."""
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{pattern.pattern}')"


def _qualified_name(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_MESSAGE, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    problems = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                problems.append("prefix part must be no more than 253 characters")
            if not _SUBDOMAIN.fullmatch(prefix):
                problems.append("prefix part " + _regex_error(_SUBDOMAIN_MESSAGE, _SUBDOMAIN, "example.com"))
    name = parts[-1]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME.fullmatch(name):
        problems.append(
            "name part "
            + _regex_error(_QUALIFIED_NAME_MESSAGE, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")
        )
    return problems


def _label_value(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _LABEL_VALUE.fullmatch(value):
        problems.append(_regex_error(_LABEL_VALUE_MESSAGE, _LABEL_VALUE, "MyValue", "my_value", "12345"))
    return problems


def _invalid(path: str, value: str, why: str) -> dict[str, str]:
    return {
        "field": path,
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {json.dumps(value)}: {why}",
    }


def metadata_causes(meta: Mapping[str, Any]) -> list[dict[str, str]]:
    """What is wrong with `meta`'s labels and annotations (already known to be maps of strings)."""
    causes = []
    for key, value in (meta.get("labels") or {}).items():
        causes += [_invalid("metadata.labels", key, why) for why in _qualified_name(key)]
        causes += [_invalid("metadata.labels", value, why) for why in _label_value(value)]
    annotations = meta.get("annotations") or {}
    for key in annotations:
        causes += [_invalid("metadata.annotations", key, why) for why in _qualified_name(key.lower())]
    if sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items()) > TOTAL_ANNOTATION_BYTES:
        causes.append(
            {
                "field": "metadata.annotations",
                "reason": "FieldValueTooLong",
                "message": f"Too long: may not be more than {TOTAL_ANNOTATION_BYTES} bytes",
            }
        )
    return causes


def check_size(obj: Mapping[str, Any]) -> None:
    """Refuse a write etcd would refuse: the API server passes etcd's error on as a 500."""
    if len(json.dumps(obj, separators=(",", ":")).encode()) > ETCD_MAX_REQUEST_BYTES:
        raise StatusError(500, "", "etcdserver: request is too large")
