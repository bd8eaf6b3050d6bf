"""Running the burst against the real operator, one queueing strategy at a time.

For each strategy, three processes:

- a fresh emulator (`aisched emulator`) serving the cluster, with its simulated kubelet ending
  each pod after the burst's run time;
- the operator as a user starts it (`aisched run --kubeconfig ... --no-leader-elect`: Kopf, the
  Manager, the scheduler and the AIJob controller), with the strategy in its environment
  (`AISCHED_QUEUEING__STRATEGY`, `AISCHED_QUEUEING__RESERVATION`), logging JSON to a file;
- the load, in this process. Once the operator's log says it has listed the cluster, one small
  warm-up job in a namespace of its own is run to its end (Kopf sees AIJobs, the controller makes
  pods, the scheduler binds them, the kubelet ends them), so the burst's clock starts on a ready
  operator. Then the load watches the burst's namespace (a list, then a watch), POSTs the AIJobs
  one after another in submission order, and waits until every pod has ended, or the time
  allowed has passed (the jobs left are reported as such).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, get_args

from aisched.api.tenantquota import QueueingStrategy
from aisched.bench.harness import EmulatorProcess, OperatorProcess, PodWatch, background, first, log_warnings
from aisched.bench.queue.figures import BurstFigures, BurstSightings, burst_figures
from aisched.bench.queue.report import BurstRow, QueueBenchmark
from aisched.bench.queue.scenario import Burst, aijob_manifest, burst
from aisched.bench.queue.trace import trace_rows
from aisched.kube.client import KubeClient, resource_path

__all__ = ["STRATEGIES", "Strategy", "parse_strategies", "run_queue_benchmark"]

NAMESPACE: Final = "queue-burst"
WARM_UP_NAMESPACE: Final = "queue-warm-up"
_READY_TIMEOUT: Final = 120.0
_WARM_UP: Final = burst(nodes=1, waves=1, run_seconds=0.1, seed=0)


@dataclass(frozen=True)
class Strategy:
    """A queueing strategy as the operator's settings name it."""

    name: QueueingStrategy
    reservation: bool = True

    def environ(self) -> dict[str, str]:
        return {
            "AISCHED_QUEUEING__STRATEGY": self.name,
            "AISCHED_QUEUEING__RESERVATION": "true" if self.reservation else "false",
        }


STRATEGIES: Final = (Strategy("StrictFIFO"), Strategy("BestEffortFIFO"))


def parse_strategies(text: str) -> tuple[Strategy, ...]:
    """`StrictFIFO,BestEffortFIFO` (each with reservation) to strategies; ValueError if one is unknown."""
    known: tuple[QueueingStrategy, ...] = get_args(QueueingStrategy)
    chosen = []
    for word in (w.strip() for w in text.split(",") if w.strip()):
        name = next((k for k in known if k == word), None)
        if name is None:
            raise ValueError(f"unknown strategy {word!r}: choose from {', '.join(known)}")
        chosen.append(Strategy(name))
    if not chosen:
        raise ValueError("no strategy given")
    return tuple(chosen)


def run_queue_benchmark(
    *,
    nodes: int = 32,
    waves: int = 9,
    run_seconds: float = 6.0,
    seed: int = 1,
    strategies: Sequence[Strategy] = STRATEGIES,
    timeout: float | None = None,
    parts: Collection[str] = ("burst", "trace"),
    traces: Path | None = None,
) -> QueueBenchmark:
    """The burst under each strategy, in turn, end to end; then the trace replayed from `traces`
    (`bench.queue.trace`). `timeout` bounds the wait for the last pod's end after the last POST
    (default: ten times the ideal makespan plus two minutes, for a slow queue is measured, not
    failed)."""
    scenario = burst(nodes=nodes, waves=waves, run_seconds=run_seconds, seed=seed)
    wait_s = timeout if timeout is not None else 120.0 + 10 * scenario.ideal_makespan_s
    rows = (
        tuple(_run(scenario, strategy, wait_s=wait_s) for strategy in strategies) if "burst" in parts else ()
    )
    if "trace" not in parts:
        return QueueBenchmark(burst=rows)
    if traces is None:
        raise ValueError("the trace part needs the trace's folder")
    return QueueBenchmark(burst=rows, trace=trace_rows(traces))


def _run(scenario: Burst, strategy: Strategy, *, wait_s: float) -> BurstRow:
    with (
        tempfile.TemporaryDirectory(prefix="aisched-bench-queue-") as tmp,
        EmulatorProcess(Path(tmp), nodes=scenario.nodes, name="bench-queue") as emulator,
    ):
        figures, warnings = asyncio.run(_against(emulator, scenario, strategy, wait_s=wait_s))
    return BurstRow(
        strategy=strategy.name,
        reservation=strategy.reservation,
        nodes=scenario.nodes,
        gangs=len(scenario.jobs),
        waves=scenario.waves,
        run_seconds=scenario.run_seconds,
        seed=scenario.seed,
        figures=figures,
        operator_warnings=warnings,
    )


async def _against(
    emulator: EmulatorProcess, scenario: Burst, strategy: Strategy, *, wait_s: float
) -> tuple[BurstFigures, int]:
    """The burst's figures, and the warnings the operator logged."""
    await emulator.ready(within=_READY_TIMEOUT)
    async with KubeClient(base_url=emulator.url) as kube:
        for namespace in (NAMESPACE, WARM_UP_NAMESPACE):
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            await kube.post("/api/v1/namespaces", body)
        settings = strategy.environ()
        operator = OperatorProcess(emulator.workdir, kubeconfig=emulator.kubeconfig, settings=settings)
        async with operator, background(emulator.exited(), name="emulator") as emulator_gone:
            await operator.ready(within=_READY_TIMEOUT)
            async with background(operator.exited(), name="operator") as operator_gone:
                guards = (emulator_gone, operator_gone)
                warm_up = await _submit_and_wait(kube, _WARM_UP, WARM_UP_NAMESPACE, guards, _READY_TIMEOUT)
                if warm_up.gangs_unfinished:
                    raise RuntimeError(f"the warm-up job did not succeed within {_READY_TIMEOUT:.0f} s")
                figures = await _submit_and_wait(kube, scenario, NAMESPACE, guards, wait_s)
    return figures, log_warnings(operator.log_path)


async def _submit_and_wait(
    kube: KubeClient, scenario: Burst, namespace: str, guards: Sequence[asyncio.Task[None]], wait_s: float
) -> BurstFigures:
    """Watch `namespace`, POST the jobs in order, wait (at most `wait_s` after the last POST) until
    every pod has ended; the figures."""
    finished = asyncio.Event()
    sightings = BurstSightings(scenario, on_finished=finished.set)
    watch = PodWatch(kube, f"/api/v1/namespaces/{namespace}/pods", sightings.seen)
    jobs = resource_path(group="aisched.io", version="v1alpha1", plural="aijobs", namespace=namespace)
    async with background(watch.run(), name="pod watch") as watcher:
        await first(watch.listed.wait(), watcher, *guards)
        posted: list[float] = []
        for job in scenario.jobs:
            posted.append(time.time())
            await kube.post(jobs, aijob_manifest(job, scenario, namespace=namespace))
        answered = time.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first(finished.wait(), watcher, *guards), wait_s)
    return burst_figures(scenario, posted=posted, answered=answered, pods=sightings.pods)
