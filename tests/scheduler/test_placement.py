"""Gang placement through the scheduler: whole gangs, topology levels, fewest nodes, best GPU sets."""

from __future__ import annotations

import dataclasses
from typing import Any

from aisched.cache import PodUsage
from aisched.framework.status import Code
from aisched.framework.types import Gang, PodInfo
from tests.support.core import gang, node, pod, scheduler


def _racks(sched: object, placement: object) -> set[str | None]:
    snapshot = sched.snapshot  # type: ignore[attr-defined]
    return {snapshot.infos[p.slot].rack for p in placement.pods}  # type: ignore[attr-defined]


def test_a_lone_gpu_pod_gets_the_best_connected_free_set() -> None:
    sched = scheduler([node("v100", machine="dgx1-v100")])
    # GPUs 0 and 5 are taken: the best free pair is an NV2 pair, never a cross-socket one.
    sched.cache.set_pod(
        PodUsage(key="other/a", node="v100", requests={"nvidia.com/gpu": 2}, gpu_mask=0b100001)
    )
    result = sched.schedule(gang("one", [pod("p", gpus=2)]))
    assert result.placement is not None
    (placed,) = result.placement.pods
    assert placed.gpu_indices in {(1, 2), (2, 3), (4, 7), (6, 7)}
    assert placed.gpu_ids == tuple(f"GPU-v100-{i}" for i in placed.gpu_indices)


def test_a_four_gpu_pod_on_a_cube_mesh_gets_one_quad() -> None:
    sched = scheduler([node("v100", machine="dgx1-v100")])
    result = sched.schedule(gang("quad", [pod("p", gpus=4)]))
    assert result.placement is not None
    assert set(result.placement.pods[0].gpu_indices) in ({0, 1, 2, 3}, {4, 5, 6, 7})


def test_required_node_puts_every_member_on_one_node() -> None:
    sched = scheduler([node("a"), node("b")])
    result = sched.schedule(
        gang("g", [pod(f"p{i}", gpus=2) for i in range(4)], policy="Required", level="node")
    )
    assert result.placement is not None
    assert len({p.node for p in result.placement.pods}) == 1
    masks = [p.gpu_mask for p in result.placement.pods]
    assert sum(bin(m).count("1") for m in masks) == 8
    assert len(set(masks)) == 4


def test_required_rack_stays_in_one_rack_and_picks_the_tightest_fit() -> None:
    nodes = [node(f"big{i}", rack="big") for i in range(4)] + [
        node(f"small{i}", rack="small") for i in range(2)
    ]
    sched = scheduler(nodes)
    result = sched.schedule(
        gang("g", [pod(f"p{i}", gpus=8) for i in range(2)], policy="Required", level="rack")
    )
    assert result.placement is not None
    assert _racks(sched, result.placement) == {"small"}
    assert result.placement.domain == ("rack", "small")


def test_a_gang_that_fits_by_count_but_not_in_one_rack_gets_the_topology_reason() -> None:
    nodes = [node(f"r{r}n{i}", rack=f"r{r}") for r in range(2) for i in range(2)]
    sched = scheduler(nodes)
    result = sched.schedule(
        gang("g", [pod(f"p{i}", gpus=8) for i in range(3)], policy="Required", level="rack")
    )
    assert result.placement is None
    assert result.status.code is Code.UNSCHEDULABLE
    assert result.message == "4/4 nodes are available. needs 24 GPUs in one rack; largest rack has 16 free."


def test_preferred_spills_to_the_next_level_when_no_rack_holds_the_gang() -> None:
    nodes = [node(f"r{r}n{i}", rack=f"r{r}", block="b0") for r in range(2) for i in range(2)]
    sched = scheduler(nodes)
    result = sched.schedule(gang("g", [pod(f"p{i}", gpus=8) for i in range(3)], policy="Preferred"))
    assert result.placement is not None
    assert result.placement.domain[0] == "block"
    assert len(_racks(sched, result.placement)) == 2


def test_members_go_to_as_few_nodes_as_possible() -> None:
    sched = scheduler([node(f"n{i}", rack="r") for i in range(4)])
    # One node is half full: six 4-GPU pods need three nodes, and the half-full one is the best
    # fit for the last pod.
    sched.cache.set_pod(PodUsage(key="x/busy", node="n2", requests={"nvidia.com/gpu": 4}, gpu_mask=0b1111))
    result = sched.schedule(gang("g", [pod(f"p{i}", gpus=4) for i in range(5)], policy="None"))
    assert result.placement is not None
    per_node: dict[str, int] = {}
    for placed in result.placement.pods:
        per_node[placed.node] = per_node.get(placed.node, 0) + 1
    assert sorted(per_node.values()) == [1, 2, 2]
    assert per_node.get("n2") == 1


def test_a_multi_role_gang_places_every_role_or_nothing() -> None:
    sched = scheduler([node("a", rack="r"), node("b", rack="r")])
    master = pod("master", gpus=0, cpu=4000)
    workers = [pod(f"w{i}", gpus=8) for i in range(2)]
    result = sched.schedule(gang("job", [master, *workers], policy="Required", level="rack"))
    assert result.placement is not None
    assert {p.pod.name for p in result.placement.pods} == {"master", "w0", "w1"}
    too_many = [pod(f"x{i}", gpus=8) for i in range(3)]
    failed = sched.schedule(gang("job2", [pod("m2", cpu=4000), *too_many], policy="None"))
    assert failed.placement is None
    # Nothing of the failed gang was assumed.
    assert sorted(sched.cache.assumed()) == ["ml/master", "ml/w0", "ml/w1"]


def test_required_nvlink_keeps_a_gang_inside_one_clique() -> None:
    sched = scheduler([node("v100", machine="dgx1-v100")])
    result = sched.schedule(
        gang("g", [pod(f"p{i}", gpus=2) for i in range(2)], policy="Required", level="nvlink")
    )
    assert result.placement is not None
    used = 0
    for placed in result.placement.pods:
        used |= placed.gpu_mask
    assert used in (0b00001111, 0b11110000)


def test_required_nvlink_fails_on_pcie_nodes_with_the_reason() -> None:
    sched = scheduler([node("pcie", machine="pcie-8gpu")])
    result = sched.schedule(gang("g", [pod("p0", gpus=2)], policy="Required", level="nvlink"))
    assert result.placement is None
    assert "needs 2 GPUs in one NVLink domain; largest NVLink domain has 1 free" in result.message


def test_an_unplaceable_pod_is_explained_per_node() -> None:
    sched = scheduler(
        [
            node("a", machine="pcie-8gpu"),
            node("b", machine="pcie-8gpu"),
            node("c", machine="dgx-h100"),
            node("d", machine=None, gpus=0, ready=False),
        ]
    )
    result = sched.schedule(gang("g", [pod("p", gpus=16, gpu_models=("H100-80GB",))]))
    assert result.placement is None
    assert result.message == (
        "0/4 nodes are available: 2 GPU model not allowed, 1 Insufficient nvidia.com/gpu,"
        " 1 node(s) were not ready."
    )


def test_a_gang_missing_members_waits_with_a_reason() -> None:
    sched = scheduler([node("a")])
    result = sched.schedule(gang("g", [pod("p0", gpus=1)], min_member=3))
    assert result.placement is None
    assert result.message == "gang ml/g has 1 of its 3 members; waiting for the rest"


def test_an_assumed_placement_is_visible_to_the_next_cycle_and_forget_returns_it() -> None:
    sched = scheduler([node("a")])
    first = sched.schedule(gang("g1", [pod("p0", gpus=8)]))
    assert first.placement is not None
    second = sched.schedule(gang("g2", [pod("p1", gpus=1)]))
    assert second.placement is None
    assert "Insufficient nvidia.com/gpu" in second.message
    sched.forget(first.placement)
    third = sched.schedule(gang("g3", [pod("p2", gpus=8)]))
    assert third.placement is not None


def test_nodes_without_a_topology_object_get_uniform_gpus_by_index() -> None:
    sched = scheduler([node("plain", machine=None, gpus=4)])
    result = sched.schedule(gang("g", [pod("p", gpus=2)]))
    assert result.placement is not None
    assert result.placement.pods[0].gpu_ids == ("0", "1")


def _replacing(members: list[PodInfo], near: tuple[str, ...], **options: Any) -> Gang:
    """The lost members of a gang whose survivors run on `near`."""
    return dataclasses.replace(gang("g", members, **options), near=near)


def test_replacements_go_into_the_rack_of_the_members_still_running() -> None:
    nodes = [node(f"big{i}", rack="big") for i in range(4)] + [
        node(f"small{i}", rack="small") for i in range(2)
    ]
    sched = scheduler(nodes)
    lost = _replacing([pod("p1", gpus=8)], ("big0",), policy="Required", level="rack")
    result = sched.schedule(lost)
    assert result.placement is not None
    assert _racks(sched, result.placement) == {"big"}, "not the tighter rack: the survivors' one"
    preferred = scheduler(nodes).schedule(_replacing([pod("p2", gpus=4)], ("big0",), policy="Preferred"))
    assert preferred.placement is not None
    assert {p.node for p in preferred.placement.pods} == {"big0"}, "beside the survivor first"


def test_replacements_without_room_beside_the_survivors_wait_under_required_and_move_under_preferred() -> (
    None
):
    nodes = [node("a0", rack="a"), node("b0", rack="b"), node("b1", rack="b")]
    sched = scheduler(nodes)
    required = _replacing([pod("p1", gpus=8), pod("p2", gpus=8)], ("a0",), policy="Required", level="rack")
    result = sched.schedule(required)
    assert result.placement is None
    assert (
        "needs 16 GPUs in one rack; largest rack has 8 free beside the 1 node(s) its running members are on"
        in (result.message)
    )
    preferred = sched.schedule(
        dataclasses.replace(required, topology_policy="Preferred", topology_level=None)
    )
    assert preferred.placement is not None
    assert preferred.placement.domain[0] == "cluster", "no smaller domain beside the survivor had room"
