import pytest

from aisched.framework.cycle_state import CycleState
from aisched.framework.status import Code
from aisched.plugins import default_registry
from aisched.plugins.most_allocated import NAME, MostAllocated, new
from aisched.topology.snapshot import Snapshot
from tests.plugins._cluster import bound, by_name, snapshot_of
from tests.support.core import GiB, handle, node, pod

NODES = [
    node("idle"),
    node("half", cpu=10_000),
    node("mostly-used", cpu=10_000),
    node("cpu", machine=None),
]
PODS = [
    bound("ml/h", "half", gpus=4, gpu_mask=0x0F, cpu=5000),
    bound("ml/m", "mostly-used", gpus=6, gpu_mask=0x3F, cpu=9000),
]


def snapshot() -> Snapshot:
    return snapshot_of(NODES, pods=PODS)


def test_fuller_gpu_nodes_score_higher() -> None:
    snap = snapshot()

    scores = by_name(snap, new({}, handle()).score(CycleState(), pod("p", gpus=2), snap))

    assert scores["idle"] < scores["half"] < scores["mostly-used"]
    assert scores["idle"] == pytest.approx(25.0)
    assert scores["half"] == pytest.approx(75.0)
    assert scores["mostly-used"] == pytest.approx(100.0)


def test_node_without_any_gpu_counts_as_full() -> None:
    snap = snapshot()

    scores = by_name(snap, new({}, handle()).score(CycleState(), pod("p", gpus=2), snap))

    assert scores["cpu"] == 100.0  # the filters keep GPU pods off it; the score need not


def test_configured_resources_replace_the_gpu_default() -> None:
    snap = snapshot()
    plugin = new({"resources": {"cpu": 1}}, handle())

    scores = by_name(snap, plugin.score(CycleState(), pod("p", cpu=1000, memory=GiB), snap))

    assert scores["half"] == pytest.approx(60.0)
    assert scores["mostly-used"] == pytest.approx(100.0)
    assert scores["idle"] < scores["half"]


def test_pod_without_gpus_is_skipped_by_the_gpu_default() -> None:
    status = new({}, handle()).pre_score(CycleState(), pod("p", cpu=1000), snapshot())

    assert status.code is Code.SKIP
    assert status.plugin == NAME


def test_gpu_pod_is_scored() -> None:
    assert new({}, handle()).pre_score(CycleState(), pod("p", gpus=1), snapshot()).ok


def test_gpu_bin_packing_is_most_allocated_over_gpus() -> None:
    plugin = default_registry().build("GPUBinPacking", {}, handle())

    assert isinstance(plugin, MostAllocated)
    assert plugin.weights == {"nvidia.com/gpu": 1.0}


def test_gpu_bin_packing_arguments_override_its_resources() -> None:
    plugin = default_registry().build(
        "GPUBinPacking", {"resources": {"nvidia.com/gpu": 2, "cpu": 1}}, handle()
    )

    assert isinstance(plugin, MostAllocated)
    assert plugin.weights == {"nvidia.com/gpu": 2.0, "cpu": 1.0}


def test_weights_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"invalid args: resources"):
        new({"resources": {"nvidia.com/gpu": 0}}, handle())
