"""Replaying the trace's own clock: arrivals, waits in the queue, departures, completion times."""

from __future__ import annotations

from pathlib import Path

import pytest

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
