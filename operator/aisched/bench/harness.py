"""What the benchmarks that run real processes share: the cluster file, the emulator and the operator
each in a process of its own (log to a file, readiness, stop), waiting on a task that may fail, and
a pod watch that lists, then watches, and lists again when its resourceVersion expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
import yaml

from aisched.bench.emulator import free_port, wait_ready
from aisched.kube.client import JsonObject, KubeClient
from aisched.kube.informer import Informer

__all__ = [
    "NODES_PER_RACK",
    "RACKS_PER_BLOCK",
    "EmulatorProcess",
    "OperatorProcess",
    "PodWatch",
    "background",
    "cluster_manifest",
    "first",
    "log_warnings",
]

NODES_PER_RACK: Final = 32
RACKS_PER_BLOCK: Final = 4
_EXPIRED: Final = 410
_STOP_TIMEOUT: Final = 60.0
_POLL_S: Final = 0.05


def cluster_manifest(nodes: int, *, name: str = "bench", per_rack: int = NODES_PER_RACK) -> dict[str, Any]:
    """A SimulatedCluster of `nodes` DGX H100s: a node group per block, `per_rack` nodes to a rack."""
    per_block = per_rack * RACKS_PER_BLOCK
    groups = [
        {
            "name": f"b{block}",
            "count": min(per_block, nodes - block * per_block),
            "machine": "dgx-h100",
            "nodesPerRack": per_rack,
            "block": f"block-{block}",
        }
        for block in range(math.ceil(nodes / per_block))
    ]
    return {
        "apiVersion": "emulator.aisched.io/v1alpha1",
        "kind": "SimulatedCluster",
        "metadata": {"name": name},
        "nodeGroups": groups,
    }


async def first(wanted: Awaitable[object], *tasks: asyncio.Task[Any]) -> None:
    """Await `wanted`, unless one of `tasks` ends first: then raise its error."""
    waiting = asyncio.ensure_future(wanted)
    try:
        await asyncio.wait({waiting, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiting.done():
            waiting.cancel()
    if waiting.done() and not waiting.cancelled():
        waiting.result()
        return
    ended = next(task for task in tasks if task.done())
    ended.result()  # raises the task's error
    raise RuntimeError(f"{ended.get_name()} ended early")


@contextlib.asynccontextmanager
async def background(work: Coroutine[Any, Any, None], *, name: str) -> AsyncIterator[asyncio.Task[None]]:
    """`work` as a task for the life of the block (to pass to `first`), cancelled at its end."""
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until_exit(process: subprocess.Popen[bytes], *, name: str, log_path: Path) -> None:
    """Return never; raise once `process` has exited, with the end of its log (for `first`)."""
    while process.poll() is None:  # noqa: ASYNC110 - a Popen has nothing to await; a thread would outlive the loop
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the {name} exited with {process.returncode}:\n{_tail(log_path)}")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


def log_warnings(log_path: Path) -> int:
    """Lines of a JSON log at WARNING or above."""
    count = 0
    with log_path.open() as lines:
        for line in lines:
            with contextlib.suppress(ValueError):
                if json.loads(line).get("level") in ("warning", "error", "critical"):
                    count += 1
    return count


def _stop(process: subprocess.Popen[bytes], *, sig: int) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmulatorProcess:
    """`aisched emulator` serving `nodes` DGX H100s on a free port, logging to `workdir`/emulator.log;
    `with` it, then await `ready()`. Its kubeconfig (`kubeconfig`) is written before it is ready."""

    def __init__(
        self, workdir: Path, *, nodes: int, name: str = "bench", per_rack: int = NODES_PER_RACK
    ) -> None:
        self.workdir = workdir
        self._per_rack = per_rack
        self.log_path = workdir / "emulator.log"
        self.kubeconfig = workdir / "kubeconfig"
        self.url = ""
        self._nodes = nodes
        self._name = name
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the emulator is not running")
        return self._process

    def __enter__(self) -> Self:
        cluster = self.workdir / "cluster.yaml"
        cluster.write_text(
            yaml.safe_dump(
                cluster_manifest(self._nodes, name=self._name, per_rack=self._per_rack), sort_keys=False
            )
        )
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "aisched.cli", "emulator", "--cluster", str(cluster)),
                    *("--port", str(port), "--kubeconfig", str(self.kubeconfig)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None:
            _stop(self._process, sig=signal.SIGTERM)

    async def ready(self, *, within: float) -> None:
        """Wait until the emulator answers /readyz; raise if it exits first."""
        async with aiohttp.ClientSession() as session, background(self.exited(), name="emulator") as exited:
            await first(wait_ready(session, self.url, within=within), exited)

    async def exited(self) -> None:
        """Raise once the emulator has exited."""
        await _until_exit(self.process, name="emulator", log_path=self.log_path)


class OperatorProcess:
    """`aisched run --kubeconfig ... --no-leader-elect`: the operator as a user starts it (Kopf, the
    Manager, its informers and controllers), with `settings` (`AISCHED_...` variables) in its
    environment, logging JSON at INFO to `workdir`/operator.log; `async with` it, then await `ready()`."""

    #: The log events that say the scheduling loop and the AIJob controller have listed the cluster.
    READY_EVENTS: Final = frozenset({"scheduler_started", "job_controller_started"})

    def __init__(self, workdir: Path, *, kubeconfig: Path, settings: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.log_path = workdir / "operator.log"
        self._kubeconfig = kubeconfig
        self._settings = dict(settings)
        self._process: asyncio.subprocess.Process | None = None

    @property
    def process(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise RuntimeError("the operator is not running")
        return self._process

    async def __aenter__(self) -> Self:
        environ = {
            **os.environ,
            "AISCHED_METRICS__PORT": "0",
            "AISCHED_LOGGING__FORMAT": "json",
            "AISCHED_LOGGING__LEVEL": "INFO",
            **self._settings,
        }
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "aisched.cli", "run"),
                *("--kubeconfig", str(self._kubeconfig), "--no-leader-elect"),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environ,
            )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop it as Ctrl-C does (Kopf's cleanup; bindings in flight finish); kill it after a minute."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def ready(self, *, within: float) -> None:
        """Wait until its log shows `READY_EVENTS`; raise if it exits first or takes over `within` s."""
        async with background(self.exited(), name="operator") as exited:
            try:
                await asyncio.wait_for(first(self._logged(self.READY_EVENTS), exited), within)
            except TimeoutError:
                tail = _tail(self.log_path)
                raise RuntimeError(f"the operator was not ready within {within:.0f} s:\n{tail}") from None

    async def exited(self) -> None:
        """Raise once the operator has exited."""
        code = await self.process.wait()
        raise RuntimeError(f"the operator exited with {code}:\n{_tail(self.log_path)}")

    async def _logged(self, events: Iterable[str]) -> None:
        missing = set(events)
        offset = 0
        while missing:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.splitlines():
                with contextlib.suppress(ValueError):
                    missing.discard(json.loads(line).get("event"))
            if missing:
                await asyncio.sleep(_POLL_S)


class PodWatch:
    """Every state of the pods under `path` the API server shows, through the operator's own
    `Informer` (list, watch from its resourceVersion, list again when that expires, stale events
    dropped): `seen(pod, at)` gets each added or changed pod, in the server's order, with the wall
    time it arrived; `listed` is set once the first list is in."""

    def __init__(self, kube: KubeClient, path: str, seen: Callable[[JsonObject, float], None]) -> None:
        self._seen = seen
        self._informer = Informer(kube, path=path, handler=self)
        self.listed = self._informer.synced  # later changes cannot be missed

    async def run(self) -> None:
        await self._informer.run(asyncio.Event())  # until cancelled

    # The informer's handler.
    def on_add(self, obj: JsonObject) -> None:
        self._seen(obj, time.time())

    def on_update(self, old: JsonObject, new: JsonObject) -> None:
        self._seen(new, time.time())

    def on_delete(self, obj: JsonObject) -> None:
        pass

    def on_synced(self) -> None:
        pass
