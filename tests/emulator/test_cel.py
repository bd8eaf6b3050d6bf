"""CEL evaluates as the API server evaluates CRD rules: cel-go semantics and Kubernetes' libraries."""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from celpy import celtypes

from aisched.emulator.cel import CelError, CelEvaluator, CelQuantity, to_cel


@pytest.fixture(scope="module")
def cel() -> CelEvaluator:
    return CelEvaluator()


def _holds(cel: CelEvaluator, expression: str, value: Any = None) -> bool:
    return cel.check(expression, value)


@pytest.mark.parametrize(
    "expression",
    [
        # lists
        "[1, 2, 3].sum() == 6",
        "[0.5, 1.5].sum() == 2.0",
        "[].sum() == 0",
        "[3, 1, 2].min() == 1",
        "[3, 1, 2].max() == 3",
        "['b', 'a'].max() == 'b'",
        "[1, 2, 2, 5].isSorted()",
        "![2, 1].isSorted()",
        "[].isSorted()",
        "[1, 2, 1].indexOf(1) == 0",
        "[1, 2, 1].lastIndexOf(1) == 2",
        "[1, 2].indexOf(7) == -1",
        "[1, 2].lastIndexOf(7) == -1",
        # quantities
        "quantity('1') == quantity('1000m')",
        "quantity('1Gi') != quantity('1G')",
        "isQuantity('64Gi') && !isQuantity('12 GB')",
        "quantity('1Ti').compareTo(quantity('1000Gi')) == 1",
        "quantity('2').compareTo(quantity('2000m')) == 0",
        "quantity('500m').compareTo(quantity('1')) == -1",
        "quantity('500m').isLessThan(quantity('1'))",
        "quantity('2Ki').isGreaterThan(quantity('2k'))",
        "quantity('1').add(quantity('500m')) == quantity('1.5')",
        "quantity('1').add(2) == quantity('3')",
        "quantity('1').sub(quantity('250m')) == quantity('750m')",
        "quantity('1').sub(3).sign() == -1",
        "quantity('0').sign() == 0",
        "quantity('8').isInteger() && !quantity('1500m').isInteger()",
        "quantity('2Ki').asInteger() == 2048",
        "quantity('1500m').asApproximateFloat() == 1.5",
        # strings
        "'hello'.charAt(1) == 'e'",
        "'hello'.charAt(5) == ''",
        "'hello'.indexOf('l') == 2",
        "'hello'.indexOf('l', 3) == 3",
        "'hello'.lastIndexOf('l') == 3",
        "'hello'.lastIndexOf('l', 2) == 2",
        "'hello'.indexOf('z') == -1",
        "'Hello, WÖRLD'.lowerAscii() == 'hello, wÖrld'",
        "'hello, wörld'.upperAscii() == 'HELLO, WöRLD'",
        "'  padded\\t'.trim() == 'padded'",
        "'a,b,c'.split(',') == ['a', 'b', 'c']",
        "'a,b,c'.split(',', 2) == ['a', 'b,c']",
        "'a,b'.split(',', 0) == []",
        "['a', 'b'].join() == 'ab'",
        "['a', 'b'].join('-') == 'a-b'",
        "'hello'.substring(1, 3) == 'el'",
        "'hello'.substring(3) == 'lo'",
        "'aaa'.replace('a', 'b') == 'bbb'",
        "'aaa'.replace('a', 'b', 2) == 'bba'",
        # cel-go's numeric comparisons and heterogeneous equality
        "1 < 1.5 && 2.5 > 2 && 1 <= 1.0 && 2.0 >= 2",
        "1 == 1.0 && 1u == 1",
        "1 != 'one'",
        "!(1 == 'one')",
        "2.0 in [1, 2, 3]",
        "'a' in {'a': 1}",
        "[1, 2] == [1.0, 2.0]",
    ],
)
def test_kubernetes_cel_libraries_and_cel_go_semantics_hold(cel: CelEvaluator, expression: str) -> None:
    assert _holds(cel, expression)


def test_type_of_self_tells_an_int_or_string_apart(cel: CelEvaluator) -> None:
    rule = "type(self) == string || self >= 0"
    assert _holds(cel, rule, "-1Gi")
    assert _holds(cel, rule, 3)
    assert not _holds(cel, rule, -3)


def test_self_and_old_self_are_bound_to_plain_json(cel: CelEvaluator) -> None:
    assert cel.check("self.replicas.map(r, r.count).sum() == 5", {"replicas": [{"count": 2}, {"count": 3}]})
    assert cel.check("self.count >= oldSelf.count", {"count": 3}, old={"count": 2})
    assert not cel.check("self.count >= oldSelf.count", {"count": 1}, old={"count": 2})


def test_a_missing_field_is_an_evaluation_error_named_as_cel_go_names_it(cel: CelEvaluator) -> None:
    with pytest.raises(CelError, match="no such key: role"):
        cel.check("self.role == 'worker'", {})


def test_a_call_with_arguments_of_the_wrong_type_is_no_such_overload(cel: CelEvaluator) -> None:
    with pytest.raises(CelError, match="no such overload"):
        cel.check("quantity(self) == quantity('1')", 5)


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("quantity('12 GB') == quantity('1')", "quantities must match"),
        ("quantity('1500m').asInteger() == 1", "cannot convert value to integer"),
        ("[].max() == 0", "max called on empty list"),
        ("'abc'.charAt(4) == ''", "index out of range"),
        ("'abc'.substring(2, 1) == ''", "index out of range"),
    ],
)
def test_library_functions_fail_where_kubernetes_fails(
    cel: CelEvaluator, expression: str, error: str
) -> None:
    with pytest.raises(CelError, match=error):
        cel.check(expression, None)


def test_a_rule_that_does_not_parse_is_a_compilation_error(cel: CelEvaluator) -> None:
    with pytest.raises(CelError, match="compilation failed"):
        cel.check("self.a ==", {})


def test_a_transition_rule_is_one_that_reads_old_self(cel: CelEvaluator) -> None:
    assert cel.uses_old_self("self.x == oldSelf.x")
    assert not cel.uses_old_self("self.x == 'oldSelf'")
    assert not cel.uses_old_self("self.oldSelfish == 1")


class _CountingEnvironment(celpy.Environment):
    def __init__(self) -> None:
        super().__init__()
        self.compiled: list[str] = []

    def compile(self, text: str) -> Any:
        self.compiled.append(text)
        return super().compile(text)


def test_each_rule_is_compiled_once_however_often_it_is_evaluated() -> None:
    environment = _CountingEnvironment()
    cel = CelEvaluator(environment)
    for count in range(3):
        assert cel.check("self.count >= 0", {"count": count})
    assert cel.uses_old_self("self.count >= 0") is False
    assert environment.compiled == ["self.count >= 0"]


def test_to_cel_types_values_as_the_schema_declares_them() -> None:
    number = to_cel(1, {"type": "number"})
    integer = to_cel(2.0, {"type": "integer"})
    stamp = to_cel("2026-01-02T03:04:05Z", {"type": "string", "format": "date-time"})
    assert isinstance(number, celtypes.DoubleType)
    assert isinstance(integer, celtypes.IntType)
    assert isinstance(stamp, celtypes.TimestampType)
    nested = to_cel({"w": 1, "items": [1]}, {"properties": {"w": {"type": "number"}}})
    assert isinstance(nested[celtypes.StringType("w")], celtypes.DoubleType)
    assert isinstance(nested[celtypes.StringType("items")][0], celtypes.IntType)


def test_a_malformed_date_time_stays_a_string_for_cel() -> None:
    assert isinstance(to_cel("yesterday", {"type": "string", "format": "date-time"}), celtypes.StringType)


def test_quantities_are_equal_by_value_and_hash_alike(cel: CelEvaluator) -> None:
    a = cel.evaluate("quantity('1')", {})
    b = cel.evaluate("quantity('1000m')", {})
    assert isinstance(a, CelQuantity)
    assert a == b
    assert hash(a) == hash(b)
