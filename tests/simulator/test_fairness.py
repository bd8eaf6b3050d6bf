"""The fairness simulation: quotas, fair share and preemption against priority FIFO, on a virtual clock."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest

from aisched.cli import main
from aisched.quota import GPU_MILLI, Tenant
from aisched.simulator.fairness import RunFigures, fair_allocation, jain, run_fairness_benchmark, simulate
from aisched.simulator.tenants import (
    COHORT,
    Job,
    TenantProfile,
    default_tenants,
    generate_jobs,
    quota_tenants,
    rack_cluster,
)

HOUR = 3600.0


def team(name: str, *, guaranteed: int, maximum: int) -> Tenant:
    return Tenant(
        name=name,
        namespaces=frozenset({name}),
        cohort=COHORT,
        guaranteed={GPU_MILLI: guaranteed * 1000},
        maximum={GPU_MILLI: maximum * 1000},
        min_runtime_seconds=900,
    )


def two_tenant_run(policy: str) -> RunFigures:
    """Two teams guaranteed 8 GPUs each of 16: `a` borrows all 16 at once, `b` asks for its 8 later."""
    tenants = [team("a", guaranteed=8, maximum=16), team("b", guaranteed=8, maximum=16)]
    jobs = [
        Job("a-long", "a", 0.0, 2, 4, 10 * HOUR),  # a gang of two pods
        Job("a-other", "a", 0.0, 1, 8, 10 * HOUR),
        Job("b-job", "b", HOUR, 1, 8, HOUR),
    ]
    return simulate(
        jobs=jobs,
        tenants=tenants,
        nodes=rack_cluster(2),
        policy="ours" if policy == "ours" else "baseline",
        hours=12,
    )


def by_name(run: RunFigures, name: str) -> dict[str, object]:
    return next(t.__dict__ for t in run.tenants if t.name == name)


def test_jain_index_is_one_for_equal_shares_and_one_over_n_when_one_has_everything() -> None:
    assert jain([0.7, 0.7, 0.7, 0.7]) == pytest.approx(1.0)
    assert jain([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain([1.0, 2.0, 3.0]) == pytest.approx(36 / 42)  # (1+2+3)² / (3 × (1+4+9))


def test_fair_allocation_gives_what_a_small_demand_leaves_to_the_others_by_weight() -> None:
    allocation = fair_allocation([10, 100, 100], [1, 1, 2], 110)

    assert allocation == pytest.approx([10, 100 / 3, 200 / 3])


def test_a_tenant_below_its_guarantee_gets_it_back_by_preemption_in_ours_not_in_the_baseline() -> None:
    ours, baseline = two_tenant_run("ours"), two_tenant_run("baseline")

    assert by_name(ours, "b")["mean_wait_h"] == 0.0  # reclaimed at arrival
    assert by_name(ours, "b")["violation_gpu_hours"] == 0.0
    assert ours.preemptions == 1
    assert by_name(baseline, "b")["mean_wait_h"] == pytest.approx(9.0)  # waits for a's 10 h job
    assert by_name(baseline, "b")["violation_gpu_hours"] == pytest.approx(8 * 9.0)
    assert baseline.preemptions == 0


def test_victims_are_whole_gangs_of_the_borrowing_tenant_evicted_after_their_min_runtime() -> None:
    (preemption,) = two_tenant_run("ours").preemption_log

    assert preemption.tenant == "a"
    assert preemption.by == "b-job"
    evicted_whole = {"a-long": 2, "a-other": 1}[preemption.victim]
    assert (preemption.pods_evicted, preemption.pods_left) == (evicted_whole, 0)
    assert preemption.time >= 900


def small_workload(seed: int, **changes: float) -> tuple[list[Tenant], list[Job]]:
    profiles = [dataclasses.replace(p, **changes) for p in default_tenants()]  # type: ignore[arg-type]
    return quota_tenants(profiles, total_gpus=128), generate_jobs(
        profiles, total_gpus=128, hours=24, seed=seed
    )


def test_no_tenant_exceeds_its_max_in_ours_though_it_borrows() -> None:
    profiles = [
        TenantProfile(name="big", weight=3, guarantee=0.75, maximum=0.85, load=2.0),
        TenantProfile(name="small", weight=1, guarantee=0.25, maximum=0.4, load=2.0),
    ]
    tenants = quota_tenants(profiles, total_gpus=128)
    jobs = generate_jobs(profiles, total_gpus=128, hours=24, seed=3)

    ours = simulate(jobs=jobs, tenants=tenants, nodes=rack_cluster(16), policy="ours", hours=24)

    assert all(t.peak_gpus <= t.max_gpus for t in ours.tenants)
    assert any(t.peak_gpus > t.guaranteed_gpus for t in ours.tenants)  # borrowing did happen


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    tenants, jobs = small_workload(11)
    _, other = small_workload(12)
    nodes = rack_cluster(16)

    first = simulate(jobs=jobs, tenants=tenants, nodes=nodes, policy="ours", hours=24)
    again = simulate(jobs=jobs, tenants=tenants, nodes=nodes, policy="ours", hours=24)
    different = simulate(jobs=other, tenants=tenants, nodes=nodes, policy="ours", hours=24)

    assert first.to_json() == again.to_json()
    assert first.preemption_log == again.preemption_log
    assert different.to_json() != first.to_json()


def steady_jobs(seed: int, *, hours: float, total_gpus: int) -> list[Job]:
    """Every tenant always on, asking for 1.5 × its guarantee in 4-GPU pods of 10 min to 8 h."""
    rng = np.random.default_rng(seed)
    jobs: list[Job] = []
    for profile in default_tenants():
        rate = 1.5 * profile.guarantee * total_gpus / (4 * 2 * HOUR)
        arrival = float(rng.exponential(1 / rate))
        while arrival < hours * HOUR:
            work = float(np.clip(rng.lognormal(np.log(1.5 * HOUR), 0.6), 600, 8 * HOUR))
            jobs.append(Job(f"{profile.name}-{len(jobs):04d}", profile.name, arrival, 1, 4, work))
            arrival += float(rng.exponential(1 / rate))
    return sorted(jobs, key=lambda j: (j.arrival, j.key))


@pytest.mark.parametrize("seed", [1, 3])
def test_preemptions_settle_in_a_steady_workload(seed: int) -> None:
    """Every tenant always wants more than its guarantee: early arrivals borrow and are reclaimed,
    then each freed GPU goes to the tenant furthest below its share and nobody borrows again."""
    hours = 16.0
    tenants = quota_tenants(default_tenants(), total_gpus=128)
    jobs = steady_jobs(seed, hours=hours, total_gpus=128)

    run = simulate(jobs=jobs, tenants=tenants, nodes=rack_cluster(16), policy="ours", hours=hours)

    first = sum(1 for p in run.preemption_log if p.time < hours * HOUR / 2)
    second = len(run.preemption_log) - first
    assert first > 0  # the start, when early arrivals borrow, does need reclaiming
    assert second <= first


def test_the_bench_command_prints_the_issue_keys_and_both_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "fairness", "--hours", "4", "--seed", "1", "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    for key in ("jain_index", "guarantee_violation_ratio", "utilisation_delta_pts", "preemptions"):
        assert key in document
    assert {t["name"] for t in document["ours"]["tenants"]} == {"alpha", "beta", "gamma", "delta"}
    assert document["baseline"]["preemptions"] == 0


def test_the_benchmark_table_states_the_targets() -> None:
    text = run_fairness_benchmark(seed=1, hours=2, nodes=16).table()

    assert ">= 0.9" in text
    assert "<= 0.5" in text
    assert io.StringIO(text).readline().startswith("16 nodes, 128 GPUs")
