"""One replay of the FGD experiment: a trace's pods arrive one by one and the core places each.

The cluster is a `Cache` of the trace's nodes; every arriving pod becomes a `PodInfo`, a gang of
one that the core's `Scheduler` filters, scores (with the chosen policy's plugin alone), places
and assumes into the cache, exactly as the operator would, with no I/O and no clock: the
arrival index is the only time. A pod that does not fit is counted as failed and never retried;
nothing departs. After every pod the metrics are taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aisched.cache import Cache
from aisched.framework.profile import Profile
from aisched.framework.types import Gang
from aisched.plugins.policies import FragmentationTable, TypicalPod
from aisched.scheduler import Scheduler
from aisched.simulator.cluster import node_info, pod_info, policy_profile
from aisched.simulator.metrics import Curves, EventLog, FragmentationMeter
from aisched.simulator.trace import Trace
from aisched.simulator.workload import arrival_order, typical_pods

__all__ = ["DEFAULT_TUNE", "Replay", "build_scheduler", "replay"]

DEFAULT_TUNE = 1.3


@dataclass(frozen=True)
class Replay:
    """What one (workload, policy, seed) replay did and measured."""

    workload: str
    policy: str
    seed: int
    tune: float
    capacity_milli: int
    arrived: int
    failed: int
    seconds: float
    log: EventLog

    @property
    def placed(self) -> int:
        return self.arrived - self.failed

    def curves(self) -> Curves:
        return self.log.curves(self.capacity_milli)


def build_scheduler(trace: Trace, profile: Profile, *, clock: Callable[[], float] = lambda: 0.0) -> Scheduler:
    """The core over the trace's nodes, its snapshot filled; `clock` is the virtual one."""
    cache = Cache()
    for node in trace.nodes:
        cache.set_node(node_info(node))
    scheduler = Scheduler(profile=profile, cache=cache, clock=clock)
    cache.update_snapshot(scheduler.snapshot)
    return scheduler


def replay(
    trace: Trace,
    *,
    policy: str,
    seed: int,
    tune: float = DEFAULT_TUNE,
    typical: Sequence[TypicalPod] | None = None,
) -> Replay:
    """Replay `trace` under `policy` with `seed` (arrival order, tie-break, random choices)."""
    started = time.perf_counter()
    typical = typical_pods(trace.pods) if typical is None else typical
    scheduler = build_scheduler(trace, policy_profile(policy, seed=seed, typical=typical))
    meter = FragmentationMeter(FragmentationTable(typical), scheduler.snapshot)
    log = EventLog()
    arrived = allocated = failed = 0
    arrivals = arrival_order(trace.pods, seed=seed, tune=tune, capacity_milli=trace.capacity_milli)
    for pod in arrivals:
        arrived += pod.total_gpu_milli
        placement = scheduler.schedule(Gang.of(pod_info(pod))).placement
        if placement is None:
            failed += 1
        else:
            allocated += pod.total_gpu_milli
            meter.update([p.slot for p in placement.pods])
        log.record(arrived=arrived, allocated=allocated, fragmented=meter.fragmented, idle=meter.idle)
    return Replay(
        workload=trace.workload,
        policy=policy,
        seed=seed,
        tune=tune,
        capacity_milli=trace.capacity_milli,
        arrived=len(arrivals),
        failed=failed,
        seconds=time.perf_counter() - started,
        log=log,
    )
