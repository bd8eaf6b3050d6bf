"""`aisched bench emulator`: Binding POSTs per second against the emulator, with a watcher attached.

The emulator runs in its own process (as in the end-to-end tests and the demo); one client
creates the pods, opens a watch on them, then POSTs one Binding per pod with bounded concurrency,
and the run ends when the watcher has seen every pod bound. The correctness rows: no Binding
POST refused, and every pod bound seen bound by the watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["EmulatorBenchmark", "free_port", "run_emulator_benchmark", "wait_ready"]


@dataclass(frozen=True)
class EmulatorBenchmark:
    pods: int
    concurrency: int
    bindings_per_s: float
    p50_ms: float
    p99_ms: float
    watch_events: int
    bindings_failed: int  #: Binding POSTs not answered 201 Created (must be 0)
    pods_seen_bound: int  #: pods the watcher saw bound (must be every pod whose Binding succeeded)

    def to_json(self) -> dict[str, Any]:
        """The figures, rounded; a latency with no POST answered (NaN) as null."""
        return {
            k: (None if math.isnan(v) else round(v, 3)) if isinstance(v, float) else v
            for k, v in self.__dict__.items()
        }

    def table(self) -> str:
        rows = [
            ("pods bound", f"{self.pods}", ""),
            ("concurrency", f"{self.concurrency}", ""),
            ("Binding POSTs/s", f"{self.bindings_per_s:,.0f}", "target >= 500"),
            ("  p50 / p99 per POST", f"{self.p50_ms:.1f} / {self.p99_ms:.1f} ms", ""),
            ("watch events seen", f"{self.watch_events}", ""),
            ("Binding POSTs refused", f"{self.bindings_failed}", "must be 0"),
            ("pods seen bound", f"{self.pods_seen_bound}", "must be all bound"),
        ]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value:>16}  {note}" for name, value, note in rows)

    def failures(self) -> list[str]:
        rows = []
        bound = self.pods - self.bindings_failed
        if self.bindings_failed:
            rows.append(f"Binding POSTs refused: {self.bindings_failed} of {self.pods} (must be 0)")
        if self.pods_seen_bound != bound:
            rows.append(f"pods seen bound by the watcher: {self.pods_seen_bound} of {bound}")
        return rows


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a server started next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(session: aiohttp.ClientSession, url: str, *, within: float = 30.0) -> None:
    """Wait until the API server at `url` answers /readyz, for at most `within` seconds (a large
    simulated cluster takes a while to start)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the emulator did not become ready")


async def _run(url: str, pods: int, concurrency: int) -> EmulatorBenchmark:
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, url)
        collection = f"{url}/api/v1/namespaces/default/pods"
        for i in range(pods):
            body = {"metadata": {"name": f"p{i}"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
            async with session.post(collection, json=body) as response:
                response.raise_for_status()
        async with session.get(collection, params={"limit": "1"}) as response:
            revision = (await response.json())["metadata"]["resourceVersion"]
        bound = asyncio.Event()
        seen = failed = 0
        names: set[str] = set()

        async def watcher() -> None:
            nonlocal seen
            params = {"watch": "1", "resourceVersion": revision}
            async with session.get(
                collection, params=params, timeout=aiohttp.ClientTimeout(total=None)
            ) as stream:
                async for line in stream.content:
                    event = json.loads(line)
                    seen += 1
                    if event["object"].get("spec", {}).get("nodeName"):
                        names.add(event["object"]["metadata"]["name"])
                        if len(names) + failed >= pods:
                            bound.set()
                            return

        watch = asyncio.create_task(watcher())
        latencies: list[float] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(pods):
            queue.put_nowait(i)

        async def worker() -> None:
            nonlocal failed
            while not queue.empty():
                i = queue.get_nowait()
                binding = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": f"p{i}"},
                    "target": {"kind": "Node", "name": f"node-{i % 100}"},
                }
                started = time.perf_counter()
                async with session.post(f"{collection}/p{i}/binding", json=binding) as response:
                    if response.status != 201:
                        failed += 1  # no event will come for it
                        continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if len(names) + failed >= pods:
            bound.set()
        with contextlib.suppress(TimeoutError):  # the pods never seen bound are reported as such
            await asyncio.wait_for(bound.wait(), timeout=120)
        elapsed = time.perf_counter() - started
        watch.cancel()
        latencies.sort()
        return EmulatorBenchmark(
            pods=pods,
            concurrency=concurrency,
            bindings_per_s=pods / elapsed,
            p50_ms=statistics.median(latencies) * 1e3 if latencies else math.nan,
            p99_ms=latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3 if latencies else math.nan,
            watch_events=seen,
            bindings_failed=failed,
            pods_seen_bound=len(names),
        )


def run_emulator_benchmark(*, pods: int = 3000, concurrency: int = 16) -> EmulatorBenchmark:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "aisched.cli", "emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return asyncio.run(_run(f"http://127.0.0.1:{port}", pods, concurrency))
    finally:
        server.terminate()
        server.wait(timeout=30)
