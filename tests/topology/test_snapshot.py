"""The columnar Snapshot: node slots, resource columns, usage, in-place assume, labels and taints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisched.cache import Cache
from aisched.topology import resources
from aisched.topology.gpu import GPUTopology
from aisched.topology.gpuset import UNTABLED_SCORE, GPUSetTable
from aisched.topology.machines import MACHINES
from aisched.topology.node import NodeInfo, Taint
from aisched.topology.snapshot import Snapshot
from tests.support.core import GiB, node

CPU, MEMORY, PODS, GPU = resources.CPU, resources.MEMORY, resources.PODS, resources.GPU
FPGA = "example.com/fpga"
USAGE_COLUMNS = ("used", "free", "utilisation", "gpu_free", "gpu_free_count", "gpu_set_score")


def column(snapshot: Snapshot, name: str) -> int:
    return snapshot.resource_index[name]


def with_unhealthy(info: NodeInfo, unhealthy: int) -> NodeInfo:
    """`info` with the GPUs of mask `unhealthy` marked unhealthy."""
    assert info.gpus is not None
    t = info.gpus
    gpus = tuple(dataclasses.replace(g, healthy=not unhealthy >> g.index & 1) for g in t.gpus)
    return dataclasses.replace(info, gpus=GPUTopology(gpus=gpus, links=t.links, nvlinks=t.nvlinks))


# -- slots ----------------------------------------------------------------------------------


def test_add_node_gives_consecutive_slots_and_marks_them_valid() -> None:
    snapshot = Snapshot()

    slots = [snapshot.add_node(node(name)) for name in ("a", "b", "c")]

    assert slots == [0, 1, 2]
    assert snapshot.slot_of == {"a": 0, "b": 1, "c": 2}
    assert snapshot.valid[:4].tolist() == [True, True, True, False]
    assert snapshot.size == 3
    assert snapshot.node_count == 3
    assert snapshot.node_names([2, 0]) == ["c", "a"]


def test_add_node_writes_the_static_columns() -> None:
    snapshot = Snapshot()

    slot = snapshot.add_node(
        node("a", machine="dgx1-v100", rack="r1", block="b1", cpu=8000, unschedulable=True)
    )

    assert snapshot.ready[slot]
    assert snapshot.unschedulable[slot]
    assert snapshot.allocatable[column(snapshot, CPU), slot] == 8000
    assert snapshot.allocatable[column(snapshot, GPU), slot] == 8
    assert snapshot.inverse_allocatable[column(snapshot, CPU), slot] == pytest.approx(1 / 8000)
    assert snapshot.gpu_count[slot] == 8
    assert snapshot.gpu_healthy[slot] == 0xFF
    assert snapshot.gpu_model[slot] == snapshot.models.get("V100-32GB")
    assert snapshot.rack[slot] == snapshot.domains["rack"].get("r1")
    assert snapshot.block[slot] == snapshot.domains["block"].get("b1")
    assert snapshot.fabric[slot] == -1
    assert snapshot.gpu_cliques[slot, :3].tolist() == [0x0F, 0xF0, 0]
    assert snapshot.gpu_table[slot] == 0
    assert snapshot.infos[slot] is not None
    assert snapshot.topologies[slot] is not None


def test_a_node_without_racks_or_gpus_has_minus_one_domains_and_no_gpu_columns() -> None:
    snapshot = Snapshot()

    slot = snapshot.add_node(node("cpu", machine=None))

    assert (snapshot.rack[slot], snapshot.block[slot], snapshot.gpu_model[slot]) == (-1, -1, -1)
    assert snapshot.gpu_count[slot] == 0
    assert snapshot.gpu_healthy[slot] == 0


def test_a_node_without_a_topology_gets_uniform_gpus_from_its_allocatable() -> None:
    snapshot = Snapshot()

    slot = snapshot.add_node(node("plain", machine=None, gpus=4))

    topology = snapshot.topologies[slot]
    assert topology is not None
    assert not topology.known
    assert snapshot.gpu_count[slot] == 4
    assert snapshot.gpu_healthy[slot] == 0b1111


def test_set_node_rewrites_allocatable_dropping_resources_the_node_no_longer_offers() -> None:
    snapshot = Snapshot()
    snapshot.resource_column(FPGA)
    slot = snapshot.add_node(node("a", cpu=8000, extra={FPGA: 2}))

    snapshot.set_node(slot, node("a", cpu=4000))

    assert snapshot.allocatable[column(snapshot, CPU), slot] == 4000
    assert snapshot.allocatable[column(snapshot, FPGA), slot] == 0
    assert snapshot.inverse_allocatable[column(snapshot, FPGA), slot] == 0.0


def test_set_node_records_readiness_changes() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a"))

    snapshot.set_node(slot, node("a", ready=False))

    assert not snapshot.ready[slot]
    assert snapshot.valid[slot]


def test_remove_node_invalidates_and_clears_its_row() -> None:
    snapshot = Snapshot()
    snapshot.add_node(node("a"))
    slot = snapshot.add_node(node("b"))
    snapshot.set_usage(slot, used={CPU: 500, GPU: 2}, gpus_held=0b11, gpus_unassigned=0)

    snapshot.remove_node("b")

    assert "b" not in snapshot.slot_of
    assert not snapshot.valid[slot]
    assert not snapshot.ready[slot]
    assert snapshot.infos[slot] is None
    assert snapshot.topologies[slot] is None
    assert not snapshot.allocatable[:, slot].any()
    assert not snapshot.used[:, slot].any()
    assert not snapshot.free[:, slot].any()
    assert (snapshot.utilisation[:, slot] == 1.0).all()
    assert snapshot.gpu_free[slot] == snapshot.gpu_free_count[slot] == snapshot.gpu_healthy[slot] == 0
    assert not snapshot.gpu_set_score[:, slot].any()
    assert snapshot.node_count == 1
    assert snapshot.valid[0]


def test_a_removed_slot_is_reused_by_the_next_node() -> None:
    snapshot = Snapshot()
    for name in ("a", "b", "c"):
        snapshot.add_node(node(name))
    snapshot.remove_node("b")

    slot = snapshot.add_node(node("d"))

    assert slot == 1
    assert snapshot.valid[1]
    assert snapshot.size == 3
    assert snapshot.node_names([1]) == ["d"]


def test_static_generation_counts_node_writes_but_not_usage() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a"))
    after_add = snapshot.static_generation
    snapshot.set_node(slot, node("a", cpu=1000))
    after_set = snapshot.static_generation

    snapshot.set_usage(slot, used={CPU: 10}, gpus_held=0, gpus_unassigned=0)
    snapshot.assume(slot, request={CPU: 10}, gpus=0b1)
    after_usage = snapshot.static_generation
    snapshot.remove_node("a")

    assert 0 < after_add < after_set == after_usage < snapshot.static_generation


def test_generation_counts_every_write() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a"))
    seen = [snapshot.generation]

    snapshot.set_usage(slot, used={CPU: 10}, gpus_held=0, gpus_unassigned=0)
    seen.append(snapshot.generation)
    snapshot.assume(slot, request={CPU: 10}, gpus=0)
    seen.append(snapshot.generation)
    snapshot.remove_node("a")
    seen.append(snapshot.generation)

    assert seen == sorted(set(seen))


def test_growth_past_the_initial_slots_keeps_earlier_rows() -> None:
    snapshot = Snapshot()
    assert snapshot.capacity == 64
    snapshot.label_column("zone")
    for i in range(64):
        slot = snapshot.add_node(node(f"n{i:03}", cpu=1000 + i, labels={"zone": f"z{i % 3}"}))
        snapshot.set_usage(slot, used={CPU: i, GPU: 1}, gpus_held=1 << (i % 8), gpus_unassigned=0)
    before = {name: np.copy(getattr(snapshot, name)[..., :64]) for name in USAGE_COLUMNS}
    zones_before = snapshot.label_column("zone")[0][:64].copy()

    extra = [snapshot.add_node(node(f"m{i}")) for i in range(6)]

    assert extra == list(range(64, 70))
    assert snapshot.capacity >= 70
    for name, old in before.items():
        np.testing.assert_array_equal(getattr(snapshot, name)[..., :64], old, err_msg=name)
    np.testing.assert_array_equal(snapshot.label_column("zone")[0][:64], zones_before)
    assert snapshot.allocatable[column(snapshot, CPU), :64].tolist() == [1000 + i for i in range(64)]
    assert snapshot.valid[:70].all()
    assert snapshot.node_names([0, 63, 69]) == ["n000", "n063", "m5"]


def test_growth_past_the_initial_slots_keeps_the_taints_of_earlier_rows() -> None:
    snapshot = Snapshot(capacity=2)
    taints = (Taint(key="gpu", value="h100"), Taint(key="dedicated", value="ml"))
    snapshot.add_node(node("a", taints=taints))
    snapshot.add_node(node("b"))

    snapshot.add_node(node("c"))

    ids = [snapshot.taint_vocabulary.get(t) for t in taints]
    assert snapshot.taints[0, ids].all()
    assert not snapshot.taints[1].any()
    assert not snapshot.taints[2].any()


# -- resource columns -------------------------------------------------------------------------


def test_fixed_resources_have_the_first_columns() -> None:
    assert list(Snapshot().resource_index) == [CPU, MEMORY, PODS, GPU]


def test_a_new_resource_column_is_zero_for_existing_rows() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a", cpu=8000))

    fpga = snapshot.resource_column(FPGA)

    assert fpga == 4
    assert snapshot.allocatable.shape[0] == 5
    assert snapshot.allocatable[fpga, slot] == 0
    assert snapshot.used[fpga, slot] == 0
    assert snapshot.utilisation[fpga, slot] == 1.0
    assert snapshot.allocatable[column(snapshot, CPU), slot] == 8000
    assert snapshot.resource_column(FPGA) == fpga


def test_a_node_offering_a_resource_never_seen_before_gets_its_column_filled() -> None:
    snapshot = Snapshot()
    snapshot.add_node(node("a"))

    slot = snapshot.add_node(node("b", extra={FPGA: 2}))

    assert snapshot.allocatable[column(snapshot, FPGA), slot] == 2
    assert snapshot.inverse_allocatable[column(snapshot, FPGA), slot] == pytest.approx(0.5)
    assert snapshot.allocatable[column(snapshot, FPGA), 0] == 0


def test_usage_of_a_resource_never_seen_before_is_recorded() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a"))

    snapshot.set_usage(slot, used={CPU: 100, FPGA: 1}, gpus_held=0, gpus_unassigned=0)

    assert snapshot.used[column(snapshot, FPGA), slot] == 1
    assert snapshot.free[column(snapshot, FPGA), slot] == -1


def test_assume_of_a_resource_never_seen_before_adds_its_column() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a"))
    snapshot.set_usage(slot, used={}, gpus_held=0, gpus_unassigned=0)

    snapshot.assume(slot, request={FPGA: 1}, gpus=0)

    assert snapshot.used[column(snapshot, FPGA), slot] == 1
    assert snapshot.free[column(snapshot, FPGA), slot] == -1


def test_a_new_resource_column_after_two_taints_keeps_the_taints() -> None:
    snapshot = Snapshot()
    taints = (Taint(key="one"), Taint(key="two"))
    slot = snapshot.add_node(node("a", taints=taints))

    snapshot.resource_column(FPGA)

    assert snapshot.taints[slot, [snapshot.taint_vocabulary.get(t) for t in taints]].all()


# -- usage --------------------------------------------------------------------------------------


def test_set_usage_fills_used_free_and_utilisation() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a", cpu=8000, memory=64 * GiB, pods=110))

    snapshot.set_usage(slot, used={CPU: 2000, MEMORY: 16 * GiB, PODS: 3}, gpus_held=0, gpus_unassigned=0)

    cpu, memory, pods = column(snapshot, CPU), column(snapshot, MEMORY), column(snapshot, PODS)
    assert snapshot.used[cpu, slot] == 2000
    assert snapshot.free[cpu, slot] == 6000
    assert snapshot.free[memory, slot] == 48 * GiB
    assert snapshot.free[pods, slot] == 107
    assert snapshot.utilisation[cpu, slot] == pytest.approx(0.25)
    assert snapshot.utilisation[memory, slot] == pytest.approx(0.25)


def test_set_usage_replaces_rather_than_adds() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a", cpu=8000))
    snapshot.set_usage(slot, used={CPU: 2000, GPU: 2}, gpus_held=0b11, gpus_unassigned=0)

    snapshot.set_usage(slot, used={CPU: 1000}, gpus_held=0, gpus_unassigned=0)

    assert snapshot.used[column(snapshot, CPU), slot] == 1000
    assert snapshot.used[column(snapshot, GPU), slot] == 0
    assert snapshot.gpu_free[slot] == 0xFF


def test_a_resource_the_node_does_not_offer_counts_as_fully_utilised() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("cpu", machine=None))

    snapshot.set_usage(slot, used={}, gpus_held=0, gpus_unassigned=0)

    assert snapshot.utilisation[column(snapshot, GPU), slot] == 1.0


def test_set_usage_takes_held_gpus_out_of_the_free_mask_and_count() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a"))

    snapshot.set_usage(slot, used={GPU: 3}, gpus_held=0b0000_0111, gpus_unassigned=0)

    assert snapshot.gpu_free[slot] == 0b1111_1000
    assert snapshot.gpu_free_count[slot] == 5
    assert snapshot.gpus_free_count().tolist() == [5]


def test_gpus_held_blind_lower_the_free_count_but_not_the_free_mask() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a"))

    snapshot.set_usage(slot, used={GPU: 3}, gpus_held=0b1, gpus_unassigned=2)

    assert snapshot.gpu_free[slot] == 0b1111_1110
    assert snapshot.gpu_unassigned[slot] == 2
    assert snapshot.gpu_free_count[slot] == 5


def test_unhealthy_gpus_are_never_free() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(with_unhealthy(node("a"), 0b1000_0001))

    snapshot.set_usage(slot, used={}, gpus_held=0b10, gpus_unassigned=0)

    assert snapshot.gpu_healthy[slot] == 0b0111_1110
    assert snapshot.gpu_free[slot] == 0b0111_1100
    assert snapshot.gpu_free_count[slot] == 5


@pytest.mark.parametrize("free", [0xFF, 0b1111_0000, 0b0010_0001, 0])
def test_gpu_set_score_is_the_tables_score_row_for_the_free_mask(free: int) -> None:
    info = node("a", machine="dgx1-v100")
    snapshot = Snapshot()
    slot = snapshot.add_node(info)
    assert info.gpus is not None
    table = GPUSetTable.build(info.gpus)

    snapshot.set_usage(slot, used={}, gpus_held=0xFF & ~free, gpus_unassigned=0)

    np.testing.assert_array_equal(snapshot.gpu_set_score[:, slot], table.score[free])


def test_a_node_too_wide_for_a_table_scores_the_untabled_constant() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("wide", machine=None, gpus=16))

    snapshot.set_usage(slot, used={GPU: 4}, gpus_held=0b1111, gpus_unassigned=0)

    assert snapshot.gpu_table[slot] == -1
    assert snapshot.gpu_table_base[slot] == 0
    assert snapshot.gpu_table_mask[slot] == 0
    assert snapshot.gpu_free[slot] == 0xFFF0
    assert snapshot.gpu_free_count[slot] == 12
    assert set(snapshot.gpu_set_score[:, slot].tolist()) == {UNTABLED_SCORE}


def test_nodes_wired_alike_share_a_table_and_its_block() -> None:
    snapshot = Snapshot()
    a = snapshot.add_node(node("a"))
    b = snapshot.add_node(node("b"))
    c = snapshot.add_node(node("c", machine="pcie-8gpu"))

    assert snapshot.gpu_table[a] == snapshot.gpu_table[b] != snapshot.gpu_table[c]
    assert snapshot.gpu_table_base[a] == snapshot.gpu_table_base[b] > 0


# -- assume -----------------------------------------------------------------------------------

request_strategy = st.fixed_dictionaries(
    {CPU: st.integers(0, 64_000), MEMORY: st.integers(0, 512 * GiB), PODS: st.just(1)},
    optional={GPU: st.integers(0, 8)},
)
placement_strategy = st.tuples(request_strategy, st.integers(0, 0xFF))


def _summed(base: Mapping[str, int], requests: list[dict[str, int]]) -> dict[str, int]:
    total = dict(base)
    for request in requests:
        for name, value in request.items():
            total[name] = total.get(name, 0) + value
    return total


@settings(max_examples=60, deadline=None)
@given(
    machine=st.sampled_from(sorted(MACHINES)),
    unhealthy=st.integers(0, 0xFF),
    base=request_strategy,
    base_held=st.integers(0, 0xFF),
    unassigned=st.integers(0, 3),
    placements=st.lists(placement_strategy, max_size=5),
)
def test_assume_updates_the_usage_columns_as_set_usage_of_the_summed_usage_would(
    *,
    machine: str,
    unhealthy: int,
    base: dict[str, int],
    base_held: int,
    unassigned: int,
    placements: list[tuple[dict[str, int], int]],
) -> None:
    info = with_unhealthy(node("a", machine=machine, cpu=96_000, memory=1024 * GiB), unhealthy)
    assumed, rebuilt = Snapshot(), Snapshot()
    slot = assumed.add_node(info)
    rebuilt.add_node(info)
    assumed.set_usage(slot, used=base, gpus_held=base_held, gpus_unassigned=unassigned)

    held = base_held
    for request, gpus in placements:
        assumed.assume(slot, request=request, gpus=gpus)
        held |= gpus
    rebuilt.set_usage(
        slot, used=_summed(base, [r for r, _ in placements]), gpus_held=held, gpus_unassigned=unassigned
    )

    for name in USAGE_COLUMNS:
        np.testing.assert_array_equal(getattr(assumed, name), getattr(rebuilt, name), err_msg=name)


def test_assume_touches_only_its_own_slot() -> None:
    snapshot = Snapshot()
    slots = [snapshot.add_node(node(name)) for name in ("a", "b")]
    for slot in slots:
        snapshot.set_usage(slot, used={CPU: 100}, gpus_held=0, gpus_unassigned=0)
    other = {name: np.copy(getattr(snapshot, name)[..., 1]) for name in USAGE_COLUMNS}

    snapshot.assume(0, request={CPU: 1000, GPU: 2}, gpus=0b11)

    for name, old in other.items():
        np.testing.assert_array_equal(getattr(snapshot, name)[..., 1], old, err_msg=name)
    assert snapshot.gpu_free[0] == 0b1111_1100


# -- labels -------------------------------------------------------------------------------------


def test_label_column_is_materialised_only_when_first_asked_for() -> None:
    snapshot = Snapshot()
    snapshot.add_node(node("a", labels={"zone": "z1"}))
    assert "zone" not in snapshot._label_columns

    ids, vocabulary = snapshot.label_column("zone")

    assert "zone" in snapshot._label_columns
    assert ids[0] == vocabulary.get("z1") >= 0


def test_label_column_holds_value_ids_and_minus_one_where_absent() -> None:
    snapshot = Snapshot()
    for name, zone in (("a", "z1"), ("b", None), ("c", "z2"), ("d", "z1")):
        snapshot.add_node(node(name, labels={"zone": zone} if zone else {}))

    ids, vocabulary = snapshot.label_column("zone")

    z1, z2 = vocabulary.get("z1"), vocabulary.get("z2")
    assert ids[:4].tolist() == [z1, -1, z2, z1]
    assert z1 != z2
    assert vocabulary.get("z9") == -1


def test_label_column_follows_a_node_rewritten_with_new_labels() -> None:
    snapshot = Snapshot()
    slot = snapshot.add_node(node("a", labels={"zone": "z1"}))
    _, vocabulary = snapshot.label_column("zone")

    snapshot.set_node(slot, node("a", labels={"zone": "z2"}))
    after_change = int(snapshot.label_column("zone")[0][slot])
    snapshot.set_node(slot, node("a"))

    assert after_change == vocabulary.get("z2")
    assert snapshot.label_column("zone")[0][slot] == -1


def test_label_column_covers_nodes_added_after_it_was_materialised() -> None:
    snapshot = Snapshot()
    snapshot.add_node(node("a"))
    snapshot.label_column("zone")

    slot = snapshot.add_node(node("b", labels={"zone": "z3"}))

    ids, vocabulary = snapshot.label_column("zone")
    assert ids[slot] == vocabulary.get("z3") >= 0


# -- taints -------------------------------------------------------------------------------------


def test_taints_matrix_marks_each_nodes_scheduling_taints() -> None:
    snapshot = Snapshot()
    gpu_only = Taint(key="nvidia.com/gpu", value="present")
    draining = Taint(key="drain", effect="NoExecute")
    a = snapshot.add_node(node("a", taints=(gpu_only,)))
    b = snapshot.add_node(node("b", taints=(gpu_only, draining)))
    c = snapshot.add_node(node("c"))

    g, d = snapshot.taint_vocabulary.get(gpu_only), snapshot.taint_vocabulary.get(draining)
    assert snapshot.taints[a, g]
    assert not snapshot.taints[a, d]
    assert snapshot.taints[b, g]
    assert snapshot.taints[b, d]
    assert not snapshot.taints[c].any()


def test_prefer_no_schedule_taints_stay_out_of_the_matrix() -> None:
    snapshot = Snapshot()
    soft = Taint(key="spot", effect="PreferNoSchedule")

    slot = snapshot.add_node(node("a", taints=(soft,)))

    assert snapshot.taint_vocabulary.get(soft) == -1
    assert not snapshot.taints[slot].any()


def test_rewriting_a_node_clears_its_old_taints() -> None:
    snapshot = Snapshot()
    old = Taint(key="maintenance")
    slot = snapshot.add_node(node("a", taints=(old,)))

    snapshot.set_node(slot, node("a", taints=(Taint(key="other"),)))

    assert not snapshot.taints[slot, snapshot.taint_vocabulary.get(old)]
    assert snapshot.taints[slot, snapshot.taint_vocabulary.get(Taint(key="other"))]


def test_many_distinct_taints_widen_the_matrix_keeping_earlier_marks() -> None:
    snapshot = Snapshot()
    taints = [Taint(key=f"t{i}") for i in range(5)]
    first = snapshot.add_node(node("a", taints=(taints[0],)))

    second = snapshot.add_node(node("b", taints=tuple(taints)))

    ids = [snapshot.taint_vocabulary.get(t) for t in taints]
    assert snapshot.taints.shape[1] >= 5
    assert snapshot.taints[first, ids].tolist() == [True, False, False, False, False]
    assert snapshot.taints[second, ids].all()


def test_a_clone_can_be_changed_without_touching_its_original() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    cache.set_node(node("b", labels={"zone": "z1"}))
    live = cache.update_snapshot(Snapshot())
    live.label_column("zone")
    free, gpu_free = live.free.copy(), live.gpu_free.copy()

    copy = live.clone()
    copy.assume(copy.slot_of["a"], request={"cpu": 1000, "nvidia.com/gpu": 2}, gpus=0b11)
    copy.remove_node("b")
    copy.label_column("zone")[0][0] = 7

    assert np.array_equal(live.free, free)
    assert np.array_equal(live.gpu_free, gpu_free)
    assert set(live.slot_of) == {"a", "b"}
    assert live.label_column("zone")[0][0] == -1
    assert copy.lineage is live.lineage  # caches of node-static data stay valid for the clone
