"""`aisched bench e2e`: the scheduler runtime end to end against the emulator, in three processes.

- The emulator (`aisched emulator`) serves a simulated cluster of DGX H100 nodes (8 GPUs each,
  32 nodes to a rack, 4 racks to a block) in its own process.
- The scheduler is the operator's `Manager` with its default settings (informers, gang queue,
  scheduling loop, binder, AIJob controller; one replica, no Lease), in this process, logging
  JSON at INFO as in a cluster (to a file here, so the output stays readable). The load starts
  only once its informers have synced.
- The load runs in a third process (`python -m aisched.bench.e2e --load ...`), so that creating
  pods and decoding watch events do not take the scheduler's interpreter lock: it POSTs the
  single-GPU pods and the gangs (labelled `aisched.io/gang`, single-GPU members, gangs spread
  among the single pods) with bounded concurrency, watches the pods (a list, then a watch from
  its resourceVersion), and reports, per pod, the wall time from the start of its POST to the
  first event showing it with `spec.nodeName`.

Reported: pods bound per second over first POST → last bind, p50/p99 of that per-pod latency,
whether every gang was bound whole, GPUs handed to more than one pod (must be 0), the
scheduler's peak RSS, and the CPU seconds used during the load by each process and by everything
else on the machine (other work on a shared box shows there). The load process's clock
readings are its own, so a starved load process makes the figures worse, never better.

The correctness rows (`failures`): no GPU given twice, every pod bound, every gang bound whole
and none partly bound. Rates and latencies are targets, reported only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from aisched.api import keys
from aisched.api.objects import PodView
from aisched.bench.harness import EmulatorProcess, PodWatch, first, log_warnings
from aisched.controllers.manager import Manager
from aisched.kube.client import JsonObject, KubeClient
from aisched.observability.logging import configure_logging
from aisched.settings import LoggingSettings, load_settings

__all__ = ["E2EBenchmark", "run_e2e_benchmark", "workload"]

NAMESPACE: Final = "default"
PODS_PATH: Final = f"/api/v1/namespaces/{NAMESPACE}/pods"
TARGET_PODS_PER_S: Final = 300.0
TARGET_P99_S: Final = 2.0
_READY_TIMEOUT: Final = 600.0  # the emulator validates every GPUNodeTopology at start: ~30 s for 1,000
_SYNC_TIMEOUT: Final = 120.0
_STOP_TIMEOUT: Final = 60.0


@dataclass(frozen=True)
class E2EBenchmark:
    nodes: int
    pods: int  #: single-GPU pods
    gangs: int
    gang_size: int
    pods_total: int  #: single pods and gang members
    pods_bound: int
    gangs_bound_whole: int
    gangs_partly_bound: int  #: gangs with some members bound and some not (must be 0)
    gpu_conflicts: int  #: GPUs handed to more than one pod (must be 0)
    pods_bound_per_s: float
    p50_bind_latency_s: float
    p99_bind_latency_s: float
    max_bind_latency_s: float
    wall_s: float  #: first POST to last bind
    concurrency: int  #: pod POSTs in flight
    emulator_start_s: float
    scheduler_sync_s: float
    scheduler_peak_rss_mb: float
    scheduler_cpu_s: float  #: CPU seconds from the load's start to its end
    emulator_cpu_s: float | None  #: None where /proc is not there to read
    load_cpu_s: float  #: the whole load process
    other_cpu_s: float | None  #: every other process on the machine meanwhile (/proc/stat)
    scheduler_warnings: int  #: log lines at WARNING or above

    def to_json(self) -> dict[str, Any]:
        """The figures, rounded; a latency with no pod bound (NaN) as null."""
        return {
            k: (None if math.isnan(v) else round(v, 3)) if isinstance(v, float) else v
            for k, v in self.__dict__.items()
        }

    def table(self) -> str:
        emulator_cpu = "n/a" if self.emulator_cpu_s is None else f"{self.emulator_cpu_s:.1f}"
        other_cpu = "n/a" if self.other_cpu_s is None else f"{self.other_cpu_s:.1f}"
        rows = [
            ("nodes (8 GPUs each)", f"{self.nodes:,}", ""),
            ("single-GPU pods + gangs", f"{self.pods:,} + {self.gangs} x {self.gang_size}", ""),
            ("pods bound", f"{self.pods_bound:,} / {self.pods_total:,}", "must be all"),
            ("gangs bound whole", f"{self.gangs_bound_whole} / {self.gangs}", "must be all"),
            ("gangs partly bound", f"{self.gangs_partly_bound}", "must be 0"),
            ("GPUs given twice", f"{self.gpu_conflicts}", "must be 0"),
            ("pods bound/s", f"{self.pods_bound_per_s:,.0f}", f"target >= {TARGET_PODS_PER_S:.0f}"),
            (
                "  creation -> bound p50 / p99",
                f"{self.p50_bind_latency_s:.2f} / {self.p99_bind_latency_s:.2f} s",
                f"target p99 <= {TARGET_P99_S:.0f} s",
            ),
            ("  creation -> bound max", f"{self.max_bind_latency_s:.2f} s", ""),
            ("first POST -> last bind", f"{self.wall_s:.1f} s", f"{self.concurrency} POSTs in flight"),
            (
                "emulator start / scheduler sync",
                f"{self.emulator_start_s:.1f} / {self.scheduler_sync_s:.1f} s",
                "",
            ),
            ("scheduler peak RSS", f"{self.scheduler_peak_rss_mb:.0f} MB", ""),
            (
                "CPU s: scheduler / emulator / load / other",
                f"{self.scheduler_cpu_s:.1f} / {emulator_cpu} / {self.load_cpu_s:.1f} / {other_cpu}",
                f"{os.cpu_count()} cores",
            ),
            ("scheduler warnings logged", f"{self.scheduler_warnings}", ""),
        ]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value:>20}  {note}" for name, value, note in rows)

    def failures(self) -> list[str]:
        checks = [
            (self.gpu_conflicts == 0, f"GPUs given twice: {self.gpu_conflicts} (must be 0)"),
            (self.pods_bound == self.pods_total, f"pods bound: {self.pods_bound} of {self.pods_total}"),
            (
                self.gangs_bound_whole == self.gangs,
                f"gangs bound whole: {self.gangs_bound_whole} of {self.gangs}",
            ),
            (self.gangs_partly_bound == 0, f"gangs partly bound: {self.gangs_partly_bound} (must be 0)"),
        ]
        return [row for ok, row in checks if not ok]


# -- the cluster and the workload ----------------------------------------------------------------


def _pod(name: str, *, gang: str | None, gang_size: int) -> JsonObject:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if gang is not None:
        meta["labels"] = {keys.LABEL_GANG: gang}
        meta["annotations"] = {keys.ANNOTATION_GANG_MIN_MEMBER: str(gang_size)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "schedulerName": "aisched",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "resources": {
                        "requests": {"cpu": "4", "memory": "16Gi"},
                        "limits": {"nvidia.com/gpu": 1, "memory": "16Gi"},
                    },
                }
            ],
        },
    }


def workload(pods: int, gangs: int, gang_size: int) -> list[tuple[str | None, JsonObject]]:
    """(gang or None, pod) in creation order: each gang's members together, the gangs spread
    evenly among the single pods."""
    order: list[tuple[str | None, JsonObject]] = []
    gang = 0

    def add_gang() -> None:
        name = f"gang-{gang:04d}"
        order.extend((name, _pod(f"{name}-{m}", gang=name, gang_size=gang_size)) for m in range(gang_size))

    for i in range(pods):
        while gang < gangs and (gang + 1) * pods // (gangs + 1) <= i:
            add_gang()
            gang += 1
        order.append((None, _pod(f"single-{i:05d}", gang=None, gang_size=gang_size)))
    while gang < gangs:
        add_gang()
        gang += 1
    return order


# -- the load process ----------------------------------------------------------------------------


class _Sightings:
    """The first time each pod was seen bound (wall clock), fed by a `PodWatch`."""

    def __init__(self, expected: int) -> None:
        self._expected = expected
        self.bound: dict[str, float] = {}
        self.gpus: dict[str, tuple[str, str]] = {}  # pod -> (node, its aisched.io/gpus annotation)
        self.everything = asyncio.Event()

    def seen(self, obj: JsonObject, at: float) -> None:
        pod = PodView(obj)
        node = pod.node_name
        if node and pod.name not in self.bound:
            self.bound[pod.name] = at
            self.gpus[pod.name] = (node, pod.annotations.get(keys.ANNOTATION_GPUS, ""))
            if len(self.bound) == self._expected:
                self.everything.set()


async def _load(
    url: str, *, pods: int, gangs: int, gang_size: int, concurrency: int, wait_s: float
) -> JsonObject:
    """Create the workload and watch it bound (for at most `wait_s` after the last creation);
    the figures as the load process saw them."""
    order = workload(pods, gangs, gang_size)
    posted: dict[str, float] = {}

    async with KubeClient(base_url=url, timeout=60.0) as kube:

        async def post(queue: Iterator[tuple[str | None, JsonObject]]) -> None:
            for _, body in queue:
                posted[body["metadata"]["name"]] = time.time()
                await kube.post(PODS_PATH, body)

        sightings = _Sightings(expected=len(order))
        watch = PodWatch(kube, PODS_PATH, sightings.seen)
        watcher = asyncio.create_task(watch.run(), name="watch")
        try:
            await first(watch.listed.wait(), watcher)
            queue = iter(order)  # shared: each worker takes the next pod
            await asyncio.gather(*(post(queue) for _ in range(concurrency)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first(sightings.everything.wait(), watcher), wait_s)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    bound = sightings.bound
    members: dict[str, list[str]] = {}
    for gang, body in order:
        if gang is not None:
            members.setdefault(gang, []).append(body["metadata"]["name"])
    uses = Counter(
        (node, gpu) for node, annotation in sightings.gpus.values() for gpu in annotation.split(",") if gpu
    )
    return {
        "pods_total": len(order),
        "pods_bound": len(bound),
        "gangs_bound_whole": sum(all(m in bound for m in names) for names in members.values()),
        "gangs_partly_bound": sum(
            0 < sum(m in bound for m in names) < len(names) for names in members.values()
        ),
        "gpu_conflicts": sum(1 for count in uses.values() if count > 1),
        "first_post": min(posted.values(), default=0.0),
        "last_bind": max(bound.values(), default=0.0),
        "latencies": sorted(bound[name] - posted[name] for name in bound),
        "cpu_s": _cpu_seconds(resource.RUSAGE_SELF),  # all of it: the machine's count has it all
    }


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_seconds(pid: int) -> float | None:
    """The CPU seconds of another process so far, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu_seconds() -> float | None:
    """The busy CPU seconds of the whole machine so far (all but idle and iowait); None off Linux."""
    try:
        ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


# -- the scheduler process -----------------------------------------------------------------------


@contextlib.contextmanager
def _scheduler_logging(path: Path) -> Iterator[None]:
    """The operator's logging (JSON lines, INFO) into `path`; the previous set-up restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    with path.open("w") as stream:
        configure_logging(LoggingSettings(format="json", level="INFO"), stream=stream)
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            structlog.configure(**saved)


async def _run(
    emulator: EmulatorProcess,
    *,
    pods: int,
    gangs: int,
    gang_size: int,
    concurrency: int,
    wait_s: float,
) -> E2EBenchmark:
    started = time.perf_counter()
    await emulator.ready(within=_READY_TIMEOUT)
    emulator_start = time.perf_counter() - started
    url = emulator.url
    nodes = len((await _get_json(url, "/api/v1/nodes"))["items"])

    log_path = emulator.workdir / "scheduler.log"
    with _scheduler_logging(log_path):
        async with KubeClient(base_url=url) as kube:
            # The operator's own configuration (binding rate and concurrency from the settings);
            # one replica, so no Lease to wait for; no Kopf, since the load has no AIJobs.
            settings = load_settings({}, leader_election={"enabled": False})
            manager = Manager(kube, settings, serve_metrics=False)
            stop = asyncio.Event()
            scheduler = asyncio.create_task(manager.run(stop), name="scheduler")
            try:
                started = time.perf_counter()
                await asyncio.wait_for(first(manager.leading.wait(), scheduler), _SYNC_TIMEOUT)
                runtime = manager.runtime
                assert runtime is not None
                synced = asyncio.gather(*(informer.synced.wait() for informer in runtime.informers))
                await asyncio.wait_for(first(synced, scheduler), _SYNC_TIMEOUT)
                sync_s = time.perf_counter() - started
                report, cpu = await _drive_load(
                    emulator.process,
                    scheduler,
                    url,
                    pods=pods,
                    gangs=gangs,
                    gang_size=gang_size,
                    concurrency=concurrency,
                    wait_s=wait_s,
                )
            finally:
                stop.set()
                await asyncio.wait_for(scheduler, _STOP_TIMEOUT)

    latencies: list[float] = report["latencies"]
    wall = report["last_bind"] - report["first_post"]
    return E2EBenchmark(
        nodes=nodes,
        pods=pods,
        gangs=gangs,
        gang_size=gang_size,
        pods_total=report["pods_total"],
        pods_bound=report["pods_bound"],
        gangs_bound_whole=report["gangs_bound_whole"],
        gangs_partly_bound=report["gangs_partly_bound"],
        gpu_conflicts=report["gpu_conflicts"],
        pods_bound_per_s=report["pods_bound"] / wall if wall > 0 else 0.0,
        p50_bind_latency_s=statistics.median(latencies) if latencies else math.nan,
        p99_bind_latency_s=_percentile(latencies, 0.99),
        max_bind_latency_s=latencies[-1] if latencies else math.nan,
        wall_s=wall,
        concurrency=concurrency,
        emulator_start_s=emulator_start,
        scheduler_sync_s=sync_s,
        scheduler_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        scheduler_cpu_s=cpu[0],
        emulator_cpu_s=cpu[1],
        load_cpu_s=report["cpu_s"],
        other_cpu_s=cpu[2],
        scheduler_warnings=log_warnings(log_path),
    )


async def _drive_load(
    server: subprocess.Popen[bytes],
    scheduler: asyncio.Task[None],
    url: str,
    *,
    pods: int,
    gangs: int,
    gang_size: int,
    concurrency: int,
    wait_s: float,
) -> tuple[JsonObject, tuple[float, float | None, float | None]]:
    """Run the load process to its end; its report, and the CPU seconds meanwhile of the scheduler,
    the emulator, and the other processes of the machine."""
    scheduler_cpu = _cpu_seconds(resource.RUSAGE_SELF)
    emulator_cpu = _process_cpu_seconds(server.pid)
    machine_cpu = _machine_cpu_seconds()
    load = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aisched.bench.e2e", "--load", url),
        *("--pods", str(pods), "--gangs", str(gangs), "--gang-size", str(gang_size)),
        *("--concurrency", str(concurrency), "--wait", str(wait_s)),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        output = asyncio.create_task(load.communicate())
        await asyncio.wait({output, scheduler}, return_when=asyncio.FIRST_COMPLETED)
        if not output.done():
            output.cancel()
            scheduler.result()  # the scheduler's error
            raise RuntimeError("the scheduler stopped during the load")
        stdout, _ = output.result()
    finally:
        if load.returncode is None:
            load.kill()
            await load.wait()
    if load.returncode != 0:
        raise RuntimeError(f"the load process exited with {load.returncode}")
    scheduler_cpu = _cpu_seconds(resource.RUSAGE_SELF) - scheduler_cpu
    emulator_now = _process_cpu_seconds(server.pid)
    machine_now = _machine_cpu_seconds()
    emulator = None if emulator_cpu is None or emulator_now is None else emulator_now - emulator_cpu
    report: JsonObject = json.loads(stdout)
    others = None
    if emulator is not None and machine_cpu is not None and machine_now is not None:
        others = max(0.0, machine_now - machine_cpu - scheduler_cpu - emulator - report["cpu_s"])
    return report, (scheduler_cpu, emulator, others)


async def _get_json(url: str, path: str) -> JsonObject:
    async with KubeClient(base_url=url) as kube:
        return await kube.get(path)


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value at least `fraction` of the values do not exceed."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def run_e2e_benchmark(
    *,
    nodes: int = 1000,
    pods: int = 5000,
    gangs: int = 200,
    gang_size: int = 8,
    concurrency: int = 32,
    timeout: float = 600.0,
) -> E2EBenchmark:
    """Start the emulator, the scheduler and the load; `timeout` bounds the wait for the last
    binding (the pods left unbound by then are reported as such)."""
    if nodes < 1 or pods < 0 or gangs < 0 or gang_size < 1 or concurrency < 1:
        raise ValueError("nodes, gang size and concurrency must be positive; pods and gangs not negative")
    with (
        tempfile.TemporaryDirectory(prefix="aisched-bench-e2e-") as tmp,
        EmulatorProcess(Path(tmp), nodes=nodes, name="bench-e2e") as emulator,
    ):
        return asyncio.run(
            _run(
                emulator,
                pods=pods,
                gangs=gangs,
                gang_size=gang_size,
                concurrency=concurrency,
                wait_s=timeout,
            )
        )


def _load_main(argv: list[str] | None = None) -> int:
    """`python -m aisched.bench.e2e --load URL ...`: the load process; its report on stdout."""
    parser = argparse.ArgumentParser(prog="python -m aisched.bench.e2e")
    parser.add_argument("--load", required=True, metavar="URL", help="the API server to load")
    parser.add_argument("--pods", type=int, required=True)
    parser.add_argument("--gangs", type=int, required=True)
    parser.add_argument("--gang-size", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--wait", type=float, required=True, help="seconds to wait for the last binding")
    args = parser.parse_args(argv)
    report = asyncio.run(
        _load(
            args.load,
            pods=args.pods,
            gangs=args.gangs,
            gang_size=args.gang_size,
            concurrency=args.concurrency,
            wait_s=args.wait,
        )
    )
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_load_main())
