"""What preemption decides: the running gangs to evict (`Workload`, always whole) and the placement
held for the gang they make room for (`Nomination`). Shared by the PostFilter plugin, the core's
`scheduler.evaluator.Evaluator` that finds them, and the shells that carry them out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aisched.cache import PodUsage
from aisched.framework.cycle_state import StateKey
from aisched.framework.types import GangPlacement
from aisched.quota import GPU_MILLI, quota_usage

__all__ = ["NOMINATION", "NO_ROOM_MADE", "Nomination", "Workload"]


@dataclass(frozen=True)
class Workload:
    """A running gang as the cache accounts it, with what preemption weighs."""

    key: str
    tenant: str | None
    priority: int
    preemptible: bool
    started: float  # when its last member started (the scheduler's clock)
    pods: tuple[PodUsage, ...]
    gpu_milli: int

    @classmethod
    def of(cls, key: str, members: Iterable[PodUsage], *, tenant: str | None) -> Workload:
        """Gang `key` from its accounted members, charged to `tenant`."""
        pods = tuple(sorted(members, key=lambda u: u.key))
        return cls(
            key=key,
            tenant=tenant,
            priority=max((p.priority for p in pods), default=0),
            preemptible=all(p.preemptible for p in pods),
            started=max((p.started for p in pods), default=0.0),
            pods=pods,
            gpu_milli=sum(quota_usage(p).get(GPU_MILLI, 0) for p in pods),
        )

    def lost_work(self, now: float) -> float:
        """What evicting it wastes: GPUs × time running."""
        return self.gpu_milli * max(0.0, now - self.started)

    @property
    def whole_gpus(self) -> int:
        """GPUs its eviction can free whole at most: its whole GPUs, and one per sharing member."""
        return sum(p.gpus or int(p.shares_gpu or p.mig is not None) for p in self.pods)


@dataclass(frozen=True)
class Nomination:
    """Room made for a gang: the gangs to evict, and where the gang goes once they are gone."""

    placement: GangPlacement
    victims: tuple[Workload, ...]

    @property
    def victim_pods(self) -> list[str]:
        return [usage.key for victim in self.victims for usage in victim.pods]


#: Where the PostFilter that made room leaves its nomination for the scheduling cycle to return.
NOMINATION: Final = StateKey[Nomination]("nomination")
#: Why no PostFilter made room (their reasons, joined), when none did.
NO_ROOM_MADE: Final = StateKey[str]("no-room-made")
