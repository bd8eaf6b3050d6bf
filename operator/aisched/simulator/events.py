"""Replaying the trace's own clock (`--trace-events`): pods arrive at their creation time, run for
their traced duration, and depart, so waits and job completion times can be measured.

The virtual clock jumps from event to event (departures before arrivals at the same second). An
arriving pod that does not fit waits in a FIFO queue; every departure retries the queue, each
pod shape at most once per departure (an equal pod would fail the same way) and at most
`retries` pods. A departure gives the pod's resources back to the cache (every plugin counting
placements sees it there). A pod runs for `deletion_time - scheduled_time` as traced (from
`creation_time` when it was never scheduled), or to the end of the replay without a deletion
time. Same core as the experiment: one `Scheduler.schedule` per attempt.
"""

from __future__ import annotations

import csv
import heapq
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from aisched.framework.types import Gang, GangPlacement
from aisched.plugins.policies import FragmentationTable, TypicalPod
from aisched.simulator.cluster import pod_info, policy_profile
from aisched.simulator.metrics import FragmentationMeter
from aisched.simulator.replay import build_scheduler
from aisched.simulator.trace import Trace, TracePod
from aisched.simulator.workload import typical_pods

__all__ = ["EventsReplay", "PodRecord", "replay_events", "write_events"]

DEFAULT_RETRIES: Final = 64
_DEPART, _ARRIVE = 0, 1


@dataclass(frozen=True, slots=True)
class PodRecord:
    """One pod's life: when it arrived, started and ended (None: never), and where it ran."""

    name: str
    arrival: int
    start: int | None = None
    end: int | None = None
    node: str | None = None

    @property
    def wait(self) -> int | None:
        return None if self.start is None else self.start - self.arrival

    @property
    def completion(self) -> int | None:
        """Job completion time: from arrival to departure."""
        return None if self.end is None else self.end - self.arrival


@dataclass
class EventsReplay:
    workload: str
    policy: str
    seed: int
    capacity_milli: int
    records: list[PodRecord] = field(default_factory=list)
    #: (time, running pods, waiting pods, allocated GPU milli, fragmented GPU milli) after each event.
    timeline: list[tuple[int, int, int, int, float]] = field(default_factory=list)
    seconds: float = 0.0


def _duration(pod: TracePod) -> int | None:
    begun = pod.scheduled_time if pod.scheduled_time is not None else pod.creation_time
    if pod.deletion_time is None or begun is None or pod.deletion_time <= begun:
        return None
    return pod.deletion_time - begun


def replay_events(
    trace: Trace,
    *,
    policy: str,
    seed: int,
    typical: Sequence[TypicalPod] | None = None,
    retries: int = DEFAULT_RETRIES,
) -> EventsReplay:
    """Replay `trace` on its own clock under `policy`; `seed` breaks ties (and drives Random)."""
    if any(p.creation_time is None for p in trace.pods):
        raise ValueError("trace-events needs creation times, and this pod list has none for some pods")
    started = time.perf_counter()
    typical = typical_pods(trace.pods) if typical is None else typical
    scheduler = build_scheduler(trace, policy_profile(policy, seed=seed, typical=typical))
    meter = FragmentationMeter(FragmentationTable(typical), scheduler.snapshot)
    result = EventsReplay(trace.workload, policy, seed, trace.capacity_milli)
    pods = sorted(trace.pods, key=lambda p: (p.creation_time or 0, p.name))
    records = [PodRecord(p.name, p.creation_time or 0) for p in pods]
    events = [(records[i].arrival, _ARRIVE, i) for i in range(len(pods))]
    heapq.heapify(events)
    running: dict[int, GangPlacement] = {}
    waiting: list[int] = []
    allocated = 0

    def attempt(i: int, now: int) -> bool:
        nonlocal allocated
        placement = scheduler.schedule(Gang.of(pod_info(pods[i], created=float(now)))).placement
        if placement is None:
            return False
        running[i] = placement
        allocated += pods[i].total_gpu_milli
        meter.update([p.slot for p in placement.pods])
        records[i] = PodRecord(records[i].name, records[i].arrival, now, None, placement.pods[0].node)
        duration = _duration(pods[i])
        if duration is not None:
            heapq.heappush(events, (now + duration, _DEPART, i))
        return True

    while events:
        now, kind, i = heapq.heappop(events)
        if kind == _ARRIVE:
            if not attempt(i, now):
                waiting.append(i)
        else:
            placement = running.pop(i)
            scheduler.cache.remove_pod(placement.pods[0].pod.key)
            scheduler.cache.update_snapshot(scheduler.snapshot)
            allocated -= pods[i].total_gpu_milli
            meter.update([p.slot for p in placement.pods])
            records[i] = PodRecord(
                records[i].name, records[i].arrival, records[i].start, now, records[i].node
            )
            failed_shapes: set[tuple[object, ...]] = set()
            for j in list(waiting)[:retries]:
                shape = pod_info(pods[j]).template_key
                if shape not in failed_shapes:
                    if attempt(j, now):
                        waiting.remove(j)
                    else:
                        failed_shapes.add(shape)
        result.timeline.append((now, len(running), len(waiting), allocated, meter.fragmented))
    result.records = records
    result.seconds = time.perf_counter() - started
    return result


def _seconds(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else "-"


def write_events(runs: Sequence[EventsReplay], directory: Path) -> str:
    """`pods.csv`, `timeline.csv` and `summary.json` in `directory`; returns a short table."""
    directory.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict[str, object]] = {}
    lines = [f"{'policy':<11} {'seed':>5} {'started':>8} {'never':>6} {'mean wait s':>12} {'mean JCT s':>12}"]
    with (directory / "pods.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["policy", "seed", "pod", "arrival", "start", "end", "wait", "completion", "node"])
        for run in runs:
            for r in run.records:
                writer.writerow(
                    [run.policy, run.seed, r.name, r.arrival, r.start, r.end, r.wait, r.completion, r.node]
                )
            waits = [r.wait for r in run.records if r.wait is not None]
            done = [r.completion for r in run.records if r.completion is not None]
            entry: dict[str, object] = {
                "started": len(waits),
                "never_started": len(run.records) - len(waits),
                "mean_wait_s": float(np.mean(waits)) if waits else None,
                "mean_completion_s": float(np.mean(done)) if done else None,
                "seconds": round(run.seconds, 3),
            }
            summary[f"{run.policy}/{run.seed}"] = entry
            wait, jct = entry["mean_wait_s"], entry["mean_completion_s"]
            lines.append(
                f"{run.policy:<11} {run.seed:>5} {len(waits):>8} {entry['never_started']:>6}"
                f" {_seconds(wait):>12} {_seconds(jct):>12}"
            )
    with (directory / "timeline.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["policy", "seed", "time", "running", "waiting", "allocated_pct", "fragmentation_pct"]
        )
        for run in runs:
            for now, active, queued, allocated, fragmented in run.timeline:
                writer.writerow([
                    run.policy, run.seed, now, active, queued,
                    round(100.0 * allocated / run.capacity_milli, 4),
                    round(100.0 * fragmented / run.capacity_milli, 4),
                ])  # fmt: skip
    (directory / "summary.json").write_text(json.dumps({"runs": summary}, indent=2) + "\n", encoding="utf-8")
    return "\n".join(lines)
