"""What the load saw of a burst, and the figures made of it. Pure: no I/O, no clock (the wall times
arrive with the sightings).

Every pod state the load's watch delivers is a `Seen`: its place in the watch's stream (the API
server's order of changes) and the wall time it arrived. Orders decide what came first, wall times
measure how long. A job *starts* when its first pod is bound: the scheduler POSTs a gang's Bindings
together once it has placed the gang, so the first of them marks the placement, and another job's
Binding may land among the last of them without having been placed first.

- makespan: from the first job's POST to the last pod's end; `makespan_ratio` divides it by the
  ideal (waves × run time).
- overtakes: at each moment the head is the earliest-submitted job not yet started; a job that
  starts while a head earlier than it has not overtakes that head. Reported: the most overtakes
  any one head suffered, their total, and how many came before all of the head's pods existed
  (the AIJob controller had not made them yet, so the scheduler could not have placed it).
- half-bound gangs: jobs with some pod bound whose pods were not all bound within `SETTLE_S` of
  the first (a gang's Bindings take milliseconds; a second is generous).
- GPUs given twice: a pod holds the GPUs of its `aisched.io/gpus` annotation from its binding to
  its end; a GPU two pods hold at once is counted once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from aisched.api import keys
from aisched.api.objects import TERMINAL_PHASES, PodView
from aisched.bench.queue.scenario import Burst
from aisched.kube.client import JsonObject

__all__ = [
    "SETTLE_S",
    "BurstFigures",
    "BurstSightings",
    "Overtake",
    "PodSightings",
    "Seen",
    "burst_figures",
    "gpu_conflicts",
    "overtakes",
]

SETTLE_S: Final = 1.0


@dataclass(frozen=True, order=True)
class Seen:
    """When the load saw a change: `order` in the watch's stream (what came first), and `at`, the
    wall time it arrived (epoch seconds, for durations)."""

    order: int
    at: float


@dataclass
class PodSightings:
    """What the load saw of one pod of the burst."""

    job: str
    created: Seen  #: first seen
    bound: Seen | None = None  #: first seen with spec.nodeName
    node: str = ""
    gpus: tuple[str, ...] = ()  #: its aisched.io/gpus annotation when bound
    ended: Seen | None = None  #: first seen Succeeded or Failed
    phase: str = "Pending"  #: the phase it ended in, or Pending


class BurstSightings:
    """Feeds on every pod state the watch delivers (`seen`, for a `PodWatch`); calls `on_finished`
    once every pod of the burst has ended."""

    def __init__(self, burst: Burst, *, on_finished: Callable[[], None] = lambda: None) -> None:
        self._jobs = {job.name for job in burst.jobs}
        self._expected = burst.pods
        self._on_finished = on_finished
        self._order = 0
        self._ended = 0
        self.pods: dict[str, PodSightings] = {}

    def seen(self, obj: JsonObject, at: float) -> None:
        pod = PodView(obj)
        job = pod.labels.get(keys.LABEL_JOB)
        if job not in self._jobs:
            return
        self._order += 1
        moment = Seen(order=self._order, at=at)
        sighting = self.pods.get(pod.name)
        if sighting is None:
            sighting = self.pods[pod.name] = PodSightings(job=job, created=moment)
        node = pod.node_name
        if node and sighting.bound is None:
            sighting.bound = moment
            sighting.node = node
            sighting.gpus = tuple(g for g in pod.annotations.get(keys.ANNOTATION_GPUS, "").split(",") if g)
        if pod.phase in TERMINAL_PHASES and sighting.ended is None:
            sighting.ended = moment
            sighting.phase = pod.phase
            self._ended += 1
            if self._ended == self._expected:
                self._on_finished()


@dataclass(frozen=True)
class Overtake:
    head: int  #: the submission index of the job passed
    by: int  #: the submission index of the job that started first
    head_created: bool  #: whether every pod of the head existed by then


def overtakes(started: Sequence[Seen | None], created: Sequence[Seen | None]) -> list[Overtake]:
    """Each start of a job while the head (the earliest-submitted job not yet started) had not.

    `started[i]` is when job i (in submission order) started, None if never; `created[i]` when its
    last pod appeared, None if not all did.
    """
    done = [False] * len(started)
    head = 0
    found = []
    for seen, job in sorted((seen, job) for job, seen in enumerate(started) if seen is not None):
        while head < len(done) and done[head]:
            head += 1
        if job > head:
            made = created[head]
            found.append(Overtake(head=head, by=job, head_created=made is not None and made < seen))
        done[job] = True
    return found


def gpu_conflicts(pods: Iterable[PodSightings]) -> int:
    """GPUs held by two pods at once. A pod holds its GPUs from its binding until its end, or to the
    end of the run; a bound pod without the annotation holds an unnamed GPU of its node."""
    holds: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for pod in pods:
        if pod.bound is None:
            continue
        until = math.inf if pod.ended is None else pod.ended.order
        for gpu in pod.gpus or ("",):
            holds.setdefault((pod.node, gpu), []).append((pod.bound.order, until))
    conflicts = 0
    for spans in holds.values():
        held_until = -math.inf
        for start, until in sorted(spans):
            if start < held_until:
                conflicts += 1
                break
            held_until = max(held_until, until)
    return conflicts


@dataclass(frozen=True)
class BurstFigures:
    """What one run of the burst measured; see the module's docstring."""

    pods: int
    makespan_s: float  #: NaN unless every pod succeeded
    makespan_ratio: float
    max_overtakes_of_blocked_head: int
    overtakes: int
    overtakes_before_head_created: int
    half_bound_gangs: int
    gangs_bound: int  #: every pod bound
    gangs_never_bound: int
    gangs_unfinished: int  #: some pod did not succeed (failed, or never ended)
    gpu_conflicts: int
    max_gang_bind_spread_s: float  #: the longest from a job's first binding to its last
    submit_s: float  #: from the first job's POST to the last one's answer


@dataclass
class _Job:
    size: int
    pods: list[PodSightings] = field(default_factory=list)

    def first_bound(self) -> Seen | None:
        return min((p.bound for p in self.pods if p.bound is not None), default=None)

    def bound(self) -> list[Seen]:
        return [p.bound for p in self.pods if p.bound is not None]

    def all_created(self) -> Seen | None:
        return max(p.created for p in self.pods) if len(self.pods) >= self.size else None

    def succeeded(self) -> bool:
        return len(self.pods) >= self.size and all(p.phase == "Succeeded" for p in self.pods)


def burst_figures(
    burst: Burst,
    *,
    posted: Sequence[float],
    answered: float,
    pods: Mapping[str, PodSightings],
    settle_s: float = SETTLE_S,
) -> BurstFigures:
    """The figures of one run: `posted[i]` is when job i's POST started, `answered` when the last
    POST was answered (wall times, as the sightings' `at`)."""
    jobs = {job.name: _Job(size=job.size) for job in burst.jobs}
    for pod in pods.values():
        jobs[pod.job].pods.append(pod)
    in_order = [jobs[job.name] for job in burst.jobs]

    spreads = []
    half_bound = 0
    for job in in_order:
        bound = job.bound()
        if not bound:
            continue
        spread = max(bound).at - min(bound).at
        spreads.append(spread)
        if len(bound) < job.size or spread > settle_s:
            half_bound += 1
    passed = overtakes([job.first_bound() for job in in_order], [job.all_created() for job in in_order])
    per_head: dict[int, int] = {}
    for overtake in passed:
        per_head[overtake.head] = per_head.get(overtake.head, 0) + 1

    finished = all(job.succeeded() for job in in_order)
    ends = [p.ended.at for p in pods.values() if p.ended is not None]
    makespan = max(ends) - posted[0] if finished and ends and posted else math.nan
    return BurstFigures(
        pods=burst.pods,
        makespan_s=makespan,
        makespan_ratio=makespan / burst.ideal_makespan_s,
        max_overtakes_of_blocked_head=max(per_head.values(), default=0),
        overtakes=len(passed),
        overtakes_before_head_created=sum(not o.head_created for o in passed),
        half_bound_gangs=half_bound,
        gangs_bound=sum(len(job.bound()) >= job.size for job in in_order),
        gangs_never_bound=sum(not job.bound() for job in in_order),
        gangs_unfinished=sum(not job.succeeded() for job in in_order),
        gpu_conflicts=gpu_conflicts(pods.values()),
        max_gang_bind_spread_s=max(spreads, default=math.nan),
        submit_s=answered - posted[0] if posted else math.nan,
    )
