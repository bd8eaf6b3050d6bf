"""What the framework tells an observer about one cycle: each plugin call, timed by the observer;
and what the scheduler asks of a tracer (`CycleTracer`: a record of each cycle, `CycleRecord`),
which `observability.tracing` implements with OpenTelemetry.

The framework reads no clock and imports no tracing library: a cycle that is neither traced nor
sampled for metrics has no observer (`CycleState.observer` is None) and its plugins are called
directly. When there is one, every plugin call at every extension point goes through `call`, and
the framework says what the plugin decided (`status_of`) in kube-scheduler's words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar, get_args

import numpy as np

from aisched.framework.status import Code, Status

if TYPE_CHECKING:
    from aisched.framework.types import Gang

__all__ = [
    "EXTENSION_POINTS",
    "PLUGIN_STATUSES",
    "CycleRecord",
    "CycleTracer",
    "ExtensionPoint",
    "PluginObserver",
    "PluginStatus",
    "status_of",
]

ExtensionPoint = Literal["PreFilter", "Filter", "PostFilter", "PreScore", "Score", "Reserve", "Permit"]
PluginStatus = Literal["Success", "Unschedulable", "UnschedulableAndUnresolvable", "Error", "Skip"]
EXTENSION_POINTS: Final[tuple[ExtensionPoint, ...]] = get_args(ExtensionPoint)
PLUGIN_STATUSES: Final[tuple[PluginStatus, ...]] = get_args(PluginStatus)
_BY_CODE: Final[dict[Code, PluginStatus]] = {
    Code.SUCCESS: "Success",
    Code.UNSCHEDULABLE: "Unschedulable",
    Code.UNSCHEDULABLE_AND_UNRESOLVABLE: "UnschedulableAndUnresolvable",
    Code.ERROR: "Error",
    Code.SKIP: "Skip",
}

T = TypeVar("T")


def status_of(result: object) -> PluginStatus:
    """What a plugin's answer says: a `Status` by its code; a filter's result (an object with a
    node `mask`) Success when any node passes; anything else (scores, None) Success."""
    if isinstance(result, Status):
        return _BY_CODE.get(result.code, "Error")
    mask = getattr(result, "mask", None)
    if isinstance(mask, np.ndarray) and not mask.any():
        return "Unschedulable"
    return "Success"


class PluginObserver(Protocol):
    """Times the plugin calls of one cycle (`observability.tracing.CycleTrace`)."""

    def call(self, point: ExtensionPoint, plugin: str, run: Callable[[], T]) -> T:
        """Run `run` (one plugin at `point`), note how long it took and what it decided."""
        ...


class CycleRecord(Protocol):
    """One cycle as a tracer records it: `observer` times its plugin calls (None: not timed),
    `event` notes a decision, `finish` ends it with its outcome (and never raises)."""

    @property
    def observer(self) -> PluginObserver | None: ...

    @property
    def recording(self) -> bool:
        """Whether what `finish` is told is kept (else only its plugin timings are)."""
        ...

    def event(self, name: str, attributes: Mapping[str, Any]) -> None: ...

    def finish(
        self, *, result: str, reason: str = "", feasible: int | None = None, victims: tuple[str, ...] = ()
    ) -> None: ...


class CycleTracer(Protocol):
    """Starts the record of each cycle (None: this cycle is not recorded at all)."""

    def cycle(self, gang: Gang) -> CycleRecord | None: ...
