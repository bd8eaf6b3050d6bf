"""Replaying the trace's own clock (`--trace-events`): pods arrive at their creation time, run for
their traced duration, and depart, so waits and job completion times can be measured.

The virtual clock jumps from event to event (departures before arrivals at the same second).
Arriving pods wait in the operator's own gang queue (`queue.GangQueue`, one line for the trace,
under the chosen `QueueingPolicy`), and each turned-away pod goes through the same
`scheduler.queueing.turned_away` as in the operator: parked until a cluster event, its nodes
reserved when it is first in line and the policy reserves. After the events of each second the
queue is worked: every active gang is tried, at most `retries` cycles plus one per arrival (a
gang whose shape failed this round is turned away on that refusal without a cycle of its own,
unless it is the head). A departure gives the pod's resources back to the cache, which also
teaches the run-time estimates. A pod runs for
`deletion_time - scheduled_time` as traced (from `creation_time` when it was never scheduled), or
to the end of the replay without a deletion time. `compress` divides the gaps between arrivals
(2.0: the same pods arrive twice as fast), to oversubscribe the cluster so that queues form.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import numpy as np

from aisched.framework.events import ClusterEvent
from aisched.framework.types import Gang, GangPlacement
from aisched.plugins.policies import FragmentationTable, TypicalPod
from aisched.queue import QueueState
from aisched.queue.policy import QueueingPolicy
from aisched.scheduler.queueing import attempt, gang_queue, turned_away
from aisched.scheduler.scheduler import ScheduleResult
from aisched.simulator.cluster import FILTERS, NAMESPACE, pod_info, policy_profile
from aisched.simulator.metrics import FragmentationMeter
from aisched.simulator.replay import build_scheduler
from aisched.simulator.trace import Trace, TracePod
from aisched.simulator.workload import typical_pods

__all__ = ["TODAY", "EventsReplay", "PodRecord", "replay_events", "write_events"]

DEFAULT_RETRIES: Final = 64
_DEPART, _ARRIVE, _WAKE = 0, 1, 2
#: The queueing aisched had before queue discipline: every gang that fits goes, nothing is held.
TODAY: Final = QueueingPolicy(strategy="BestEffortFIFO", reservation=False, aging_interval=0)


@dataclass(frozen=True, slots=True)
class PodRecord:
    """One pod's life: when it arrived, started and ended (None: never), and where it ran."""

    name: str
    arrival: float
    start: float | None = None
    end: float | None = None
    node: str | None = None
    gpus: int = 0

    @property
    def wait(self) -> float | None:
        return None if self.start is None else self.start - self.arrival

    @property
    def completion(self) -> float | None:
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
    timeline: list[tuple[float, int, int, int, float]] = field(default_factory=list)
    seconds: float = 0.0
    cycles: int = 0

    def utilisation(self) -> float:
        """Allocated GPU milli over capacity, time-weighted over the arrivals: from the 1st
        percentile of arrival times (the trace opens with a few stragglers months early) to the
        last arrival."""
        if not self.records or not self.timeline:
            return 0.0
        arrivals = sorted(r.arrival for r in self.records)
        first, last = arrivals[len(arrivals) // 100], arrivals[-1]
        if last <= first:
            return 0.0
        area, previous_t, previous_a = 0.0, first, 0
        for t, _, _, allocated, _ in self.timeline:
            if t > last:
                break
            if t > previous_t:
                area += (t - previous_t) * previous_a
                previous_t = t
            previous_a = allocated
        area += (last - previous_t) * previous_a
        return area / ((last - first) * self.capacity_milli)


def _duration(pod: TracePod) -> int | None:
    begun = pod.scheduled_time if pod.scheduled_time is not None else pod.creation_time
    if pod.deletion_time is None or begun is None or pod.deletion_time <= begun:
        return None
    return pod.deletion_time - begun


def _limit(pod: TracePod, slack: float | None) -> float | None:
    duration = _duration(pod)
    return None if slack is None or duration is None else float(math.ceil(duration * slack))


def replay_events(
    trace: Trace,
    *,
    policy: str,
    seed: int,
    typical: Sequence[TypicalPod] | None = None,
    retries: int = DEFAULT_RETRIES,
    queueing: QueueingPolicy = TODAY,
    compress: float = 1.0,
    limits: float | None = None,
) -> EventsReplay:
    """Replay `trace` on its own clock under `policy` and `queueing`; `seed` breaks ties.
    `limits`: each pod declares a runtime limit of its traced run time times this (a user's
    generous limit), else none does."""
    if any(p.creation_time is None for p in trace.pods):
        raise ValueError("trace-events needs creation times, and this pod list has none for some pods")
    if compress <= 0:
        raise ValueError(f"compress must be more than zero, not {compress}")
    started = time.perf_counter()
    replayer = _Replayer(
        trace, policy=policy, seed=seed, typical=typical, queueing=queueing, compress=compress, limits=limits
    )
    replayer.run(retries)
    replayer.result.seconds = time.perf_counter() - started
    return replayer.result


class _Replayer:
    """One replay's state: the core, its queue, the events still to come."""

    def __init__(
        self,
        trace: Trace,
        *,
        policy: str,
        seed: int,
        typical: Sequence[TypicalPod] | None,
        queueing: QueueingPolicy,
        compress: float,
        limits: float | None = None,
    ) -> None:
        self.now = 0.0
        typical = typical_pods(trace.pods) if typical is None else typical
        profile = policy_profile(policy, seed=seed, typical=typical)
        if queueing.reservation:
            profile = profile.model_copy(
                update={
                    "pre_filter": (*profile.pre_filter, "Reservation"),
                    "filter": (*FILTERS, "Reservation"),
                }
            )
        self.scheduler = build_scheduler(trace, profile, clock=self.clock)
        self.queue = gang_queue(self.scheduler, self.clock, lambda _: (NAMESPACE, queueing))
        self.meter = FragmentationMeter(FragmentationTable(typical), self.scheduler.snapshot)
        self.result = EventsReplay(trace.workload, policy, seed, trace.capacity_milli)
        self.pods = sorted(trace.pods, key=lambda p: (p.creation_time or 0, p.name))
        first = float(self.pods[0].creation_time or 0) if self.pods else 0.0
        arrivals = [first + ((p.creation_time or 0) - first) / compress for p in self.pods]
        self.records = [PodRecord(p.name, arrivals[i], gpus=p.num_gpu) for i, p in enumerate(self.pods)]
        self.gangs = [
            Gang.of(pod_info(p, created=arrivals[i], sequence=i, runtime_limit=_limit(p, limits)))
            for i, p in enumerate(self.pods)
        ]
        self.index = {gang.key: i for i, gang in enumerate(self.gangs)}
        self.events: list[tuple[float, int, int]] = [(arrivals[i], _ARRIVE, i) for i in range(len(self.pods))]
        heapq.heapify(self.events)
        self.running: dict[int, GangPlacement] = {}
        self.wakes: set[float] = set()
        self.allocated = 0

    def clock(self) -> float:
        return self.now

    def run(self, retries: int) -> None:
        events, result = self.events, self.result
        while events:
            self.now = now = events[0][0]
            arrived = 0
            while events and events[0][0] == now:
                _, kind, i = heapq.heappop(events)
                if kind == _ARRIVE:
                    self.queue.add(self.gangs[i])
                    arrived += 1
                elif kind == _DEPART:
                    self._depart(i)
                else:
                    self.wakes.discard(now)
            self._work_queue(retries + arrived)
            ready_at = self.queue.next_ready_at()
            if not events and self.queue.depth()[QueueState.ACTIVE]:
                ready_at = now + 1.0  # the round's budget ran out with gangs still to try
            if ready_at is not None and ready_at not in self.wakes:
                self.wakes.add(ready_at)
                heapq.heappush(events, (max(ready_at, now), _WAKE, -1))
            result.timeline.append(
                (now, len(self.running), len(self.queue), self.allocated, self.meter.fragmented)
            )
        result.records = self.records

    def _work_queue(self, budget: int) -> None:
        """Try the active gangs in queue order, at most `budget` cycles."""
        failed: dict[tuple[object, ...], ScheduleResult] = {}
        cycles = 0
        while cycles < budget and (gang := self.queue.pop()) is not None:
            shape = gang.members[0].template_key
            if shape in failed and not self.queue.is_head(gang.key):
                # Turned away on the same shape's refusal, as its own cycle would have been.
                turned_away(self.scheduler, self.queue, gang, failed[shape])
                continue
            cycles += 1
            outcome = attempt(self.scheduler, self.queue, gang)
            if outcome.placement is None:
                failed[shape] = outcome
                continue
            self._start(self.index[gang.key], outcome.placement)
        self.result.cycles += cycles

    def _start(self, i: int, placement: GangPlacement) -> None:
        self.running[i] = placement
        self.allocated += self.pods[i].total_gpu_milli
        self.meter.update([p.slot for p in placement.pods])
        self.records[i] = replace(self.records[i], start=self.now, node=placement.pods[0].node)
        duration = _duration(self.pods[i])
        if duration is not None:
            heapq.heappush(self.events, (self.now + duration, _DEPART, i))

    def _depart(self, i: int) -> None:
        placement = self.running.pop(i)
        self.scheduler.cache.remove_pod(placement.pods[0].pod.key)
        self.scheduler.cache.update_snapshot(self.scheduler.snapshot)
        self.allocated -= self.pods[i].total_gpu_milli
        self.meter.update([p.slot for p in placement.pods])
        self.records[i] = replace(self.records[i], end=self.now)
        self.queue.on_event(ClusterEvent.POD_TERMINATED)


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
