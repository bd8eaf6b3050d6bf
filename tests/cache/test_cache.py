"""The Cache: nodes and pods in, snapshots out, copying only what changed; assume and forget."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aisched.cache import Cache, PodUsage
from aisched.framework.types import PodInfo
from aisched.topology import resources
from aisched.topology.node import NodeInfo
from aisched.topology.snapshot import Snapshot
from tests.support.core import GiB, node, pod

CPU, MEMORY, GPU = resources.CPU, resources.MEMORY, resources.GPU
ROW_COLUMNS = (
    "valid",
    "allocatable",
    "used",
    "free",
    "utilisation",
    "gpu_free",
    "gpu_unassigned",
    "gpu_free_count",
    "gpu_set_score",
)
#: Per-GPU columns: slot first, one entry per GPU.
GPU_COLUMNS = ("gpu_milli_free", "gpu_memory_free", "mig_free")


class RecordingSnapshot(Snapshot):
    """A real snapshot that records which rows the cache writes."""

    def __init__(self, **kwargs: Any) -> None:
        self.writes: list[tuple[str, object]] = []
        super().__init__(**kwargs)

    def set_node(self, slot: int, info: NodeInfo) -> None:
        self.writes.append(("set_node", info.name))
        super().set_node(slot, info)

    def set_usage(self, slot: int, **usage: Any) -> None:
        self.writes.append(("set_usage", self.node_names([slot])[0]))
        super().set_usage(slot, **usage)

    def remove_node(self, name: str) -> None:
        self.writes.append(("remove_node", name))
        super().remove_node(name)


def usage(key: str, on: str, *, cpu: int = 1000, gpus: int = 0, **fields: Any) -> PodUsage:
    requests = {CPU: cpu, MEMORY: GiB, resources.PODS: 1}
    if gpus:
        requests[GPU] = gpus
    return PodUsage(key=key, node=on, requests=requests, **fields)


def cache_with(*nodes: NodeInfo) -> Cache:
    cache = Cache()
    for info in nodes:
        cache.set_node(info)
    return cache


def row(snapshot: Snapshot, name: str) -> dict[str, Any]:
    slot = snapshot.slot_of[name]
    out = {column: np.copy(getattr(snapshot, column)[..., slot]) for column in ROW_COLUMNS}
    return out | {column: np.copy(getattr(snapshot, column)[slot]) for column in GPU_COLUMNS}


def assert_rows_equal(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert left.keys() == right.keys()
    for column, value in left.items():
        np.testing.assert_array_equal(value, right[column], err_msg=column)


def placement(*pods: tuple[PodInfo, str, int, int]) -> list[tuple[PodUsage, int]]:
    """What the scheduler hands `Cache.assume` for (pod, node, slot, gpu mask) entries."""
    return [(PodUsage(key=p.key, node=n, requests=p.requests, gpu_mask=m), s) for p, n, s, m in pods]


def used(snapshot: Snapshot, name: str, resource: str) -> int:
    return int(snapshot.used[snapshot.resource_index[resource], snapshot.slot_of[name]])


# -- incremental copies -----------------------------------------------------------------------


def test_first_update_writes_every_node_and_its_usage() -> None:
    cache = cache_with(node("a"), node("b"))
    snapshot = RecordingSnapshot()

    cache.update_snapshot(snapshot)

    assert sorted(snapshot.writes) == [
        ("set_node", "a"),
        ("set_node", "b"),
        ("set_usage", "a"),
        ("set_usage", "b"),
    ]


def test_update_with_nothing_changed_writes_nothing() -> None:
    cache = cache_with(node("a"), node("b"))
    snapshot = RecordingSnapshot()
    cache.update_snapshot(snapshot)
    snapshot.writes.clear()

    returned = cache.update_snapshot(snapshot)

    assert returned is snapshot
    assert snapshot.writes == []


def test_a_pod_event_rewrites_only_its_nodes_usage() -> None:
    cache = cache_with(node("a"), node("b"), node("c"))
    snapshot = RecordingSnapshot()
    cache.update_snapshot(snapshot)
    snapshot.writes.clear()

    cache.set_pod(usage("ml/p", "b", cpu=3000))
    cache.update_snapshot(snapshot)

    assert snapshot.writes == [("set_usage", "b")]
    assert used(snapshot, "b", CPU) == 3000


def test_a_node_event_rewrites_only_that_node() -> None:
    cache = cache_with(node("a"), node("b"), node("c"))
    snapshot = RecordingSnapshot()
    cache.update_snapshot(snapshot)
    snapshot.writes.clear()

    cache.set_node(node("c", cpu=500))
    cache.update_snapshot(snapshot)

    assert snapshot.writes == [("set_node", "c"), ("set_usage", "c")]
    assert snapshot.allocatable[snapshot.resource_index[CPU], snapshot.slot_of["c"]] == 500


def test_a_different_snapshot_object_gets_a_full_fill() -> None:
    cache = cache_with(node("a"), node("b"))
    cache.set_pod(usage("ml/p", "a", cpu=2000, gpus=1, gpu_mask=0b1))
    first = RecordingSnapshot()
    cache.update_snapshot(first)
    second = RecordingSnapshot()

    cache.update_snapshot(second)

    assert sorted(second.writes) == [
        ("set_node", "a"),
        ("set_node", "b"),
        ("set_usage", "a"),
        ("set_usage", "b"),
    ]
    assert_rows_equal(row(second, "a"), row(first, "a"))
    assert used(second, "a", CPU) == 2000


def test_switching_back_to_an_earlier_snapshot_refills_it() -> None:
    cache = cache_with(node("a"))
    first, second = Snapshot(), Snapshot()
    cache.update_snapshot(first)
    cache.update_snapshot(second)
    cache.set_pod(usage("ml/p", "a", cpu=2000))

    cache.update_snapshot(first)

    assert used(first, "a", CPU) == 2000


def test_a_snapshot_filled_by_another_cache_loses_that_caches_nodes() -> None:
    snapshot = Snapshot()
    cache_with(node("old"), node("a")).update_snapshot(snapshot)

    cache_with(node("a"), node("new")).update_snapshot(snapshot)

    assert set(snapshot.slot_of) == {"a", "new"}
    assert snapshot.node_count == 2
    assert snapshot.valid.sum() == 2


# -- pods -------------------------------------------------------------------------------------


def test_a_pod_arriving_before_its_node_is_counted_once_the_node_arrives() -> None:
    cache = Cache()
    snapshot = Snapshot()
    cache.set_pod(usage("ml/early", "late", cpu=1500, gpus=2, gpu_mask=0b11))
    cache.update_snapshot(snapshot)
    assert "late" not in snapshot.slot_of

    cache.set_node(node("late"))
    cache.update_snapshot(snapshot)

    assert used(snapshot, "late", CPU) == 1500
    assert snapshot.gpu_free[snapshot.slot_of["late"]] == 0b1111_1100


def test_remove_pod_frees_its_resources() -> None:
    cache = cache_with(node("a", cpu=8000))
    snapshot = Snapshot()
    cache.set_pod(usage("ml/p", "a", cpu=3000, gpus=2, gpu_mask=0b0110))
    cache.set_pod(usage("ml/q", "a", cpu=1000))
    cache.update_snapshot(snapshot)

    cache.remove_pod("ml/p")
    cache.update_snapshot(snapshot)

    slot = snapshot.slot_of["a"]
    assert used(snapshot, "a", CPU) == 1000
    assert snapshot.free[snapshot.resource_index[CPU], slot] == 7000
    assert used(snapshot, "a", GPU) == 0
    assert snapshot.gpu_free[slot] == 0xFF
    assert snapshot.gpu_free_count[slot] == 8
    assert cache.pod("ml/p") is None


def test_removing_an_unknown_pod_changes_nothing() -> None:
    cache = cache_with(node("a"))
    snapshot = RecordingSnapshot()
    cache.update_snapshot(snapshot)
    snapshot.writes.clear()

    cache.remove_pod("ml/ghost")
    cache.update_snapshot(snapshot)

    assert snapshot.writes == []


def test_set_pod_replaces_what_was_known_of_the_pod_even_on_another_node() -> None:
    cache = cache_with(node("a"), node("b"))
    snapshot = Snapshot()
    cache.set_pod(usage("ml/p", "a", cpu=3000))
    cache.update_snapshot(snapshot)

    cache.set_pod(usage("ml/p", "b", cpu=2000))
    cache.update_snapshot(snapshot)

    assert used(snapshot, "a", CPU) == 0
    assert used(snapshot, "b", CPU) == 2000


def test_pods_sum_their_requests_on_a_node() -> None:
    cache = cache_with(node("a"))
    snapshot = Snapshot()
    cache.set_pod(usage("ml/p", "a", cpu=3000))
    cache.set_pod(usage("ml/q", "a", cpu=500))

    cache.update_snapshot(snapshot)

    assert used(snapshot, "a", CPU) == 3500
    assert used(snapshot, "a", resources.PODS) == 2


def test_pods_with_gpu_uuids_hold_those_gpus_by_the_nodes_topology() -> None:
    cache = cache_with(node("a"))
    snapshot = Snapshot()

    cache.set_pod(usage("ml/p", "a", gpus=2, gpu_uuids=("GPU-a-2", "GPU-a-5")))
    cache.update_snapshot(snapshot)

    slot = snapshot.slot_of["a"]
    assert snapshot.gpu_free[slot] == 0xFF & ~(1 << 2) & ~(1 << 5)
    assert snapshot.gpu_unassigned[slot] == 0
    assert snapshot.gpu_free_count[slot] == 6


def test_pods_with_gpus_but_no_known_devices_count_as_unassigned() -> None:
    cache = cache_with(node("a"))
    snapshot = Snapshot()

    cache.set_pod(usage("ml/blind", "a", gpus=2))
    cache.set_pod(usage("ml/foreign", "a", gpus=1, gpu_uuids=("GPU-elsewhere-0",)))
    cache.update_snapshot(snapshot)

    slot = snapshot.slot_of["a"]
    assert snapshot.gpu_free[slot] == 0xFF
    assert snapshot.gpu_unassigned[slot] == 3
    assert snapshot.gpu_free_count[slot] == 5


def test_a_pod_with_some_unknown_uuids_holds_none_of_them_by_device() -> None:
    cache = cache_with(node("a"))
    snapshot = Snapshot()

    cache.set_pod(usage("ml/p", "a", gpus=2, gpu_uuids=("GPU-a-0", "GPU-zz-1")))
    cache.update_snapshot(snapshot)

    slot = snapshot.slot_of["a"]
    assert snapshot.gpu_free[slot] == 0xFF
    assert snapshot.gpu_free_count[slot] == 6


# -- nodes ------------------------------------------------------------------------------------


def test_removing_a_node_removes_its_row() -> None:
    cache = cache_with(node("a"), node("b"))
    snapshot = Snapshot()
    cache.update_snapshot(snapshot)
    slot = snapshot.slot_of["a"]

    cache.remove_node("a")
    cache.update_snapshot(snapshot)

    assert "a" not in snapshot.slot_of
    assert not snapshot.valid[slot]
    assert cache.node("a") is None
    assert cache.node_count == 1


def test_a_node_added_after_a_removal_reuses_the_freed_slot() -> None:
    cache = cache_with(node("a"), node("b"), node("c"))
    snapshot = Snapshot()
    cache.update_snapshot(snapshot)
    freed = snapshot.slot_of["b"]
    cache.remove_node("b")
    cache.update_snapshot(snapshot)

    cache.set_node(node("d"))
    cache.update_snapshot(snapshot)

    assert snapshot.slot_of["d"] == freed
    assert snapshot.size == 3


def test_a_node_removed_and_readded_counts_the_pods_that_stayed_on_it() -> None:
    cache = cache_with(node("a"))
    snapshot = Snapshot()
    cache.set_pod(usage("ml/p", "a", cpu=2500))
    cache.update_snapshot(snapshot)
    cache.remove_node("a")
    cache.update_snapshot(snapshot)

    cache.set_node(node("a"))
    cache.update_snapshot(snapshot)

    assert used(snapshot, "a", CPU) == 2500


def test_a_node_removed_and_readded_before_an_update_keeps_its_slot() -> None:
    cache = cache_with(node("a"), node("b"))
    snapshot = Snapshot()
    cache.update_snapshot(snapshot)
    slot = snapshot.slot_of["a"]

    cache.remove_node("a")
    cache.set_node(node("a", cpu=1234))
    cache.update_snapshot(snapshot)

    assert snapshot.slot_of["a"] == slot
    assert snapshot.allocatable[snapshot.resource_index[CPU], slot] == 1234


def test_removing_an_unknown_node_is_a_no_op() -> None:
    cache = cache_with(node("a"))

    cache.remove_node("ghost")

    assert cache.node_count == 1


def test_nodes_lists_the_nodes_known_not_those_only_pods_still_name() -> None:
    cache = cache_with(node("a"), node("b"))
    cache.set_pod(usage("ns/p", "b"))
    cache.set_pod(usage("ns/q", "ghost"))  # its node not seen yet, or gone

    cache.remove_node("b")  # its pod stays accounted until its deletion is seen

    assert [info.name for info in cache.nodes()] == ["a"]


@pytest.mark.parametrize("order", [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"]])
def test_slots_follow_sorted_node_names_whatever_the_insertion_order(order: list[str]) -> None:
    cache = cache_with(*(node(name) for name in order))
    snapshot = Snapshot()

    cache.update_snapshot(snapshot)

    assert snapshot.slot_of == {"a": 0, "b": 1, "c": 2}


def test_a_refilled_snapshot_gives_the_same_slots_as_a_fresh_one() -> None:
    # Slot order breaks score ties, so a refill must not reorder nodes.
    nodes = [node(name) for name in ("a", "b", "c")]
    reused = Snapshot()
    cache_with(*nodes).update_snapshot(reused)
    fresh = Snapshot()
    cache = cache_with(*nodes)
    cache.update_snapshot(fresh)

    cache.update_snapshot(reused)

    assert reused.slot_of == fresh.slot_of


# -- assume / forget --------------------------------------------------------------------------


def test_assume_updates_the_last_snapshot_in_place_without_a_row_rewrite() -> None:
    cache = cache_with(node("a"))
    snapshot = RecordingSnapshot()
    cache.update_snapshot(snapshot)
    snapshot.writes.clear()
    slot = snapshot.slot_of["a"]

    cache.assume(placement((pod("p", gpus=2, cpu=3000), "a", slot, 0b11)))
    seen_before_update = used(snapshot, "a", CPU), int(snapshot.gpu_free[slot])
    cache.update_snapshot(snapshot)

    assert seen_before_update == (3000, 0b1111_1100)
    assert snapshot.writes == []
    assert cache.assumed() == ["ml/p"]


def test_assume_on_a_node_with_a_pending_pod_event_is_written_at_the_next_update() -> None:
    cache = cache_with(node("a"))
    snapshot = Snapshot()
    cache.update_snapshot(snapshot)
    cache.set_pod(usage("ml/bound", "a", cpu=1000))
    slot = snapshot.slot_of["a"]

    cache.assume(placement((pod("p", cpu=3000), "a", slot, 0)))
    cache.update_snapshot(snapshot)

    assert used(snapshot, "a", CPU) == 4000


def test_assume_then_forget_restores_the_row_exactly() -> None:
    cache = cache_with(node("a"), node("b"))
    cache.set_pod(usage("ml/bound", "a", cpu=1000, gpus=1, gpu_mask=0b1))
    cache.set_pod(usage("ml/blind", "a", gpus=1))
    snapshot = Snapshot()
    cache.update_snapshot(snapshot)
    before = {name: row(snapshot, name) for name in ("a", "b")}
    slots = snapshot.slot_of

    cache.assume(
        placement(
            (pod("p0", gpus=4, cpu=2000), "a", slots["a"], 0b1111_0000),
            (pod("p1", gpus=2, cpu=2000), "b", slots["b"], 0b0000_0011),
        )
    )
    cache.update_snapshot(snapshot)
    changed = row(snapshot, "a")["gpu_free"] != before["a"]["gpu_free"]
    cache.forget(["ml/p0", "ml/p1"])
    cache.update_snapshot(snapshot)

    assert changed
    for name in ("a", "b"):
        assert_rows_equal(row(snapshot, name), before[name])
    assert cache.assumed() == []


def test_forget_leaves_a_pod_confirmed_bound_in_the_meantime() -> None:
    cache = cache_with(node("a"))
    snapshot = Snapshot()
    cache.update_snapshot(snapshot)
    slot = snapshot.slot_of["a"]
    cache.assume(placement((pod("p", gpus=2, cpu=3000), "a", slot, 0b11)))
    cache.set_pod(usage("ml/p", "a", cpu=3000, gpus=2, gpu_mask=0b11))

    cache.forget(["ml/p"])
    cache.update_snapshot(snapshot)

    confirmed = cache.pod("ml/p")
    assert confirmed is not None
    assert not confirmed.assumed
    assert cache.assumed() == []
    assert used(snapshot, "a", CPU) == 3000
    assert snapshot.gpu_free[slot] == 0b1111_1100


def test_forget_of_unknown_keys_changes_nothing() -> None:
    cache = cache_with(node("a"))
    snapshot = RecordingSnapshot()
    cache.update_snapshot(snapshot)
    snapshot.writes.clear()

    cache.forget(["ml/never"])
    cache.update_snapshot(snapshot)

    assert snapshot.writes == []


def test_assume_records_the_pods_gpus_for_later_rewrites() -> None:
    cache = cache_with(node("a"))
    snapshot = Snapshot()
    cache.update_snapshot(snapshot)
    slot = snapshot.slot_of["a"]
    cache.assume(placement((pod("p", gpus=2), "a", slot, 0b1100)))

    cache.set_node(node("a", cpu=999))  # forces a row rewrite from the cache's own records
    cache.update_snapshot(snapshot)

    assert snapshot.gpu_free[slot] == 0b1111_0011
    assert used(snapshot, "a", GPU) == 2


def test_the_pods_on_a_node_are_listed_even_after_the_node_is_gone() -> None:
    cache = cache_with(node("n1"), node("n2"))
    for key, on in (("ml/a", "n1"), ("ml/b", "n2"), ("ml/c", "n1")):
        cache.set_pod(usage(key, on))
    cache.remove_node("n1")
    assert sorted(u.key for u in cache.pods_on("n1")) == ["ml/a", "ml/c"]
    cache.remove_pod("ml/a")
    assert [u.key for u in cache.pods_on("n1")] == ["ml/c"]
    assert cache.pods_on("nowhere") == []
