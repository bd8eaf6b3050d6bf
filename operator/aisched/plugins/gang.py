"""Gang: a gang is tried only when enough of its members exist.

The plugin is the thin adapter; placing all members at once is the scheduler's gang placement
(`aisched.scheduler.placement`), tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.status import Status
from aisched.framework.types import Gang as GangInfo
from aisched.topology.snapshot import Snapshot

NAME: Final = "Gang"


class Gang:
    name = NAME

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return frozenset({ClusterEvent.GANG_GREW})

    def pre_filter(self, state: CycleState, gang: GangInfo, snapshot: Snapshot) -> Status:
        if gang.size < gang.min_member:  # only its members can help, not preemption
            return Status.unresolvable(
                f"gang {gang.key} has {gang.size} of its {gang.min_member} members; waiting for the rest",
                plugin=NAME,
            )
        return Status.success()


def new(args: Mapping[str, Any], handle: Handle) -> Gang:
    parse_args(NAME, NoArgs, args)
    return Gang()
