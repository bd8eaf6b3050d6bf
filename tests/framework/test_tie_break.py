"""The seeded tie-break: a fixed random priority per node name, and the framework's GPU picker."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from aisched.framework.cycle_state import CycleState
from aisched.framework.interface import Floats, GPUPicker
from aisched.framework.profile import ScorePluginRef
from aisched.framework.tie_break import TieBreak, node_priority
from aisched.framework.types import PodInfo
from aisched.topology.snapshot import Snapshot
from tests.framework.test_runtime import FakeScore, filled, framework
from tests.support.core import node

NAMES = [f"n{i:02d}" for i in range(20)]


def test_a_nodes_priority_depends_on_the_seed_and_its_name_only() -> None:
    assert node_priority(42, "n01") == node_priority(42, "n01")
    assert node_priority(42, "n01") != node_priority(43, "n01")
    assert node_priority(42, "n01") != node_priority(42, "n02")
    assert node_priority(-1, "n01") >= 0


def test_seeds_order_the_nodes_differently() -> None:
    orders = {tuple(sorted(NAMES, key=partial(node_priority, seed))) for seed in range(5)}

    assert len(orders) == 5


def test_ranks_follow_the_nodes_into_their_slots_and_survive_other_nodes_leaving() -> None:
    cache, snapshot = filled([node(n, machine=None) for n in NAMES])
    tie_break = TieBreak(42)
    before = tie_break.ranks(snapshot)

    cache.remove_node("n03")
    cache.update_snapshot(snapshot)
    after = tie_break.ranks(snapshot)

    for name, slot in snapshot.slot_of.items():
        assert after[slot] == before[slot] == node_priority(42, name)
    assert after[3] == np.iinfo(np.int64).max  # the empty slot ranks last


def test_ranks_are_rebuilt_only_when_the_nodes_change() -> None:
    cache, snapshot = filled([node(n, machine=None) for n in NAMES[:3]])
    tie_break = TieBreak(7)

    first = tie_break.ranks(snapshot)
    assert tie_break.ranks(snapshot) is first
    cache.set_node(node("n99", machine=None))
    cache.update_snapshot(snapshot)
    assert tie_break.ranks(snapshot) is not first


def test_the_framework_has_a_tie_break_only_when_the_profile_seeds_one() -> None:
    _, snapshot = filled([node(n, machine=None) for n in NAMES[:3]])

    assert framework().tie_break(snapshot) is None
    ranks = framework(tie_break_seed=5).tie_break(snapshot)
    assert ranks is not None
    assert ranks.tolist() == [node_priority(5, n) for n in NAMES[:3]]


@dataclass
class Picker:
    name: str
    index: int

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        return np.zeros(snapshot.size)

    def pick_gpu(self, pod: PodInfo, snapshot: Snapshot, slot: int) -> int | None:
        return self.index


def test_the_gpu_picker_is_the_first_score_plugin_that_picks() -> None:
    plain, first, second = FakeScore("Plain", {}), Picker("First", 1), Picker("Second", 2)
    refs = tuple(ScorePluginRef(name=p.name) for p in (plain, first, second))

    fw = framework(plain, first, second, score=refs)

    assert isinstance(first, GPUPicker)
    assert fw.gpu_picker is first
    assert framework(plain, score=(ScorePluginRef(name="Plain"),)).gpu_picker is None
