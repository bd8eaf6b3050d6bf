"""The registry: plugin names → factories. Profiles name plugins; the registry builds them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aisched.framework.interface import Plugin

__all__ = ["PluginFactory", "Registry"]

PluginFactory = Callable[[Mapping[str, Any]], Plugin]


class Registry:
    def __init__(self, factories: Mapping[str, PluginFactory] | None = None) -> None:
        self._factories: dict[str, PluginFactory] = dict(factories or {})

    def register(self, name: str, factory: PluginFactory) -> None:
        if name in self._factories:
            raise ValueError(f"plugin {name!r} is already registered")
        self._factories[name] = factory

    def build(self, name: str, args: Mapping[str, Any]) -> Plugin:
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories))
            raise ValueError(f"unknown plugin {name!r}; registered: {known}") from None
        return factory(args)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)
