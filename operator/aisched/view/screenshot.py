"""`aisched view-screenshot` (`make view-screenshot`): a picture of the cluster view on a busy cluster.

Starts the emulator with a simulated cluster, reports one GPU unhealthy (XID 79, as an agent
would), runs the operator against it exactly as `aisched demo` does, applies the demo's jobs
(examples and a burst that asks for more GPUs than there are) with pods that run long enough not
to end while the picture is taken, waits until the scheduler has placed what fits and turned
away the rest, and has headless Chromium save the view as a PNG.

Exit code 0 when the picture was written, 1 otherwise (no Chromium, the emulator extra missing,
the cluster never settling within the timeout).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import aiohttp

from aisched.controllers.kopf_handlers import Connection, run_operator
from aisched.controllers.manager import Manager
from aisched.kube.client import KubeClient
from aisched.observability.logging import configure_logging
from aisched.queue import QueueState
from aisched.runner import LOCAL_ONLY, ensure_namespace
from aisched.settings import LoggingSettings, load_settings
from aisched.view.browser import BrowserError, find_chromium, screenshot

if TYPE_CHECKING:
    from aisched.controllers.scheduling.runtime import SchedulerRuntime

__all__ = ["run_view_screenshot"]

#: How long the demo's pods run: longer than it takes to settle and take the picture.
_RUN_SECONDS: Final = 600.0
#: The GPU reported unhealthy: (node index from the end, GPU index).
_SICK: Final = (1, 5)
#: How often the scheduler's state is looked at while waiting for it to settle, and for how many
#: looks in a row it must stay settled.
_LOOK_EVERY: Final = 0.2
_SETTLED_LOOKS: Final = 5
_OK: Final = 200


def run_view_screenshot(
    *,
    cluster: Path,
    examples: Path,
    output: Path,
    width: int,
    height: int,
    timeout: float,
    out: TextIO,
    err: TextIO,
) -> int:
    configure_logging(LoggingSettings(level="WARNING", format="console"), stream=err)
    chromium = find_chromium()
    if chromium is None:
        print("aisched view-screenshot: no Chromium found (apt-get install chromium)", file=err)
        return 1
    try:
        return asyncio.run(
            _shoot(
                cluster=cluster,
                examples=examples,
                output=output,
                size=(width, height),
                give_up_after=timeout,
                chromium=chromium,
                out=out,
            )
        )
    except TimeoutError:
        print(f"aisched view-screenshot: the cluster did not settle within {timeout:g}s", file=err)
        return 1
    except (OSError, ValueError, BrowserError) as exc:
        print(f"aisched view-screenshot: {' '.join(str(exc).split())}", file=err)
        return 1


async def _shoot(
    *,
    cluster: Path,
    examples: Path,
    output: Path,
    size: tuple[int, int],
    give_up_after: float,
    chromium: str,
    out: TextIO,
) -> int:
    from aisched.demo import apply_demo  # noqa: PLC0415 - the emulator extra
    from aisched.emulator.faults import gpu_health  # noqa: PLC0415
    from aisched.emulator.runner import Emulator  # noqa: PLC0415

    settings = load_settings(None, metrics={"host": LOCAL_ONLY, "port": 0})
    stop = asyncio.Event()
    async with Emulator(cluster=cluster) as api, KubeClient(base_url=api.url) as kube:
        ensure_namespace(api, settings.leader_election.namespace)
        nodes = sorted(n["metadata"]["name"] for n in (await kube.get("/api/v1/nodes"))["items"])
        if len(nodes) >= _SICK[0]:
            await gpu_health(kube, nodes[-_SICK[0]], _SICK[1], xid=79)
        made: asyncio.Queue[Manager] = asyncio.Queue()
        operator = asyncio.create_task(
            run_operator(Connection(server=api.url), settings, stop=stop, on_manager=made.put_nowait)
        )
        try:
            async with asyncio.timeout(give_up_after):
                manager = await made.get()
                await manager.leading.wait()
                await apply_demo(kube, examples, seconds=_RUN_SECONDS)
                await _settled(manager)
            url = manager.url
            if url is None:
                raise OSError("the operator serves no HTTP port")
            await _check_page(f"{url}/")
            width, height = size
            await screenshot(f"{url}/", output, width=width, height=height, chromium=chromium)
            print(f"wrote {output} ({width}x{height}) of {url}/", file=out)
        finally:
            stop.set()
            code = await operator
    return 0 if code == 0 else 1


async def _check_page(url: str) -> None:
    """Fail unless `url` answers 200: a picture of an error page is no picture of the view."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        if response.status != _OK:
            raise OSError(f"{url} answered {response.status}: {(await response.text())[:200]}")


async def _settled(manager: Manager) -> None:
    """Return once the scheduler has placed what fits and turned away the rest, and stays so for
    a second: GPUs held, no binding in flight, no gang active or backing off, some gang waiting."""
    looks = 0
    while looks < _SETTLED_LOOKS:
        runtime = manager.runtime
        looks = looks + 1 if runtime is not None and _quiet(runtime) else 0
        await asyncio.sleep(_LOOK_EVERY)


def _quiet(runtime: SchedulerRuntime) -> bool:
    depth = runtime.queue.depth()
    return (
        runtime.cache.gpus_held > 0
        and not runtime.cache.assumed()
        and len(runtime.queue) > 0
        and depth[QueueState.ACTIVE] == 0
        and depth[QueueState.BACKOFF] == 0
    )
