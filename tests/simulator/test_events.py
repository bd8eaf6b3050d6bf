"""Replaying the trace's own clock: arrivals, waits in the queue, departures, completion times."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisched.queue.policy import QueueingPolicy
from aisched.simulator.events import replay_events, write_events
from aisched.simulator.trace import Trace, TraceNode, TracePod
from tests.simulator._traces import small_trace

ONE_NODE = (TraceNode("n0", 16_000, 4096, 2, "T4"),)


def pod(name: str, gpus: int, created: int, deleted: int | None) -> TracePod:
    return TracePod(name, 1000, 10, gpus, 1000, (), created, deleted, created)


def test_a_pod_that_does_not_fit_waits_for_a_departure_then_runs_its_traced_duration() -> None:
    trace = Trace("w", ONE_NODE, (pod("a", 2, 0, 100), pod("b", 1, 10, 40), pod("c", 2, 50, None)))

    run = replay_events(trace, policy="bestfit", seed=1)

    a, b, c = run.records
    assert (a.start, a.end, a.node) == (0, 100, "n0")
    assert (b.start, b.end, b.wait, b.completion) == (100, 130, 90, 120)  # waited for a; ran 30 s as traced
    assert (c.start, c.end) == (130, None)  # no deletion time: runs to the end
    assert run.timeline[-1][1:4] == (1, 0, 2000)  # c still running, nobody waiting, 2 GPUs allocated


def test_departures_give_back_what_the_pod_held() -> None:
    trace = Trace("w", ONE_NODE, (pod("a", 2, 0, 10), pod("b", 2, 20, 30)))

    run = replay_events(trace, policy="clustering", seed=1)

    assert [r.wait for r in run.records] == [0, 0]
    assert [row[3] for row in run.timeline] == [2000, 0, 2000, 0]


def test_pod_lists_without_times_are_refused() -> None:
    trace = Trace("w", ONE_NODE, (TracePod("a", 1000, 10, 1, 1000),))

    with pytest.raises(ValueError, match="creation times"):
        replay_events(trace, policy="fgd", seed=1)


def test_events_are_written_per_pod_and_per_event(tmp_path: Path) -> None:
    run = replay_events(small_trace(pods=80), policy="fgd", seed=3)

    text = write_events([run], tmp_path)

    assert "fgd" in text
    pods = (tmp_path / "pods.csv").read_text().splitlines()
    assert len(pods) == 81
    assert pods[0].startswith("policy,seed,pod,arrival,start,end,wait,completion")
    assert len((tmp_path / "timeline.csv").read_text().splitlines()) == len(run.timeline) + 1
    assert '"fgd/3"' in (tmp_path / "summary.json").read_text()


TWO_NODES = (TraceNode("n0", 16_000, 4096, 2, "T4"), TraceNode("n1", 16_000, 4096, 2, "T4"))


def _starved() -> Trace:
    """n0 runs two 1-GPU pods ending at 100 and 150, n1 a 2-GPU pod until 1000; a 2-GPU pod
    arrives at 5, then 1-GPU pods that would each take whatever GPU frees first."""
    pods = [pod("a1", 1, 0, 100), pod("a2", 1, 0, 150), pod("long", 2, 0, 1000), pod("big", 2, 5, 200)]
    pods += [pod(f"small{i}", 1, 6 + i, 600 + i) for i in range(2)]
    return Trace("w", TWO_NODES, tuple(pods))


def test_today_small_pods_overtake_a_waiting_two_gpu_pod() -> None:
    run = replay_events(_starved(), policy="bestfit", seed=1)
    records = {r.name: r for r in run.records}
    assert records["big"].start is not None
    assert records["small0"].start is not None
    assert records["small0"].start < records["big"].start


@pytest.mark.parametrize("strategy", ["StrictFIFO", "BestEffortFIFO"])
def test_queue_discipline_keeps_the_freed_node_for_the_waiting_two_gpu_pod(strategy: str) -> None:
    queueing = QueueingPolicy(strategy=strategy)  # type: ignore[arg-type]
    run = replay_events(_starved(), policy="bestfit", seed=1, queueing=queueing)
    records = {r.name: r for r in run.records}
    assert records["big"].start == 150, "the GPUs freeing on n0 are held for it"
    assert all(records[f"small{i}"].start >= 150 for i in range(2))  # type: ignore[operator]


def test_compressed_arrivals_come_that_much_sooner() -> None:
    trace = Trace("w", ONE_NODE, (pod("a", 1, 0, 10), pod("b", 1, 100, 110)))
    run = replay_events(trace, policy="bestfit", seed=1, compress=10.0)
    assert [r.arrival for r in run.records] == [0, 10]
    assert [r.end for r in run.records] == [10, 20]  # run times are not compressed
