"""TaintToleration: a node's NoSchedule/NoExecute taints keep off pods that do not tolerate them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import Bools, FilterResult, Reasons
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.types import PodInfo
from aisched.topology.node import Taint
from aisched.topology.snapshot import Snapshot

NAME: Final = "TaintToleration"


class TaintToleration:
    name = NAME
    static = True

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_TAINTS_CHANGED})

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult:
        n = snapshot.size
        taints: list[Taint] = snapshot.taint_vocabulary.values  # type: ignore[assignment]
        untolerated = [
            i
            for i, taint in enumerate(taints)
            if not any(
                t.tolerates(key=taint.key, value=taint.value, effect=taint.effect) for t in pod.tolerations
            )
        ]
        if not untolerated:
            return FilterResult(np.ones(n, dtype=np.bool_), list)
        matrix = snapshot.taints[:n, untolerated]
        mask: Bools = np.asarray(~matrix.any(axis=1), dtype=np.bool_)

        def explain() -> Reasons:
            # Each node is reported under its first untolerated taint, as kube-scheduler does.
            first = np.argmax(matrix, axis=1)
            return [
                (
                    f"node(s) had untolerated taint {{{taints[i].key}: {taints[i].value}}}",
                    ~mask & (first == col),
                )
                for col, i in enumerate(untolerated)
            ]

        return FilterResult(mask, explain)


def new(args: Mapping[str, Any], handle: Handle) -> TaintToleration:
    parse_args(NAME, NoArgs, args)
    return TaintToleration()
