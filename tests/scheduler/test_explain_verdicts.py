"""Why a gang waits, as fields: per-reason node counts, topology deficits, scattered free GPUs,
the quota's figures and what would free it, and what preemption did about it."""

from __future__ import annotations

from aisched.cache import PodUsage
from aisched.framework.types import Gang
from aisched.queue.policy import QueueingPolicy
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant
from aisched.scheduler import Scheduler
from aisched.scheduler.explain import quota_verdict
from aisched.scheduler.queueing import explain, gang_queue, turned_away
from aisched.topology import resources
from tests.support.core import gang, node, pod, scheduler

GPU = 1000


def _occupy(sched: Scheduler, name: str, node_name: str, gpus: int) -> None:
    """A bound pod holding `gpus` GPUs of `node_name`."""
    sched.cache.set_pod(
        PodUsage(
            key=f"other/{name}",
            node=node_name,
            requests={resources.CPU: 1000, resources.PODS: 1, resources.GPU: gpus},
            gpu_mask=(1 << gpus) - 1,
        )
    )


def test_free_gpus_scattered_over_nodes_are_called_fragmentation() -> None:
    sched = scheduler([node(f"n{i}", rack="r1") for i in range(4)])
    for i in range(4):
        _occupy(sched, f"x{i}", f"n{i}", 5)  # 3 free on each node: 12 free, no node with 4

    result = sched.schedule(gang("g", [pod("a", gpus=4), pod("b", gpus=4)]))

    assert result.verdict is not None
    assert result.verdict.nodes == 4
    assert result.verdict.feasible == 0
    assert result.verdict.free_gpus == 12
    assert result.verdict.fragmentation == (
        "12 GPUs free, enough for the 8 asked, but 4 node(s) have fewer than 4 free each: "
        "room for 0 of 2 pod(s) of 4 GPUs"
    )
    assert dict(result.verdict.reasons) == {"Insufficient nvidia.com/gpu": 4}


def test_too_few_gpus_in_all_is_not_fragmentation() -> None:
    sched = scheduler([node(f"n{i}", rack="r1") for i in range(2)])
    _occupy(sched, "x", "n0", 8)

    result = sched.schedule(gang("g", [pod("a", gpus=8), pod("b", gpus=8)]))

    assert result.verdict is not None
    assert result.verdict.fragmentation == ""
    assert result.verdict.free_gpus == 8
    assert result.verdict.feasible == 1


def test_a_topology_deficit_is_kept_as_a_field() -> None:
    sched = scheduler([node(f"n{i}", rack=f"r{i // 2}") for i in range(4)])

    result = sched.schedule(
        gang("g", [pod(f"p{i}", gpus=8) for i in range(3)], policy="Required", level="rack")
    )

    assert result.verdict is not None
    assert result.verdict.topology == ("needs 24 GPUs in one rack; largest rack has 16 free",)
    assert result.verdict.feasible == 4
    assert result.preemption is not None
    assert not result.preemption.nominated
    assert result.preemption.reason == "no running gang may be preempted to make room"


def test_a_pod_no_node_could_ever_take_says_preemption_cannot_help() -> None:
    sched = scheduler([node("n0")])

    result = sched.schedule(gang("g", [pod("a", gpus=1, gpu_models=("B200",))]))

    assert result.preemption is not None
    assert result.preemption.reason.startswith("preemption cannot help")
    assert result.verdict is not None
    assert dict(result.verdict.reasons) == {"GPU model not allowed": 1}


def _tenants(*, used_by_a: int) -> tuple[Scheduler, QuotaLedger]:
    ledger = QuotaLedger(
        [
            Tenant(name="a", namespaces=frozenset({"a"}), cohort="pool", guaranteed={GPU_MILLI: 8 * GPU},
                   maximum={GPU_MILLI: 16 * GPU}),
            Tenant(name="b", namespaces=frozenset({"b"}), cohort="pool", guaranteed={GPU_MILLI: 8 * GPU}),
        ],
        capacity={GPU_MILLI: 32 * GPU},
    )  # fmt: skip
    sched = Scheduler(cache=scheduler([node(f"n{i}") for i in range(4)]).cache, ledger=ledger)
    for i in range(used_by_a // 8):
        placed = sched.schedule(
            Gang(key=f"a/run{i}", members=[pod(f"run{i}", gpus=8, namespace="a")], min_member=1)
        )
        assert placed.placement is not None
    return sched, ledger


def test_a_gang_over_its_tenants_max_says_how_much_must_end() -> None:
    sched, ledger = _tenants(used_by_a=16)
    waiting = Gang(key="a/more", members=[pod("more", gpus=8, namespace="a")], min_member=1)

    result = sched.schedule(waiting)
    verdict = quota_verdict(ledger, waiting, blocked=result.message)

    assert result.status.plugin == "Quota"
    assert verdict.tenant == "a"
    assert (verdict.asked, verdict.in_use, verdict.guaranteed, verdict.maximum) == (8, 16, 8, 16)
    assert verdict.borrowed == 8
    assert verdict.cohort == "pool"
    assert verdict.blocked
    assert (
        verdict.would_free
        == "8 GPU(s) of tenant a's running jobs ending, or a higher limit in its TenantQuota"
    )


def test_the_queue_keeps_the_last_verdict_and_explains_with_the_quota_as_it_stands() -> None:
    sched, _ = _tenants(used_by_a=16)
    queue = gang_queue(sched, lambda: 0.0, lambda g: ("tenant/a", QueueingPolicy()))
    waiting = Gang(key="a/more", members=[pod("more", gpus=8, namespace="a")], min_member=1)
    queue.add(waiting)
    popped = queue.pop()
    assert popped is not None

    turned_away(sched, queue, popped, sched.schedule(popped))
    found = explain(sched, queue, popped.key)

    assert found is not None
    assert found.quota.blocked
    assert found.placement is None  # a PreFilter said no before any node was looked at
    assert found.preemption is not None
    queue.backoff(popped, reason="binding lost")
    assert explain(sched, queue, popped.key) is None  # an error says nothing about the cluster


def test_a_gang_that_must_borrow_says_how_much_more_the_cohort_must_leave_unused() -> None:
    sched, ledger = _tenants(used_by_a=8)
    members = [pod("b-run", gpus=8, namespace="b")]
    assert sched.schedule(Gang(key="b/run", members=members, min_member=1)).placement is not None
    waiting = Gang(key="a/more", members=[pod("more", gpus=8, namespace="a")], min_member=1)

    result = sched.schedule(waiting)
    verdict = quota_verdict(ledger, waiting, blocked=result.message)

    assert "needs to borrow 8 nvidia.com/gpu" in result.message
    assert ledger.borrowable("a", GPU_MILLI) == 0
    assert verdict.would_free == (
        "8 more GPU(s) left unused in cohort pool: jobs of its tenants ending (tenant a's own hold 8)"
    )
