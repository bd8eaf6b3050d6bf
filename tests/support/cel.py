"""Evaluates a CRD's `x-kubernetes-validations` the way the API server does, for tests.

A thin layer over `aisched.emulator.cel` and `aisched.emulator.schema`, kept so tests can say
`evaluate(rule, value)` and `rule_errors(schema, body)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aisched.emulator.cel import CelEvaluator
from aisched.emulator.schema import FieldError
from aisched.emulator.schema import rule_errors as _rule_errors

__all__ = ["evaluate", "rule_errors"]

_CEL = CelEvaluator()  # one per test session: compiled rules are reused across tests


def evaluate(rule: str, value: Any) -> bool:
    """Whether `rule` holds with `self` bound to `value` (plain JSON data)."""
    return _CEL.check(rule, value)


def rule_errors(schema: Mapping[str, Any], value: Any) -> list[FieldError]:
    """The CEL rule violations anywhere in `value` under `schema` (an openAPIV3Schema node)."""
    return _rule_errors(schema, value, cel=_CEL)
