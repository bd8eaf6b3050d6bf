"""The FGD paper's placement policies, each on a hand-built cluster whose scores are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from aisched.api import keys
from aisched.cache import PodUsage
from aisched.framework.cycle_state import CycleState
from aisched.framework.profile import Profile, ScorePluginRef
from aisched.framework.types import Gang, PodInfo
from aisched.plugins import default_registry, policies
from aisched.plugins.fgd import FragmentationGradientDescent, FragmentationTable, TypicalPod, fragmentation
from aisched.plugins.policies import BestFit, DotProd, GpuClustering, GpuPacking, Random
from aisched.scheduler import Scheduler
from aisched.topology import resources
from aisched.topology.node import NodeInfo
from tests.plugins._cluster import by_name, cluster, snapshot_of
from tests.support.core import GiB, handle

STATE = CycleState()


def gpu_node(name: str, gpus: int, *, cpu: int = 64_000, model: str = "T4") -> NodeInfo:
    allocatable = {resources.CPU: cpu, resources.MEMORY: 256 * GiB, resources.PODS: 110, resources.GPU: gpus}
    return NodeInfo(name=name, labels={keys.LABEL_GPU_PRODUCT: model}, allocatable=allocatable)


def shared(key: str, node: str, gpu: int, milli: int, *, cpu: int = 1000) -> PodUsage:
    """A bound pod using `milli` of GPU `gpu`."""
    requests = {resources.CPU: cpu, resources.PODS: 1}
    return PodUsage(key=key, node=node, requests=requests, gpu_mask=1 << gpu, gpu_milli=milli)


def whole(key: str, node: str, mask: int, *, cpu: int = 1000) -> PodUsage:
    requests = {resources.CPU: cpu, resources.PODS: 1, resources.GPU: mask.bit_count()}
    return PodUsage(key=key, node=node, requests=requests, gpu_mask=mask)


def share_pod(milli: int, *, cpu: int = 1000, name: str = "p") -> PodInfo:
    return PodInfo(
        namespace="t", name=name, requests={resources.CPU: cpu, resources.PODS: 1}, gpu_milli=milli
    )


def gpu_pod(gpus: int, *, cpu: int = 1000, name: str = "p") -> PodInfo:
    requests = {resources.CPU: cpu, resources.PODS: 1, resources.GPU: gpus}
    return PodInfo(namespace="t", name=name, requests=requests)


def cpu_pod(cpu: int = 1000) -> PodInfo:
    return PodInfo(namespace="t", name="c", requests={resources.CPU: cpu, resources.PODS: 1})


def table(*typical: TypicalPod) -> FragmentationTable:
    return FragmentationTable(list(typical))


# -- fragmentation --------------------------------------------------------------------------------


def test_fragmentation_counts_stranded_milli_or_all_idle_milli_per_typical_pod() -> None:
    pods = table(
        TypicalPod(cpu=1000, gpu_milli=500, gpus=1, weight=0.25),  # runs: the 300 m GPU is stranded
        TypicalPod(cpu=1000, gpu_milli=1000, gpus=2, weight=0.25),  # one whole GPU only: all idle
        TypicalPod(cpu=9000, gpu_milli=100, gpus=1, weight=0.25),  # too little CPU: all idle
        TypicalPod(cpu=1000, gpu_milli=0, gpus=0, weight=0.25),  # CPU-only: all idle
    )
    cpu = np.array([8000], dtype=np.int64)
    gpu = np.array([[1000, 300, 0, 0]], dtype=np.int64)

    amounts = fragmentation(cpu, gpu, np.ones((1, 4), dtype=np.bool_), pods)

    assert amounts.tolist() == [[300, 1300, 1300, 1300]]


def test_fragmentation_counts_all_idle_milli_where_the_model_is_not_allowed() -> None:
    pods = table(TypicalPod(cpu=1000, gpu_milli=500, gpus=1, models=("V100M16",), weight=1.0))
    snap = snapshot_of([gpu_node("t4", 2), gpu_node("v100", 2, model="V100M16")])
    access = pods.access(snap)
    slots = [snap.slot_of["t4"], snap.slot_of["v100"]]
    gpu = np.array([[1000, 300], [1000, 300]], dtype=np.int64)

    amounts = fragmentation(np.array([8000, 8000]), gpu, access[slots], pods)

    assert amounts.tolist() == [[1300], [300]]


# -- FGD ------------------------------------------------------------------------------------------


def fgd(*typical: TypicalPod) -> FragmentationGradientDescent:
    return FragmentationGradientDescent(table(*typical))


HALF = TypicalPod(cpu=1000, gpu_milli=500, gpus=1, weight=1.0)


def test_fgd_prefers_the_gpu_and_node_that_strand_the_least() -> None:
    # "b" has GPUs [1000, 600]: a 500 m pod on GPU 0 leaves [500, 600] (nothing stranded, ΔF = 0,
    # score 50); on GPU 1 it leaves [1000, 100] (100 m stranded, score ⌊100·σ(-0.1)⌋ = 47).
    snap = snapshot_of([gpu_node("a", 2), gpu_node("b", 2)], pods=[shared("t/x", "b", 1, 400)])
    plugin = fgd(HALF)

    scores = by_name(snap, plugin.score(STATE, share_pod(500), snap))

    assert scores == {"a": 50.0, "b": 50.0}
    assert plugin.pick_gpu(share_pod(500), snap, snap.slot_of["b"]) == 0  # best fit would take GPU 1


def test_fgd_scores_the_fragmentation_a_placement_adds() -> None:
    # A 600 m pod on a fresh 2-GPU node leaves [400, 1000]: 400 m stranded for the 500 m typical pod.
    snap = snapshot_of([gpu_node("a", 2)])
    scores = fgd(HALF).score(STATE, share_pod(600), snap)

    assert scores[snap.slot_of["a"]] == np.trunc(1 / (1 + np.exp(0.4)) * 100)  # 40


def test_fgd_whole_gpu_pods_take_fully_free_gpus_in_the_scored_state() -> None:
    # [1000, 1000, 300]: a 1-GPU pod leaves [0, 1000, 300]; the 300 m stays stranded, nothing new.
    snap = snapshot_of([gpu_node("a", 3)], pods=[shared("t/x", "a", 2, 700)])
    plugin = fgd(HALF)

    assert plugin.score(STATE, gpu_pod(1), snap)[0] == 50.0
    assert plugin.pick_gpu(gpu_pod(1), snap, 0) is None  # whole GPUs: the placement chooses


def test_fgd_recomputes_only_nodes_whose_state_changed() -> None:
    sched = cluster([gpu_node(f"n{i}", 4) for i in range(6)])
    snap = sched.snapshot
    plugin = fgd(HALF, TypicalPod(cpu=2000, gpu_milli=1000, gpus=2, weight=1.0))
    pod = share_pod(300)

    first = plugin.score(STATE, pod, snap)
    assert plugin.recomputed == 6
    plugin.score(STATE, pod, snap)
    assert plugin.recomputed == 0

    sched.cache.assume([(shared("t/y", "n3", 0, 800, cpu=63_000), snap.slot_of["n3"])])
    again = plugin.score(STATE, pod, snap)

    assert plugin.recomputed == 1
    fresh = fgd(HALF, TypicalPod(cpu=2000, gpu_milli=1000, gpus=2, weight=1.0)).score(STATE, pod, snap)
    assert again.tolist() == fresh.tolist()
    assert again[snap.slot_of["n3"]] != first[snap.slot_of["n3"]]


def test_fgd_needs_typical_pods() -> None:
    with pytest.raises(ValueError, match="typicalPods"):
        policies.FACTORIES[policies.FGD]({}, handle())


# -- the baselines --------------------------------------------------------------------------------


def test_best_fit_prefers_least_left_over_and_normalises_over_feasible_nodes() -> None:
    snap = snapshot_of(
        [gpu_node("tight", 2, cpu=8000), gpu_node("roomy", 8, cpu=96_000), gpu_node("mid", 4, cpu=32_000)],
        pods=[shared("t/x", "tight", 0, 500)],
    )
    plugin = BestFit()
    raw = plugin.score(STATE, share_pod(500), snap)
    # left after placing: tight 6000 m CPU, 1000 m GPU: 1 - (6000/128000·0.5 + 1000/8000·0.5) = 0.914…
    # roomy 95000 m, 7500 m: 1 - (0.371… + 0.46875) = 0.160…; mid 31000 m, 3500 m: 0.660…
    assert by_name(snap, raw) == {"tight": 91.0, "roomy": 16.0, "mid": 66.0}

    feasible = np.ones(snap.size, dtype=np.bool_)
    normalised = by_name(snap, plugin.normalize(raw.copy(), feasible))
    assert normalised == {"tight": 100.0, "roomy": 0.0, "mid": (66 - 16) * 100 // (91 - 16)}

    only_mid = np.array([name == "mid" for name in snap.node_names(list(range(snap.size)))])
    assert by_name(snap, plugin.normalize(raw.copy(), only_mid))["mid"] == 0.0


def test_dot_product_prefers_the_node_least_aligned_with_the_request() -> None:
    snap = snapshot_of([gpu_node("a", 8, cpu=128_000), gpu_node("b", 1, cpu=16_000)])
    scores = by_name(snap, DotProd().score(STATE, gpu_pod(1, cpu=16_000), snap))
    # a: 1 - (1·0.125 + 1·0.125)/2 = 0.875; b: 1 - (0.125·0.125 + 0.125·0.125)/2 = 0.984…
    assert scores == {"a": 87.0, "b": 98.0}


def test_gpu_packing_bands_partly_used_gpus_then_used_nodes_then_empty_nodes() -> None:
    snap = snapshot_of(
        [gpu_node("empty8", 8), gpu_node("empty2", 2), gpu_node("partly", 2), gpu_node("used", 4)],
        pods=[shared("t/x", "partly", 0, 300), whole("t/y", "used", 0b1)],
    )
    plugin = GpuPacking()

    share = by_name(snap, plugin.score(STATE, share_pod(500), snap))
    assert share == {"empty8": 25.0, "empty2": 31.0, "partly": 100 - 7.0, "used": 49.0}
    assert by_name(snap, plugin.score(STATE, gpu_pod(2), snap))["used"] == 48.0
    assert set(by_name(snap, plugin.score(STATE, cpu_pod(), snap)).values()) == {0.0}


def test_gpu_clustering_keeps_request_classes_together() -> None:
    nodes = [gpu_node(n, 8) for n in ("same", "mixed", "empty", "other")]
    sched = cluster(nodes, pods=[shared("t/s", "same", 0, 500), shared("t/m", "mixed", 0, 500),
                                 whole("t/m1", "mixed", 0b10), whole("t/o", "other", 0b11)])  # fmt: skip
    plugin = GpuClustering(handle(cache=sched.cache))

    scores = by_name(sched.snapshot, plugin.score(STATE, share_pod(200), sched.snapshot))

    # 75/50/25/0 by band, plus 25·(8000 - free milli) // 8000 for fullness.
    assert scores == {"same": 75.0 + 1, "mixed": 50.0 + 4, "empty": 25.0, "other": 0.0 + 6}
    sched.cache.remove_pod("t/s")  # it departs: the cache stops accounting it, and so the plugin
    snap = sched.cache.update_snapshot(sched.snapshot)
    assert by_name(snap, plugin.score(STATE, share_pod(200), snap))["same"] == 25.0
    sched.cache.set_pod(shared("t/s2", "empty", 3, 300))  # whoever places a pod, it counts
    snap = sched.cache.update_snapshot(snap)
    assert by_name(snap, plugin.score(STATE, share_pod(200), snap))["empty"] == 75.0 + 0


def test_random_picks_one_feasible_node_and_gpu_reproducibly() -> None:
    snap = snapshot_of([gpu_node(f"n{i}", 4) for i in range(5)], pods=[shared("t/x", "n0", 1, 900)])
    feasible = np.array([True, False, True, True, False])

    def picks(seed: int) -> list[tuple[int, int | None]]:
        plugin = Random(seed)
        out = []
        for _ in range(20):
            scores = plugin.normalize(plugin.score(STATE, share_pod(500), snap), feasible)
            assert sorted(scores.tolist()) == [0.0] * 4 + [100.0]
            out.append((int(np.argmax(scores)), plugin.pick_gpu(share_pod(500), snap, 0)))
        return out

    first = picks(7)
    assert first == picks(7)
    assert first != picks(8)
    assert {slot for slot, _ in first} <= {0, 2, 3}
    assert {gpu for _, gpu in first} == {0, 2, 3}  # GPU 1 has only 100 m left


def test_every_policy_is_registered_and_runs_in_a_profile() -> None:
    registry = default_registry()
    args = {policies.FGD: {"typicalPods": [HALF.to_json()]}, policies.RANDOM: {"seed": 1}}
    for name in policies.FACTORIES:
        assert name in registry
        profile = Profile(
            queue_sort="PrioritySort",
            pre_filter=(),
            post_filter=(),
            filter=("GPUModel", "ResourceFit", "GPUHealth", "GPUSharing"),
            score=(ScorePluginRef(name=name),),
            plugin_args={name: args[name]} if name in args else {},
            tie_break_seed=3,
        )
        sched = Scheduler(
            profile=profile, registry=registry, cache=cluster([gpu_node("a", 2), gpu_node("b", 4)]).cache
        )
        result = sched.schedule(Gang.of(share_pod(300)))
        assert result.placement is not None, name
        assert result.placement.pods[0].gpu_milli == 300
