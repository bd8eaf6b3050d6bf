"""The cache as the one book: every change to what a pod holds is one delta to its listeners; gangs
and capacity are kept as pods and nodes come and go; what-if rows leave the cache untouched."""

from __future__ import annotations

import numpy as np

from aisched.cache import Cache, PodUsage
from aisched.topology import resources
from aisched.topology.snapshot import Snapshot
from tests.support.core import node

GPU = resources.GPU


def usage(
    key: str, node_name: str = "n1", *, gpus: int = 1, gang: str = "", assumed: bool = False
) -> PodUsage:
    return PodUsage(
        key=key,
        node=node_name,
        requests={GPU: gpus, resources.PODS: 1},
        gpu_mask=(1 << gpus) - 1 if node_name == "n1" else (1 << gpus) - 1 << 4,
        gang=gang,
        assumed=assumed,
    )


def recorded(cache: Cache) -> list[tuple[str | None, str | None]]:
    seen: list[tuple[str | None, str | None]] = []
    cache.subscribe(lambda old, new: seen.append((old.key if old else None, new.key if new else None)))
    return seen


def test_set_replace_and_remove_are_each_one_delta() -> None:
    cache = Cache()
    seen = recorded(cache)

    cache.set_pod(usage("ml/a"))
    cache.set_pod(usage("ml/a", gpus=2))  # replaced: one delta, old and new together
    assert cache.remove_pod("ml/a")
    assert not cache.remove_pod("ml/a")

    assert seen == [(None, "ml/a"), ("ml/a", "ml/a"), ("ml/a", None)]


def test_assume_and_forget_go_through_the_same_deltas() -> None:
    cache = Cache()
    cache.set_node(node("n1"))
    seen = recorded(cache)

    cache.assume([(usage("ml/a", assumed=True), 0)])
    assert cache.forget(["ml/a", "ml/unknown"]) == ["ml/a"]

    assert seen == [(None, "ml/a"), ("ml/a", None)]


def test_a_listener_joining_late_hears_what_is_accounted_already_as_added() -> None:
    cache = Cache()
    cache.set_pod(usage("ml/a"))
    cache.set_pod(usage("ml/b"))
    cache.remove_pod("ml/b")

    assert recorded(cache) == [(None, "ml/a")]


def test_unsubscribed_listeners_hear_nothing_more() -> None:
    cache = Cache()
    seen: list[object] = []
    unsubscribe = cache.subscribe(lambda old, new: seen.append(new))
    unsubscribe()
    cache.set_pod(usage("ml/a"))
    assert seen == []


def test_gpus_held_follow_every_change() -> None:
    cache = Cache()
    cache.set_pod(usage("ml/a", gpus=2))
    cache.set_pod(usage("ml/b", gpus=3))
    cache.set_pod(usage("ml/a", gpus=1))
    cache.remove_pod("ml/b")
    assert cache.gpus_held == 1


def test_members_are_kept_by_gang_and_a_pod_alone_is_its_own_gang() -> None:
    cache = Cache()
    cache.set_pod(usage("ml/w0", gang="ml/gang:job"))
    cache.set_pod(usage("ml/w1", gang="ml/gang:job"))
    cache.set_pod(usage("ml/solo"))

    assert sorted(cache.gang("ml/gang:job")) == ["ml/w0", "ml/w1"]
    assert sorted(key for key, _ in cache.gangs()) == ["ml/gang:job", "ml/solo"]
    cache.remove_pod("ml/w0")
    cache.remove_pod("ml/w1")
    assert cache.gang("ml/gang:job") == {}
    assert [key for key, _ in cache.gangs()] == ["ml/solo"]


def test_allocatable_total_follows_nodes_added_changed_and_removed() -> None:
    cache = Cache()
    cache.set_node(node("a", cpu=1000))
    cache.set_node(node("b", cpu=2000))
    cache.set_node(node("a", cpu=500))
    assert cache.allocatable_total()[resources.CPU] == 2500
    cache.remove_node("b")
    assert cache.allocatable_total()[resources.CPU] == 500
    cache.remove_node("a")
    assert cache.allocatable_total() == {}


def test_rows_written_without_some_pods_change_only_the_copy() -> None:
    cache = Cache()
    cache.set_node(node("n1"))
    cache.set_node(node("n2"))
    cache.set_pod(usage("ml/a", "n1", gpus=4))
    cache.set_pod(usage("ml/b", "n2", gpus=2))
    live = cache.update_snapshot(Snapshot())
    before = live.gpus_free_count().copy()

    trial = live.clone()
    cache.write_without(trial, ["ml/a"])

    n1, n2 = live.slot_of["n1"], live.slot_of["n2"]
    assert trial.gpus_free_count()[n1] == 8
    assert trial.gpus_free_count()[n2] == 6
    assert np.array_equal(live.gpus_free_count(), before)  # the live snapshot is untouched
    assert cache.pod("ml/a") is not None
    assert cache.update_snapshot(live) is live
    assert np.array_equal(live.gpus_free_count(), before)
