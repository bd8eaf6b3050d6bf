"""Kubernetes resource quantities (`500m`, `64Gi`, `1.5`, `2e3`), parsed exactly.

The grammar is the one `k8s.io/apimachinery/pkg/api/resource` accepts:

    <quantity>      ::= <signedNumber><suffix>
    <suffix>        ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>      ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>     ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>

Values are held as exact `Decimal`s, rounded away from zero to whole nano units and clamped to
±(2^63-1) as apimachinery does; `value()` and `milli()` round away from zero like Kubernetes'
`Value()` and `MilliValue()`, so a request of `0.5m` CPU still costs one milli-CPU.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_UP, Decimal, InvalidOperation
from functools import total_ordering
from typing import Annotated, Any, Final

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "NON_NEGATIVE_QUANTITY_PATTERN",
    "QUANTITY_PATTERN",
    "NonNegativeQuantity",
    "Quantity",
    "QuantityError",
]

_BINARY: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: Final = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_NUMBER: Final = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SUFFIX: Final = rf"(?:[KMGTPE]i|[eE][+-]?{_NUMBER}|[numkMGTPE])?"
#: The pattern apimachinery publishes for quantities, used in the CRD schema too.
QUANTITY_PATTERN: Final = rf"^[+-]?{_NUMBER}{_SUFFIX}$"
#: Same, without a sign: requests, limits and quotas are never negative.
NON_NEGATIVE_QUANTITY_PATTERN: Final = rf"^\+?{_NUMBER}{_SUFFIX}$"
_RE: Final = re.compile(rf"^(?P<sign>[+-]?)(?P<number>{_NUMBER})(?P<suffix>[KMGTPE]i|[eE].*|[numkMGTPE])?$")
# The published pattern admits a fractional exponent; apimachinery's parser takes whole ones only.
_EXPONENT: Final = re.compile(r"^[eE](?P<exp>[+-]?[0-9]+)$")
#: apimachinery clamps larger magnitudes to this.
_MAX_ABS: Final = Decimal(2**63 - 1)
_NANO: Final = Decimal("1e-9")
# Beyond this exponent every non-zero number is clamped (or rounded to 1n) anyway.
_EXPONENT_LIMIT: Final = 64


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


@total_ordering
class Quantity:
    """An exact, immutable Kubernetes quantity that remembers how it was written."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str | int) -> None:
        if isinstance(text, bool):
            raise QuantityError(f"quantity must be a number or a string, not {text!r}")
        if isinstance(text, int):
            value, written = Decimal(text), str(text)
        else:
            value, written = _parse(text), text
        if abs(value) > _MAX_ABS:
            value = _MAX_ABS.copy_sign(value)
        self._value = value
        self._text = written

    @classmethod
    def from_decimal(cls, value: Decimal) -> Quantity:
        """A quantity with the given exact value, written in plain decimal notation."""
        text = format(value.normalize(), "f")
        return cls(text if text not in {"-0", "+0"} else "0")

    @property
    def decimal(self) -> Decimal:
        """The exact value in base units (cores, bytes, devices)."""
        return self._value

    def value(self) -> int:
        """The value in base units rounded away from zero to an integer (Kubernetes `Value()`)."""
        return _away_from_zero(self._value)

    def milli(self) -> int:
        """The value in thousandths rounded away from zero (Kubernetes `MilliValue()`)."""
        return _away_from_zero(self._value * 1000)

    def is_negative(self) -> bool:
        return self._value < 0

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity.from_decimal(self._value + other._value)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity.from_decimal(self._value - other._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self._value == other._value
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):  # typed callers never get here; untyped ones get a TypeError
            return NotImplemented
        return self._value < other._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Quantity({self._text!r})"

    # -- pydantic integration -------------------------------------------------------------

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(_serialize),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }


def _parse(text: str) -> Decimal:
    match = _RE.match(text.strip()) if text == text.strip() else None
    if match is None:
        raise QuantityError(f"{text!r} is not a quantity (expected e.g. 500m, 64Gi, 8, 1.5, 2e3)")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise QuantityError(f"{text!r} is not a quantity") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        scale = Decimal(_BINARY[suffix])
    elif suffix in _DECIMAL:
        scale = _DECIMAL[suffix]
    else:
        exponent = _EXPONENT.match(suffix)
        if exponent is None:
            raise QuantityError(f"{text!r} has an invalid suffix {suffix!r}")
        exp = max(-_EXPONENT_LIMIT, min(_EXPONENT_LIMIT, int(exponent["exp"])))
        scale = Decimal(10) ** exp
    value = number * scale
    if value and value < _NANO:
        value = _NANO  # apimachinery keeps nine decimal places, rounding up
    value = value.quantize(_NANO, rounding=ROUND_UP) if value != value.to_integral_value() else value
    return -value if match["sign"] == "-" else value


def _away_from_zero(value: Decimal) -> int:
    return math.ceil(value) if value >= 0 else math.floor(value)


def _validate(raw: Any) -> Quantity:
    if isinstance(raw, Quantity):
        return raw
    if isinstance(raw, float):
        # An int-or-string field takes no JSON fractions: the API server refuses `cpu: 0.5`.
        raise PydanticCustomError("quantity", 'must be an integer or a string such as "0.5", 500m or 64Gi')
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise PydanticCustomError("quantity", "must be a quantity such as 500m, 64Gi or 8")
    try:
        return Quantity(raw)
    except QuantityError as exc:
        raise PydanticCustomError("quantity", "{error}", {"error": str(exc)}) from None


def _serialize(value: Quantity) -> str | int:
    text = str(value)
    return int(text) if text.isdigit() else text


class _NonNegative:
    """Annotation that refuses negative quantities (requests, limits and quotas are never negative)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_check_non_negative, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The integer branch may carry no bound (structural int-or-string is exactly
        # integer|string), so negative integers are refused by a rule; strings by the pattern.
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": NON_NEGATIVE_QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [
                {"rule": "type(self) == string || self >= 0", "message": "must not be negative"}
            ],
        }


def _check_non_negative(value: Quantity) -> Quantity:
    if value.is_negative():
        raise PydanticCustomError("quantity", "must not be negative, got {value}", {"value": str(value)})
    return value


NonNegativeQuantity = Annotated[Quantity, _NonNegative()]
