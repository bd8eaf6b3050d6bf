"""`aisched bench queue`: the burst's generator, the figures made of hand-made timelines, the
report's JSON shape, and one tiny run against the real processes (no timing asserted)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from aisched.api.validation import validate_manifest
from aisched.bench.queue import BurstFigures, BurstRow, QueueBenchmark, aijob_manifest, burst, burst_figures
from aisched.bench.queue.figures import BurstSightings, PodSightings, Seen, gpu_conflicts, overtakes
from aisched.bench.queue.run import STRATEGIES, parse_strategies
from aisched.bench.queue.trace import TraceRow, TraceScenario, _Waits

#: What every burst row of the JSON holds.
ROW_KEYS = {
    "strategy",
    "reservation",
    "nodes",
    "gangs",
    "waves",
    "run_seconds",
    "makespan_s",
    "makespan_ratio",
    "max_overtakes_of_blocked_head",
    "half_bound_gangs",
    "gangs_never_bound",
    "gpu_conflicts",
    "meets_target",
}

# -- the burst -----------------------------------------------------------------------------------


def test_each_wave_of_the_burst_fills_the_cluster_exactly_with_jobs_of_one_to_all_nodes() -> None:
    scenario = burst(nodes=32, waves=9, run_seconds=6.0, seed=1)

    assert [job.index for job in scenario.jobs] == list(range(len(scenario.jobs)))
    waves = [[job.size for job in group] for _, group in itertools.groupby(scenario.jobs, lambda j: j.wave)]
    assert len(waves) == 9
    assert all(sum(sizes) == 32 for sizes in waves)
    assert all(1 <= size <= 32 for sizes in waves for size in sizes)
    assert 40 <= len(scenario.jobs) <= 60
    assert len({size for sizes in waves for size in sizes}) > 8  # mixed sizes
    assert scenario.pods == 9 * 32
    assert scenario.ideal_makespan_s == 54.0


def test_every_other_wave_puts_its_biggest_job_last() -> None:
    scenario = burst(nodes=32, waves=9, run_seconds=6.0, seed=1)
    for wave in range(1, 9, 2):
        sizes = [job.size for job in scenario.jobs if job.wave == wave]
        assert len(sizes) >= 2
        assert sizes[-1] == max(sizes)


def test_the_same_seed_gives_the_same_burst_and_another_seed_another() -> None:
    first = burst(nodes=32, waves=9, run_seconds=6.0, seed=1)

    assert burst(nodes=32, waves=9, run_seconds=6.0, seed=1) == first
    assert burst(nodes=32, waves=9, run_seconds=6.0, seed=2).jobs != first.jobs


def test_job_names_are_unique_and_do_not_sort_in_submission_order() -> None:
    names = [job.name for job in burst(nodes=32, waves=9, run_seconds=6.0, seed=1).jobs]

    assert len(set(names)) == len(names)
    assert sorted(names) != names


def test_a_cluster_of_one_node_gets_one_job_per_wave() -> None:
    assert [job.size for job in burst(nodes=1, waves=3, run_seconds=1.0, seed=5).jobs] == [1, 1, 1]


def test_the_burst_refuses_an_empty_cluster_and_a_run_time_of_zero() -> None:
    with pytest.raises(ValueError, match="positive"):
        burst(nodes=0, waves=9, run_seconds=6.0, seed=1)
    with pytest.raises(ValueError, match="positive"):
        burst(nodes=32, waves=9, run_seconds=0.0, seed=1)


def test_a_job_asks_for_whole_nodes_runs_the_burst_time_and_has_twice_that_as_its_limit() -> None:
    scenario = burst(nodes=32, waves=2, run_seconds=6.0, seed=1)
    job = max(scenario.jobs, key=lambda j: j.size)

    manifest = aijob_manifest(job, scenario, namespace="queue-burst")

    assert validate_manifest(manifest) == []
    spec = manifest["spec"]
    assert spec["runtimeLimitSeconds"] == 12
    assert spec["restart"] == {"policy": "Never"}
    (role,) = spec["replicas"]
    assert role["count"] == job.size
    assert role["template"]["metadata"]["annotations"] == {"aisched.io/sim-duration": "6"}
    (container,) = role["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert burst(nodes=4, waves=1, run_seconds=5.5, seed=1).runtime_limit_seconds == 11


# -- overtakes -----------------------------------------------------------------------------------


def at(order: int) -> Seen:
    """A moment: its order in the stream, and as many seconds after the epoch."""
    return Seen(order=order, at=float(order))


def test_jobs_starting_in_submission_order_overtake_no_one() -> None:
    assert overtakes([at(1), at(2), at(3)], [at(0)] * 3) == []


def test_a_job_starting_while_an_earlier_one_waits_overtakes_that_head() -> None:
    found = overtakes([at(1), at(5), at(3)], [at(0)] * 3)

    assert [(o.head, o.by) for o in found] == [(1, 2)]


def test_only_the_head_is_overtaken_not_every_job_waiting_behind_it() -> None:
    # Jobs 1 and 2 both wait; 3 and 4 start: each passes the head, job 1, and no one else.
    found = overtakes([at(1), at(9), at(10), at(3), at(4)], [at(0)] * 5)

    assert [(o.head, o.by) for o in found] == [(1, 3), (1, 4)]


def test_once_the_head_starts_the_next_waiting_job_is_the_head() -> None:
    # 0 waits for 2 and 3; once 0 starts, 1 is the head and 4 passes it.
    found = overtakes([at(5), at(9), at(1), at(2), at(6)], [at(0)] * 5)

    assert [(o.head, o.by) for o in found] == [(0, 2), (0, 3), (1, 4)]


def test_a_job_that_never_starts_is_overtaken_by_every_later_one() -> None:
    found = overtakes([at(1), None, at(2), at(3)], [at(0)] * 4)

    assert [(o.head, o.by) for o in found] == [(1, 2), (1, 3)]


def test_an_overtake_before_the_heads_pods_all_existed_is_told_apart() -> None:
    found = overtakes([at(9), at(2), at(4)], [at(5), at(1), at(1)])

    assert [(o.head, o.by, o.head_created) for o in found] == [(0, 1, False), (0, 2, False)]
    later = overtakes([at(9), at(2), at(4)], [at(3), at(1), at(1)])
    assert [o.head_created for o in later] == [False, True]


# -- the figures of a run ------------------------------------------------------------------------

#: Two waves of one node each on a one-node cluster, 10 s each: ideal makespan 20 s.
TWO_WAVES = burst(nodes=1, waves=2, run_seconds=10.0, seed=3)


def pod(job: int, *, created: float, bound: float | None, ended: float | None, **kw: Any) -> PodSightings:
    """A pod of `TWO_WAVES.jobs[job]` on node n0, its moments ordered by their times."""

    def seen(t: float | None) -> Seen | None:
        return None if t is None else Seen(order=round(t * 1000), at=1000.0 + t)

    made = seen(created)
    assert made is not None
    return PodSightings(
        job=TWO_WAVES.jobs[job].name,
        created=made,
        bound=seen(bound),
        node=kw.get("node", "n0"),
        gpus=kw.get("gpus", ("GPU-0",)),
        ended=seen(ended),
        phase=kw.get("phase", "Pending" if ended is None else "Succeeded"),
    )


def figures(*pods: PodSightings, posted: tuple[float, ...] = (1000.0, 1000.5)) -> BurstFigures:
    return burst_figures(
        TWO_WAVES,
        posted=list(posted),
        answered=posted[-1] + 0.1,
        pods={f"p{i}": p for i, p in enumerate(pods)},
    )


def test_the_makespan_runs_from_the_first_post_to_the_last_end_against_the_waves_back_to_back() -> None:
    result = figures(
        pod(0, created=0.2, bound=0.3, ended=10.3),
        pod(1, created=0.7, bound=10.4, ended=20.4),
    )

    assert result.makespan_s == pytest.approx(20.4)
    assert result.makespan_ratio == pytest.approx(20.4 / 20.0)
    assert result.submit_s == pytest.approx(0.6)
    assert (result.gangs_bound, result.gangs_never_bound, result.gangs_unfinished) == (2, 0, 0)
    assert (result.half_bound_gangs, result.gpu_conflicts, result.overtakes) == (0, 0, 0)


def test_a_job_left_unbound_has_no_makespan_and_counts_as_never_bound() -> None:
    result = figures(pod(0, created=0.2, bound=0.3, ended=10.3), pod(1, created=0.7, bound=None, ended=None))

    assert math.isnan(result.makespan_s)
    assert (result.gangs_never_bound, result.gangs_unfinished) == (1, 1)


def test_a_failed_pod_leaves_the_makespan_unmeasured() -> None:
    result = figures(
        pod(0, created=0.2, bound=0.3, ended=10.3, phase="Failed"),
        pod(1, created=0.7, bound=10.4, ended=20.4),
    )

    assert math.isnan(result.makespan_s)
    assert result.gangs_unfinished == 1


def test_a_gang_bound_over_more_than_a_second_is_half_bound() -> None:
    scenario = burst(nodes=32, waves=1, run_seconds=10.0, seed=0)
    job = max(scenario.jobs, key=lambda j: j.size)
    base = 1000.0

    def member(bound: float | None) -> PodSightings:
        at_ = None if bound is None else Seen(order=round(bound * 1000), at=base + bound)
        return PodSightings(job=job.name, created=Seen(order=1, at=base), bound=at_, node="n", gpus=())

    quick = {f"q{i}": member(0.5 + i * 0.01) for i in range(job.size)}
    slow = {f"s{i}": member(0.5 + i * 1.5) for i in range(job.size)}
    partial = {f"h{i}": member(0.5 if i == 0 else None) for i in range(job.size)}

    def half_bound(pods: dict[str, PodSightings]) -> int:
        return burst_figures(scenario, posted=[base], answered=base, pods=pods).half_bound_gangs

    assert (half_bound(quick), half_bound(slow), half_bound(partial)) == (0, 1, 1)


def test_a_gpu_is_given_twice_only_when_two_pods_hold_it_at_once() -> None:
    first = pod(0, created=0.0, bound=1.0, ended=10.0, gpus=("GPU-0", "GPU-1"))
    after_it = pod(1, created=0.0, bound=10.5, ended=20.0, gpus=("GPU-0", "GPU-1"))
    during_it = pod(1, created=0.0, bound=5.0, ended=20.0, gpus=("GPU-1", "GPU-2"))
    other_node = pod(1, created=0.0, bound=5.0, ended=20.0, node="n1", gpus=("GPU-0",))
    never_ends = pod(0, created=0.0, bound=1.0, ended=None, gpus=("GPU-3",))
    later_same = pod(1, created=0.0, bound=30.0, ended=40.0, gpus=("GPU-3",))

    assert gpu_conflicts([first, after_it, other_node]) == 0
    assert gpu_conflicts([first, during_it]) == 1
    assert gpu_conflicts([never_ends, later_same]) == 1
    unnamed = [pod(0, created=0, bound=1, ended=10, gpus=()), pod(1, created=0, bound=2, ended=9, gpus=())]
    assert gpu_conflicts(unnamed) == 1


def test_the_sightings_keep_each_pods_first_creation_binding_and_end_in_stream_order() -> None:
    scenario = burst(nodes=2, waves=1, run_seconds=1.0, seed=0)
    finished: list[bool] = []
    sightings = BurstSightings(scenario, on_finished=lambda: finished.append(True))

    def state(job: str, name: str, *, node: str = "", phase: str = "Pending") -> dict[str, Any]:
        annotations = {"aisched.io/gpus": "GPU-a,GPU-b"} if node else {}
        return {
            "metadata": {
                "name": name,
                "namespace": "q",
                "labels": {"aisched.io/job": job},
                "annotations": annotations,
            },
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase},
        }

    pods = [(job.name, f"{job.name}-worker-{i}") for job in scenario.jobs for i in range(job.size)]
    sightings.seen(state("someone-else", "x"), 1.0)
    for job, name in pods:
        sightings.seen(state(job, name), 2.0)
    for job, name in pods:
        sightings.seen(state(job, name, node="n0"), 3.0)
        sightings.seen(state(job, name, node="n0", phase="Running"), 3.5)
    for job, name in pods:
        sightings.seen(state(job, name, node="n0", phase="Succeeded"), 4.0)
        sightings.seen(state(job, name, node="n0", phase="Succeeded"), 5.0)

    assert set(sightings.pods) == {name for _, name in pods}
    seen = sightings.pods[pods[-1][1]]
    assert (seen.created.at, seen.bound and seen.bound.at, seen.ended and seen.ended.at) == (2.0, 3.0, 4.0)
    assert (seen.node, seen.gpus, seen.phase) == ("n0", ("GPU-a", "GPU-b"), "Succeeded")
    orders = [
        order for p in sightings.pods.values() for order in (p.created.order, p.bound and p.bound.order)
    ]
    assert len(set(orders)) == len(orders)
    assert finished == [True]


# -- the report ----------------------------------------------------------------------------------


def row(strategy: str = "StrictFIFO", **changes: Any) -> BurstRow:
    clean = figures(pod(0, created=0.2, bound=0.3, ended=10.3), pod(1, created=0.7, bound=10.4, ended=20.4))
    return BurstRow(
        strategy=strategy,
        reservation=True,
        nodes=1,
        gangs=2,
        waves=2,
        run_seconds=10.0,
        seed=3,
        figures=dataclasses.replace(clean, **changes),
        operator_warnings=0,
    )


def test_the_json_holds_a_burst_row_per_strategy_and_an_empty_trace() -> None:
    result = QueueBenchmark(burst=(row("StrictFIFO"), row("BestEffortFIFO")))

    document = json.loads(json.dumps(result.to_json()))

    assert document.keys() == {"burst", "trace"}
    assert document["trace"] == []
    assert [r["strategy"] for r in document["burst"]] == ["StrictFIFO", "BestEffortFIFO"]
    assert all(r.keys() >= ROW_KEYS for r in document["burst"])
    assert document["burst"][0]["makespan_ratio"] == 1.02
    assert result.failures() == []
    table = result.table()
    assert "StrictFIFO+reservation" in table
    assert "BestEffortFIFO+reservation" in table


def test_overtakes_miss_the_target_of_strict_fifo_only_and_never_fail_the_run() -> None:
    strict, best_effort = (
        row("StrictFIFO", max_overtakes_of_blocked_head=2),
        row("BestEffortFIFO", max_overtakes_of_blocked_head=2),
    )

    assert strict.to_json()["meets_target"] is False
    assert strict.to_json()["targets_missed"] == ["max_overtakes_of_blocked_head == 0"]
    assert best_effort.to_json()["meets_target"] is True
    assert QueueBenchmark(burst=(strict, best_effort)).failures() == []


def test_a_makespan_never_measured_is_null_and_misses_the_target() -> None:
    unmeasured = row(makespan_s=math.nan, makespan_ratio=math.nan, gangs_unfinished=1)

    document = unmeasured.to_json()

    assert (document["makespan_s"], document["makespan_ratio"], document["meets_target"]) == (
        None,
        None,
        False,
    )
    assert QueueBenchmark(burst=(unmeasured,)).failures() == [
        "burst StrictFIFO+reservation: gangs whose pods did not all succeed: 1 of 2"
    ]


def test_each_broken_correctness_row_is_a_failure() -> None:
    broken = row("BestEffortFIFO", half_bound_gangs=1, gangs_never_bound=1, gpu_conflicts=3)

    assert QueueBenchmark(burst=(broken,)).failures() == [
        "burst BestEffortFIFO+reservation: GPUs given twice: 3 (must be 0)",
        "burst BestEffortFIFO+reservation: half-bound gangs: 1 (must be 0)",
        "burst BestEffortFIFO+reservation: gangs never bound: 1 of 2",
    ]


def test_strategies_are_named_as_the_settings_name_them() -> None:
    assert parse_strategies("StrictFIFO, BestEffortFIFO") == STRATEGIES
    assert STRATEGIES[1].environ() == {
        "AISCHED_QUEUEING__STRATEGY": "BestEffortFIFO",
        "AISCHED_QUEUEING__RESERVATION": "true",
    }
    with pytest.raises(ValueError, match="unknown strategy 'FIFO'"):
        parse_strategies("StrictFIFO,FIFO")


# -- a real run ----------------------------------------------------------------------------------


def test_a_tiny_run_binds_every_gang_whole_and_reports_the_row() -> None:
    command = ["bench", "queue", "--parts", "burst", "--nodes", "4", "--waves", "2", "--run-seconds", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "aisched.cli", *command, "--strategies", "StrictFIFO", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    (burst_row,) = document["burst"]
    assert burst_row.keys() >= ROW_KEYS
    assert (burst_row["strategy"], burst_row["nodes"], burst_row["waves"]) == ("StrictFIFO", 4, 2)
    assert (
        burst_row["gangs_bound"]
        == burst_row["gangs"]
        == len(burst(nodes=4, waves=2, run_seconds=1, seed=1).jobs)
    )
    assert (burst_row["half_bound_gangs"], burst_row["gpu_conflicts"], burst_row["gangs_unfinished"]) == (
        0,
        0,
        0,
    )
    assert burst_row["makespan_s"] >= 2.0
    assert document["failed_checks"] == []
    assert "makespan / ideal" in result.stderr


def test_the_trace_part_judges_best_effort_against_today_and_fails_only_on_starved_pods() -> None:

    scenario = TraceScenario(0.5, 100.0)

    def row(
        queueing: str, *, util: float, p99: float, never: int = 0, base: TraceRow | None = None
    ) -> TraceRow:
        return TraceRow(
            workload="w", scenario=scenario, queueing=queueing, nodes=10, demand_over_capacity=2.0,
            all_pods=_Waits(100, 10.0, 50.0), multi_gpu=_Waits(5, 20.0, p99), utilisation=util,
            never_started=never, cycles=1, seconds=0.1, baseline=base,
        )  # fmt: skip

    today = row("today", util=0.60, p99=100.0)
    assert row("BestEffortFIFO+reservation", util=0.595, p99=50.0, base=today).targets_missed() == []
    missed = row("BestEffortFIFO+reservation", util=0.58, p99=60.0, base=today).targets_missed()
    assert len(missed) == 2
    assert today.to_json()["meets_target"] is None
    assert today.failures() == []
    assert row("StrictFIFO", util=0.6, p99=1.0, never=2, base=today).failures() == ["2 pod(s) never started"]
    assert set(today.to_json()) >= {
        "strategy",
        "multi_gpu_p99_wait_s",
        "gpu_utilisation",
        "arrivals_compressed",
    }
