"""CEL as the API server evaluates a CRD's `x-kubernetes-validations`: cel-python plus Kubernetes' libraries.

Pure: no I/O, no clock. Kubernetes evaluates rules with cel-go and its own libraries; this module
adds to cel-python what the CRD rules may use and cel-python lacks:

- cel-go's cross-type numeric comparisons (`1 < 2.5`) and heterogeneous equality (`1 == 'a'` is false);
- lists: `sum()`, `max()` (cel-python has `min()`), `isSorted()`, `indexOf(x)`, `lastIndexOf(x)`;
- quantities: `quantity(s)`, `isQuantity(s)`, `q.compareTo(q)`, `q.isLessThan(q)`, `q.isGreaterThan(q)`,
  `q.add(q|int)`, `q.sub(q|int)`, `q.isInteger()`, `q.asInteger()`, `q.asApproximateFloat()`, `q.sign()`,
  and `==` by value (`quantity('1') == quantity('1000m')`);
- strings (cel-go's strings extension): `charAt`, `indexOf`, `lastIndexOf`, `lowerAscii`, `upperAscii`,
  `replace`, `split`, `substring`, `trim`, and `join` on lists.

Not provided: the regex (`find`, `findAll`), URL, IP/CIDR, authz, format and semver libraries,
`strings.quote`, `reverse`, optionals (`optionalOldSelf`), escaping of property names that are CEL
keywords, compile-time type checking and the cost budget.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError, base_functions
from lark import Token, Tree

from aisched.api.quantity import Quantity, QuantityError

__all__ = ["CelError", "CelEvaluator", "CelQuantity", "to_cel"]


class CelError(Exception):
    """A rule that does not compile, or that fails while it is evaluated (`no such key: role`)."""


class CelQuantity:
    """A Kubernetes `Quantity` as a CEL value: compared by value, whatever its unit."""

    __slots__ = ("quantity",)

    def __init__(self, quantity: Quantity) -> None:
        self.quantity = quantity

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CelQuantity):
            return self.quantity.decimal == other.quantity.decimal
        raise TypeError("no such overload")

    def __hash__(self) -> int:
        return hash(self.quantity.decimal)

    def __repr__(self) -> str:
        return f"quantity({str(self.quantity)!r})"


_CEL_VALUES: Final = (
    celtypes.BoolType,
    celtypes.IntType,
    celtypes.UintType,
    celtypes.DoubleType,
    celtypes.StringType,
    celtypes.BytesType,
    celtypes.TimestampType,
    celtypes.DurationType,
    celtypes.ListType,
    celtypes.MapType,
    CelQuantity,
)


def to_cel(value: Any, schema: Mapping[str, Any] | None = None) -> Any:
    """Plain JSON data as CEL values, typed by `schema` as Kubernetes types them.

    `type: number` becomes a double even when written as `1`, `type: integer` an int even when
    written as `1.0`, and strings of `format: date-time` or `duration` timestamps and durations.
    """
    if value is None or isinstance(value, _CEL_VALUES):
        return value
    schema = schema or {}
    kind = schema.get("type")
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int | float):
        if kind == "number":
            return celtypes.DoubleType(float(value))
        if isinstance(value, int) or (kind == "integer" and value.is_integer()):
            return celtypes.IntType(int(value))
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return _string_to_cel(value, schema.get("format") if kind == "string" else None)
    if isinstance(value, list | tuple):
        items = schema.get("items")
        return celtypes.ListType([to_cel(item, items) for item in value])
    if isinstance(value, Mapping):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        extra = extra if isinstance(extra, Mapping) else None
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(v, properties.get(k, extra)) for k, v in value.items()}
        )
    raise TypeError(f"not JSON data: {value!r}")


def _string_to_cel(value: str, fmt: str | None) -> Any:
    try:
        if fmt == "date-time":
            return celtypes.TimestampType(value)
        if fmt == "duration":
            return celtypes.DurationType(value)
    except (ValueError, TypeError):
        pass  # schema validation reports the malformed string; CEL sees it as a string
    return celtypes.StringType(value)


class CelEvaluator:
    """Compiles CEL expressions once and evaluates them with variables (`self`, `oldSelf`) bound.

    Keep one for as long as the schemas it serves: it caches every compiled program.
    """

    def __init__(self, environment: celpy.Environment | None = None) -> None:
        self._env = environment or celpy.Environment()
        self._programs: dict[str, tuple[Any, bool]] = {}

    def _compiled(self, expression: str) -> tuple[Any, bool]:
        found = self._programs.get(expression)
        if found is None:
            try:
                tree = self._env.compile(expression)
            except Exception as exc:  # celpy raises its parser's and lark's own errors
                raise CelError(f"compilation failed: {exc}") from None
            program = self._env.program(tree, functions=_FUNCTIONS)
            found = self._programs[expression] = (program, _mentions(tree, "oldSelf"))
        return found

    def uses_old_self(self, rule: str) -> bool:
        """Whether `rule` is a transition rule: one that reads `oldSelf`."""
        return self._compiled(rule)[1]

    def evaluate(self, expression: str, variables: Mapping[str, Any]) -> Any:
        """The value of `expression` with `variables` bound (plain JSON or `to_cel` values)."""
        program, _ = self._compiled(expression)
        activation = {name: to_cel(value) for name, value in variables.items()}
        try:
            result = program.evaluate(activation)
        except CELEvalError as exc:
            raise CelError(_describe(exc)) from None
        if isinstance(result, CELEvalError):
            raise CelError(_describe(result))
        return result

    def check(self, rule: str, value: Any, *, old: Any = None) -> bool:
        """Whether `rule` holds with `self` bound to `value` (and `oldSelf` to `old`, if given)."""
        variables = {"self": value} if old is None else {"self": value, "oldSelf": old}
        result = self.evaluate(rule, variables)
        return isinstance(result, celtypes.BoolType) and bool(result)


def _mentions(tree: Tree[Any], name: str) -> bool:
    return any(
        isinstance(token, Token) and token.type == "IDENT" and token.value == name
        for token in tree.scan_values(lambda v: isinstance(v, Token))
    )


def _describe(error: CELEvalError) -> str:
    message = str(error.args[0]) if error.args else "evaluation error"
    if missing := re.match(r"no such member in mapping: '(.*)'", message):
        return f"no such key: {missing.group(1)}"
    if "no matching overload" in message or message.startswith("no such overload"):
        return "no such overload"
    return message


# -- cel-go's numeric comparisons and heterogeneous equality ---------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, celtypes.IntType | celtypes.UintType | celtypes.DoubleType)


def _exact(value: Any) -> Fraction | float:
    return Fraction(value) if math.isfinite(value) else float(value)


def _numeric(
    compare: Callable[[Any, Any], bool], base: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    def operator(a: Any, b: Any) -> Any:
        if _is_number(a) and _is_number(b) and type(a) is not type(b):
            return celtypes.BoolType(compare(_exact(a), _exact(b)))
        return base(a, b)

    return operator


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(_exact(a) == _exact(b))
    if isinstance(a, celtypes.ListType) and isinstance(b, celtypes.ListType):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, celtypes.MapType) and isinstance(b, celtypes.MapType):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except TypeError:
        return False  # values of different types are simply unequal


def _eq(a: Any, b: Any) -> Any:
    for value in (a, b):
        if isinstance(value, CELEvalError):
            return value
    return celtypes.BoolType(_equal(a, b))


def _ne(a: Any, b: Any) -> Any:
    result = _eq(a, b)
    return result if isinstance(result, CELEvalError) else celtypes.BoolType(not result)


def _in(item: Any, container: Any) -> Any:
    for value in (item, container):
        if isinstance(value, CELEvalError):
            return value
    if isinstance(container, celtypes.ListType | celtypes.MapType):
        return celtypes.BoolType(any(_equal(item, element) for element in container))
    return base_functions["_in_"](item, container)


# -- the lists library -----------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    if not isinstance(value, celtypes.ListType):
        raise TypeError("no such overload")
    return list(value)


def _sum(items: Any) -> Any:
    values = _list(items)
    if not values:
        return celtypes.IntType(0)
    kind = type(values[0])
    if not all(type(v) is kind for v in values) or kind not in (
        celtypes.IntType,
        celtypes.UintType,
        celtypes.DoubleType,
        celtypes.DurationType,
    ):
        raise TypeError("no such overload")
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _max(items: Any) -> Any:
    values = _list(items)
    if not values:
        return CELEvalError("max called on empty list")
    return max(values)


def _is_sorted(items: Any) -> Any:
    values = _list(items)
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(values)))


# -- the quantity library --------------------------------------------------------------------------


def _quantity(text: Any) -> Any:
    if not isinstance(text, str):
        raise TypeError("no such overload")
    try:
        return CelQuantity(Quantity(str(text)))
    except QuantityError:
        return CELEvalError(
            f"quantities must match the regular expression for Kubernetes quantities: {text!r}"
        )


def _is_quantity(text: Any) -> Any:
    return celtypes.BoolType(isinstance(_quantity(text), CelQuantity))


def _q(value: Any) -> Decimal:
    if isinstance(value, CelQuantity):
        return value.quantity.decimal
    raise TypeError("no such overload")


def _q_or_int(value: Any) -> Decimal:
    if isinstance(value, celtypes.IntType):
        return Decimal(int(value))
    return _q(value)


def _compare_to(a: Any, b: Any) -> Any:
    x, y = _q(a), _q(b)
    return celtypes.IntType((x > y) - (x < y))


def _as_integer(q: Any) -> Any:
    value = _q(q)
    if value != value.to_integral_value() or abs(value) > 2**63 - 1:
        return CELEvalError("cannot convert value to integer")
    return celtypes.IntType(int(value))


# -- the strings extension -------------------------------------------------------------------------


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("no such overload")
    return str(value)


def _index_of(receiver: Any, item: Any, offset: Any = None) -> Any:
    if isinstance(receiver, celtypes.ListType):
        if offset is not None:
            raise TypeError("no such overload")
        return celtypes.IntType(next((i for i, x in enumerate(receiver) if _equal(x, item)), -1))
    text, sub = _str(receiver), _str(item)
    start = 0 if offset is None else int(offset)
    if not 0 <= start <= len(text):
        return CELEvalError(f"index out of range: {start}")
    return celtypes.IntType(text.find(sub, start))


def _last_index_of(receiver: Any, item: Any, offset: Any = None) -> Any:
    if isinstance(receiver, celtypes.ListType):
        if offset is not None:
            raise TypeError("no such overload")
        found = [i for i, x in enumerate(receiver) if _equal(x, item)]
        return celtypes.IntType(found[-1] if found else -1)
    text, sub = _str(receiver), _str(item)
    end = len(text) if offset is None else int(offset)
    if not 0 <= end <= len(text):
        return CELEvalError(f"index out of range: {end}")
    return celtypes.IntType(text[: end + len(sub)].rfind(sub))


def _char_at(receiver: Any, index: Any) -> Any:
    text, i = _str(receiver), int(index)
    if not 0 <= i <= len(text):
        return CELEvalError(f"index out of range: {i}")
    return celtypes.StringType(text[i : i + 1])


def _substring(receiver: Any, start: Any, end: Any = None) -> Any:
    text = _str(receiver)
    first, last = int(start), len(text) if end is None else int(end)
    if not 0 <= first <= last <= len(text):
        return CELEvalError(f"index out of range: {first if first > len(text) or first < 0 else last}")
    return celtypes.StringType(text[first:last])


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _split(receiver: Any, separator: Any, limit: Any = None) -> Any:
    text, sep = _str(receiver), _str(separator)
    n = -1 if limit is None else int(limit)
    if n == 0:
        return celtypes.ListType([])
    if sep:
        parts = text.split(sep) if n < 0 else text.split(sep, n - 1)
    else:  # like Go's strings.SplitN: one rune each, the last part holding the rest
        parts = list(text) if n < 0 or n >= len(text) else [*text[: n - 1], text[n - 1 :]]
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _replace(receiver: Any, old: Any, new: Any, limit: Any = None) -> Any:
    count = -1 if limit is None else int(limit)
    return celtypes.StringType(_str(receiver).replace(_str(old), _str(new), count))


def _join(items: Any, separator: Any = None) -> Any:
    sep = "" if separator is None else _str(separator)
    return celtypes.StringType(sep.join(_str(item) for item in _list(items)))


_FUNCTIONS: Final[dict[str, Any]] = {
    "_==_": _eq,
    "_!=_": _ne,
    "_<_": _numeric(lambda a, b: a < b, base_functions["_<_"]),
    "_<=_": _numeric(lambda a, b: a <= b, base_functions["_<=_"]),
    "_>_": _numeric(lambda a, b: a > b, base_functions["_>_"]),
    "_>=_": _numeric(lambda a, b: a >= b, base_functions["_>=_"]),
    "_in_": _in,
    # lists
    "sum": _sum,
    "max": _max,  # min() is a cel-python macro already
    "isSorted": _is_sorted,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    # quantity
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "compareTo": _compare_to,
    "isLessThan": lambda a, b: celtypes.BoolType(_q(a) < _q(b)),
    "isGreaterThan": lambda a, b: celtypes.BoolType(_q(a) > _q(b)),
    "add": lambda a, b: CelQuantity(Quantity.from_decimal(_q(a) + _q_or_int(b))),
    "sub": lambda a, b: CelQuantity(Quantity.from_decimal(_q(a) - _q_or_int(b))),
    "isInteger": lambda q: celtypes.BoolType(isinstance(_as_integer(q), celtypes.IntType)),
    "asInteger": _as_integer,
    "asApproximateFloat": lambda q: celtypes.DoubleType(float(_q(q))),
    "sign": lambda q: celtypes.IntType((_q(q) > 0) - (_q(q) < 0)),
    # strings
    "charAt": _char_at,
    "substring": _substring,
    "lowerAscii": lambda s: celtypes.StringType(_str(s).translate(_ASCII_LOWER)),
    "upperAscii": lambda s: celtypes.StringType(_str(s).translate(_ASCII_UPPER)),
    "trim": lambda s: celtypes.StringType(_str(s).strip()),
    "split": _split,
    "replace": _replace,
    "join": _join,
}
