"""Custom resources checked against their CRD's openAPIV3Schema the way the API server checks them.

Pure: no I/O, no clock. `validate_custom_resource` runs the API server's pipeline: prune the
fields the schema does not declare, apply `default`s, then validate `metadata.name`, the schema
(types, formats, bounds, enums, required fields), the list-type invariants and, unless a blocking
error came first, the CEL rules in `x-kubernetes-validations`.

Errors are `FieldError`s that render like the API server's `field.Error`s:
`spec.replicas[0].count: Invalid value: 0: spec.replicas[0].count in body should be greater than or
equal to 1`. Paths are written as aisched writes them everywhere (`format_path`): a map key of
ordinary characters as `.key`, any other in brackets: `spec.resources[nvidia.com/gpu].max`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum, StrEnum
from fractions import Fraction
from typing import Any, Final, cast

from aisched.api.validation import format_path
from aisched.emulator.cel import CelError, CelEvaluator, to_cel

__all__ = [
    "OMIT",
    "ErrorType",
    "FieldError",
    "default",
    "prune",
    "rule_errors",
    "unknown_field_messages",
    "validate",
    "validate_custom_resource",
]

Schema = Mapping[str, Any]
Loc = tuple[int | str, ...]


class ErrorType(StrEnum):
    """Kubernetes' `field.ErrorType`: the value is the Status cause's reason, `label` how it is written."""

    NOT_FOUND = "FieldValueNotFound"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"
    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    TOO_LONG = "FieldValueTooLong"
    TOO_MANY = "FieldValueTooMany"
    INTERNAL = "InternalError"
    TYPE_INVALID = "FieldValueTypeInvalid"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS: Final = dict(
    zip(ErrorType, ("Not found", "Required value", "Duplicate value", "Invalid value", "Unsupported value",
                    "Forbidden", "Too long", "Too many", "Internal error", "Invalid value"), strict=True)
)  # fmt: skip
# Errors after which the API server does not run the CEL rules: the object lacks the shape they assume.
_BLOCKING: Final = frozenset(
    {
        ErrorType.NOT_SUPPORTED,
        ErrorType.REQUIRED,
        ErrorType.TOO_LONG,
        ErrorType.TOO_MANY,
        ErrorType.TYPE_INVALID,
    }
)
_VALUE_HIDDEN: Final = frozenset(
    {ErrorType.REQUIRED, ErrorType.FORBIDDEN, ErrorType.TOO_LONG, ErrorType.INTERNAL}
)
_NOT_CHECKED: Final = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


class _Omit(Enum):
    OMIT = "omit"


#: A `FieldError` value that is not shown, as Kubernetes' `field.OmitValueType`.
OMIT: Final = _Omit.OMIT


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with an object: where, of which `ErrorType`, the detail, and the bad value."""

    path: str
    kind: ErrorType
    message: str = ""
    value: Any = OMIT

    @property
    def reason(self) -> str:
        """The Status cause's `reason`, such as `FieldValueInvalid`."""
        return self.kind.value

    @property
    def body(self) -> str:
        """The error without its path, as the Status cause's `message`."""
        shown = self.value is not OMIT and self.kind not in _VALUE_HIDDEN
        text = f"{self.kind.label}: {_go_value(self.value)}" if shown else self.kind.label
        return f"{text}: {self.message}" if self.message else text

    def __str__(self) -> str:
        return f"{self.path}: {self.body}"


def unknown_field_messages(dropped: Sequence[str]) -> list[str]:
    """What the API server says of pruned fields: joined after `strict decoding error: ` under
    `fieldValidation=Strict`, one `Warning` header each under `Warn`."""
    return [f'unknown field "{path}"' for path in dropped]


# -- pruning ---------------------------------------------------------------------------------------

_OBJECT_META: Final = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
})  # fmt: skip


def prune(schema: Schema, obj: Any) -> tuple[Any, list[str]]:
    """`obj` without the fields `schema` does not declare, and the paths of those it dropped.

    `x-kubernetes-preserve-unknown-fields` keeps unknown fields; `apiVersion`, `kind` and the
    `ObjectMeta` fields of `metadata` are kept at the root and in embedded resources. As the API
    server does here too, nulls of non-nullable fields without a default are dropped (silently).
    """
    dropped: list[str] = []
    return _prune(schema, copy.deepcopy(obj), (), dropped, resource=True), dropped


def _prune(schema: Schema, value: Any, loc: Loc, dropped: list[str], *, resource: bool = False) -> Any:
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _prune(schema["items"], item, (*loc, index), dropped)
    if not isinstance(value, dict):
        return value
    resource = resource or schema.get("x-kubernetes-embedded-resource") is True
    keep_unknown = (
        schema.get("x-kubernetes-preserve-unknown-fields") is True
        or schema.get("additionalProperties") is True
    )
    for key in list(value):
        if resource and key in ("apiVersion", "kind"):
            continue
        if resource and key == "metadata":
            if isinstance(value[key], dict):
                for field in [f for f in value[key] if f not in _OBJECT_META]:
                    del value[key][field]
                    dropped.append(format_path((*loc, key, field)))
            continue
        sub = _property(schema, key)
        if sub is None:
            if not keep_unknown:
                del value[key]
                dropped.append(format_path((*loc, key)))
        elif value[key] is None and not sub.get("nullable") and "default" not in sub:
            del value[key]
        else:
            _prune(sub, value[key], (*loc, key), dropped)
    return value


# -- defaulting ------------------------------------------------------------------------------------


def default(schema: Schema, obj: Any) -> Any:
    """A copy of `obj` with the schema's `default`s filled in where a field is absent (or a
    non-nullable null), in objects that are present, at any depth, as the API server does."""
    result = copy.deepcopy(obj)
    _default(schema, result)
    return result


def _defaulted(schema: Schema, value: Any) -> Any:
    """`value`, or a copy of the schema's default when `value` is a null the default replaces."""
    if value is None and "default" in schema and not schema.get("nullable"):
        return copy.deepcopy(schema["default"])
    return value


def _default(schema: Schema, value: Any) -> None:
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            value[index] = _defaulted(schema["items"], item)
            _default(schema["items"], value[index])
    if not isinstance(value, dict):
        return
    for key, sub in (schema.get("properties") or {}).items():
        if "default" in sub and key not in value:
            value[key] = copy.deepcopy(sub["default"])
    for key in value:
        if (sub := _property(schema, key)) is not None:
            value[key] = _defaulted(sub, value[key])
            _default(sub, value[key])


# -- validation ------------------------------------------------------------------------------------


def validate(
    schema: Schema, obj: Any, *, old: Any = None, cel: CelEvaluator | None = None
) -> list[FieldError]:
    """Everything wrong with `obj` (already pruned and defaulted) under `schema`.

    Transition rules (those reading `oldSelf`) run only on an update, given `old`. Pass a
    long-lived `cel` to reuse compiled rules.
    """
    return _Validation(cel or CelEvaluator()).run(schema, obj, old=old, prior=[])


def rule_errors(
    schema: Schema, obj: Any, *, old: Any = None, cel: CelEvaluator | None = None
) -> list[FieldError]:
    """The CEL rule violations alone, whatever the structural errors: for tests of the rules."""
    check = _Validation(cel or CelEvaluator())
    check.rules(schema, obj, old, ())
    return check.errors


def validate_custom_resource(
    crd_version_schema: Schema,
    obj: Mapping[str, Any],
    *,
    old: Mapping[str, Any] | None = None,
    cel: CelEvaluator | None = None,
) -> tuple[dict[str, Any], list[FieldError], list[str]]:
    """What the API server does with a custom resource it is asked to store: the object it would
    store (pruned and defaulted), its errors, and the paths of the unknown fields it dropped.

    `crd_version_schema` is a CRD version's `openAPIV3Schema`, or its `schema` holding one.
    """
    schema = crd_version_schema.get("openAPIV3Schema", crd_version_schema)
    pruned, dropped = prune(schema, obj)
    defaulted: dict[str, Any] = default(schema, pruned)
    prior = _metadata_errors(defaulted)
    return defaulted, _Validation(cel or CelEvaluator()).run(schema, defaulted, old=old, prior=prior), dropped


_DNS_SUBDOMAIN: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_TOO_LONG_NAME: Final = "must be no more than 253 characters"
_DNS_SUBDOMAIN_MESSAGE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character "
    f"(e.g. 'example.com', regex used for validation is '{_DNS_SUBDOMAIN}')"
)


def _metadata_errors(obj: Any) -> list[FieldError]:
    """`metadata.name` (or `generateName`, as the name it starts) must be a DNS subdomain."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name, prefix = (meta.get("name"), meta.get("generateName")) if isinstance(meta, dict) else (None, None)
    if not name and not prefix:
        return [FieldError("metadata.name", ErrorType.REQUIRED, "name or generateName is required")]
    errors = []
    for field, value in (("name", name), ("generateName", prefix)):
        checked = str(value)
        if field == "generateName" and len(checked) > 1 and checked.endswith("-"):
            checked = checked[:-2] + "a"  # the trailing '-' stands before the random suffix
        if value and len(checked) > 253:
            errors.append(FieldError(f"metadata.{field}", ErrorType.INVALID, _TOO_LONG_NAME, value))
        if value and not (isinstance(value, str) and re.fullmatch(_DNS_SUBDOMAIN, checked)):
            errors.append(FieldError(f"metadata.{field}", ErrorType.INVALID, _DNS_SUBDOMAIN_MESSAGE, value))
    return errors


class _Validation:
    """One validation run: walks the object under its schema, collecting errors."""

    def __init__(self, cel: CelEvaluator) -> None:
        self.cel = cel
        self.errors: list[FieldError] = []

    def run(self, schema: Schema, obj: Any, *, old: Any, prior: list[FieldError]) -> list[FieldError]:
        self.errors = list(prior)
        self.node(schema, obj, ())
        self.list_types(schema, obj, ())
        if _has_rules(schema):
            if any(e.kind in _BLOCKING for e in self.errors):
                self.errors.append(FieldError("<nil>", ErrorType.INVALID, _NOT_CHECKED, value=None))
            else:
                self.rules(schema, obj, old, ())
        return self.errors

    def add(self, loc: Loc, kind: ErrorType, message: str = "", value: Any = OMIT) -> None:
        self.errors.append(FieldError(format_path(loc), kind, message, value))

    def body(self, loc: Loc, kind: ErrorType, words: str, value: Any) -> None:
        """An error worded as the OpenAPI validator words it: `<path> in body <words>`."""
        self.add(loc, kind, f"{format_path(loc)} in body {words}", value)

    # 1. the structural schema: types, formats, bounds, enums, required fields, sizes

    def node(self, schema: Schema, value: Any, loc: Loc) -> None:
        if value is None and schema.get("nullable"):
            return
        types = ["integer", "string"] if schema.get("x-kubernetes-int-or-string") else [schema.get("type")]
        if types != [None] and not any(_is_type(value, str(t)) for t in types):
            actual = _json_type(value)
            self.body(
                loc,
                ErrorType.TYPE_INVALID,
                f'must be of type {",".join(map(str, types))}: "{actual}"',
                actual,
            )
            return
        self.combinators(schema, value, loc)
        if "enum" in schema and not any(_json_equal(value, allowed) for allowed in schema["enum"]):
            allowed = ", ".join(_go_quote(a if isinstance(a, str) else json.dumps(a)) for a in schema["enum"])
            self.add(loc, ErrorType.NOT_SUPPORTED, f"supported values: {allowed}", value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.number(schema, value, loc)
        elif isinstance(value, str):
            self.string(schema, value, loc)
        elif isinstance(value, list):
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                self.add(loc, ErrorType.TOO_MANY, f"must have at most {schema['maxItems']} items", len(value))
            if "minItems" in schema and len(value) < schema["minItems"]:
                self.body(
                    loc, ErrorType.INVALID, f"should have at least {schema['minItems']} items", len(value)
                )
            if isinstance(schema.get("items"), Mapping):
                for index, item in enumerate(value):
                    self.node(schema["items"], item, (*loc, index))
        elif isinstance(value, dict):
            self.object(schema, value, loc)

    def combinators(self, schema: Schema, value: Any, loc: Loc) -> None:
        quoted = json.dumps(format_path(loc))
        for sub in schema.get("allOf") or []:
            self.node(sub, value, loc)
        passing = [self.passes(sub, value, loc) for sub in schema.get("anyOf") or []]
        if passing and not any(passing):
            self.add(loc, ErrorType.INVALID, f"{quoted} must validate at least one schema (anyOf)", "")
        passing = [self.passes(sub, value, loc) for sub in schema.get("oneOf") or []]
        if passing and sum(passing) != 1:
            self.add(loc, ErrorType.INVALID, f"{quoted} must validate one and only one schema (oneOf)", "")
        if isinstance(schema.get("not"), Mapping) and self.passes(schema["not"], value, loc):
            self.add(loc, ErrorType.INVALID, f"{quoted} must not validate the schema (not)", "")

    def passes(self, schema: Schema, value: Any, loc: Loc) -> bool:
        probe = _Validation(self.cel)
        probe.node(schema, value, loc)
        return not probe.errors

    def number(self, schema: Schema, value: float, loc: Loc) -> None:
        for key, exclusive_key, beyond, words in (
            ("minimum", "exclusiveMinimum", operator.lt, "greater than"),
            ("maximum", "exclusiveMaximum", operator.gt, "less than"),
        ):
            if key in schema:
                bound, exclusive = schema[key], schema.get(exclusive_key) is True
                if beyond(value, bound) or (exclusive and value == bound):
                    relation = words if exclusive else f"{words} or equal to"
                    self.body(
                        loc, ErrorType.INVALID, f"should be {relation} {_go_bound(bound, value)}", value
                    )
        factor = schema.get("multipleOf")
        if factor and math.isfinite(value) and Fraction(value) % Fraction(factor) != 0:
            self.body(loc, ErrorType.INVALID, f"should be a multiple of {_go_bound(factor, value)}", value)

    def string(self, schema: Schema, value: str, loc: Loc) -> None:
        if "maxLength" in schema and len(value) > (limit := schema["maxLength"]):
            unit = "byte" if limit == 1 else "bytes"
            self.add(loc, ErrorType.TOO_LONG, f"may not be more than {limit} {unit}", value)
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.body(loc, ErrorType.INVALID, f"should be at least {schema['minLength']} chars long", value)
        if "pattern" in schema and not re.search(schema["pattern"], value):
            self.body(loc, ErrorType.INVALID, f"should match '{schema['pattern']}'", value)
        fmt = schema.get("format")
        if fmt in _FORMATS and not _FORMATS[fmt](value):
            self.body(loc, ErrorType.TYPE_INVALID, f"must be of type {fmt}: {_go_quote(value)}", value)

    def object(self, schema: Schema, value: dict[str, Any], loc: Loc) -> None:
        for key in schema.get("required") or []:
            if key not in value:
                self.add((*loc, key), ErrorType.REQUIRED)
        if "maxProperties" in schema and len(value) > (limit := schema["maxProperties"]):
            self.add(loc, ErrorType.TOO_MANY, f"must have at most {limit} items", len(value))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.body(
                loc, ErrorType.INVALID, f"should have at least {schema['minProperties']} properties", ""
            )
        for key, item in value.items():
            if (sub := _property(schema, key)) is not None:
                self.node(sub, item, (*loc, key))

    # 2. x-kubernetes-list-type: unique items (set) and unique keys (map)

    def list_types(self, schema: Schema, value: Any, loc: Loc) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if (sub := _property(schema, key)) is not None:
                    self.list_types(sub, item, (*loc, key))
        if not isinstance(value, list):
            return
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            for index in _repeats(value):
                self.add((*loc, index), ErrorType.DUPLICATE, value=value[index])
        elif list_type == "map":
            names = schema.get("x-kubernetes-list-map-keys") or []
            for index, item in enumerate(value):
                if item is not None and not isinstance(item, dict):
                    self.add(
                        (*loc, index),
                        ErrorType.INVALID,
                        "must be an object for an array of list-type map",
                        item,
                    )
                    return
            keys = [{k: item[k] for k in names if k in item} if item else {} for item in value]
            for index in _repeats(keys):
                self.add((*loc, index), ErrorType.DUPLICATE, value=keys[index])
        if isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                self.list_types(schema["items"], item, (*loc, index))

    # 3. x-kubernetes-validations: CEL rules, with `self` bound to each node that has some

    def rules(self, schema: Schema, value: Any, old: Any, loc: Loc) -> None:
        """The rules of `schema` and of the nodes under it. A node equal to its old value is
        ratcheted, as the API server's CRD validation ratcheting (on by default since 1.30) does:
        errors there are not reported, so its rules need not run (a status write leaves the
        spec's rules alone)."""
        if value is None or (old is not None and value == old):
            return
        if rules := schema.get("x-kubernetes-validations") or []:
            now, before = to_cel(value, schema), None if old is None else to_cel(old, schema)
            for rule in rules:
                self.rule(rule, str(schema.get("type", "")), now, before, loc)
        if isinstance(value, dict):
            correlated = isinstance(old, dict) and schema.get("x-kubernetes-map-type") != "atomic"
            for key, item in value.items():
                if (sub := _property(schema, key)) is not None:
                    self.rules(sub, item, old.get(key) if correlated else None, (*loc, key))
        elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                self.rules(schema["items"], item, _old_item(schema, item, old), (*loc, index))

    def rule(self, rule: Mapping[str, Any], node_type: str, now: Any, before: Any, loc: Loc) -> None:
        text = str(rule.get("rule") or "")
        described = str(rule.get("message") or text).strip()
        if not text.strip():
            return
        try:
            if self.cel.uses_old_self(text) and before is None:
                return  # a transition rule checks a change: only an update has one
        except CelError as exc:
            self.add(loc, ErrorType.INVALID, f"rule compile error: {exc}", node_type)
            return
        try:
            holds = self.cel.check(text, now, old=before)
        except CelError as exc:
            detail = f"{exc} evaluating rule: {described}"
            if str(exc).startswith("no such overload"):
                detail = (
                    f"'{exc}': call arguments did not match a supported operator, function or macro "
                    f"signature for rule: {described}"
                )
            self.add(loc, ErrorType.INVALID, detail, node_type)
            return
        if holds:
            return
        message = str(rule.get("message") or "").strip() or f"failed rule: {text.strip()}"
        if expression := rule.get("messageExpression"):
            with contextlib.suppress(CelError):  # the API server falls back to `message` too
                written = self.cel.evaluate(str(expression), {"self": now, "oldSelf": before})
                if isinstance(written, str) and written.strip() and "\n" not in written.strip():
                    message = written.strip()
        where = (*loc, *_field_path(str(rule.get("fieldPath") or "")))
        kind = _RULE_REASONS.get(str(rule.get("reason")), ErrorType.INVALID)
        if kind is ErrorType.DUPLICATE:
            self.add(where, kind, value=node_type)
        elif kind is ErrorType.INVALID:
            self.add(where, kind, message, node_type)
        else:
            self.add(where, kind, message)


_RULE_REASONS: Final = {
    ErrorType.FORBIDDEN.value: ErrorType.FORBIDDEN,
    ErrorType.REQUIRED.value: ErrorType.REQUIRED,
    ErrorType.DUPLICATE.value: ErrorType.DUPLICATE,
}


def _property(schema: Schema, key: str) -> Schema | None:
    """The schema of `key` in an object: its property's, else `additionalProperties`'."""
    properties, extra = schema.get("properties") or {}, schema.get("additionalProperties")
    if key in properties:
        return cast(Schema, properties[key])
    return extra if isinstance(extra, Mapping) else None


def _has_rules(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return False
    return bool(schema.get("x-kubernetes-validations")) or any(
        _has_rules(sub)
        for sub in (
            *(schema.get("properties") or {}).values(),
            schema.get("items"),
            schema.get("additionalProperties"),
        )
    )


def _old_item(schema: Schema, item: Any, old: Any) -> Any:
    """The old version of a list item: only the items of a list-type map have one (same keys)."""
    if (
        schema.get("x-kubernetes-list-type") != "map"
        or not isinstance(old, list)
        or not isinstance(item, dict)
    ):
        return None
    keys = schema.get("x-kubernetes-list-map-keys") or []
    return next(
        (was for was in old if isinstance(was, dict) and all(was.get(k) == item.get(k) for k in keys)),
        None,
    )


_FIELD_PATH_STEP: Final = re.compile(r"\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\]")


def _field_path(field_path: str) -> list[str]:
    """A rule's `fieldPath` (`.spec.gang['min-member']`) as path steps; unparseable ones add none."""
    steps, position = [], 0
    while position < len(field_path):
        step = _FIELD_PATH_STEP.match(field_path, position)
        if step is None:
            return []
        steps.append(step.group(1) if step.group(1) is not None else re.sub(r"\\(.)", r"\1", step.group(2)))
        position = step.end()
    return steps


def _repeats(values: Sequence[Any]) -> list[int]:
    """The index of the second occurrence of each value that occurs more than once."""
    seen: dict[str, int] = {}
    found = []
    for index, value in enumerate(values):
        canonical = json.dumps(value, sort_keys=True)
        seen[canonical] = seen.get(canonical, 0) + 1
        if seen[canonical] == 2:
            found.append(index)
    return found


# -- JSON types and formats ------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    """The JSON type name of a decoded value, as the OpenAPI validator names it."""
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


_JSON_TYPES: Final = (
    (type(None), "null"), (bool, "boolean"), (int, "integer"), (float, "number"),
    (str, "string"), (list, "array"), (dict, "object"),
)  # fmt: skip


def _is_type(value: Any, kind: str) -> bool:
    actual = _json_type(value)
    if kind == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == kind or (kind == "number" and actual == "integer")


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


_RFC3339: Final = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _is_date_time(text: str) -> bool:
    match = _RFC3339.fullmatch(text)
    return (
        match is not None
        and _is_date(match[1])
        and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)", match[2]) is not None
    )


def _is_date(text: str) -> bool:
    try:
        return re.fullmatch(r"\d{4}-\d\d-\d\d", text) is not None and bool(date.fromisoformat(text))
    except ValueError:
        return False


_FORMATS: Final[dict[str, Callable[[str], bool]]] = {"date-time": _is_date_time, "date": _is_date}


# -- values written as Go's fmt writes them, as the API server's messages show them ---------------


def _go_value(value: Any) -> str:
    """A bad value as `field.Error` shows it: numbers and booleans bare, strings quoted, else `%#v`."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_quote(value)
    return _go_syntax(value)


def _go_syntax(value: Any) -> str:
    if isinstance(value, dict):
        entries = ", ".join(f"{_go_quote(str(k))}:{_go_syntax(value[k])}" for k in sorted(value))
        return f"map[string]interface {{}}{{{entries}}}"
    if isinstance(value, list):
        return f"[]interface {{}}{{{', '.join(_go_syntax(v) for v in value)}}}"
    return "interface {}(nil)" if value is None else _go_value(value)


def _go_quote(text: str) -> str:
    escapes = {
        '"': '\\"',
        "\\": "\\\\",
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
    }
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return '"' + "".join(out) + '"'


def _go_float(number: float) -> str:
    """`%v` of a float64: its shortest digits, in e-notation below 1e-4 and from 1e+06 on."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    sign = "-" if math.copysign(1, number) < 0 else ""
    if number == 0:
        return f"{sign}0"
    _, digit_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)
    if not -4 <= point - 1 < 6:
        return f"{sign}{digits[0]}{'.' + digits[1:] if len(digits) > 1 else ''}e{point - 1:+03d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _go_bound(bound: float, value: float) -> str:
    """A schema bound in a message: `%v` of an int64 when the value is an integer, else of a float64."""
    if isinstance(value, int):
        return str(int(bound))
    return _go_float(float(bound))
