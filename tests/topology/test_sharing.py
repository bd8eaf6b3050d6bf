"""Sharing and MIG over the snapshot: which nodes fit, how many pods each takes, which GPU one gets."""

from __future__ import annotations

from aisched.topology.sharing import (
    MigChoice,
    best_fit_gpu,
    mig_capacity,
    mig_fits,
    pick_mig,
    share_capacity,
    share_fits,
    share_fits_gpu,
)
from aisched.topology.snapshot import Snapshot
from tests.support.core import GiB, node


def snapshot_of(*machines: str | None, shared: dict[int, tuple[int, int]] | None = None) -> Snapshot:
    """One node per machine (`n0`, `n1`, ...); `shared` use on the first."""
    snapshot = Snapshot()
    for i, machine in enumerate(machines):
        slot = snapshot.add_node(node(f"n{i}", machine=machine, gpus=None if machine else 0))
        snapshot.set_usage(slot, used={}, gpus_held=0, gpus_unassigned=0, shared=shared if i == 0 else None)
    return snapshot


def test_a_share_fits_gpus_with_enough_milli_and_memory() -> None:
    snapshot = snapshot_of("dgx-h100", shared={0: (700, 0), 1: (100, 75 * GiB)})

    fits = share_fits(snapshot, milli=300, memory=8 * GiB)

    assert fits[0].tolist() == [True, False, True, True, True, True, True, True]


def test_a_node_without_gpus_fits_no_share() -> None:
    snapshot = snapshot_of("dgx-h100", None)

    assert share_fits(snapshot, milli=1, memory=0).any(axis=1).tolist() == [True, False]


def test_a_memory_only_share_needs_some_compute_left() -> None:
    snapshot = snapshot_of("dgx-h100", shared={0: (1000, 0)})

    assert not share_fits(snapshot, milli=0, memory=GiB)[0, 0]
    assert share_fits(snapshot, milli=0, memory=GiB)[0, 1]


def test_capacity_counts_shares_per_gpu() -> None:
    snapshot = snapshot_of("dgx-h100", "pcie-8gpu", shared={0: (700, 0)})

    # Node 0: GPU 0 has 300 left (one 300-milli share fits), seven whole GPUs take three each.
    assert share_capacity(snapshot, milli=300, memory=0).tolist() == [1 + 7 * 3, 8 * 3]
    assert share_capacity(snapshot, milli=300, memory=0, slot=1).tolist() == [24]


def test_capacity_is_bounded_by_memory_too() -> None:
    snapshot = snapshot_of("pcie-8gpu")  # 48 GiB GPUs

    assert share_capacity(snapshot, milli=100, memory=20 * GiB).tolist() == [8 * 2]
    assert share_capacity(snapshot, milli=0, memory=20 * GiB).tolist() == [8 * 2]


def test_best_fit_takes_the_gpu_with_least_milli_left_that_still_fits() -> None:
    snapshot = snapshot_of("dgx-h100", shared={3: (600, 0), 5: (500, 0), 6: (900, 0)})

    assert best_fit_gpu(snapshot, 0, milli=400, memory=0) == 3  # 400 left: exact
    assert best_fit_gpu(snapshot, 0, milli=450, memory=0) == 5  # 500 left
    assert best_fit_gpu(snapshot, 0, milli=50, memory=0) == 6  # 100 left


def test_best_fit_breaks_ties_by_lowest_index_and_fails_when_nothing_fits() -> None:
    snapshot = snapshot_of("dgx-h100", shared={i: (1000, 0) for i in range(8)})
    fresh = snapshot_of("dgx-h100")

    assert best_fit_gpu(fresh, 0, milli=100, memory=0) == 0
    assert best_fit_gpu(snapshot, 0, milli=1, memory=0) is None


def test_share_fits_gpu_checks_one_gpu() -> None:
    snapshot = snapshot_of("dgx-h100", shared={2: (900, 0)})

    assert share_fits_gpu(snapshot, 0, 2, milli=100, memory=0)
    assert not share_fits_gpu(snapshot, 0, 2, milli=101, memory=0)
    assert not share_fits_gpu(snapshot, 0, 8, milli=1, memory=0)  # no GPU 8
    assert not share_fits_gpu(snapshot, 0, -1, milli=1, memory=0)


def test_mig_fits_only_nodes_with_a_free_aligned_place_on_their_model() -> None:
    snapshot = snapshot_of("a100-mig", "hgx-a100", "dgx-h100")

    assert mig_fits(snapshot, "3g.40gb").tolist() == [True, False, False]
    assert mig_fits(snapshot, "3g.20gb").tolist() == [False, False, False]  # an A100-40GB profile


def test_mig_capacity_sums_what_each_gpu_takes() -> None:
    snapshot = snapshot_of("a100-mig")

    # Only GPU 3 has room (the others hold instances up to slot 6 or everywhere).
    assert mig_capacity(snapshot, "1g.10gb").tolist() == [7]
    assert mig_capacity(snapshot, "3g.40gb", slot=0).tolist() == [2]


def test_pick_mig_prefers_a_partly_used_gpu() -> None:
    snapshot = snapshot_of("a100-mig")
    snapshot.set_usage(0, used={}, gpus_held=0, gpus_unassigned=0, mig_held={})
    snapshot.mig_free[0, 1] = 0b1111_0000  # GPU 1 with slots 4-7 free: fewer than GPU 3

    choice = pick_mig(snapshot, 0, "1g.10gb")

    assert choice == MigChoice(gpu=1, start=6, slots=0b0100_0000)


def test_pick_mig_returns_none_when_nothing_fits() -> None:
    snapshot = snapshot_of("a100-mig", "dgx-h100")

    assert pick_mig(snapshot, 0, "7g.80gb") is not None  # GPU 3 is empty
    assert pick_mig(snapshot, 1, "1g.10gb") is None
