import pytest

from aisched.framework.cycle_state import CycleState
from aisched.framework.status import Code
from aisched.plugins.gpu_topology import NAME, GPUTopology
from aisched.topology.gpuset import UNTABLED_SCORE
from aisched.topology.snapshot import Snapshot
from tests.plugins._cluster import bound, by_name, cluster, snapshot_of
from tests.support.core import node, pod

# dgx1-v100 is a hybrid cube-mesh: GPUs 0-3 are fully NVLinked, as are 4-7; i links to i+4.
NODES = [
    node("quad-left", machine="dgx1-v100"),  # GPUs 4-7 taken: the 0-3 quad is free
    node("scattered", machine="dgx1-v100"),  # GPUs 1, 2, 4, 7 taken: free 0, 3, 5, 6, no NVLink quad
    node("free", machine="dgx1-v100"),
    node("pcie", machine="pcie-8gpu"),
]
PODS = [
    bound("ml/a", "quad-left", gpus=4, gpu_mask=0b1111_0000),
    bound("ml/b", "scattered", gpus=4, gpu_mask=0b1001_0110),
]


def snapshot() -> Snapshot:
    return snapshot_of(NODES, pods=PODS)


def scores(gpus: int) -> dict[str, float]:
    snap = snapshot()
    return by_name(snap, GPUTopology().score(CycleState(), pod("p", gpus=gpus), snap))


def test_node_that_can_still_give_an_nvlink_quad_scores_higher_than_one_that_cannot() -> None:
    four = scores(4)

    assert four["quad-left"] > four["scattered"]
    assert four["quad-left"] == pytest.approx(100.0)
    assert four["scattered"] < 50.0


def test_fully_free_node_scores_full_marks() -> None:
    assert scores(4)["free"] == pytest.approx(100.0)


def test_each_wiring_is_judged_against_a_free_node_of_its_own_kind() -> None:
    assert scores(4)["pcie"] == pytest.approx(100.0)


def test_scattered_node_still_offers_an_nvlinked_pair() -> None:
    two = scores(2)

    assert two["scattered"] == pytest.approx(100.0)
    assert two["quad-left"] == pytest.approx(100.0)


def test_node_with_too_few_free_gpus_scores_zero() -> None:
    five = scores(5)

    assert five["quad-left"] == 0.0
    assert five["scattered"] == 0.0
    assert five["free"] == pytest.approx(100.0)


def test_scores_follow_gpus_being_freed() -> None:
    sched = cluster(NODES, pods=PODS)
    sched.cache.remove_pod("ml/b")
    sched.cache.update_snapshot(sched.snapshot)

    four = by_name(sched.snapshot, GPUTopology().score(CycleState(), pod("p", gpus=4), sched.snapshot))

    assert four["scattered"] == pytest.approx(100.0)


def test_pod_wider_than_any_table_gets_the_untabled_score_everywhere() -> None:
    assert set(scores(9).values()) == {UNTABLED_SCORE}


@pytest.mark.parametrize("gpus", [0, 1])
def test_pre_score_skips_pods_with_at_most_one_gpu(gpus: int) -> None:
    status = GPUTopology().pre_score(CycleState(), pod("p", gpus=gpus), snapshot())

    assert status.code is Code.SKIP
    assert status.plugin == NAME


def test_pre_score_keeps_multi_gpu_pods() -> None:
    assert GPUTopology().pre_score(CycleState(), pod("p", gpus=2), snapshot()).ok


def test_score_is_a_fresh_array_the_runtime_may_scale() -> None:
    snap = snapshot()
    plugin = GPUTopology()

    first = plugin.score(CycleState(), pod("p", gpus=4), snap)
    first *= 0
    second = plugin.score(CycleState(), pod("p", gpus=4), snap)

    assert by_name(snap, second)["quad-left"] == pytest.approx(100.0)
