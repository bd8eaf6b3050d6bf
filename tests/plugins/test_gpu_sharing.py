"""GPUSharing: which nodes can take a share of one GPU or a MIG instance, why the others cannot,
and which score best (the tightest fit)."""

from __future__ import annotations

import numpy as np

from aisched.cache import PodUsage
from aisched.framework.cycle_state import CycleState
from aisched.framework.status import Code
from aisched.plugins.gpu_sharing import (
    NO_CAPACITY,
    NO_MEMORY,
    NO_MIG_GPU,
    GPUSharing,
    mig_not_offered,
    no_mig_slice,
)
from aisched.topology import resources
from aisched.topology.snapshot import Snapshot
from tests.plugins._cluster import explained, names, snapshot_of
from tests.support.core import GiB, node, pod

PLUGIN = GPUSharing()
STATE = CycleState()


def used_share(key: str, on: str, gpu: int, milli: int, memory: int = 0) -> PodUsage:
    requests = {resources.PODS: 1}
    return PodUsage(
        key=key, node=on, requests=requests, gpu_mask=1 << gpu, gpu_milli=milli, gpu_memory=memory
    )


def sharing_cluster() -> Snapshot:
    """`roomy`: free H100s; `tight`: every GPU but one full, that one with 300 milli left;
    `no-memory`: milli left but little memory; `mig`: only MIG GPUs have room; `cpu`: no GPUs."""
    nodes = [
        node("roomy"),
        node("tight", machine="pcie-8gpu"),
        node("no-memory", machine="pcie-8gpu"),
        node("mig", machine="a100-mig"),
        node("cpu", machine=None),
    ]
    pods = [used_share(f"ml/t{i}", "tight", i, 1000) for i in range(1, 8)]
    pods += [used_share("ml/t0", "tight", 0, 700)]
    pods += [used_share(f"ml/m{i}", "no-memory", i, 100, memory=40 * GiB) for i in range(8)]
    pods += [PodUsage(key="ml/w", node="mig", requests={resources.GPU: 4}, gpu_mask=0b1111_0000)]
    return snapshot_of(nodes, pods=pods)


def test_pods_that_share_nothing_are_left_to_the_other_filters() -> None:
    snapshot = sharing_cluster()

    assert PLUGIN.filter(STATE, pod("p", gpus=2), snapshot) is None
    assert PLUGIN.filter(STATE, pod("p"), snapshot) is None
    assert PLUGIN.pre_score(STATE, pod("p", gpus=1), snapshot).code is Code.SKIP


def test_a_share_fits_nodes_with_a_gpu_that_has_it_free() -> None:
    snapshot = sharing_cluster()

    small = PLUGIN.filter(STATE, pod("p", gpu_milli=300), snapshot)
    large = PLUGIN.filter(STATE, pod("p", gpu_milli=301), snapshot)

    assert small is not None
    assert large is not None
    assert names(snapshot, small.mask) == {"roomy", "tight", "no-memory"}
    assert names(snapshot, large.mask) == {"roomy", "no-memory"}


def test_a_share_that_asks_for_memory_needs_it_on_the_same_gpu() -> None:
    snapshot = sharing_cluster()

    result = PLUGIN.filter(STATE, pod("p", gpu_milli=100, gpu_memory=10 * GiB), snapshot)

    assert result is not None
    assert names(snapshot, result.mask) == {"roomy", "tight"}
    assert explained(snapshot, result) == {NO_CAPACITY: {"mig", "cpu"}, NO_MEMORY: {"no-memory"}}


def test_a_mig_pod_fits_nodes_with_a_free_aligned_slice_of_its_profile() -> None:
    snapshot = sharing_cluster()

    result = PLUGIN.filter(STATE, pod("p", mig_profile="3g.40gb"), snapshot)

    assert result is not None
    assert names(snapshot, result.mask) == {"mig"}
    assert explained(snapshot, result) == {NO_MIG_GPU: {"roomy", "tight", "no-memory", "cpu"}}


def test_mig_rejections_name_a_missing_profile_or_a_full_gpu() -> None:
    snapshot = sharing_cluster()

    other_model = PLUGIN.filter(STATE, pod("p", mig_profile="3g.20gb"), snapshot)
    too_big = PLUGIN.filter(STATE, pod("p", mig_profile="7g.80gb"), snapshot)
    assert other_model is not None
    assert too_big is not None
    assert names(snapshot, too_big.mask) == {"mig"}  # GPU 3 is empty

    snapshot.mig_free[snapshot.slot_of["mig"], 3] = 0b0111_1111
    too_big = PLUGIN.filter(STATE, pod("p", mig_profile="7g.80gb"), snapshot)
    assert too_big is not None
    assert explained(snapshot, other_model)[mig_not_offered("3g.20gb")] == {"mig"}
    assert explained(snapshot, too_big)[no_mig_slice("7g.80gb")] == {"mig"}


def score_of(snapshot: Snapshot, *names_: str, **fields: object) -> list[float]:
    scores = PLUGIN.score(STATE, pod("p", **fields), snapshot)  # type: ignore[arg-type]
    return [float(scores[snapshot.slot_of[name]]) for name in names_]


def test_the_tightest_fitting_gpu_scores_best() -> None:
    snapshot = sharing_cluster()

    tight, roomy, partly = score_of(snapshot, "tight", "roomy", "no-memory", gpu_milli=300)

    assert tight == 100.0  # exactly 300 left on GPU 0
    assert tight > partly > roomy  # 900 left beats 1000 left
    assert np.isclose(roomy, 30.0)


def test_a_memory_only_share_scores_by_memory_left() -> None:
    snapshot = sharing_cluster()

    roomy, tight = score_of(snapshot, "roomy", "no-memory", gpu_memory=8 * GiB)

    assert tight > roomy


def test_a_mig_pod_scores_a_fuller_gpu_higher() -> None:
    snapshot = sharing_cluster()
    slot = snapshot.slot_of["mig"]
    empty = score_of(snapshot, "mig", mig_profile="1g.10gb")[0]

    snapshot.mig_free[slot, 0] = 0b0000_0011  # GPU 0: two slots left, fits a 1g
    fuller = score_of(snapshot, "mig", mig_profile="1g.10gb")[0]

    assert fuller > empty
    assert fuller == 100.0 * (1 - 1 / 8)
