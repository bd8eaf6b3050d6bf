"""`aisched run`: the operator as a process, against a cluster or the embedded emulator."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from pydantic import ValidationError

from aisched.controllers.kopf_handlers import Connection, run_operator
from aisched.emulator.cluster import ClusterSpec, NodeGroup, load_cluster
from aisched.kube.client import ConfigError
from aisched.observability.logging import configure_logging
from aisched.observability.tracing import configure_tracing
from aisched.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from aisched.emulator.runner import Emulator

__all__ = ["DEFAULT_CLUSTER", "LOCAL_ONLY", "ensure_namespace", "run_command", "run_settings"]

#: The address of a server only this machine reaches: the metrics of a run on the emulator.
LOCAL_ONLY: Final = "127.0.0.1"

#: The emulator's cluster when none is given: 32 DGX H100 nodes, 8 per rack, 2 racks per block.
DEFAULT_CLUSTER: Final = ClusterSpec.model_validate(
    {
        "metadata": {"name": "dgx-h100-4racks"},
        "nodeGroups": [
            NodeGroup.model_validate(
                {
                    "name": name,
                    "count": 16,
                    "machine": "dgx-h100",
                    "nodesPerRack": 8,
                    "block": f"block-{name}",
                }
            ).model_dump(by_alias=True, exclude_none=True)
            for name in ("a", "b")
        ],
    }
)


def run_command(
    *,
    kubeconfig: str | None,
    emulator: bool,
    cluster: Path | None,
    emulator_port: int,
    kubeconfig_out: Path,
    leader_elect: bool | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run until SIGINT or SIGTERM; the exit code."""
    if emulator and kubeconfig:
        print("aisched run: --kubeconfig and --emulator exclude each other", file=err)
        return 2
    if cluster is not None and not emulator:
        print("aisched run: --cluster describes the emulator's cluster; add --emulator", file=err)
        return 2
    try:
        settings = run_settings(emulator=emulator, leader_elect=leader_elect)
        spec = load_cluster(cluster) if cluster is not None else DEFAULT_CLUSTER
    except (SettingsError, OSError, ValueError, ValidationError) as exc:
        print(f"aisched run: {' '.join(str(exc).split())}", file=err)
        return 1
    configure_logging(settings.logging)
    try:
        shutdown_tracing = configure_tracing()
    except ValueError as exc:
        print(f"aisched run: {exc}", file=err)
        return 1
    try:
        return asyncio.run(
            _main(
                settings,
                kubeconfig=kubeconfig,
                cluster=spec if emulator else None,
                port=emulator_port,
                kubeconfig_out=kubeconfig_out,
                out=out,
            )
        )
    except ConfigError as exc:
        print(f"aisched run: no cluster to schedule onto: {' '.join(str(exc).split())}", file=err)
        return 1
    finally:
        shutdown_tracing()  # export what is buffered


async def _main(
    settings: Settings,
    *,
    kubeconfig: str | None,
    cluster: ClusterSpec | None,
    port: int,
    kubeconfig_out: Path,
    out: TextIO,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if cluster is None:
        return await run_operator(Connection(kubeconfig=kubeconfig), settings, stop=stop)
    from aisched.emulator.runner import Emulator  # noqa: PLC0415 - the emulator's API server needs the emulator extra

    async with Emulator(cluster=cluster, port=port) as api:
        ensure_namespace(api, settings.leader_election.namespace)
        api.kubeconfig(kubeconfig_out)
        print(f"aisched: emulator on {api.url}; kubeconfig written to {kubeconfig_out}", file=out, flush=True)
        print(f"  try: kubectl --kubeconfig {kubeconfig_out} get nodes,aijobs -A", file=out, flush=True)
        return await run_operator(Connection(server=api.url), settings, stop=stop)


def run_settings(
    *, emulator: bool, leader_elect: bool | None, environ: Mapping[str, str] | None = None
) -> Settings:
    """The settings of `aisched run`: from the environment (`environ`, default the process's), with
    the Lease taken or not as `--no-leader-elect` says. On the embedded emulator, everything is
    local, so metrics and health are served on 127.0.0.1 unless AISCHED_METRICS__HOST says otherwise."""
    overrides = {} if leader_elect is None else {"leader_election": {"enabled": leader_elect}}
    defaults = {"metrics": {"host": LOCAL_ONLY}} if emulator else None
    return load_settings(environ, defaults=defaults, **overrides)


def ensure_namespace(api: Emulator, name: str) -> None:
    """Create namespace `name` in the emulator unless it exists (the Lease lives there)."""
    namespaces = api.server.resource("", "v1", "namespaces")
    if api.server.store.find(namespaces, None, name) is None:
        api.server.create(
            namespaces, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
