"""Evaluates a CRD's `x-kubernetes-validations` the way the API server does, for tests.

Built on cel-python, plus the parts of Kubernetes' CEL libraries the aisched CRDs use: the lists
library's `sum()` and the quantity library (`quantity()`, `compareTo`, `isInteger`). Rules run on
every node of the object that the schema reaches, with `self` bound to that node, and report the
rule's `fieldPath` joined to the node's path, as the API server does.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel

from aisched.api.quantity import Quantity
from aisched.api.validation import FieldError, format_path


class _CelQuantity:
    def __init__(self, text: Any) -> None:
        self.quantity = Quantity(str(text))


def _cmp(a: _CelQuantity, b: _CelQuantity) -> celtypes.IntType:
    x, y = a.quantity.decimal, b.quantity.decimal
    return celtypes.IntType((x > y) - (x < y))


_FUNCTIONS: dict[str, Any] = {
    "sum": lambda items: celtypes.IntType(sum(items)),
    "quantity": _CelQuantity,
    "compareTo": _cmp,
    "isInteger": lambda q: celtypes.BoolType(q.quantity.decimal == q.quantity.decimal.to_integral_value()),
}
_ENV = celpy.Environment()


@cache
def _program(rule: str) -> Any:
    return _ENV.program(_ENV.compile(rule), functions=_FUNCTIONS)


def evaluate(rule: str, value: Any) -> bool:
    """Whether `rule` holds with `self` bound to `value` (plain JSON data)."""
    result = _program(rule).evaluate({"self": json_to_cel(value)})
    if isinstance(result, Exception):
        raise result
    return bool(result)


def rule_errors(schema: dict[str, Any], value: Any, loc: tuple[int | str, ...] = ()) -> list[FieldError]:
    """The CEL rule violations anywhere in `value` under `schema` (an openAPIV3Schema node)."""
    if value is None:
        return []
    errors = [
        FieldError(format_path(loc + tuple(rule.get("fieldPath", "").split(".")[1:])), rule["message"])
        for rule in schema.get("x-kubernetes-validations", [])
        if not evaluate(rule["rule"], value)
    ]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, sub in value.items():
            if key in properties:
                errors += rule_errors(properties[key], sub, (*loc, key))
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += rule_errors(schema["additionalProperties"], sub, (*loc, key))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += rule_errors(schema["items"], item, (*loc, index))
    return errors
