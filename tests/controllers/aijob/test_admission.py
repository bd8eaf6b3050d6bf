"""Admission before pods: a job's pods are made only once its tenant's quota holds the whole job."""

from __future__ import annotations

from aisched.controllers.aijob.admission import Admissions, Ask, ClusterGpus, Demand, Verdict
from aisched.quota import GPU_MILLI, Tenant

GPU = 1000


def gpus(n: int, *, pod: int = 8, priority: int = 0, preemptible: bool = True) -> Demand:
    return Demand(total={GPU_MILLI: n * GPU}, pod_gpus=pod, priority=priority, preemptible=preemptible)


def admissions(
    *, limit: int = 16, strategy: str = "BestEffortFIFO", within: str = "LowerPriority", cluster: int = 64
) -> _Book:
    tenants = {
        "a": Tenant(
            name="a", namespaces=frozenset({"ml"}), guaranteed={GPU_MILLI: limit * GPU}, within_tenant=within
        )
    }
    return _Book(
        tenants.get,
        cluster=lambda models: ClusterGpus(total=cluster if models is None else 0, largest_node=8),
        strategy=lambda tenant: strategy,
    )


def order(n: int, key: str) -> tuple[float, int, str]:
    return (100.0, n, key)


class _Book(Admissions):
    """`check` as the tests call it: a job by key and order, uid `u-<key>`, generation 1."""

    def ask(
        self,
        key: str,
        tenant: str | None,
        demand: Demand,
        place: tuple[float, int, str],
        *,
        generation: int = 1,
        uid: str = "",
    ) -> Verdict:
        return self.check(Ask(key, uid or f"u-{key}", generation, tenant, place, lambda: demand))


def test_a_job_larger_than_its_tenant_may_ever_use_is_refused_for_good_and_reserves_nothing() -> None:
    book = admissions(limit=16)
    verdict = book.ask("ml/huge", "a", gpus(10_000, pod=1), order(1, "ml/huge"))
    assert verdict.outcome == "ExceedsQuota"
    assert verdict.standing
    assert (
        verdict.message
        == "the job asks 10000 nvidia.com/gpu, more than tenant a may ever use (16 nvidia.com/gpu)"
    )
    assert book.committed("a") == {}
    assert book.waiting("a") == []
    assert book.ask("ml/small", "a", gpus(2), order(2, "ml/small")).admitted


def test_a_job_larger_than_the_cluster_or_a_pod_larger_than_any_node_is_refused() -> None:
    book = admissions(limit=1_000, cluster=64)
    over = book.ask("ml/x", "a", gpus(128), order(1, "ml/x"))
    assert (over.outcome, over.message) == (
        "ExceedsCluster",
        "the job asks 128 nvidia.com/gpu; the cluster has 64 GPUs",
    )
    wide = book.ask("ml/y", "a", gpus(9, pod=9), order(2, "ml/y"))
    assert (wide.outcome, wide.message) == (
        "ExceedsCluster",
        "a pod asks 9 GPUs; no node has more than 8 GPUs",
    )
    model = Demand(total={GPU_MILLI: 8 * GPU}, pod_gpus=8, models=frozenset({"B300"}))
    assert book.ask("ml/z", "a", model, order(3, "ml/z")).message == (
        "the job asks 8 nvidia.com/gpu; the cluster has 0 GPUs of model B300"
    )


def test_until_the_nodes_are_known_the_cluster_refuses_nothing() -> None:
    book = _Book(lambda name: None, cluster=lambda models: None)
    assert book.ask("ml/x", None, gpus(10_000), order(1, "ml/x")).admitted


def test_jobs_past_the_tenants_limit_wait_and_are_named_again_when_quota_comes_back() -> None:
    book = admissions(limit=16)
    assert book.ask("ml/1", "a", gpus(8), order(1, "ml/1")).admitted
    assert book.ask("ml/2", "a", gpus(8), order(2, "ml/2")).admitted
    third = book.ask("ml/3", "a", gpus(8), order(3, "ml/3"))
    assert third.outcome == "Waiting"
    assert third.message == (
        "waiting for quota: tenant a's admitted jobs ask 16 nvidia.com/gpu and this one 8 nvidia.com/gpu, "
        "over its limit of 16 nvidia.com/gpu"
    )
    small = book.ask("ml/4", "a", gpus(0, pod=0), order(4, "ml/4"))
    assert small.admitted, "BestEffortFIFO: a later job that fits goes ahead"
    assert book.waiting("a") == ["ml/3"]
    book.release("ml/1")
    assert book.marks == ["ml/3"]
    assert book.ask("ml/3", "a", gpus(8), order(3, "ml/3")).admitted
    assert book.committed("a") == {GPU_MILLI: 16 * GPU}


def test_under_strict_fifo_an_earlier_waiting_job_holds_back_the_later_ones() -> None:
    book = admissions(limit=16, strategy="StrictFIFO")
    assert book.ask("ml/1", "a", gpus(16), order(1, "ml/1")).admitted
    assert book.ask("ml/2", "a", gpus(16), order(2, "ml/2")).outcome == "Waiting"
    later = book.ask("ml/3", "a", gpus(0, pod=0), order(3, "ml/3"))
    assert later.outcome == "Waiting"
    assert "behind job ml/2" in later.message
    book.release("ml/1")
    assert book.marks == ["ml/2"], "only the first in line is looked at"
    assert book.ask("ml/2", "a", gpus(16), order(2, "ml/2")).admitted
    assert book.marks == ["ml/2", "ml/3"], "admitted, the first lets the next in line be asked"


def test_a_higher_priority_job_is_admitted_over_preemptible_lower_priority_ones_only() -> None:
    book = admissions(limit=16)
    assert book.ask("ml/low", "a", gpus(16, priority=1), order(1, "ml/low")).admitted
    assert book.ask("ml/high", "a", gpus(16, priority=100), order(2, "ml/high")).admitted
    # The same priority yields nothing, and neither does a job that may not be preempted.
    assert book.ask("ml/peer", "a", gpus(16, priority=1), order(3, "ml/peer")).outcome == "Waiting"
    guarded = admissions(limit=16)
    assert guarded.ask("ml/low", "a", gpus(16, priority=1, preemptible=False), order(1, "ml/low")).admitted
    assert guarded.ask("ml/high", "a", gpus(16, priority=100), order(2, "ml/high")).outcome == "Waiting"
    never = admissions(limit=16, within="Never")
    assert never.ask("ml/low", "a", gpus(16, priority=1), order(1, "ml/low")).admitted
    assert never.ask("ml/high", "a", gpus(16, priority=100), order(2, "ml/high")).outcome == "Waiting"


def test_an_admitted_job_stays_admitted_and_a_released_one_gives_its_quota_back_once() -> None:
    book = admissions(limit=16)
    assert book.ask("ml/1", "a", gpus(8), order(1, "ml/1")).admitted
    assert book.ask("ml/1", "a", gpus(8), order(1, "ml/1")).admitted  # asked again: no second charge
    assert book.committed("a") == {GPU_MILLI: 8 * GPU}
    book.release("ml/1")
    book.release("ml/1")
    assert book.committed("a") == {}


def test_a_job_found_with_pods_after_a_restart_counts_before_any_waiting_one_is_admitted() -> None:
    book = admissions(limit=16)
    book.admit("ml/running", "u-ml/running", 1, "a", gpus(16))
    assert book.ask("ml/new", "a", gpus(8), order(2, "ml/new")).outcome == "Waiting"


def test_under_strict_fifo_the_next_in_line_is_asked_when_the_first_leaves_unadmitted() -> None:
    book = admissions(limit=16, strategy="StrictFIFO")
    assert book.ask("ml/1", "a", gpus(8), order(1, "ml/1")).admitted
    assert book.ask("ml/2", "a", gpus(16), order(2, "ml/2")).outcome == "Waiting"
    assert book.ask("ml/3", "a", gpus(8), order(3, "ml/3")).outcome == "Waiting"
    book.marks.clear()
    book.release("ml/2")  # deleted, timed out or refused while it waited
    assert book.marks == ["ml/3"]
    assert book.ask("ml/3", "a", gpus(8), order(3, "ml/3")).admitted


def test_an_edited_spec_is_asked_about_again_and_the_old_one_counts_until_then() -> None:
    book = admissions(limit=16)
    assert book.ask("ml/a", "a", gpus(8), order(1, "ml/a"), generation=1).admitted
    grown = book.ask("ml/a", "a", gpus(1004, pod=1), order(1, "ml/a"), generation=2)
    assert grown.outcome == "ExceedsQuota"
    assert book.committed("a") == {GPU_MILLI: 8 * GPU}, "its running spec stays counted"
    assert book.ask("ml/b", "a", gpus(8), order(2, "ml/b")).admitted
    assert book.ask("ml/a", "a", gpus(12), order(1, "ml/a"), generation=3).outcome == "Waiting"
    assert book.ask("ml/a", "a", gpus(4), order(1, "ml/a"), generation=4).admitted, (
        "its own old spec is not in its way"
    )
    assert book.committed("a") == {GPU_MILLI: 12 * GPU}


def test_a_job_made_again_under_the_same_name_is_a_new_job() -> None:
    book = admissions(limit=16)
    assert book.ask("ml/a", "a", gpus(8), order(1, "ml/a"), uid="first").admitted
    again = book.ask("ml/a", "a", gpus(256, pod=1), order(2, "ml/a"), uid="second")
    assert again.outcome == "ExceedsQuota", "the old job's admission is not inherited"
    assert book.committed("a") == {}
