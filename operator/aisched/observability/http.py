"""The metrics and health endpoints the Deployment's probes and Prometheus read, and the cluster view.

`/metrics` serves the registry of one `Metrics`; `/healthz` (liveness) and `/readyz` (readiness)
ask the callbacks they were given on every request; `/` (the cluster view's page, `?rack=NAME` to
zoom into one rack) and `/api/view` (the same as JSON; `html=1` adds the page's sections, for its
refresh) ask the view source; `/api/explain/pods/NAMESPACE/NAME` asks the explain source why a pod
waits (`aisched explain --scheduler`). The server holds no state of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

from aisched.observability.logging import get_logger
from aisched.observability.metrics import CONTENT_TYPE, Metrics
from aisched.view.assets import CSP
from aisched.view.page import page, payload, standby_page
from aisched.view.provider import ViewSource

__all__ = ["HealthServer"]

log = get_logger(__name__)

#: The longest rack name asked for that is looked up (a label value is at most 63 characters).
_RACK_LIMIT: Final = 253
_FAILED: Final = 500
#: Every view answer is live data, and the page runs only its own script.
_VIEW_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE_HEADERS: Final = {**_VIEW_HEADERS, "Content-Security-Policy": CSP, "X-Frame-Options": "DENY"}


class HealthServer:
    """Serves `/metrics`, `/healthz`, `/readyz` and, given a `view` source, the cluster view at `/`
    and `/api/view`; use as `async with`, on a free port with port=0."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        ready: Callable[[], bool],
        live: Callable[[], bool],
        view: ViewSource | None = None,
        explain: Callable[[str, str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._view = view
        self._explain = explain
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
        if self._view is not None:
            app.router.add_get("/", self._serve_page)
            app.router.add_get("/api/view", self._serve_view)
        if self._explain is not None:
            app.router.add_get("/api/explain/pods/{namespace}/{name}", self._serve_explain)
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

    async def _serve_page(self, request: web.Request) -> web.Response:
        assert self._view is not None
        rack = _asked_rack(request)
        try:
            view = self._view(rack=rack)
            body = page(view) if view is not None else standby_page()
        except Exception as exc:  # a bug: say so, keep serving the rest
            log.exception("view_failed", path=request.path)
            return web.Response(
                status=_FAILED, text=f"the cluster view failed: {type(exc).__name__}; see the log\n"
            )
        return web.Response(text=body, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS)

    async def _serve_view(self, request: web.Request) -> web.Response:
        assert self._view is not None
        rack = _asked_rack(request)
        try:
            view = self._view(rack=rack)
            body = json.dumps(payload(view, html=request.query.get("html") == "1"), separators=(",", ":"))
        except Exception as exc:  # a bug: say so, keep serving the rest
            log.exception("view_failed", path=request.path)
            return web.json_response(
                {"error": f"the cluster view failed: {type(exc).__name__}"}, status=_FAILED
            )
        return web.Response(text=body, content_type="application/json", headers=_VIEW_HEADERS)

    async def _serve_explain(self, request: web.Request) -> web.Response:
        assert self._explain is not None
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        try:
            answer = self._explain(namespace, name)
        except Exception as exc:  # a bug: say so, keep serving the rest
            log.exception("explain_failed", path=request.path)
            return web.json_response({"error": f"explain failed: {type(exc).__name__}"}, status=_FAILED)
        if answer is None:
            return web.json_response(
                {"error": f"this scheduler does not know pod {namespace}/{name} (or does not lead)"},
                status=404,
                headers=_VIEW_HEADERS,
            )
        return web.json_response(answer, headers=_VIEW_HEADERS)


def _asked_rack(request: web.Request) -> str | None:
    """The rack the page is asked to zoom into (`?rack=NAME`), None for the whole cluster."""
    rack = request.query.get("rack") or None
    if rack is not None and len(rack) > _RACK_LIMIT:
        raise web.HTTPBadRequest(text="no rack has so long a name\n")
    return rack
