"""The metrics and health endpoints the Deployment's probes and Prometheus read.

`/metrics` serves the registry of one `Metrics`; `/healthz` (liveness) and `/readyz` (readiness)
ask the callbacks they were given on every request, so the server holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web

from aisched.observability.metrics import CONTENT_TYPE, Metrics

__all__ = ["HealthServer"]


class HealthServer:
    """Serves `/metrics`, `/healthz` and `/readyz`; use as `async with`, on a free port with port=0."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        ready: Callable[[], bool],
        live: Callable[[], bool],
    ) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._ready = ready
        self._live = live
        self._runner: web.AppRunner | None = None
        self._bound: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        """The server's base URL, e.g. `http://127.0.0.1:8080`; only while it runs."""
        if self._bound is None:
            raise RuntimeError("the health server is not running")
        host, port = self._bound
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def start(self) -> None:
        """Bind the port and start answering."""
        if self._runner is not None:
            raise RuntimeError("the health server is already running")
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_healthz)
        app.router.add_get("/readyz", self._serve_readyz)
        # Probes every few seconds would drown the log, so no access log.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError as exc:  # in use, not an address of this machine, a name that does not resolve
            await runner.cleanup()
            where = f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
            raise OSError(exc.errno, f"cannot serve metrics on {where}: {exc.strerror or exc}") from exc
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self._bound = (str(address[0]), int(address[1]))

    async def stop(self) -> None:
        """Stop answering and release the port."""
        runner, self._runner, self._bound = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _serve_healthz(self, request: web.Request) -> web.Response:
        if self._live():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not live: the liveness check failed\n")

    async def _serve_readyz(self, request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready: the readiness check failed\n")
