"""The device plugin beside the agent: the node's pods through an informer, one server per resource.

`DevicePlugins.run()` waits for the agent's first discovery, then lists and watches the pods bound
to this node and serves each resource until stopped. Every change of the agent's view (a health
flip from the HealthMonitor, a rediscovery) reaches the open ListAndWatch streams at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aisched.agent.deviceplugin import DEFAULT_DIRECTORY
from aisched.agent.deviceplugin.book import PodBook
from aisched.agent.deviceplugin.devices import Inventory, inventory
from aisched.agent.deviceplugin.registration import PluginServer
from aisched.agent.deviceplugin.service import Changes, DevicePluginService
from aisched.api import keys
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.kube.informer import Informer, ListWatchClient
from aisched.kube.retry import until_stopped

__all__ = ["DevicePluginSettings", "DevicePlugins", "NodeDevices"]


class NodeDevices(Protocol):
    """The agent's view of this node's GPUs, as the device plugin reads it (`agent.runner.Agent`)."""

    #: Set once the GPUs have been discovered.
    discovered: asyncio.Event

    def desired(self) -> GPUNodeTopologyStatus: ...

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` on the event loop after every change of `desired()`."""


@dataclass(frozen=True)
class DevicePluginSettings:
    directory: Path = DEFAULT_DIRECTORY
    #: How often to check whether the kubelet restarted (its socket re-created, ours removed).
    check_every: float = 1.0
    #: How long Allocate waits for a pod the kubelet admits to reach the informer.
    pod_wait: float = 10.0


class DevicePlugins:
    """The plugin servers of one node: `nvidia.com/gpu` (whole GPUs)."""

    def __init__(
        self, *, client: ListWatchClient, node: str, devices: NodeDevices, settings: DevicePluginSettings
    ) -> None:
        self._devices = devices
        self.devices_changed = Changes()
        self.pods_changed = Changes()
        self.book = PodBook(resource=keys.GPU_RESOURCE, on_change=self.pods_changed.notify)
        self.informer = Informer(
            client, path="/api/v1/pods", field_selector=f"spec.nodeName={node}", handler=self.book
        )
        service = DevicePluginService(
            node=node,
            inventory=self.inventory,
            devices_changed=self.devices_changed,
            book=self.book,
            book_changed=self.pods_changed,
            pod_wait=settings.pod_wait,
        )
        self.servers = [PluginServer(service, directory=settings.directory, check_every=settings.check_every)]
        devices.subscribe(self.devices_changed.notify)

    def inventory(self) -> Inventory:
        return inventory(self._devices.desired() if self._devices.discovered.is_set() else None)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop`; an informer's configuration fault (403 on pods) ends it with the error."""
        if not await until_stopped(self._devices.discovered.wait(), stop):
            return
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.informer.run(stop))
            for server in self.servers:
                tasks.create_task(server.run(stop))
