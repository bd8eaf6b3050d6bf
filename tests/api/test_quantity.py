from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from aisched.api.quantity import NonNegativeQuantity, Quantity, QuantityError


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        ("0", "0"),
        ("8", "8"),
        ("500m", "0.5"),
        ("1.5", "1.5"),
        (".5", "0.5"),
        ("1.", "1"),
        ("64Gi", str(64 * 2**30)),
        ("1Ki", "1024"),
        ("2Ei", str(2 * 2**60)),
        ("1k", "1000"),
        ("1M", "1000000"),
        ("3E", "3000000000000000000"),
        ("100n", "0.0000001"),
        ("5u", "0.000005"),
        ("2e3", "2000"),
        ("2E-3", "0.002"),
        ("1.5e+2", "150"),
        ("+7", "7"),
        ("-2", "-2"),
        ("0.1n", "0.000000001"),
        ("1.5n", "0.000000002"),
        ("10E", str(2**63 - 1)),
        ("-8Ei", str(-(2**63 - 1))),
        ("1e-12", "0.000000001"),
    ],
)
def test_quantities_parse_to_their_exact_value(text: str, exact: str) -> None:
    assert Quantity(text).decimal == Decimal(exact)


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "Gi", "1GI", "1gi", "1.5.5", "1e", "e3", "1Kib", "--1", "1m1", "0x10", "1,5", "∞"],
)
def test_malformed_quantities_are_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        Quantity(text)


def test_value_and_milli_round_away_from_zero_like_kubernetes() -> None:
    assert Quantity("500m").value() == 1
    assert Quantity("-1.5").value() == -2
    assert Quantity("0.5m").milli() == 1
    assert Quantity("1500m").milli() == 1500
    assert Quantity("64Gi").value() == 68719476736


def test_quantities_do_not_compare_with_other_types() -> None:
    with pytest.raises(TypeError):
        assert Quantity("1") < 2  # type: ignore[operator]
    assert Quantity("1") != 1


def test_quantities_compare_and_add_by_value_not_text() -> None:
    assert Quantity("1Gi") > Quantity("1G")
    assert Quantity("1000m") == Quantity("1")
    assert Quantity("1.5") + Quantity("500m") == Quantity("2")
    assert Quantity("2") - Quantity("3") == Quantity("-1")


class _Holder(BaseModel):
    q: Quantity
    n: NonNegativeQuantity | None = None


def test_models_accept_ints_and_strings_and_write_back_what_was_given() -> None:
    held = _Holder.model_validate({"q": 8, "n": "64Gi"})
    assert held.model_dump(mode="json") == {"q": 8, "n": "64Gi"}


@pytest.mark.parametrize("raw", [True, None, [1], {"a": 1}, float("nan"), 0.5, 2.0])
def test_models_refuse_non_quantities(raw: object) -> None:
    with pytest.raises(ValidationError, match="quantity"):
        _Holder.model_validate({"q": raw})


def test_non_negative_quantities_refuse_negative_values() -> None:
    with pytest.raises(ValidationError, match="must not be negative"):
        _Holder.model_validate({"q": 1, "n": "-1Gi"})


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "m", "k", "Ki", "Mi", "Gi", "M", "G", "e2"]),
)
def test_parsing_a_canonical_form_is_exact(number: int, suffix: str) -> None:
    scales: dict[str, Decimal | int] = {
        "": 1,
        "m": Decimal("0.001"),
        "k": 1000,
        "Ki": 1024,
        "Mi": 2**20,
        "Gi": 2**30,
        "M": 10**6,
        "G": 10**9,
        "e2": 100,
    }
    assert Quantity(f"{number}{suffix}").decimal == number * Decimal(scales[suffix])
