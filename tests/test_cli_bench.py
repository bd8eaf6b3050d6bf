"""`aisched bench ...` exits 1 when a correctness row fails, whatever the performance figures say.

The benchmarks themselves are not run: each handler's `run_*_benchmark` is replaced by one that
returns a result built here, clean (every correctness row passes, every performance target
missed) or with one correctness row failing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from aisched.bench.core import CoreBenchmark, _gpu_checks
from aisched.bench.e2e import E2EBenchmark
from aisched.bench.emulator import EmulatorBenchmark
from aisched.bench.faults import FaultRecord, FaultsBenchmark, PolicyRow
from aisched.bench.queue import BurstFigures, BurstRow, QueueBenchmark
from aisched.cli import main
from aisched.framework.types import Gang, GangPlacement, PodInfo, PodPlacement
from aisched.simulator.bench import SimBenchmark, accounting_errors
from aisched.simulator.fairness_figures import FairnessBenchmark, Preemption, RunFigures, TenantFigures
from aisched.simulator.metrics import EventLog
from aisched.simulator.replay import Replay
from aisched.topology import resources


def core() -> CoreBenchmark:
    """Slow and far from the floor, but correct."""
    return CoreBenchmark(
        nodes=10, single_pod_decisions=4, single_pod_decisions_per_s=1.0, single_pod_p50_us=9e5,
        single_pod_p99_us=9e5, floor_us=1.0, floor_ratio=9e5, floor_ratio_mean=9e5, gangs=2,
        gang_decisions_per_s=0.5, gang_p50_ms=2e3, gang_p99_ms=2e3, gang_racks_used_mean=3.0,
        rss_mb=9e3, snapshot_build_s=60.0, snapshot_update_us=1e6, tracing_off_per_s=1.0,
        tracing_disabled_per_s=0.9, tracing_disabled_overhead_pct=11.1, tracing_sampled_per_s=None,
        tracing_sampled_overhead_pct=None, tracing_with_metrics_per_s=None,
        tracing_with_metrics_overhead_pct=None, tracing_spans_exported=0, gpu_conflicts=0,
        gpu_count_mismatches=0, gangs_split=0,
    )  # fmt: skip


def emulator() -> EmulatorBenchmark:
    return EmulatorBenchmark(
        pods=100, concurrency=4, bindings_per_s=1.0, p50_ms=900.0, p99_ms=990.0, watch_events=100,
        bindings_failed=0, pods_seen_bound=100,
    )  # fmt: skip


def e2e() -> E2EBenchmark:
    return E2EBenchmark(
        nodes=20, pods=60, gangs=3, gang_size=8, pods_total=84, pods_bound=84, gangs_bound_whole=3,
        gangs_partly_bound=0, gpu_conflicts=0, pods_bound_per_s=1.0, p50_bind_latency_s=30.0,
        p99_bind_latency_s=90.0, max_bind_latency_s=99.0, wall_s=84.0, concurrency=4,
        emulator_start_s=1.0, scheduler_sync_s=1.0, scheduler_peak_rss_mb=900.0, scheduler_cpu_s=80.0,
        emulator_cpu_s=None, load_cpu_s=1.0, other_cpu_s=None, scheduler_warnings=7,
    )  # fmt: skip


def faults(conflicts: int = 0) -> FaultsBenchmark:
    """Slow to detect and to recover, but nothing given twice."""
    record = FaultRecord("xid", "b0-004", "job-1", 30.0, 90.0, 1, 0.1)
    return FaultsBenchmark(
        (
            PolicyRow(
                "Replace",
                10.0,
                32,
                8,
                (record,),
                gpu_conflicts=conflicts,
                half_bound_gangs=0,
                operator_warnings=3,
            ),
        )
    )


def queue(**figures: Any) -> QueueBenchmark:
    """Far over the ideal makespan and overtaken (targets missed), but correct unless `figures` say."""
    clean = BurstFigures(
        pods=64, makespan_s=90.0, makespan_ratio=1.7, max_overtakes_of_blocked_head=5, overtakes=9,
        overtakes_before_head_created=0, half_bound_gangs=0, gangs_bound=10, gangs_never_bound=0,
        gangs_unfinished=0, gpu_conflicts=0, max_gang_bind_spread_s=0.1, submit_s=1.0,
    )  # fmt: skip
    row = BurstRow(
        strategy="StrictFIFO", reservation=True, nodes=8, gangs=10, waves=2, run_seconds=6.0, seed=1,
        figures=dataclasses.replace(clean, **figures), operator_warnings=0,
    )  # fmt: skip
    return QueueBenchmark(burst=(row,))


def replay(*, allocated: list[int], idle: list[int], capacity: int = 8000) -> Replay:
    log = EventLog()
    for i, (used, free) in enumerate(zip(allocated, idle, strict=True)):
        log.record(arrived=1000 * (i + 1), allocated=used, fragmented=0.0, idle=free)
    return Replay(
        workload="openb_pod_list_small", policy="fgd", seed=42, tune=1.3, capacity_milli=capacity,
        arrived=len(allocated), failed=0, seconds=1.0, log=log,
    )  # fmt: skip


def sim(runs: list[Replay]) -> SimBenchmark:
    document = {"workload": "small", "tune": 1.3, "seeds": [42], "policies": {"fgd": {}}}
    return SimBenchmark(document, "fgd ...", accounting_errors({"fgd": runs}))


def tenant(name: str, *, peak: int, maximum: int = 48) -> TenantFigures:
    return TenantFigures(
        name=name, weight=1.0, guaranteed_gpus=32, max_gpus=maximum, submitted=10, finished=5,
        mean_gpus=20.0, peak_gpus=peak, mean_weighted_share=0.5, violation_gpu_hours=99.0,
        violation_hours=9.0, preempted=0, mean_wait_h=5.0,
    )  # fmt: skip


def run(policy: str, *tenants: TenantFigures, preemptions: tuple[Preemption, ...] = ()) -> RunFigures:
    return RunFigures(
        policy=policy, jain_index=0.2, jain_index_guarantee_share=0.2, guarantee_violation_gpu_hours=99.0,
        guarantee_violation_tenant_hours=9.0, utilisation=0.3, preemptions=len(preemptions),
        gpu_hours_lost=9.0, submitted=20, started=10, finished=10, mean_wait_h=5.0, schedule_calls=30,
        tenants=tenants, preemption_log=preemptions,
    )  # fmt: skip


def fairness(ours: RunFigures | None = None) -> FairnessBenchmark:
    """Targets all missed (Jain 0.2, no fewer violations than the baseline); the baseline, having
    no quota, above a max."""
    ours = ours or run("ours", tenant("a", peak=48), tenant("b", peak=16))
    baseline = run("baseline", tenant("a", peak=64), tenant("b", peak=0))
    return FairnessBenchmark(seed=7, hours=4.0, nodes=8, gpus=64, jobs=20, ours=ours, baseline=baseline)


#: A victim gang of 4 pods of which 3 were evicted and 1 left running.
HALF_EVICTED = Preemption(time=60.0, victim="a/g1", tenant="a", by="b/g2", pods_evicted=3, pods_left=1)


@dataclass(frozen=True)
class Case:
    bench: str
    runner: str  #: the `run_*_benchmark` the handler imports
    clean: Callable[[], Any]
    failing: Callable[[], Any]
    row: str  #: the failed correctness row, as printed


CASES = [
    Case("core", "aisched.bench.core.run_core_benchmark", core,
         lambda: dataclasses.replace(core(), gangs_split=1), "gangs split: 1 of 2 (must be 0)"),
    Case("emulator", "aisched.bench.emulator.run_emulator_benchmark", emulator,
         lambda: dataclasses.replace(emulator(), bindings_failed=3, pods_seen_bound=97),
         "Binding POSTs refused: 3 of 100 (must be 0)"),
    Case("emulator", "aisched.bench.emulator.run_emulator_benchmark", emulator,
         lambda: dataclasses.replace(emulator(), pods_seen_bound=99),
         "pods seen bound by the watcher: 99 of 100"),
    Case("e2e", "aisched.bench.e2e.run_e2e_benchmark", e2e,
         lambda: dataclasses.replace(e2e(), gpu_conflicts=2), "GPUs given twice: 2 (must be 0)"),
    Case("e2e", "aisched.bench.e2e.run_e2e_benchmark", e2e,
         lambda: dataclasses.replace(e2e(), pods_bound=83), "pods bound: 83 of 84"),
    Case("queue", "aisched.bench.queue.run_queue_benchmark", queue, lambda: queue(half_bound_gangs=1),
         "burst StrictFIFO+reservation: half-bound gangs: 1 (must be 0)"),
    Case("queue", "aisched.bench.queue.run_queue_benchmark", queue, lambda: queue(gpu_conflicts=2),
         "burst StrictFIFO+reservation: GPUs given twice: 2 (must be 0)"),
    Case("faults", "aisched.bench.faults.run_faults_benchmark", faults, lambda: faults(conflicts=2),
         "Replace: 2 GPU(s) held by two running pods"),
    Case("sim", "aisched.simulator.bench.run_sim_benchmark",
         lambda: sim([replay(allocated=[1000, 3000], idle=[7000, 5000])]),
         lambda: sim([replay(allocated=[1000, 3000], idle=[7000, 6000])]),
         "fgd seed 42: GPU milli placed + idle != capacity after 1 pod(s) (GPUs over-committed or lost)"),
    Case("fairness", "aisched.simulator.fairness.run_fairness_benchmark", fairness,
         lambda: fairness(run("ours", tenant("a", peak=50), tenant("b", peak=8))),
         "ours: tenant a held 50 GPUs, over its max of 48"),
    Case("fairness", "aisched.simulator.fairness.run_fairness_benchmark", fairness,
         lambda: fairness(run("ours", tenant("a", peak=8), tenant("b", peak=8), preemptions=(HALF_EVICTED,))),
         "ours: 1 preemption(s) left part of the victim gang running"),
]  # fmt: skip
IDS = [f"{case.bench}-{i}" for i, case in enumerate(CASES)]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_failed_correctness_row_exits_1_and_is_printed_on_stderr(
    case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(case.runner, lambda **_: case.failing())

    assert main(["bench", case.bench, "--json"]) == 1

    captured = capsys.readouterr()
    assert json.loads(captured.out)["failed_checks"] == [case.row]
    assert captured.err.splitlines()[-1] == f"aisched bench {case.bench}: FAILED: {case.row}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_table_alone_still_names_the_failed_row(
    case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(case.runner, lambda **_: case.failing())

    assert main(["bench", case.bench]) == 1

    captured = capsys.readouterr()
    assert captured.out == case.failing().table() + "\n"
    assert captured.err == f"aisched bench {case.bench}: FAILED: {case.row}\n"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_missed_performance_targets_alone_exit_0(
    case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(case.runner, lambda **_: case.clean())

    assert main(["bench", case.bench, "--json"]) == 0

    captured = capsys.readouterr()
    assert json.loads(captured.out)["failed_checks"] == []
    assert "FAILED" not in captured.err


def test_every_failed_row_is_printed_not_only_the_first(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = dataclasses.replace(e2e(), pods_bound=80, gangs_bound_whole=2, gangs_partly_bound=1)
    monkeypatch.setattr("aisched.bench.e2e.run_e2e_benchmark", lambda **_: broken)

    assert main(["bench", "e2e", "--json"]) == 1

    failed = json.loads(capsys.readouterr().out)["failed_checks"]
    assert failed == [
        "pods bound: 80 of 84",
        "gangs bound whole: 2 of 3",
        "gangs partly bound: 1 (must be 0)",
    ]


def test_an_emulator_run_with_no_post_answered_reports_null_latencies() -> None:
    nothing = dataclasses.replace(
        emulator(), p50_ms=math.nan, p99_ms=math.nan, bindings_failed=100, pods_seen_bound=0
    )

    assert nothing.to_json()["p99_ms"] is None
    assert nothing.failures() == ["Binding POSTs refused: 100 of 100 (must be 0)"]


def placed(gang: Gang, *where: tuple[int, int]) -> GangPlacement:
    """`gang`'s members, in order, on (node slot, GPU mask)."""
    pods = tuple(
        PodPlacement(pod=pod, node=f"node-{slot}", slot=slot, gpu_mask=mask)
        for pod, (slot, mask) in zip(gang.members, where, strict=True)
    )
    return GangPlacement(gang=gang, pods=pods)


def pod(name: str, gpus: int) -> PodInfo:
    return PodInfo(namespace="bench", name=name, requests={resources.GPU: gpus, resources.PODS: 1})


def test_the_core_check_counts_a_gpu_given_twice_and_a_pod_short_of_gpus() -> None:
    first = placed(Gang.of(pod("a", 2)), (0, 0b0011))
    same_node_other_gpus = placed(Gang.of(pod("b", 2)), (0, 0b1100))
    other_node_same_index = placed(Gang.of(pod("c", 1)), (1, 0b0001))
    assert _gpu_checks([first, same_node_other_gpus, other_node_same_index]) == (0, 0)

    overlapping = placed(Gang.of(pod("d", 2)), (0, 0b0110))
    short = placed(Gang.of(pod("e", 4)), (1, 0b0110))
    assert _gpu_checks([first, same_node_other_gpus, overlapping, short]) == (2, 1)


def test_the_sim_check_names_each_replay_whose_gpus_do_not_add_up() -> None:
    clean = replay(allocated=[1000, 2000], idle=[7000, 6000])
    over_committed = dataclasses.replace(
        replay(allocated=[1000, 2000, 3000], idle=[7000, 7000, 7000]), policy="bestfit", seed=43
    )

    assert accounting_errors({"fgd": [clean], "bestfit": [over_committed]}) == {"bestfit seed 43": 2}
