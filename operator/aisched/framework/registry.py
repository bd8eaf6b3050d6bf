"""The registry: plugin names → factories. Profiles name plugins; the registry builds them.

A factory is `new(args, handle)`: `args` are the profile's arguments for the plugin (validated by
the factory, which raises `ValueError` naming the plugin and the field), `handle` the scheduler's
shared state (`framework.handle.Handle`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from aisched.framework.handle import Handle
from aisched.framework.interface import Plugin

__all__ = ["NoArgs", "PluginArgs", "PluginFactory", "Registry", "parse_args"]

PluginFactory = Callable[[Mapping[str, Any], Handle], Plugin]
A = TypeVar("A", bound="PluginArgs")


class PluginArgs(BaseModel):
    """Base of a plugin's typed arguments: camelCase keys as in a profile's YAML, unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )


class NoArgs(PluginArgs):
    """The arguments of a plugin that takes none."""


def parse_args(plugin: str, model: type[A], args: Mapping[str, Any]) -> A:
    """`args` as `model`, or a `ValueError` that names the plugin and the offending field."""
    try:
        return model.model_validate(dict(args))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(args)'}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"plugin {plugin}: invalid args: {problems}") from None


class Registry:
    def __init__(self, factories: Mapping[str, PluginFactory] | None = None) -> None:
        self._factories: dict[str, PluginFactory] = dict(factories or {})

    def register(self, name: str, factory: PluginFactory) -> None:
        if name in self._factories:
            raise ValueError(f"plugin {name!r} is already registered")
        self._factories[name] = factory

    def build(self, name: str, args: Mapping[str, Any], handle: Handle) -> Plugin:
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories))
            raise ValueError(f"unknown plugin {name!r}; registered: {known}") from None
        return factory(args, handle)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)
