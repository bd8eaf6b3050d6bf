"""Gang assembly from pending pods, and the book that tracks pending and placed members."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from aisched.framework.types import PodInfo
from aisched.queue.gangs import GangBook, assemble, gang_key, job_of


def pod(
    name: str,
    *,
    gang: str | None = None,
    min_member: str | None = None,
    namespace: str = "ml",
    annotations: dict[str, str] | None = None,
    priority: int = 0,
    created: float = 0.0,
) -> PodInfo:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"aisched.io/gang": gang} if gang else {},
        "annotations": dict(annotations or {}),
    }
    if min_member is not None:
        meta["annotations"]["aisched.io/gang-min-member"] = min_member
    spec = {"schedulerName": "aisched", "priority": priority, "containers": [{"name": "c"}]}
    return PodInfo.from_manifest({"metadata": meta, "spec": spec}, created=created)


def test_a_pod_without_the_gang_label_is_a_gang_of_one() -> None:
    single = pod("solo")
    gang = assemble(gang_key(single), [single])
    assert gang.key == "ml/solo"
    assert [p.name for p in gang.members] == ["solo"]
    assert gang.min_member == 1


def test_pods_sharing_namespace_and_gang_label_form_one_gang_with_the_annotated_min_member() -> None:
    a, b = pod("b", gang="g", min_member="3"), pod("a", gang="g", min_member="3")
    assert gang_key(a) == gang_key(b) == "ml/gang:g"
    assert gang_key(pod("x", gang="g", namespace="other")) != gang_key(a)
    gang = assemble(gang_key(a), [a, b])
    assert [p.name for p in gang.members] == ["a", "b"]
    assert gang.min_member == 3


def test_min_member_defaults_to_the_members_seen() -> None:
    members = [pod(f"m{i}", gang="g") for i in range(4)]
    assert assemble("ml/gang:g", members).min_member == 4
    assert assemble("ml/gang:g", members[:1], placed=3).min_member == 4 - 3


def test_members_already_placed_count_towards_min_member() -> None:
    assert assemble("ml/gang:g", [pod("late", gang="g", min_member="3")], placed=2).min_member == 1


def test_gang_takes_topology_priority_and_age_from_its_members() -> None:
    required = {"aisched.io/topology-policy": "Required", "aisched.io/topology-level": "rack"}
    gang = assemble(
        "ml/gang:g",
        [
            pod("a", gang="g", priority=5, created=20.0),
            pod("b", gang="g", annotations=required, priority=9, created=10.0),
        ],
    )
    assert gang.topology_policy == "Required"
    assert gang.topology_level == "rack"
    assert gang.priority == 9
    assert gang.created == 10.0


def test_assembling_no_pod_is_a_bug() -> None:
    with pytest.raises(ValueError, match="no pending member"):
        assemble("ml/gang:g", [])


def test_book_grows_a_gang_and_forgets_it_when_its_members_are_gone() -> None:
    book = GangBook()
    key = book.pending(pod("a", gang="g", min_member="3"))
    book.pending(pod("b", gang="g", min_member="3"))
    gang = book.gang(key)
    assert gang is not None
    assert gang.size == 2
    assert gang.min_member == 3
    assert book.remove("ml/a") == key
    assert book.remove("ml/b") == key
    assert book.gang(key) is None
    assert book.remove("ml/a") is None


def test_book_placed_members_leave_the_pending_gang_and_come_back_on_restore() -> None:
    book = GangBook()
    key = book.pending(pod("a", gang="g", min_member="2"))
    book.pending(pod("b", gang="g", min_member="2"))
    book.place(["ml/a", "ml/b"])
    assert book.gang(key) is None
    assert not book.is_pending("ml/a")
    late = book.pending(pod("c", gang="g", min_member="2"))
    gang = book.gang(late)
    assert gang is not None
    assert [p.name for p in gang.members] == ["c"]
    assert gang.min_member == 1
    assert book.restore(["ml/a", "ml/zzz"]) == {key}
    gang = book.gang(key)
    assert gang is not None
    assert [p.name for p in gang.members] == ["a", "c"]


def test_book_moves_a_relabelled_pod_to_its_new_gang() -> None:
    book = GangBook()
    old = book.pending(pod("a", gang="g"))
    new = book.pending(pod("a", gang="h"))
    assert book.gang(old) is None
    gang = book.gang(new)
    assert gang is not None
    assert gang.key == "ml/gang:h"


def test_a_gang_is_short_until_it_has_the_members_it_declares() -> None:
    book = GangBook()
    key = book.pending(pod("a", gang="g", min_member="3"))
    assert book.short(key)
    book.placed(pod("b", gang="g", min_member="3"))
    assert book.short(key), "placed members count, but two of three are not enough"
    book.pending(pod("c", gang="g", min_member="3"))
    assert not book.short(key)
    undeclared = book.pending(pod("x", gang="h"))
    assert not book.short(undeclared), "a gang that declares no size is whatever it has"
    assert not book.short("ml/gang:unknown")


def test_a_gang_whose_members_run_is_to_be_placed_near_their_nodes() -> None:
    book = GangBook()
    for name, node in (("a", "n2"), ("b", "n1"), ("c", "n2")):
        running = pod(name, gang="g", min_member="4")
        book.placed(dataclasses.replace(running, node_name=node))
    key = book.pending(pod("d", gang="g", min_member="4"))
    book.pending(pod("e", gang="g", min_member="4"))  # one more than the gang declares: placed later
    book.place(["ml/e"])  # assumed, on no node yet
    gang = book.gang(key)
    assert gang is not None
    assert (gang.near, gang.min_member) == (("n1", "n2"), 1)


def test_an_elastic_jobs_surplus_pod_is_to_be_placed_near_its_jobs_pods() -> None:
    book = GangBook()
    for name, node in (("train-master-0", "n1"), ("train-worker-0", "n3")):
        running = dataclasses.replace(pod(name, gang="train"), node_name=node)
        book.placed(running)
    surplus = dataclasses.replace(pod("train-worker-1", gang="train-worker-1"), surplus=True)
    surplus = dataclasses.replace(surplus, labels={**surplus.labels, "aisched.io/job": "train"})
    key = book.pending(surplus)
    gang = book.gang(key)
    assert gang is not None
    assert gang.near == ("n1", "n3")
    assert gang.opportunistic
    other = dataclasses.replace(pod("x", gang="x"), surplus=True)
    other = dataclasses.replace(other, labels={**other.labels, "aisched.io/job": "other"})
    alone = book.gang(book.pending(other))
    assert alone is not None
    assert alone.near == (), "another job's pods are not its own"


@pytest.mark.parametrize(
    ("labels", "surplus", "job"),
    [
        ({"aisched.io/job": "llama", "aisched.io/gang": "llama"}, False, "llama"),
        ({"aisched.io/job": "llama", "aisched.io/gang": "surplus_0a1b"}, True, "llama"),
        ({"aisched.io/gang": "sweep"}, False, "sweep"),
        ({"aisched.io/gang": "surplus_0a1b"}, True, "p-0"),
        ({}, False, "p-0"),
    ],
)
def test_a_gangs_job_is_its_job_label_else_its_group_else_its_pod(
    labels: dict[str, str], surplus: bool, job: str
) -> None:
    member = dataclasses.replace(
        pod("p-0"), labels=labels, gang=labels.get("aisched.io/gang"), surplus=surplus
    )

    assert job_of(assemble(gang_key(member), [member])) == job
