"""The snapshot's per-GPU columns: free milli and memory for sharing pods, free MIG slots, and how
they stay consistent with the whole free GPUs (`gpu_free`)."""

from __future__ import annotations

import numpy as np

from aisched.api import keys
from aisched.topology import resources
from aisched.topology.machines import MACHINES
from aisched.topology.mig import ALL_SLOTS
from aisched.topology.node import NodeInfo
from aisched.topology.snapshot import Snapshot
from tests.support.core import GiB, node
from tests.topology.test_snapshot import with_unhealthy

CPU, PODS = resources.CPU, resources.PODS
H100 = 80 * GiB


def filled(info: NodeInfo) -> tuple[Snapshot, int]:
    snapshot = Snapshot()
    slot = snapshot.add_node(info)
    snapshot.set_usage(slot, used={}, gpus_held=0, gpus_unassigned=0)
    return snapshot, slot


def test_a_free_healthy_gpu_offers_1000_milli_and_all_its_memory() -> None:
    snapshot, slot = filled(node("a", machine="dgx-h100"))

    assert snapshot.gpu_width == 8
    assert snapshot.gpu_milli_free[slot, :8].tolist() == [1000] * 8
    assert snapshot.gpu_memory_free[slot, :8].tolist() == [H100] * 8
    assert snapshot.gpu_milli_free[slot, 8:].tolist() == [0] * 24  # no such GPUs
    assert (snapshot.mig_free[slot] == 0).all()


def test_an_unhealthy_gpu_offers_nothing_to_share() -> None:
    snapshot, slot = filled(with_unhealthy(node("a", machine="dgx-h100"), 0b100))

    assert snapshot.gpu_milli_free[slot, 2] == 0
    assert snapshot.gpu_memory_free[slot, 2] == 0
    assert int(snapshot.gpu_free[slot]) == 0b1111_1011


def test_mig_gpus_offer_their_open_slots_and_are_never_whole_or_shared() -> None:
    snapshot, slot = filled(node("a", machine="a100-mig"))

    # GPU 0: 3g@0, 2g@4, 1g@6 held; GPU 2 fully partitioned; GPU 3 enabled, not partitioned.
    assert snapshot.mig_free[slot, :5].tolist() == [0b1000_0000, 0b1000_0000, 0, ALL_SLOTS, 0]
    assert int(snapshot.gpu_mig[slot]) == 0b1111
    assert int(snapshot.gpu_free[slot]) == 0b1111_0000
    assert int(snapshot.gpu_free_count[slot]) == 4
    assert snapshot.gpu_milli_free[slot, :8].tolist() == [0, 0, 0, 0, 1000, 1000, 1000, 1000]


def test_gpu_memory_comes_from_the_label_when_no_topology_was_published() -> None:
    info = node("a", machine=None, gpus=2, labels={keys.LABEL_GPU_MEMORY: "24576"})
    snapshot, slot = filled(info)

    assert snapshot.gpu_memory_free[slot, :2].tolist() == [24 * GiB] * 2
    assert snapshot.gpu_milli_free[slot, :2].tolist() == [1000, 1000]


def test_gpu_memory_is_unknown_without_topology_or_label() -> None:
    snapshot, slot = filled(node("a", machine=None, gpus=1))

    assert snapshot.gpu_memory_free[slot, 0] == 0
    assert snapshot.gpu_milli_free[slot, 0] == 1000


def test_shared_use_lowers_milli_and_memory_and_takes_the_gpu_out_of_gpu_free() -> None:
    snapshot, slot = filled(node("a", machine="dgx-h100"))

    snapshot.set_usage(slot, used={}, gpus_held=0b1, gpus_unassigned=0, shared={2: (700, 10 * GiB)})

    assert snapshot.gpu_milli_free[slot, :4].tolist() == [0, 1000, 300, 1000]
    assert snapshot.gpu_memory_free[slot, :4].tolist() == [0, H100, 70 * GiB, H100]
    assert int(snapshot.gpu_free[slot]) == 0b1111_1010
    assert int(snapshot.gpu_free_count[slot]) == 6


def test_memory_only_use_also_takes_the_gpu_out_of_gpu_free() -> None:
    snapshot, slot = filled(node("a", machine="dgx-h100"))

    snapshot.set_usage(slot, used={}, gpus_held=0, gpus_unassigned=0, shared={5: (0, GiB)})

    assert snapshot.gpu_milli_free[slot, 5] == 1000
    assert not int(snapshot.gpu_free[slot]) >> 5 & 1


def test_mig_held_slots_leave_the_free_slot_mask() -> None:
    snapshot, slot = filled(node("a", machine="a100-mig"))

    snapshot.set_usage(slot, used={}, gpus_held=0, gpus_unassigned=0, mig_held={3: 0b1100_0000})

    assert snapshot.mig_free[slot, 3] == 0b0011_1111


def test_set_usage_replaces_earlier_device_use() -> None:
    snapshot, slot = filled(node("a", machine="a100-mig"))
    snapshot.set_usage(slot, used={}, gpus_held=0, gpus_unassigned=0, shared={4: (500, 0)}, mig_held={3: 1})

    snapshot.set_usage(slot, used={}, gpus_held=0, gpus_unassigned=0)

    assert snapshot.gpu_milli_free[slot, 4] == 1000
    assert snapshot.mig_free[slot, 3] == ALL_SLOTS
    assert int(snapshot.gpu_free[slot]) == 0b1111_0000


def test_assume_of_whole_gpus_empties_their_milli_and_memory() -> None:
    snapshot, slot = filled(node("a", machine="dgx-h100"))

    snapshot.assume(slot, request={PODS: 1}, gpus=0b1001)

    assert snapshot.gpu_milli_free[slot, :4].tolist() == [0, 1000, 1000, 0]
    assert snapshot.gpu_memory_free[slot, :4].tolist() == [0, H100, H100, 0]


def test_assume_of_a_share_takes_it_from_its_one_gpu() -> None:
    snapshot, slot = filled(node("a", machine="dgx-h100"))

    snapshot.assume(slot, request={PODS: 1}, gpus=0b100, gpu_milli=400, gpu_memory=GiB)
    snapshot.assume(slot, request={PODS: 1}, gpus=0b100, gpu_milli=400, gpu_memory=GiB)

    assert snapshot.gpu_milli_free[slot, 2] == 200
    assert snapshot.gpu_memory_free[slot, 2] == H100 - 2 * GiB
    assert int(snapshot.gpu_free[slot]) == 0b1111_1011
    assert int(snapshot.gpu_free_count[slot]) == 7


def test_assume_of_a_mig_instance_takes_its_slots_only() -> None:
    snapshot, slot = filled(node("a", machine="a100-mig"))

    snapshot.assume(slot, request={PODS: 1}, gpus=0b1000, mig_slots=0b1111_0000)

    assert snapshot.mig_free[slot, 3] == 0b0000_1111
    assert int(snapshot.gpu_free[slot]) == 0b1111_0000  # a MIG GPU was never whole-free


def test_assume_agrees_with_set_usage_of_the_same_use() -> None:
    info = node("a", machine="a100-mig")
    assumed, slot = filled(info)
    assumed.assume(slot, request={CPU: 1000}, gpus=0b1_0000)
    assumed.assume(slot, request={CPU: 1000}, gpus=0b10_0000, gpu_milli=300, gpu_memory=GiB)
    assumed.assume(slot, request={CPU: 1000}, gpus=0b1000, mig_slots=0b11)

    rewritten, _ = filled(info)
    rewritten.set_usage(
        slot,
        used={CPU: 3000},
        gpus_held=0b1_0000,
        gpus_unassigned=0,
        shared={5: (300, GiB)},
        mig_held={3: 0b11},
    )

    for column in ("gpu_free", "gpu_free_count", "gpu_milli_free", "gpu_memory_free", "mig_free"):
        np.testing.assert_array_equal(getattr(assumed, column), getattr(rewritten, column), err_msg=column)


def test_remove_node_clears_its_device_columns() -> None:
    snapshot, slot = filled(node("a", machine="a100-mig"))

    snapshot.remove_node("a")

    for column in ("gpu_milli_free", "gpu_memory_free", "mig_free", "gpu_memory", "mig_open"):
        assert (getattr(snapshot, column)[slot] == 0).all(), column


def test_mig_profile_is_looked_up_for_the_nodes_gpu_model() -> None:
    snapshot, slot = filled(node("a", machine="a100-mig"))
    plain, other = filled(node("b", machine="pcie-8gpu"))

    profile = snapshot.mig_profile(slot, "3g.40gb")

    assert profile is not None
    assert profile.memory_slots == 4
    assert snapshot.mig_profile(slot, "3g.20gb") is None
    assert plain.mig_profile(other, "3g.40gb") is None


def test_machine_templates_carry_mig_mode_and_the_slots_of_existing_instances() -> None:
    topology = MACHINES["a100-mig"].topology(node="n")

    assert [g.mig_enabled for g in topology.gpus] == [True] * 4 + [False] * 4
    assert [g.mig_mask for g in topology.gpus[:4]] == [0b0111_1111, 0b0111_1111, ALL_SLOTS, 0]
