import pytest

from aisched.framework.cycle_state import CycleState
from aisched.framework.status import Code
from aisched.plugins.least_allocated import NAME, LeastAllocated, new
from aisched.topology.snapshot import Snapshot
from tests.plugins._cluster import bound, by_name, snapshot_of
from tests.support.core import GiB, handle, node, pod

NODES = [
    node("empty", machine=None, cpu=10_000, memory=10 * GiB),
    node("half", machine=None, cpu=10_000, memory=10 * GiB),
    node("nearly-full", machine=None, cpu=10_000, memory=10 * GiB),
]
PODS = [
    bound("ml/h", "half", cpu=5000, memory=5 * GiB),
    bound("ml/f", "nearly-full", cpu=9000, memory=9 * GiB),
]


def snapshot() -> Snapshot:
    return snapshot_of(NODES, pods=PODS)


def test_emptier_nodes_score_higher() -> None:
    snap = snapshot()
    plugin = new({}, handle())

    scores = by_name(snap, plugin.score(CycleState(), pod("p", cpu=1000, memory=GiB), snap))

    assert scores == pytest.approx({"empty": 90.0, "half": 40.0, "nearly-full": 0.0})


def test_a_node_the_pod_would_overfill_scores_zero_not_below() -> None:
    snap = snapshot()

    scores = by_name(snap, new({}, handle()).score(CycleState(), pod("p", cpu=5000, memory=5 * GiB), snap))

    assert scores["nearly-full"] == 0.0
    assert scores["half"] == pytest.approx(0.0)
    assert scores["empty"] == pytest.approx(50.0)


def test_resource_weights_decide_which_resource_matters_more() -> None:
    snap = snapshot_of(
        [
            node("cpu-heavy", machine=None, cpu=10_000, memory=10 * GiB),
            node("memory-heavy", machine=None, cpu=10_000, memory=10 * GiB),
        ],
        pods=[bound("ml/c", "cpu-heavy", cpu=8000), bound("ml/m", "memory-heavy", memory=8 * GiB)],
    )
    p = pod("p", cpu=1000, memory=GiB)

    even = by_name(snap, new({}, handle()).score(CycleState(), p, snap))
    cpu_first = by_name(
        snap, new({"resources": {"cpu": 3, "memory": 1}}, handle()).score(CycleState(), p, snap)
    )

    assert even["cpu-heavy"] == pytest.approx(even["memory-heavy"])
    assert cpu_first == pytest.approx({"cpu-heavy": 30.0, "memory-heavy": 70.0})


def test_gpu_pods_are_skipped_by_default() -> None:
    status = new({}, handle()).pre_score(CycleState(), pod("p", gpus=1), snapshot())

    assert status.code is Code.SKIP
    assert status.plugin == NAME


def test_gpu_pods_are_scored_when_gpu_pods_is_set() -> None:
    status = new({"gpuPods": True}, handle()).pre_score(CycleState(), pod("p", gpus=1), snapshot())

    assert status.ok


def test_cpu_pod_is_scored() -> None:
    assert new({}, handle()).pre_score(CycleState(), pod("p", cpu=100, memory=0), snapshot()).ok


def test_pod_requesting_none_of_the_weighted_resources_is_skipped() -> None:
    status = new({}, handle()).pre_score(CycleState(), pod("p", cpu=0, memory=0), snapshot())

    assert status.code is Code.SKIP


@pytest.mark.parametrize("weights", [{}, {"cpu": 0}, {"cpu": 1, "memory": -2}])
def test_weights_must_be_positive(weights: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"invalid args: resources"):
        new({"resources": weights}, handle())


def test_factory_defaults_to_cpu_and_memory_without_gpu_pods() -> None:
    plugin = new({}, handle())

    assert isinstance(plugin, LeastAllocated)
    assert plugin.weights == {"cpu": 1.0, "memory": 1.0}
    assert plugin.gpu_pods is False
