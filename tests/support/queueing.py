"""A virtual-time loop over the scheduling core and its gang queue, for queue-discipline tests.

Every gang is submitted at time 0; a placed gang's pods end `run` seconds (plus a per-pod jitter)
after they start. The loop pops gangs in the queue's order, schedules each through the core,
books each with `scheduler.queueing.attempt` (as the simulator does), and moves
the clock to the next pod end or backoff expiry. It records when each gang started.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from aisched.framework.events import ClusterEvent
from aisched.framework.types import Gang
from aisched.queue import GangQueue
from aisched.queue.policy import QueueingPolicy
from aisched.scheduler import Scheduler
from aisched.scheduler.queueing import attempt, gang_queue
from tests.support.core import node, pod


class Clock:
    """Virtual seconds, moved by the loop."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def whole_node_gang(name: str, size: int, *, index: int, runtime_limit: float | None = None) -> Gang:
    """A gang of `size` pods of 8 GPUs each (whole DGX H100 nodes), submitted `index`-th."""
    members = tuple(
        pod(
            f"{name}-{k}",
            gpus=8,
            gang=name,
            gang_min_member=size,
            sequence=index,
            runtime_limit=runtime_limit,
        )
        for k in range(size)
    )
    return Gang(key=f"ml/gang:{name}", members=members, min_member=size, sequence=index)


@dataclass
class Run:
    started: dict[str, float] = field(default_factory=dict)
    #: (gang started, the earliest-submitted gang not started then) for every start.
    starts: list[tuple[str, str]] = field(default_factory=list)
    makespan: float = 0.0

    def overtakes(self) -> int:
        return sum(1 for started, head in self.starts if started != head)


def run_burst(
    gangs: Sequence[Gang],
    *,
    nodes: int,
    policy: QueueingPolicy,
    run: float,
    jitter: float = 0.05,
    seed: int = 0,
) -> Run:
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    for i in range(nodes):
        scheduler.cache.set_node(node(f"n{i:03d}"))
    queue: GangQueue = gang_queue(scheduler, clock, lambda _: ("ml", policy))
    for submitted_gang in gangs:
        queue.add(submitted_gang)
    rng = random.Random(seed)
    submitted = [g.key for g in gangs]
    ends: list[tuple[float, str]] = []
    result = Run()
    while True:
        while (gang := queue.pop()) is not None:
            outcome = attempt(scheduler, queue, gang)
            if outcome.placement is None:
                continue
            head = next(k for k in submitted if k not in result.started)
            result.started[gang.key] = clock.now
            result.starts.append((gang.key, head))
            for placed in outcome.placement.pods:
                heapq.heappush(ends, (clock.now + run + rng.uniform(0, jitter), placed.pod.key))
        ready_at = queue.next_ready_at()
        if not ends and ready_at is None:
            break
        if ready_at is not None and (not ends or ready_at < ends[0][0]):
            clock.now = ready_at
            continue
        clock.now, key = heapq.heappop(ends)
        scheduler.cache.remove_pod(key)
        queue.on_event(ClusterEvent.POD_TERMINATED)
    result.makespan = clock.now
    return result
