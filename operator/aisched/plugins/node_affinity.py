"""NodeAffinity: `nodeSelector` and required node affinity (In, NotIn, Exists, DoesNotExist, Gt, Lt).

Each label key the pods ask about becomes a column of value ids in the snapshot, so a
requirement is one vectorised comparison over all nodes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import Bools, FilterResult
from aisched.framework.registry import NoArgs, parse_args
from aisched.framework.types import PodInfo, Requirement, SelectorTerm
from aisched.topology.snapshot import Snapshot

NAME: Final = "NodeAffinity"
REASON: Final = "node(s) didn't match Pod's node affinity/selector"
# What Go's strconv.ParseInt accepts, as kube-scheduler parses Gt/Lt values: no `_`, no spaces.
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")


class NodeAffinity:
    name = NAME
    static = True

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_LABELS_CHANGED})

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        if not pod.node_selector and not pod.affinity:
            return None
        n = snapshot.size
        mask = np.ones(n, dtype=np.bool_)
        for key, value in pod.node_selector:
            column, vocabulary = snapshot.label_column(key)
            wanted = vocabulary.get(value)
            if wanted < 0:  # no node has ever carried this value (-1 would match "absent")
                mask[:] = False
                break
            mask &= column[:n] == wanted
        if pod.affinity:
            any_term = np.zeros(n, dtype=np.bool_)
            for term in pod.affinity:
                any_term |= _term(term, snapshot)
            mask &= any_term
        return FilterResult.single_reason(mask, REASON)


def _term(term: SelectorTerm, snapshot: Snapshot) -> Bools:
    n = snapshot.size
    if not term.expressions and not term.fields:
        return np.zeros(n, dtype=np.bool_)  # an empty term matches no node
    mask = np.ones(n, dtype=np.bool_)
    for requirement in term.expressions:
        mask &= _label_requirement(requirement, snapshot)
    for requirement in term.fields:
        mask &= _field_requirement(requirement, snapshot)
    return mask


def _label_requirement(req: Requirement, snapshot: Snapshot) -> Bools:
    n = snapshot.size
    column, vocabulary = snapshot.label_column(req.key)
    ids = column[:n]
    present = ids >= 0
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return ~present
    if req.operator in ("In", "NotIn"):
        wanted = [vocabulary.get(v) for v in req.values]
        member = np.isin(ids, [w for w in wanted if w >= 0])
        return member if req.operator == "In" else ~member
    # Gt / Lt: the label value and the single requirement value compare as integers.
    bound = _as_int(req.values[0]) if len(req.values) == 1 else np.nan
    if np.isnan(bound):
        return np.zeros(n, dtype=np.bool_)
    numeric = np.array([_as_int(v) for v in vocabulary.values] + [np.nan], dtype=np.float64)
    values = numeric[np.where(present, ids, len(vocabulary))]
    with np.errstate(invalid="ignore"):
        return values > bound if req.operator == "Gt" else values < bound


def _as_int(value: object) -> float:
    """A label value as Kubernetes compares it for Gt/Lt (a plain decimal integer), else NaN."""
    text = str(value)
    return float(int(text)) if _INTEGER.fullmatch(text) else np.nan


def _field_requirement(req: Requirement, snapshot: Snapshot) -> Bools:
    n = snapshot.size
    if req.key != "metadata.name" or req.operator not in ("In", "NotIn"):
        return np.zeros(n, dtype=np.bool_)
    slots = [snapshot.slot_of[v] for v in req.values if v in snapshot.slot_of]
    member = np.zeros(n, dtype=np.bool_)
    member[slots] = True
    return member if req.operator == "In" else ~member


def new(args: Mapping[str, Any], handle: Handle) -> NodeAffinity:
    parse_args(NAME, NoArgs, args)
    return NodeAffinity()
