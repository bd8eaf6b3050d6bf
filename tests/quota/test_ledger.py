"""Quota arithmetic: guarantees, borrowing within a cohort, limits, shares, fractional GPUs."""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from hypothesis import given, settings
from hypothesis import strategies as st

from aisched.api.tenantquota import TenantQuotaSpec
from aisched.cache import Cache, PodUsage
from aisched.framework.types import PodInfo
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant, quota_usage

GPU: Final = 1000  # milli-GPUs


def tenant(name: str, *, guaranteed: int, maximum: int | None = None, cohort: str | None = "pool") -> Tenant:
    return Tenant(
        name=name,
        namespaces=frozenset({f"ns-{name}"}),
        cohort=cohort,
        guaranteed={GPU_MILLI: guaranteed * GPU},
        maximum={} if maximum is None else {GPU_MILLI: maximum * GPU},
    )


def gpus(n: float) -> dict[str, int]:
    return {GPU_MILLI: int(n * GPU)}


def test_a_tenant_uses_its_guarantee_and_borrows_what_its_cohort_leaves_idle() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=8, maximum=24), tenant("b", guaranteed=16)])
    assert ledger.admit("a", gpus(8)).admitted
    ledger.charge("a/1", "a", gpus(8))
    borrowing = ledger.admit("a", gpus(16))
    assert borrowing.admitted
    assert borrowing.borrowing == gpus(16)
    ledger.charge("a/2", "a", gpus(16))
    assert ledger.borrowed("a") == gpus(16)
    refused = ledger.admit("a", gpus(1))
    assert not refused.admitted
    assert "over its max of 24 nvidia.com/gpu" in refused.reason


def test_borrowing_stops_where_the_cohort_has_nothing_unused() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=8, maximum=40), tenant("b", guaranteed=16)])
    ledger.charge("b/1", "b", gpus(10))
    ledger.charge("a/1", "a", gpus(8))
    assert ledger.admit("a", gpus(6)).admitted
    refused = ledger.admit("a", gpus(7))
    assert not refused.admitted
    assert "needs to borrow 7 nvidia.com/gpu" in refused.reason
    assert "cohort pool has 6 nvidia.com/gpu unused" in refused.reason


def test_a_guarantee_lent_to_others_is_refused_as_reclaimable() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=8, maximum=24), tenant("b", guaranteed=16, maximum=24)])
    ledger.charge("a/1", "a", gpus(20))  # a borrows 12 of b's idle 16
    assert ledger.admit("b", gpus(4)).admitted
    refused = ledger.admit("b", gpus(16))
    assert not refused.admitted
    assert refused.reclaim, "b's guarantee is b's: preemption may take it back"
    assert "12 nvidia.com/gpu of it is lent to other tenants of cohort pool" in refused.reason
    ledger.release("a/1")
    assert ledger.admit("b", gpus(16)).admitted


def test_a_tenant_without_a_cohort_stops_at_its_guarantee() -> None:
    ledger = QuotaLedger([tenant("solo", guaranteed=8, maximum=16, cohort=None)])
    ledger.charge("solo/1", "solo", gpus(8))
    refused = ledger.admit("solo", gpus(1))
    assert not refused.admitted
    assert "over its quota of 8 nvidia.com/gpu" in refused.reason


def test_unknown_tenants_and_unquoted_resources_are_not_limited() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=1)])
    assert ledger.admit("nobody", gpus(100)).admitted
    assert ledger.admit("a", {"cpu": 10**9}).admitted


def test_release_gives_back_exactly_what_was_charged() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=8)])
    ledger.charge("a/1", "a", gpus(3))
    ledger.charge("a/1", "a", gpus(5))  # recharging replaces
    assert ledger.used("a") == gpus(5)
    ledger.release("a/1")
    ledger.release("a/1")
    assert ledger.used("a") == {}


def test_shares_are_dominant_and_weighted() -> None:
    heavy = Tenant(name="heavy", weight=2.0, guaranteed={GPU_MILLI: 8 * GPU})
    ledger = QuotaLedger([heavy, tenant("light", guaranteed=8)], capacity={GPU_MILLI: 64 * GPU, "cpu": 1000})
    ledger.charge("h/1", "heavy", {GPU_MILLI: 16 * GPU, "cpu": 100})
    ledger.charge("l/1", "light", {GPU_MILLI: 8 * GPU, "cpu": 500})
    assert ledger.share("heavy") == (0.25, GPU_MILLI)
    assert ledger.share("light") == (0.5, "cpu")
    assert ledger.weighted_share("heavy") == 0.125
    assert ledger.weighted_share("light") == 0.5


def test_tenants_come_from_quota_specs_with_gpus_in_thousandths() -> None:
    spec = TenantQuotaSpec.model_validate(
        {
            "namespaces": ["ml"],
            "cohort": "pool",
            "resources": {"nvidia.com/gpu": {"guaranteed": "4", "max": "8"}, "cpu": {"max": "64"}},
        }
    )
    found = Tenant.from_spec("research", spec)
    assert found.guaranteed == {GPU_MILLI: 4000}
    assert found.maximum == {GPU_MILLI: 8000, "cpu": 64000}
    ledger = QuotaLedger([found])
    assert ledger.tenancy.tenants_of("ml") == ("research",)
    assert ledger.charged_to(None, "ml") == "research"


def test_shared_and_whole_gpu_pods_count_their_fractions() -> None:
    whole = PodInfo(namespace="ml", name="w", requests={"nvidia.com/gpu": 2, "cpu": 4000, "pods": 1})
    assert quota_usage(whole) == {GPU_MILLI: 2000, "cpu": 4000}
    mig = PodInfo(namespace="ml", name="m", requests={"nvidia.com/mig-3g.40gb": 1, "pods": 1})
    assert quota_usage(mig) == {GPU_MILLI: 500}
    parsed = PodInfo.from_manifest(
        {
            "metadata": {"name": "m", "namespace": "ml"},
            "spec": {"containers": [{"resources": {"limits": {"nvidia.com/mig-3g.40gb": 1}}}]},
        }
    )
    assert parsed.mig_profile == "3g.40gb"
    assert quota_usage(parsed) == {GPU_MILLI: 500}  # the slice counts once the pod is parsed, too


@settings(max_examples=150, deadline=None)
@given(
    guarantees=st.lists(st.integers(0, 16), min_size=2, max_size=4),
    requests=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 12)), max_size=40),
)
def test_admitted_work_never_exceeds_max_nor_the_cohorts_pool(
    guarantees: list[int], requests: list[tuple[int, int]]
) -> None:
    tenants = [tenant(f"t{i}", guaranteed=g, maximum=g + 8) for i, g in enumerate(guarantees)]
    ledger = QuotaLedger(tenants)
    for n, (who, amount) in enumerate(requests):
        name = f"t{who % len(tenants)}"
        if ledger.admit(name, gpus(amount)).admitted:
            ledger.charge(f"{name}/{n}", name, gpus(amount))
    pool = sum(guarantees) * GPU
    total = sum(ledger.used(t.name).get(GPU_MILLI, 0) for t in tenants)
    for t in tenants:
        used = ledger.used(t.name).get(GPU_MILLI, 0)
        assert used <= t.maximum[GPU_MILLI]
    assert total <= pool, "nothing is admitted beyond the cohort's pooled guarantees"


def test_the_ledger_charges_what_the_cache_accounts_and_releases_what_it_drops() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=8), tenant("b", guaranteed=8)])
    cache = Cache()
    cache.subscribe(ledger.pod_changed)
    usage = PodUsage(key="ns-a/p", node="n", requests={"nvidia.com/gpu": 2, "pods": 1})

    cache.set_pod(usage)
    assert ledger.used("a") == {GPU_MILLI: 2 * GPU}
    cache.set_pod(replace(usage, tenant="b"))  # naming a tenant that does not list its namespace
    assert ledger.used("a") == {GPU_MILLI: 2 * GPU}  # changes nothing: its namespace decides
    assert ledger.used("b") == {}
    cache.remove_pod("ns-a/p")
    assert ledger.used("a") == {}
    assert ledger.charge_of("ns-a/p") is None


def test_a_pod_of_no_tenant_is_charged_to_nobody() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=8)])
    ledger.pod_changed(None, PodUsage(key="elsewhere/p", node="n", requests={"nvidia.com/gpu": 1}))
    assert ledger.charge_of("elsewhere/p") is None


def test_listeners_hear_which_tenant_changed() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=8)])
    heard: list[str] = []
    ledger.subscribe(heard.append)
    ledger.charge("a/p", "a", {GPU_MILLI: GPU})
    ledger.release("a/p")
    assert heard == ["a", "a"]


def test_a_what_if_copy_releases_some_pods_and_leaves_the_ledger_alone() -> None:
    ledger = QuotaLedger([tenant("a", guaranteed=8, maximum=24), tenant("b", guaranteed=16)])
    ledger.charge("a/x", "a", {GPU_MILLI: 16 * GPU})
    ledger.charge("a/y", "a", {GPU_MILLI: 4 * GPU})

    view = ledger.without(["a/x"])

    assert view.used("a") == {GPU_MILLI: 4 * GPU}
    assert ledger.used("a") == {GPU_MILLI: 20 * GPU}
    assert view.admit("a", {GPU_MILLI: 8 * GPU}).admitted
    assert not ledger.admit("a", {GPU_MILLI: 8 * GPU}).admitted
