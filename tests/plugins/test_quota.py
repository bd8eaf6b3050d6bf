"""Quota admission as a PreFilter: gangs wait, with the resource and amount named, past a quota."""

from __future__ import annotations

import dataclasses

from aisched.framework.cycle_state import CycleState
from aisched.framework.status import Code
from aisched.framework.types import Gang, PodInfo
from aisched.plugins.quota import Quota
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant
from aisched.topology.snapshot import Snapshot
from tests.support.core import handle


def member(name: str, *, gpus: int, namespace: str = "ml", tenant: str | None = None) -> PodInfo:
    return PodInfo(
        namespace=namespace, name=name, requests={"nvidia.com/gpu": gpus, "pods": 1}, gang="g", tenant=tenant
    )


def gang(*members: PodInfo) -> Gang:
    return Gang(key="ml/gang:g", members=members, min_member=len(members))


def ledger() -> QuotaLedger:
    return QuotaLedger(
        [
            Tenant(name="research", namespaces=frozenset({"ml"}), guaranteed={GPU_MILLI: 8000}),
            Tenant(name="inference", namespaces=frozenset({"serve"}), guaranteed={GPU_MILLI: 32000}),
        ]
    )


def test_a_gang_within_its_tenants_quota_passes() -> None:
    plugin = Quota(handle(ledger=ledger()))
    status = plugin.pre_filter(CycleState(), gang(member("a", gpus=4), member("b", gpus=4)), Snapshot())
    assert status.code is Code.SUCCESS


def test_a_gang_past_its_quota_waits_and_says_what_and_how_much() -> None:
    quota = ledger()
    quota.charge("ml/running", "research", {GPU_MILLI: 4000})
    status = Quota(handle(ledger=quota)).pre_filter(
        CycleState(), gang(member("a", gpus=4), member("b", gpus=4)), Snapshot()
    )
    assert status.code is Code.UNSCHEDULABLE
    assert (
        "waiting for quota: tenant research would use 12 nvidia.com/gpu, over its quota of 8"
        in status.message()
    )


def test_a_pod_naming_a_tenant_its_namespace_is_not_in_is_refused_for_good() -> None:
    for named in ("inference", "ghost"):
        status = Quota(handle(ledger=ledger())).pre_filter(
            CycleState(), gang(member("a", gpus=16, tenant=named)), Snapshot()
        )
        assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE  # never a reason to preempt
        assert status.message().startswith(
            f"annotation aisched.io/tenant: '{named}' is not a tenant of namespace ml"
        )


def test_a_namespace_two_quotas_list_may_name_either() -> None:
    shared = QuotaLedger(
        [
            Tenant(name="research", namespaces=frozenset({"ml"}), guaranteed={GPU_MILLI: 8000}),
            Tenant(name="inference", namespaces=frozenset({"ml"}), guaranteed={GPU_MILLI: 32000}),
        ]
    )
    status = Quota(handle(ledger=shared)).pre_filter(
        CycleState(), gang(member("a", gpus=16, tenant="inference")), Snapshot()
    )
    assert status.code is Code.SUCCESS  # 16 GPUs: inference's quota, not research's 8


def test_pods_of_one_gang_naming_different_tenants_are_refused() -> None:
    status = Quota(handle(ledger=ledger())).pre_filter(
        CycleState(), gang(member("a", gpus=1, tenant="research"), member("b", gpus=1)), Snapshot()
    )
    assert status.code is Code.SUCCESS
    status = Quota(handle(ledger=ledger())).pre_filter(
        CycleState(),
        gang(member("a", gpus=1, tenant="research"), member("b", gpus=1, tenant="inference")),
        Snapshot(),
    )
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert "the gang's pods name different tenants (inference, research)" in status.message()


def test_unlisted_namespaces_follow_the_clusters_rule() -> None:
    loose = gang(member("a", gpus=1, namespace="elsewhere"))
    denied = QuotaLedger(ledger().tenants(), unlisted="Deny")
    status = Quota(handle(ledger=denied)).pre_filter(CycleState(), loose, Snapshot())
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert "namespace elsewhere is listed by no TenantQuota" in status.message()
    defaulted = QuotaLedger(ledger().tenants(), unlisted="research")
    defaulted.charge("ml/running", "research", {GPU_MILLI: 8000})
    status = Quota(handle(ledger=defaulted)).pre_filter(CycleState(), loose, Snapshot())
    assert status.code is Code.UNSCHEDULABLE  # charged to research, which is full
    assert "tenant research would use 9" in status.message()


def test_pods_of_no_tenant_are_not_limited() -> None:
    status = Quota(handle(ledger=ledger())).pre_filter(
        CycleState(), gang(member("a", gpus=64, namespace="other")), Snapshot()
    )
    assert status.code is Code.SUCCESS


def test_a_gang_that_may_not_be_preempted_never_borrows() -> None:
    pool = QuotaLedger(
        [
            Tenant(
                name="research",
                namespaces=frozenset({"ml"}),
                cohort="pool",
                guaranteed={GPU_MILLI: 8000},
                maximum={GPU_MILLI: 32000},
            ),
            Tenant(
                name="inference",
                namespaces=frozenset({"serve"}),
                cohort="pool",
                guaranteed={GPU_MILLI: 32000},
            ),
        ]
    )
    borrowing = gang(member("a", gpus=8), member("b", gpus=8))
    assert Quota(handle(ledger=pool)).pre_filter(CycleState(), borrowing, Snapshot()).code is Code.SUCCESS
    fixed = dataclasses.replace(member("b", gpus=8), preemptible=False)
    status = Quota(handle(ledger=pool)).pre_filter(CycleState(), gang(member("a", gpus=8), fixed), Snapshot())
    assert status.code is Code.UNSCHEDULABLE
    assert "would borrow 8 nvidia.com/gpu beyond its guarantee, and a gang that may not be preempted" in (
        status.message()
    )
    within = gang(dataclasses.replace(member("a", gpus=8), preemptible=False))
    assert Quota(handle(ledger=pool)).pre_filter(CycleState(), within, Snapshot()).code is Code.SUCCESS
