"""The Evaluator: preemption's one what-if, on clones; the live cache, snapshot and ledger untouched."""

from __future__ import annotations

import dataclasses

import numpy as np

from aisched.framework.events import ClusterEvent
from aisched.framework.profile import Profile
from aisched.framework.status import Code
from aisched.framework.types import Gang, PodInfo
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant
from aisched.scheduler import Scheduler
from tests.support.core import node, pod, scheduler

GPU = 1000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def world(*, nodes: int = 2) -> tuple[Scheduler, Clock]:
    ledger = QuotaLedger(
        [
            Tenant(name=name, namespaces=frozenset({name}), cohort="pool", guaranteed={GPU_MILLI: 8 * GPU},
                   maximum={GPU_MILLI: 16 * GPU}, min_runtime_seconds=60)
            for name in ("a", "b")
        ],
        capacity={GPU_MILLI: nodes * 8 * GPU},
    )  # fmt: skip
    clock = Clock()
    base = scheduler([node(f"n{i}", rack="r1") for i in range(nodes)])
    return Scheduler(cache=base.cache, ledger=ledger, clock=clock), clock


def gang_of(
    tenant: str, name: str, *, pods: int = 1, gpus: int = 8, priority: int = 0, preemptible: bool = True
) -> Gang:
    members = [
        pod(f"{name}-{i}", gpus=gpus, namespace=tenant, priority=priority, preemptible=preemptible)
        for i in range(pods)
    ]
    return Gang(key=f"{tenant}/{name}", members=members, min_member=pods)


def run(world: Scheduler, gang: Gang) -> None:
    placement = world.schedule(gang).placement
    assert placement is not None
    world.bound(p.pod.key for p in placement.pods)


def test_a_tenant_reclaims_its_guarantee_from_the_borrowers_cheapest_gang() -> None:
    sched, clock = world()
    run(sched, gang_of("a", "old"))
    clock.now = 100.0
    run(sched, gang_of("a", "young"))  # a now borrows all of b's guarantee
    clock.now = 200.0

    nomination = sched.evaluator.nominate(gang_of("b", "mine"), max_candidates=32)

    assert nomination is not None
    assert [v.key for v in nomination.victims] == ["a/young"]  # least work lost
    assert {p.node for p in nomination.placement.pods} == {sched.cache.pod("a/young-0").node}  # type: ignore[union-attr]


def test_dry_runs_leave_the_cache_the_snapshot_and_the_ledger_as_they_were() -> None:
    sched, clock = world()
    run(sched, gang_of("a", "x"))
    run(sched, gang_of("a", "y"))
    clock.now = 100.0
    snapshot = sched.cache.update_snapshot(sched.snapshot)
    free, used = snapshot.free.copy(), snapshot.used.copy()
    charged = sched.ledger.used("a")

    assert sched.evaluator.nominate(gang_of("b", "mine"), max_candidates=32) is not None

    assert sched.evaluator.dry_runs >= 1
    assert np.array_equal(sched.snapshot.free, free)
    assert np.array_equal(sched.snapshot.used, used)
    assert sched.ledger.used("a") == charged
    assert sched.cache.assumed() == []


def test_a_victim_already_nominated_is_not_nominated_again_until_it_is_gone() -> None:
    sched, clock = world()
    run(sched, gang_of("a", "x"))
    run(sched, gang_of("a", "y"))
    clock.now = 100.0
    first = sched.evaluator.nominate(gang_of("b", "one"), max_candidates=32)
    assert first is not None
    second = sched.evaluator.nominate(gang_of("b", "two"), max_candidates=32)
    assert second is None or {v.key for v in second.victims}.isdisjoint(v.key for v in first.victims)
    for key in first.victim_pods:
        sched.cache.remove_pod(key)
    assert not any(sched.evaluator.evicting(key) for key in first.victim_pods)


def test_gangs_that_are_not_preemptible_or_too_young_are_never_victims() -> None:
    sched, clock = world()
    run(sched, gang_of("a", "precious", preemptible=False))
    clock.now = 100.0
    run(sched, gang_of("a", "fresh"))
    clock.now = 130.0  # "fresh" has run 30 s of its tenant's minimum 60
    assert sched.evaluator.nominate(gang_of("b", "mine"), max_candidates=32) is None


def test_no_dry_run_when_the_gpus_could_not_suffice_by_count() -> None:
    sched, clock = world(nodes=1)
    run(sched, gang_of("a", "small", gpus=2))
    clock.now = 100.0
    assert sched.evaluator.nominate(gang_of("a", "huge", gpus=16, priority=9), max_candidates=32) is None
    assert sched.evaluator.dry_runs == 0


def test_the_cycle_holds_the_nominated_placement_and_says_what_it_preempts() -> None:
    sched, clock = world()
    run(sched, gang_of("a", "x"))
    run(sched, gang_of("a", "y"))
    clock.now = 100.0

    result = sched.schedule(gang_of("b", "mine"))

    assert result.placement is None
    assert result.nomination is not None
    assert result.status.code is Code.UNSCHEDULABLE
    assert "preempting 1 gang(s) to make room: a/x" in result.message  # equal work lost: by key
    held = sched.cache.pod("b/mine-0")
    assert held is not None
    assert held.assumed  # the room is held while the victims are still accounted
    assert sched.cache.pod("a/x-0") is not None
    assert sched.ledger.used("b") == {GPU_MILLI: 8 * GPU, "cpu": 1000, "memory": 2**30}


def test_a_failed_gang_carries_the_events_its_rejectors_registered() -> None:
    sched, _ = world(nodes=1)
    picky = Gang.of(PodInfo(namespace="x", name="p", requests={"pods": 1}, node_selector=(("zone", "z9"),)))
    events = sched.schedule(picky).events
    assert ClusterEvent.NODE_LABELS_CHANGED in events
    assert ClusterEvent.POD_TERMINATED not in events  # a pod ending cannot relabel a node

    run(sched, gang_of("x", "all"))
    crowded = sched.schedule(gang_of("x", "more", gpus=1)).events
    assert {ClusterEvent.POD_TERMINATED, ClusterEvent.POD_DELETED, ClusterEvent.NODE_ADDED} <= crowded
    assert ClusterEvent.NODE_TAINTS_CHANGED not in crowded


def test_a_profile_without_preemption_never_nominates() -> None:
    sched, clock = world()
    plain = Scheduler(profile=Profile(post_filter=()), cache=sched.cache, ledger=sched.ledger, clock=clock)
    run(plain, gang_of("a", "x"))
    run(plain, gang_of("a", "y"))
    clock.now = 100.0
    result = plain.schedule(gang_of("b", "mine"))
    assert result.nomination is None
    assert plain.cache.assumed() == []


def test_an_elastic_jobs_surplus_pod_evicts_no_one_where_its_job_could() -> None:
    sched, clock = world()
    run(sched, gang_of("a", "x"))
    run(sched, gang_of("a", "y"))
    clock.now = 100.0
    mine = gang_of("b", "mine")
    surplus = dataclasses.replace(mine, members=[dataclasses.replace(m, surplus=True) for m in mine.members])

    result = sched.schedule(surplus)

    assert result.nomination is None
    assert sched.schedule(mine).nomination is not None, "the same pod, not surplus, would"
