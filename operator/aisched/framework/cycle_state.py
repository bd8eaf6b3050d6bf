"""`CycleState`: typed scratch space that plugins share for one scheduling cycle, and the quota book
the cycle is judged against."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from aisched.framework.observe import PluginObserver
from aisched.quota import QuotaLedger

__all__ = ["CycleState", "StateKey"]

T = TypeVar("T")
D = TypeVar("D")


class StateKey(Generic[T]):
    """A typed key: `KEY: Final = StateKey[GangRequest]("gang")`; reads come back as that type."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


class CycleState:
    """Values written by one extension point for later ones of the same cycle.

    `quota` is the ledger this cycle's admission reads: the live one in a real cycle, a what-if
    copy (victims' charges released) in a preemption dry run; None: the handle's ledger.
    `observer` times this cycle's plugin calls when the cycle is traced or sampled for metrics
    (None: it is not, and plugins are called directly).
    """

    __slots__ = ("_data", "observer", "quota")

    def __init__(self, *, quota: QuotaLedger | None = None, observer: PluginObserver | None = None) -> None:
        self._data: dict[StateKey[Any], Any] = {}
        self.quota = quota
        self.observer = observer

    def write(self, key: StateKey[T], value: T) -> None:
        self._data[key] = value

    def read(self, key: StateKey[T]) -> T:
        try:
            value: T = self._data[key]
        except KeyError:
            raise KeyError(f"{key!r} was not written in this cycle") from None
        return value

    def get(self, key: StateKey[T], default: D) -> T | D:
        value: T | D = self._data.get(key, default)
        return value
