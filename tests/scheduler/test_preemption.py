"""Who a waiting gang may evict, and the fewest whole gangs that make room."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from aisched.cache import PodUsage
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant
from aisched.scheduler.preemption import Workload, candidates, choose_victims

NOW = 10_000.0


def workload(
    key: str,
    *,
    tenant: str | None = "a",
    priority: int = 0,
    preemptible: bool = True,
    ran: float = 1000.0,
    gpus: int = 8,
) -> Workload:
    pods = tuple(PodUsage(key=f"{key}-{i}", node="n", requests={"nvidia.com/gpu": 1}) for i in range(gpus))
    return Workload(
        key=key,
        tenant=tenant,
        priority=priority,
        preemptible=preemptible,
        started=NOW - ran,
        pods=pods,
        gpu_milli=gpus * 1000,
    )


def ledger(*, reclaim: str = "Any", within: str = "LowerPriority", min_runtime: int = 60) -> QuotaLedger:
    tenants = [
        Tenant(
            name=name,
            namespaces=frozenset({name}),
            cohort="pool",
            guaranteed={GPU_MILLI: 8000},
            maximum={GPU_MILLI: 16000},
            reclaim_within_cohort=reclaim,
            within_tenant=within,
            min_runtime_seconds=min_runtime,
        )
        for name in ("a", "b")
    ]
    quota = QuotaLedger(tenants)
    quota.charge("a-borrowed", "a", {GPU_MILLI: 16000})  # a uses b's idle guarantee
    return quota


def keys(found: Sequence[Workload]) -> list[str]:
    return [w.key for w in found]


def test_within_a_tenant_only_lower_priority_preemptible_gangs_that_ran_long_enough() -> None:
    running = [
        workload("low", priority=1),
        workload("same", priority=5),
        workload("precious", priority=1, preemptible=False),
        workload("fresh", priority=1, ran=10.0),
        workload("other-tenant", tenant="b", priority=0),
    ]
    found = candidates(tenant="a", priority=5, reclaim=False, workloads=running, ledger=ledger(), now=NOW)
    assert keys(found) == ["low"]


def test_reclaim_takes_only_from_tenants_that_borrow_and_as_the_policy_allows() -> None:
    running = [workload("a-job", tenant="a", priority=9), workload("b-job", tenant="b", priority=0)]
    quota = ledger()
    assert keys(
        candidates(tenant="b", priority=0, reclaim=True, workloads=running, ledger=quota, now=NOW)
    ) == ["a-job"]
    assert candidates(tenant="b", priority=0, reclaim=False, workloads=running, ledger=quota, now=NOW) == []
    lower_only = ledger(reclaim="LowerPriority")
    assert (
        candidates(tenant="b", priority=0, reclaim=True, workloads=running, ledger=lower_only, now=NOW) == []
    )
    quota.release("a-borrowed")  # a no longer borrows: nothing to take back
    assert candidates(tenant="b", priority=0, reclaim=True, workloads=running, ledger=quota, now=NOW) == []


def test_cheapest_first_lowest_priority_then_least_work_lost() -> None:
    running = [
        workload("long-big", priority=1, ran=5000, gpus=8),
        workload("short-small", priority=1, ran=100, gpus=1),
        workload("lowest", priority=0, ran=9000, gpus=8),
    ]
    found = candidates(tenant="a", priority=5, reclaim=False, workloads=running, ledger=ledger(), now=NOW)
    assert keys(found) == ["lowest", "short-small", "long-big"]


def test_the_fewest_victims_are_kept_after_the_reprieve() -> None:
    ordered = [workload("w1", gpus=1), workload("w2", gpus=1), workload("w3", gpus=8)]

    def fits(chosen: Sequence[Workload]) -> bool:  # 8 GPUs must be freed
        return sum(w.gpu_milli for w in chosen) >= 8000

    assert keys(choose_victims(ordered, fits) or []) == ["w3"]
    assert choose_victims(ordered[:2], fits) is None


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 8), min_size=1, max_size=8),
    need=st.integers(1, 40),
)
def test_victims_are_whole_gangs_that_free_enough_and_none_is_spare(sizes: list[int], need: int) -> None:
    ordered = [workload(f"w{i}", gpus=n) for i, n in enumerate(sizes)]

    def fits(chosen: Sequence[Workload]) -> bool:
        return sum(len(w.pods) for w in chosen) >= need

    chosen = choose_victims(ordered, fits)
    if sum(sizes) < need:
        assert chosen is None
        return
    assert chosen is not None
    assert fits(chosen)
    assert all(w in ordered for w in chosen), "only whole gangs, as given"
    for spare in chosen:
        assert len(chosen) == 1 or not fits([w for w in chosen if w is not spare]), "no victim is spare"


def test_a_borrowers_gang_that_would_leave_it_below_its_guarantee_is_taken_last() -> None:
    quota = ledger()  # a uses 16, guaranteed 8
    running = [
        workload("a-big", tenant="a", priority=0, gpus=12),  # 16 - 12 < 8: a could reclaim back
        workload("a-small", tenant="a", priority=5, gpus=8),  # 16 - 8 = 8: a stays at its guarantee
    ]
    found = candidates(tenant="b", priority=0, reclaim=True, workloads=running, ledger=quota, now=NOW)
    assert keys(found) == ["a-small", "a-big"]
