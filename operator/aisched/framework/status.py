"""`Status`: the outcome of running a plugin, with reasons a user can read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Code", "Status"]


class Code(IntEnum):
    """What a plugin decided (kube-scheduler's framework.Code)."""

    SUCCESS = 0
    #: Not now, maybe later: preemption or a cluster change may help.
    UNSCHEDULABLE = 1
    #: Not here, and preempting others would not help (a node selector nobody matches).
    UNSCHEDULABLE_AND_UNRESOLVABLE = 2
    #: The plugin failed: a bug or an outage, not a scheduling decision.
    ERROR = 3
    #: The plugin has nothing to say for this pod; its later extension points are skipped.
    SKIP = 5


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def message(self) -> str:
        return "; ".join(self.reasons)

    @classmethod
    def success(cls) -> Status:
        return _SUCCESS

    @classmethod
    def skip(cls, *, plugin: str = "") -> Status:
        return cls(Code.SKIP, (), plugin)

    @classmethod
    def unschedulable(cls, *reasons: str, plugin: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reasons, plugin)

    @classmethod
    def unresolvable(cls, *reasons: str, plugin: str) -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)

    @classmethod
    def error(cls, *reasons: str, plugin: str) -> Status:
        return cls(Code.ERROR, reasons, plugin)


_SUCCESS = Status()
