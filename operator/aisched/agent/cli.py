"""`aisched agent` (arguments in aisched.cli): run the node agent, or print the GPU topology (`--print`)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from aisched.agent.discovery import NvmlUnavailableError, discover, nvml_session
from aisched.agent.publisher import Publisher
from aisched.agent.render import render
from aisched.agent.runner import Agent, EventThreadError
from aisched.kube.client import ApiError, ConfigError, KubeClient
from aisched.observability.logging import configure_logging
from aisched.settings import load_settings

__all__ = ["run", "serve"]


def _nvml(fake: str | None, node: str) -> Any:
    if fake is not None:
        from aisched.agent.fake_nvml import FakeNvml  # noqa: PLC0415 - only for --fake

        return FakeNvml.for_machine(fake, node=node)
    try:
        import pynvml  # noqa: PLC0415 - the driver binding is loaded only by the agent
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
        raise NvmlUnavailableError(f"the pynvml module is missing: {exc}") from exc
    return pynvml


def run(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    node = args.node or os.uname().nodename
    try:
        nvml = _nvml(args.fake, node)
        if args.print:
            with nvml_session(nvml):
                print(render(discover(nvml, sysfs=args.sysfs), node=node), file=out, end="")
            return 0
    except NvmlUnavailableError as exc:
        print(f"aisched agent: {exc}", file=err)
        return 1
    settings = load_settings()
    configure_logging(settings.logging)
    try:
        return asyncio.run(serve(nvml, node=node, args=args))
    except ConfigError as exc:
        print(f"aisched agent: no cluster to publish to: {_one_line(exc)}", file=err)
        return 1
    except (NvmlUnavailableError, EventThreadError) as exc:
        print(f"aisched agent: {_one_line(exc)}", file=err)
        return 1
    except ApiError as exc:  # the device plugin's pod informer: not allowed, or not served
        print(f"aisched agent: the device plugin cannot watch this node's pods: {_one_line(exc)}", file=err)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@asynccontextmanager
async def _nvml_session_off_loop(nvml: Any) -> AsyncIterator[None]:
    """`nvml_session`, with its blocking nvmlInit and nvmlShutdown in a worker thread."""
    session = nvml_session(nvml)
    await asyncio.to_thread(session.__enter__)
    try:
        yield
    finally:
        await asyncio.to_thread(session.__exit__, None, None, None)


async def serve(nvml: Any, *, node: str, args: argparse.Namespace) -> int:
    """The agent process: `--once`, or until SIGTERM/SIGINT. NVML is only called off the loop."""
    async with await KubeClient.auto(args.kubeconfig) as client:
        publisher = Publisher(
            client,
            node=node,
            namespace=args.namespace,
            now=lambda: datetime.now(UTC),
            sleep=asyncio.sleep,
        )
        async with _nvml_session_off_loop(nvml):
            build = functools.partial(
                Agent,
                nvml=nvml,
                publisher=publisher,
                clock=time.monotonic,
                sleep=asyncio.sleep,
                sysfs=args.sysfs,
            )
            agent = await asyncio.to_thread(build)  # its HealthMonitor asks NVML for the GPUs
            if args.once:
                await agent.publish_once()
                return 0
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            if not args.device_plugin:
                await agent.run(stop)
                return 0
            await _with_device_plugin(agent, client=client, node=node, args=args, stop=stop)
    return 0


async def _with_device_plugin(
    agent: Agent, *, client: KubeClient, node: str, args: argparse.Namespace, stop: asyncio.Event
) -> None:
    """The agent and its device plugin, side by side: either failing stops both, with its error."""
    # Only here: grpc is the deviceplugin extra, which `aisched agent --device-plugin` checked for.
    from aisched.agent.deviceplugin.runner import DevicePlugins, DevicePluginSettings  # noqa: PLC0415

    settings = DevicePluginSettings(directory=args.device_plugin_dir)
    plugins = DevicePlugins(client=client, node=node, devices=agent, settings=settings)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(agent.run(stop))
            tasks.create_task(plugins.run(stop))
    except* (EventThreadError, ApiError) as group:
        error = group.exceptions[0]
        raise error from error.__cause__  # the one error, as `run` reports it
