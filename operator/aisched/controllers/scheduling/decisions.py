"""`DecisionLog`: the scheduling loop's last decisions, newest first, for the cluster view.

One entry per cycle that reached a verdict: the gang placed (and where), room being made for it
by preemption, turned away (and why), or the cycle failed. The log keeps the last `size` and
drops the oldest, so its memory is bounded however long the term runs; it is the term's, and a
new leader starts an empty one. Nothing decides anything from it: it is only read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

from aisched.framework.status import Code
from aisched.framework.types import Gang, PodPlacement
from aisched.queue import job_of
from aisched.scheduler import ScheduleResult

__all__ = ["DEFAULT_SIZE", "Decision", "DecisionLog", "DecisionResult"]

#: How many decisions a log keeps.
DEFAULT_SIZE: Final = 200
#: The longest message kept (an explanation over many nodes and plugins can run long).
MESSAGE_LIMIT: Final = 2000

#: `preempting`: turned away, but victims are being evicted and the gang's place is held.
DecisionResult = Literal["scheduled", "preempting", "unschedulable", "error"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One cycle's verdict on gang `gang` (of job `job`, `pods` pods to place) at `at` (epoch
    seconds); `nodes` where it goes (placed, or held for it while victims leave), in the order its
    pods were placed."""

    at: float
    gang: str
    result: DecisionResult
    nodes: tuple[str, ...] = ()
    message: str = ""
    job: str = ""
    pods: int = 0


class DecisionLog:
    """The last `size` decisions; `clock` dates them (wall clock, epoch seconds)."""

    def __init__(self, *, clock: Callable[[], float], size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError(f"a decision log keeps at least one decision, not {size}")
        self._clock = clock
        self._entries: deque[Decision] = deque(maxlen=size)

    def record(self, gang: Gang, result: ScheduleResult) -> None:
        """The scheduling cycle's `result` for `gang`."""
        if result.placement is not None:
            nodes = _nodes(result.placement.pods)
            message = f"{len(result.placement.pods)} pod(s) on {len(nodes)} node(s)"
            self._add(gang, "scheduled", nodes, message)
        elif result.status.code is Code.ERROR:
            self._add(gang, "error", (), result.message)
        elif result.nomination is not None:
            victims = len(result.nomination.victim_pods)
            held = _nodes(result.nomination.placement.pods)
            self._add(gang, "preempting", held, f"evicting {victims} pod(s) to make room; {result.message}")
        else:
            self._add(gang, "unschedulable", (), result.message)

    def crashed(self, gang: Gang, error: BaseException) -> None:
        """The cycle for `gang` raised `error` (a bug, or data nobody foresaw)."""
        self._add(gang, "error", (), f"scheduling cycle failed: {type(error).__name__}: {error}")

    def latest(self, n: int) -> list[Decision]:
        """Up to `n` decisions, newest first."""
        out: list[Decision] = []
        for decision in reversed(self._entries):
            if len(out) >= n:
                break
            out.append(decision)
        return out

    def __iter__(self) -> Iterator[Decision]:
        """Every decision kept, oldest first."""
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def _add(self, gang: Gang, result: DecisionResult, nodes: tuple[str, ...], message: str) -> None:
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 1] + "…"
        self._entries.append(
            Decision(
                at=self._clock(),
                gang=gang.key,
                result=result,
                nodes=nodes,
                message=message,
                job=job_of(gang),
                pods=gang.size,
            )
        )


def _nodes(pods: Iterable[PodPlacement]) -> tuple[str, ...]:
    """The distinct nodes of placed pods, in placement order."""
    return tuple(dict.fromkeys(pod.node for pod in pods))
