"""`CycleState`: typed scratch space that plugins share for one scheduling cycle."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["CycleState", "StateKey"]

T = TypeVar("T")


class StateKey(Generic[T]):
    """A typed key: `KEY: Final = StateKey[GangRequest]("gang")`; reads come back as that type."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


class CycleState:
    """Values written by one extension point for later ones of the same cycle."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[StateKey[Any], Any] = {}

    def write(self, key: StateKey[T], value: T) -> None:
        self._data[key] = value

    def read(self, key: StateKey[T]) -> T:
        try:
            value: T = self._data[key]
        except KeyError:
            raise KeyError(f"{key!r} was not written in this cycle") from None
        return value

    def get(self, key: StateKey[T], default: T) -> T:
        value: T = self._data.get(key, default)
        return value
