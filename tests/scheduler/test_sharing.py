"""Placing pods that share a GPU or take a MIG instance, through the scheduler: device choice,
packing, the GPU picker hook, gangs, and the seeded tie-break."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from aisched.cache import PodUsage
from aisched.framework.cycle_state import CycleState
from aisched.framework.interface import Floats
from aisched.framework.profile import Profile, ScorePluginRef
from aisched.framework.tie_break import node_priority
from aisched.framework.types import Gang, GangPlacement, PodInfo
from aisched.plugins import default_registry
from aisched.scheduler import Scheduler
from aisched.topology import resources
from aisched.topology.node import NodeInfo
from aisched.topology.snapshot import Snapshot
from tests.support.core import GiB, gang, node, pod, scheduler


def placed(sched: Scheduler, *pods: PodInfo) -> GangPlacement:
    result = sched.schedule(Gang.of(pods[0]) if len(pods) == 1 else gang("g", list(pods)))
    assert result.placement is not None, result.message
    return result.placement


def test_three_400_milli_pods_go_two_on_one_gpu_and_one_on_the_next() -> None:
    sched = scheduler([node("a")])

    placements = [placed(sched, pod(f"p{i}", gpu_milli=400)).pods[0] for i in range(3)]

    assert [p.gpu_indices for p in placements] == [(0,), (0,), (1,)]
    assert [p.gpu_milli for p in placements] == [400, 400, 400]
    assert placements[0].gpu_ids == ("GPU-a-0",)
    snapshot = sched.cache.update_snapshot(sched.snapshot)
    assert snapshot.gpu_milli_free[0, :3].tolist() == [200, 600, 1000]


def test_a_share_packs_onto_the_node_whose_gpu_it_fills_best() -> None:
    sched = scheduler([node("empty"), node("half")])
    sched.cache.set_pod(
        PodUsage(key="ml/x", node="half", requests={resources.PODS: 1}, gpu_mask=0b1000, gpu_milli=500)
    )

    chosen = placed(sched, pod("p", gpu_milli=500)).pods[0]

    assert (chosen.node, chosen.gpu_indices) == ("half", (3,))


def test_whole_gpu_pods_never_take_a_shared_gpu() -> None:
    sched = scheduler([node("a", machine="pcie-8gpu")])
    placed(sched, pod("s", gpu_milli=100))

    whole = placed(sched, pod("w", gpus=7)).pods[0]
    result = sched.schedule(Gang.of(pod("w2", gpus=1)))

    assert not whole.gpu_mask & 0b1
    assert result.placement is None
    assert result.message == "0/1 nodes are available: 1 node(s) had too few healthy free GPUs."


def test_a_share_never_lands_on_a_gpu_held_whole() -> None:
    sched = scheduler([node("a", machine="pcie-8gpu")])
    placed(sched, pod("w", gpus=8))

    result = sched.schedule(Gang.of(pod("s", gpu_milli=1)))

    assert result.placement is None
    assert "Insufficient shared GPU capacity" in result.message


def test_memory_is_granted_and_bounds_the_share() -> None:
    sched = scheduler([node("a", machine="pcie-8gpu", gpus=None)])  # 48 GiB GPUs

    first = placed(sched, pod("p0", gpu_milli=100, gpu_memory=30 * GiB)).pods[0]
    second = placed(sched, pod("p1", gpu_milli=100, gpu_memory=30 * GiB)).pods[0]

    assert first.gpu_memory == 30 * GiB
    assert first.gpu_indices != second.gpu_indices  # 18 GiB left on the first GPU


@dataclass
class LastGPU:
    """A score plugin that also picks: always the highest-index GPU (or a bad index, if told)."""

    name: str = "LastGPU"
    bad: bool = False

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        return np.zeros(snapshot.size)

    def pick_gpu(self, pod: PodInfo, snapshot: Snapshot, slot: int) -> int | None:
        return 99 if self.bad else int(snapshot.gpu_count[slot]) - 1


def picking_scheduler(nodes: list[NodeInfo], plugin: LastGPU) -> Scheduler:
    registry = default_registry()
    registry.register(plugin.name, lambda args, handle: plugin)
    profile = Profile(score=(*Profile().score, ScorePluginRef(name=plugin.name)))
    return Scheduler(profile=profile, registry=registry, cache=scheduler(nodes).cache)


def test_the_profiles_gpu_picker_chooses_the_shared_gpu() -> None:
    sched = picking_scheduler([node("a")], LastGPU())

    chosen = placed(sched, pod("p", gpu_milli=300)).pods[0]

    assert chosen.gpu_indices == (7,)


def test_a_picker_naming_a_gpu_that_does_not_fit_is_overruled_by_best_fit() -> None:
    sched = picking_scheduler([node("a")], LastGPU(bad=True))

    chosen = placed(sched, pod("p", gpu_milli=300)).pods[0]

    assert chosen.gpu_indices == (0,)


def test_the_picker_is_not_asked_about_whole_gpus() -> None:
    sched = picking_scheduler([node("a")], LastGPU())

    chosen = placed(sched, pod("p", gpus=1)).pods[0]

    assert chosen.gpu_indices == (0,)


def test_a_gang_of_shares_sees_its_earlier_members_and_leaves_no_trace_when_it_fails() -> None:
    sched = scheduler([node("a", machine="pcie-8gpu")])

    placement = placed(sched, *[pod(f"p{i}", gpu_milli=600) for i in range(8)])
    too_many = sched.schedule(gang("h", [pod(f"q{i}", gpu_milli=600) for i in range(9)]))

    assert sorted(p.gpu_indices[0] for p in placement.pods) == list(range(8))  # one per GPU
    assert too_many.placement is None
    snapshot = sched.cache.update_snapshot(sched.snapshot)
    assert snapshot.gpu_milli_free[0, :8].tolist() == [400] * 8


def test_a_gang_mixing_whole_gpus_and_shares_keeps_them_apart() -> None:
    sched = scheduler([node("a", machine="pcie-8gpu")])

    placement = placed(sched, pod("w", gpus=6), pod("s0", gpu_milli=500), pod("s1", gpu_milli=700))

    whole = next(p for p in placement.pods if p.pod.name == "w").gpu_mask
    shared = [p.gpu_mask for p in placement.pods if p.pod.name != "w"]
    assert all(not whole & mask for mask in shared)
    assert shared[0] != shared[1]  # 500 + 700 > 1000


def test_mig_instances_pack_one_gpu_and_keep_large_profiles_placeable() -> None:
    sched = scheduler([node("a", machine="a100-mig")])

    starts = [placed(sched, pod(f"m{i}", mig_profile="1g.10gb")).pods[0].mig for i in range(2)]
    big = placed(sched, pod("big", mig_profile="4g.40gb")).pods[0]

    assert starts == [(3, 6), (3, 4)]  # GPU 3, the only one with room; slots 0-3 kept whole
    assert big.mig == (3, 0)
    assert big.mig_slots == 0b1111
    assert big.gpu_ids == ("GPU-a-3",)


def test_a_mig_instance_prefers_a_partly_used_gpu() -> None:
    sched = scheduler([node("a", machine="a100-mig"), node("b", machine="a100-mig")])
    sched.cache.set_pod(
        PodUsage(key="ml/x", node="b", requests={resources.PODS: 1}, gpu_mask=0b1000, mig=("3g.40gb", 4))
    )

    chosen = placed(sched, pod("m", mig_profile="2g.20gb")).pods[0]

    assert chosen.node == "b"
    assert chosen.mig is not None
    assert chosen.mig[0] == 3
    assert chosen.mig_slots & 0b1111_0000 == 0


def test_a_mig_pod_without_room_is_told_why() -> None:
    sched = scheduler([node("a", machine="a100-mig"), node("b")])
    placed(sched, pod("full", mig_profile="7g.80gb"))

    result = sched.schedule(Gang.of(pod("m", mig_profile="1g.10gb")))

    assert result.placement is None
    assert "1 no free MIG slice for 1g.10gb" in result.message
    assert "1 node(s) had no MIG-enabled GPU" in result.message


def test_without_the_sharing_filter_the_placement_still_checks_the_devices() -> None:
    profile = Profile(filter=("ResourceFit",))
    sched = scheduler([node("a", machine="pcie-8gpu"), node("b", machine=None)], profile=profile)

    chosen = placed(sched, pod("s", gpu_milli=500)).pods[0]
    mig = sched.schedule(Gang.of(pod("m", mig_profile="1g.10gb")))

    assert chosen.node == "a"
    assert mig.placement is None
    assert "no node that passes the filters has a free MIG slice for 1g.10gb" in mig.message


def equal_nodes(count: int) -> list[NodeInfo]:
    return [node(f"n{i:02d}", machine=None, gpus=0) for i in range(count)]


def seeded(seed: int | None, nodes: list[NodeInfo], **profile: Any) -> Scheduler:
    return scheduler(nodes, profile=Profile(tie_break_seed=seed, **profile))


def test_without_a_seed_equal_scores_go_to_the_lowest_slot() -> None:
    sched = seeded(None, equal_nodes(6))

    assert placed(sched, pod("p")).pods[0].node == "n00"


def test_a_seed_gives_ties_to_the_node_of_best_priority() -> None:
    nodes = equal_nodes(12)
    # Scores tie only if nothing tells the nodes apart: no scorer for CPU-only pods.
    profile: Mapping[str, Any] = {"score": ()}
    winners = {}
    for seed in (1, 2, 3):
        expected = min((n.name for n in nodes), key=partial(node_priority, seed))
        winners[seed] = placed(seeded(seed, nodes, **profile), pod("p")).pods[0].node
        assert winners[seed] == expected
    assert len(set(winners.values())) > 1


def test_a_seed_breaks_ties_only_among_the_top_scores() -> None:
    nodes = [node(f"n{i}", cpu=64_000) for i in range(4)] + [node("busy", cpu=64_000)]
    sched = seeded(3, nodes)
    sched.cache.set_pod(PodUsage(key="ml/x", node="busy", requests={resources.GPU: 2}, gpu_mask=0b11))

    # GPU packing prefers the busy node whatever the priorities.
    assert placed(sched, pod("p", gpus=1)).pods[0].node == "busy"


def test_a_seed_breaks_ties_between_nodes_for_a_gang_member() -> None:
    nodes = equal_nodes(8)
    expected = min((n.name for n in nodes), key=lambda name: node_priority(9, name))
    sched = seeded(9, nodes, score=())

    placement = placed(sched, pod("a"), pod("b"))

    assert {p.node for p in placement.pods} == {expected}
