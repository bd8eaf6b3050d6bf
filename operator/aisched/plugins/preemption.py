"""DefaultPreemption (PostFilter): when a gang finds no place, make room by evicting whole gangs.

A thin adapter over the core's `scheduler.evaluator.Evaluator` (reached through the handle),
which picks the victims with dry runs on clones and returns them with the placement to hold; the
nomination is left in the cycle state for the scheduling cycle to hand to its caller, who does
the evicting. A failure no eviction can mend (unresolvable: no node passes the static filters, or
the gang is incomplete) is not looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import Field

from aisched.framework.cycle_state import CycleState
from aisched.framework.handle import Handle
from aisched.framework.nomination import NOMINATION
from aisched.framework.registry import PluginArgs, parse_args
from aisched.framework.status import Code, Status
from aisched.framework.types import Gang
from aisched.topology.snapshot import Snapshot

__all__ = ["DEFAULT_MAX_CANDIDATES", "NAME", "DefaultPreemption", "PreemptionArgs", "new"]

NAME: Final = "DefaultPreemption"
#: Running gangs weighed per attempt, cheapest first: each costs up to two dry runs.
DEFAULT_MAX_CANDIDATES: Final = 32


class PreemptionArgs(PluginArgs):
    max_candidates: Annotated[int, Field(ge=1, le=1024)] = DEFAULT_MAX_CANDIDATES


class DefaultPreemption:
    name = NAME

    def __init__(self, handle: Handle, *, max_candidates: int = DEFAULT_MAX_CANDIDATES) -> None:
        self._handle = handle
        self.max_candidates = max_candidates

    def post_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot, failure: Status) -> Status:
        if failure.code is not Code.UNSCHEDULABLE:
            return Status.unresolvable("preemption cannot help", plugin=NAME)
        if gang.opportunistic:  # an elastic job grows into idle room only
            return Status.unschedulable("an elastic job's surplus pod evicts no one", plugin=NAME)
        nomination = self._handle.preemption.nominate(gang, max_candidates=self.max_candidates)
        if nomination is None:
            return Status.unschedulable("no running gang may be preempted to make room", plugin=NAME)
        state.write(NOMINATION, nomination)
        victims = ", ".join(victim.key for victim in nomination.victims)
        return Status(
            Code.SUCCESS, (f"preempting {len(nomination.victims)} gang(s) to make room: {victims}",), NAME
        )


def new(args: Mapping[str, Any], handle: Handle) -> DefaultPreemption:
    return DefaultPreemption(handle, max_candidates=parse_args(NAME, PreemptionArgs, args).max_candidates)
