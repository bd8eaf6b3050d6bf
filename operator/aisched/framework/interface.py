"""The extension points, as Protocols. A plugin implements the ones it needs.

Filter and Score are vectorised: `filter` returns a mask over every node slot of the snapshot,
with a lazy explanation that is computed only when a pod cannot be placed; `score` returns a
0..100 array over every slot. Both are synchronous and read only the snapshot and the cycle
state. Binding is not an extension point: the shell's binder does it, outside the core.
Any plugin may also say which cluster events could change its answer (`EnqueueExtensions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ClusterEvent
from aisched.framework.status import Status
from aisched.framework.types import Gang, GangPlacement, PodInfo
from aisched.topology.snapshot import Snapshot

__all__ = [
    "Bools",
    "EnqueueExtensions",
    "FilterPlugin",
    "FilterResult",
    "Floats",
    "GPUPicker",
    "NormalizeScorePlugin",
    "PermitPlugin",
    "Plugin",
    "PostFilterPlugin",
    "PreFilterPlugin",
    "PreScorePlugin",
    "QueueSortPlugin",
    "Reasons",
    "ReservePlugin",
    "ScorePlugin",
]

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
#: Why nodes were rejected: each reason with the mask of nodes it applies to.
Reasons = list[tuple[str, Bools]]


@dataclass(frozen=True, slots=True)
class FilterResult:
    """Which nodes pass (`mask` over `snapshot.size` slots), and, lazily, why the others do not."""

    mask: Bools
    explain: Callable[[], Reasons]

    @classmethod
    def single_reason(cls, mask: Bools, reason: str) -> FilterResult:
        return cls(mask, lambda: [(reason, ~mask)])


@runtime_checkable
class Plugin(Protocol):
    name: str


@runtime_checkable
class QueueSortPlugin(Plugin, Protocol):
    def less(self, a: Gang, b: Gang) -> bool:
        """Whether `a` should be tried before `b`."""


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot) -> Status:
        """Checks on the gang as a whole before any node is looked at (completeness, quota)."""


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    #: True when the answer depends only on the pod and the nodes' static columns, never on
    #: usage: the runtime then caches it per pod template until a node changes.
    static: bool

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        """The nodes `pod` may run on; None when the plugin has nothing to say about this pod."""


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    def post_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot, failure: Status) -> Status:
        """After a gang found no place: make one (preemption), or say why not."""


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        """Prepare scoring; `Status.skip()` leaves this plugin's Score out for this pod."""


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        """0..100 for every node slot (only feasible ones are looked at), as a new array."""


@runtime_checkable
class GPUPicker(Plugin, Protocol):
    """Optional, on a score plugin: which GPU of a node a pod sharing one GPU gets.

    The placement asks the first score plugin of the profile that implements it; without one it
    takes the best fit (the GPU with the least free milli that still fits, lowest index on ties).
    Whole-GPU pods always get the best-connected set of fully free GPUs; MIG pods the placement's
    own slot choice.
    """

    def pick_gpu(self, pod: PodInfo, snapshot: Snapshot, slot: int) -> int | None:
        """The index of the GPU on node `slot` that `pod` shares; None if none fits.

        The snapshot's per-GPU columns (`gpu_milli_free`, `gpu_memory_free`) already account the
        earlier members of the pod's gang. An index that does not fit is refused and the
        best fit taken instead.
        """


@runtime_checkable
class NormalizeScorePlugin(Plugin, Protocol):
    def normalize(self, scores: Floats, feasible: Bools) -> Floats:
        """Rescale this plugin's raw scores to 0..100, looking only at the feasible nodes."""


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: CycleState, placement: GangPlacement, snapshot: Snapshot) -> Status:
        """Claim what the placement needs; a failure unreserves every plugin that reserved."""

    def unreserve(self, state: CycleState, placement: GangPlacement, snapshot: Snapshot) -> None:
        """Give back what `reserve` claimed."""


@runtime_checkable
class PermitPlugin(Plugin, Protocol):
    def permit(self, state: CycleState, placement: GangPlacement) -> Status:
        """Approve the placement (success) or reject it (unschedulable: it is undone)."""


@runtime_checkable
class EnqueueExtensions(Plugin, Protocol):
    def events_to_register(self) -> frozenset[ClusterEvent]:
        """The cluster events after which a gang this plugin turned away may fit.

        A plugin without this method is assumed to care about every event.
        """
