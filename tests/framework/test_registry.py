from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from aisched.framework.handle import Handle
from aisched.framework.interface import Plugin
from aisched.framework.registry import NoArgs, PluginArgs, Registry, parse_args
from tests.support.core import handle


@dataclass
class Named:
    name: str
    args: Mapping[str, Any]


def factory(name: str) -> Any:
    def build(args: Mapping[str, Any], handle: Handle) -> Plugin:
        return Named(name, args)

    return build


def test_build_passes_the_arguments_to_the_factory() -> None:
    registry = Registry({"A": factory("A")})

    plugin = registry.build("A", {"weight": 3}, handle())

    assert isinstance(plugin, Named)
    assert plugin.args == {"weight": 3}


def test_each_build_makes_a_new_plugin() -> None:
    registry = Registry({"A": factory("A")})

    assert registry.build("A", {}, handle()) is not registry.build("A", {}, handle())


def test_unknown_name_is_refused_listing_the_registered_ones() -> None:
    registry = Registry({"B": factory("B"), "A": factory("A")})

    with pytest.raises(ValueError, match=r"unknown plugin 'C'; registered: A, B"):
        registry.build("C", {}, handle())


def test_registering_a_taken_name_is_refused() -> None:
    registry = Registry({"A": factory("A")})

    with pytest.raises(ValueError, match="'A' is already registered"):
        registry.register("A", factory("A"))


def test_registered_names_are_listed_and_tested_for() -> None:
    registry = Registry({"A": factory("A")})
    registry.register("B", factory("B"))

    assert list(registry) == ["A", "B"]
    assert "B" in registry
    assert "C" not in registry


def test_registry_copies_the_factories_it_is_given() -> None:
    factories = {"A": factory("A")}
    registry = Registry(factories)
    factories["B"] = factory("B")

    assert "B" not in registry


class Weighted(PluginArgs):
    max_candidates: int = 1


def test_plugin_args_are_read_in_camel_case_and_typed() -> None:
    assert parse_args("P", Weighted, {"maxCandidates": 4}).max_candidates == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"maxCandidate": 4}, r"plugin P: invalid args: maxCandidate: Extra inputs are not permitted"),
        (
            {"maxCandidates": "many"},
            r"plugin P: invalid args: maxCandidates: Input should be a valid integer",
        ),
    ],
)
def test_bad_plugin_args_are_refused_naming_the_plugin_and_the_field(
    args: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_args("P", Weighted, args)


def test_a_plugin_without_arguments_refuses_any() -> None:
    with pytest.raises(ValueError, match="plugin Gang: invalid args: weight"):
        parse_args("Gang", NoArgs, {"weight": 2})
