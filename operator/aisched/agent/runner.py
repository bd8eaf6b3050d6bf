"""The agent process: discover, watch health, publish, and keep the Lease fresh, until stopped.

NVML calls block, so discovery and probes run through `asyncio.to_thread`, and the event wait
runs in a thread of its own whose findings come back to the loop with `call_soon_threadsafe`.
If that thread dies, `Agent.run` raises rather than running on without health monitoring.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisched.agent.discovery import Discovery, discover, fingerprint
from aisched.agent.health import GpuHealth, HealthMonitor
from aisched.agent.publisher import Publisher, PublishStopped
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.kube.retry import until_stopped
from aisched.observability.logging import get_logger

__all__ = ["Agent", "AgentTimings", "EventThreadError", "with_health"]

log = get_logger(__name__)


@dataclass(frozen=True)
class AgentTimings:
    lease_every: float = 10.0
    probe_every: float = 10.0
    rediscover_every: float = 60.0


def with_health(status: GPUNodeTopologyStatus, health: dict[int, GpuHealth]) -> GPUNodeTopologyStatus:
    """The discovered status with the monitor's health applied, and its fingerprint recomputed.

    Discovery's own Unhealthy verdicts (lost, or not answering basic queries) stand.
    """
    gpus = []
    for gpu in status.gpus:
        state = health.get(gpu.index)
        if state is None or gpu.health == "Unhealthy":
            gpus.append(gpu)
            continue
        verdict = {"health": "Healthy" if state.healthy else "Unhealthy", "health_reason": state.reason}
        gpus.append(gpu.model_copy(update=verdict))
    updated = status.model_copy(update={"gpus": gpus})
    return updated.model_copy(update={"fingerprint": fingerprint(updated)})


class EventThreadError(RuntimeError):
    """The NVML event thread ended with an unexpected exception: GPU health is no longer watched."""


class Agent:
    """One node's agent. `run()` until `stop` is set; `publish_once()` for a single pass.

    Builds its HealthMonitor, which asks NVML for the GPUs: construct it off the event loop
    (`asyncio.to_thread`) when NVML is the real driver.
    """

    def __init__(
        self,
        *,
        nvml: Any,
        publisher: Publisher,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        timings: AgentTimings = AgentTimings(),
        sysfs: Path = Path("/sys"),
    ) -> None:
        self.nvml = nvml
        self.publisher = publisher
        self._sleep = sleep
        self._timings = timings
        self._sysfs = sysfs
        self._changed = asyncio.Event()
        self._event_thread_failed = asyncio.Event()
        self._event_thread_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.monitor = HealthMonitor(
            nvml, on_change=self._health_changed, clock=clock, on_failure=self._event_thread_died
        )
        self.discovery: Discovery | None = None
        #: Set once the first discovery is done (`desired()` answers from then on).
        self.discovered = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` on the event loop after every health change and every rediscovery
        that changed the hardware view (the device plugin's ListAndWatch streams)."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        self._changed.set()
        for listener in self._listeners:
            listener()

    def desired(self) -> GPUNodeTopologyStatus:
        """What the GPUNodeTopology status should say now."""
        if self.discovery is None:
            raise RuntimeError("nothing discovered yet")
        return with_health(self.discovery.status, self.monitor.health())

    def _health_changed(self, index: int, health: GpuHealth) -> None:
        # Called from the event thread or from a probe thread: hand over to the loop.
        log.warning("gpu_health_changed", gpu=index, healthy=health.healthy, reason=health.reason)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._notify)

    def _event_thread_died(self, error: BaseException) -> None:
        # Called from the event thread as it ends.
        self._event_thread_error = error
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._event_thread_failed.set)

    async def rediscover(self) -> bool:
        """Discover again; True when the hardware view changed."""
        found = await asyncio.to_thread(discover, self.nvml, sysfs=self._sysfs)
        changed = self.discovery is None or found.status.fingerprint != self.discovery.status.fingerprint
        self.discovery = found
        self.discovered.set()
        if changed:
            for listener in self._listeners:
                listener()
        return changed

    async def publish_once(self, *, stop: asyncio.Event | None = None) -> None:
        """Discover, probe, publish the topology, add missing Node labels, renew the Lease.

        With `stop`: PublishStopped as soon as it is set, even while the API server is down.
        """
        self._loop = asyncio.get_running_loop()
        await self.rediscover()
        await asyncio.to_thread(self.monitor.probe)
        await self.publisher.publish_topology(self.desired, stop=stop)
        await self.publisher.label_node(self.desired(), stop=stop)
        await self.publisher.renew_lease(stop=stop)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish now and whenever health or hardware changes; renew the Lease; until `stop`.

        1. Start the NVML event thread first: an XID during a start-up API outage is kept.
        2. Publish everything once (given up when `stop` is set).
        3. Renew the Lease, probe, and rediscover periodically; publish on every health change and
           every rediscovery (which re-reads the object: a deleted or edited one is rebuilt).
        Raises EventThreadError if the event thread ends with an unexpected exception.
        """
        self._loop = asyncio.get_running_loop()
        events_stop = threading.Event()
        events = threading.Thread(
            target=self.monitor.watch_events, args=(events_stop,), name="nvml-events", daemon=True
        )
        events.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._fail_with_event_thread(stop))
                await self.publish_once(stop=stop)
                tasks.create_task(self._every(self._timings.lease_every, self._renew_lease, stop))
                tasks.create_task(self._every(self._timings.probe_every, self._probe, stop))
                tasks.create_task(self._every(self._timings.rediscover_every, self._rediscover, stop))
                tasks.create_task(self._publish_changes(stop))
        except* PublishStopped:
            log.info("agent_stopped_while_publishing")
        except* EventThreadError as group:
            error = group.exceptions[0]
            raise error from error.__cause__  # the thread's own exception, not the group
        finally:
            events_stop.set()
            await asyncio.to_thread(events.join)

    async def _fail_with_event_thread(self, stop: asyncio.Event) -> None:
        await until_stopped(self._event_thread_failed.wait(), stop)
        error = self._event_thread_error
        if error is not None:
            raise EventThreadError(
                f"the NVML event thread died ({type(error).__name__}: {error}); GPU health is not watched"
            ) from error

    async def _renew_lease(self, stop: asyncio.Event) -> None:
        await self.publisher.renew_lease(stop=stop)

    async def _probe(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self.monitor.probe)

    async def _rediscover(self, stop: asyncio.Event) -> None:
        # Publish even when the hardware view is unchanged: publishing re-reads the object and
        # rewrites it if it is missing or its fingerprint differs (deleted, edited, restored).
        await self.rediscover()
        self._changed.set()

    async def _publish_changes(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await until_stopped(self._changed.wait(), stop)
            if stop.is_set():
                return
            self._changed.clear()
            await self.publisher.publish_topology(self.desired, stop=stop)

    async def _every(
        self, period: float, action: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            await until_stopped(self._sleep(period), stop)
            if not stop.is_set():
                await action(stop)
