"""The Kopf side of the operator: handlers for AIJob and TenantQuota, and the process's lifecycle.

Kopf watches the custom resources (low traffic) and runs the startup and cleanup hooks; the hot
path (pods, nodes, GPUNodeTopology) goes through the scheduler's own informers, started by the
`Manager` from the startup hook. The handlers are `on.event` handlers that only update the job
index: they write nothing to the objects (no finalizers, no Kopf annotations), so every replica
may run them while only the Lease holder acts on what they record.

Handlers are registered on an explicit registry (`register`); the `Manager` travels in Kopf's memo.
`aisched run` builds both; `kopf run -m aisched.kopf_main` registers on Kopf's default registry and
lets the startup hook build the Manager from the environment ($KUBECONFIG or in-cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from aisched.controllers.manager import Manager
from aisched.kube.client import KubeClient
from aisched.observability.logging import get_logger
from aisched.settings import Settings, load_settings

__all__ = ["Connection", "OperatorMemo", "register", "run_operator"]

log = get_logger(__name__)

GROUP = "aisched.io"
VERSION = "v1alpha1"


@dataclass(frozen=True)
class Connection:
    """How both Kopf and aisched's own client reach the API server."""

    kubeconfig: str | None = None  # a kubeconfig file; None: $KUBECONFIG, else in-cluster
    server: str | None = None  # a plain-HTTP server without credentials (the embedded emulator)

    async def client(self) -> KubeClient:
        if self.server is not None:
            return KubeClient(base_url=self.server)
        return await KubeClient.auto(self.kubeconfig)

    async def login(self, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
        """Kopf's credentials: the same server and identity aisched's own client uses.

        Kopf reads the kubeconfig itself but does not run `exec` credential plugins (EKS, GKE,
        AKS logins); the token those give is resolved here, anew at every (re)login.
        """
        if self.server is not None:
            return kopf.ConnectionInfo(server=self.server, insecure=True)
        path = self.kubeconfig or os.environ.get("KUBECONFIG")
        if not path:
            return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
                settings=settings
            )
        with _environment("KUBECONFIG", path):
            info = kopf.login_with_kubeconfig(settings=settings)
        has_identity = info is not None and (info.token or info.certificate_path or info.certificate_data)
        if info is not None and not has_identity:
            resolved = await KubeClient.from_kubeconfig(path)
            if resolved.token:
                info = dataclasses.replace(info, token=resolved.token)
        return info


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


@dataclass
class OperatorMemo:
    """What the handlers share (Kopf's memo): how to connect, the settings, and the Manager."""

    connection: Connection = field(default_factory=Connection)
    settings: Settings | None = None
    manager: Manager | None = None
    client: KubeClient | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    #: Set when the Manager ended on its own (an error): the process should exit.
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    #: True under `run_operator`, which watches `failed`; under plain `kopf run` nobody does.
    embedded: bool = False

    def manager_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error("manager_failed", error=repr(task.exception()))
        self.failed.set()
        if not self.embedded:
            signal.raise_signal(signal.SIGTERM)  # Kopf stops gracefully on it, running cleanup


def _memo(memo: Any) -> OperatorMemo:
    """The `OperatorMemo` inside Kopf's memo (`aisched run` passes one; `kopf run` starts empty)."""
    found = memo.get("aisched") if isinstance(memo, dict) else None
    if isinstance(found, OperatorMemo):
        return found
    created = OperatorMemo()
    memo["aisched"] = created
    return created


def register(registry: kopf.OperatorRegistry) -> kopf.OperatorRegistry:
    """Register aisched's handlers on `registry`; returns it."""

    @kopf.on.login(registry=registry)
    async def login(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> kopf.ConnectionInfo | None:
        return await _memo(memo).connection.login(settings)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        state = _memo(memo)
        # Leader election is aisched's own (a Lease); Kopf's peering would be a second one.
        settings.peering.standalone = True
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        if state.manager is None:
            state.settings = state.settings or load_settings()
            state.client = await state.connection.client()
            await state.client.__aenter__()
            state.manager = Manager(state.client, state.settings)
        state.task = asyncio.create_task(state.manager.run(state.stop), name="aisched manager")
        state.task.add_done_callback(state.manager_done)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        state = _memo(memo)
        state.stop.set()
        if state.task is not None:
            await asyncio.gather(state.task, return_exceptions=True)
        if state.client is not None:
            await state.client.close()

    @kopf.on.event(GROUP, VERSION, "aijobs", registry=registry)
    async def aijob_event(event: Any, memo: Any, **_: Any) -> None:
        manager = _memo(memo).manager
        if manager is not None:
            manager.index.job_event(event.get("type"), event["object"])

    @kopf.on.event(GROUP, VERSION, "tenantquotas", registry=registry)
    async def tenantquota_event(event: Any, memo: Any, **_: Any) -> None:
        manager = _memo(memo).manager
        if manager is not None:
            manager.index.tenant_event(event.get("type"), event["object"])

    return registry


async def run_operator(
    connection: Connection,
    settings: Settings,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    manager_ready: asyncio.Event | None = None,
    on_manager: Callable[[Manager], None] | None = None,
) -> int:
    """Run Kopf with aisched's handlers and a Manager until `stop` is set; the exit code.

    `ready` is set when Kopf has started watching; `manager_ready` once the Manager exists (its
    `leading` event then tells when this replica schedules), and `on_manager` is given it then
    (its `url` says where it serves metrics and the cluster view). 1 when the Manager failed.
    """
    async with await connection.client() as client:
        manager = Manager(client, settings)
        state = OperatorMemo(
            connection=connection,
            settings=settings,
            client=None,
            manager=manager,
            embedded=True,
        )
        if on_manager is not None:
            on_manager(manager)
        if manager_ready is not None:
            manager_ready.set()
        kopf_stop = asyncio.Event()
        memo = kopf.Memo(aisched=state)
        operator = asyncio.create_task(
            _kopf(
                registry=register(kopf.OperatorRegistry()),
                clusterwide=True,
                standalone=True,
                stop_flag=kopf_stop,
                ready_flag=ready,
                memo=memo,
            ),
            name="kopf",
        )
        stopping = asyncio.ensure_future(stop.wait())
        failing = asyncio.ensure_future(state.failed.wait())
        try:
            await asyncio.wait({operator, stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kopf_stop.set()
            stopping.cancel()
            failing.cancel()
            await asyncio.gather(operator, stopping, failing, return_exceptions=True)
        if operator.done() and not operator.cancelled() and operator.exception() is not None:
            log.error("kopf_failed", error=repr(operator.exception()))
            return 1
        return 1 if state.failed.is_set() else 0


async def _kopf(**options: Any) -> None:
    """`kopf.operator`, except that on exit Kopf stops only its own tasks.

    `kopf.operator` ends by cancelling every task of the event loop created since it started,
    which in a process that does more than Kopf (the demo, the tests, an embedded emulator)
    would cancel work that is not Kopf's.
    """
    tasks = await kopf.spawn_tasks(**options)
    await kopf.run_tasks(tasks, ignored=_NotKopfs())


class _NotKopfs(Collection[asyncio.Task[Any]]):
    """Every task whose coroutine was not written in the kopf package."""

    def __contains__(self, task: object) -> bool:
        if not isinstance(task, asyncio.Task):
            return True
        code = getattr(task.get_coro(), "cr_code", None)
        return code is None or "kopf" not in Path(code.co_filename).parts

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(())

    def __len__(self) -> int:
        return 0
