"""One resource's plugin server: its socket, its registration with the kubelet, and re-registration.

The kubelet serves `Registration` on `kubelet.sock` in its device-plugins directory. When it
restarts it removes every socket there (ours included) and creates `kubelet.sock` anew; a plugin
must then serve again and register again. The server checks every `check_every` seconds whether
its own socket is gone or `kubelet.sock` is another file (inode and change time), and if so
starts over. Registration that fails (no kubelet yet) is tried again at the same pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import grpc

from aisched.agent.deviceplugin.service import DevicePluginService
from aisched.agent.deviceplugin.v1beta1 import VERSION
from aisched.agent.deviceplugin.v1beta1 import api_pb2 as pb
from aisched.agent.deviceplugin.v1beta1 import api_pb2_grpc as pb_grpc
from aisched.kube.retry import until_stopped
from aisched.observability.logging import get_logger

__all__ = ["KUBELET_SOCKET", "PluginServer", "socket_name"]

log = get_logger(__name__)

KUBELET_SOCKET: Final = "kubelet.sock"
_REGISTER_TIMEOUT: Final = 5.0

FileId = tuple[int, int]


def socket_name(resource: str) -> str:
    """The plugin's socket file for `resource` (`aisched-nvidia.com_gpu.sock`)."""
    return f"aisched-{resource.replace('/', '_')}.sock"


def _file_id(path: Path) -> FileId | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_ctime_ns)


class PluginServer:
    """Serves one `DevicePluginService` and keeps it registered with the kubelet, until stopped."""

    def __init__(
        self,
        service: DevicePluginService,
        *,
        directory: Path,
        check_every: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.directory = directory
        self.socket = directory / socket_name(service.resource)
        self._kubelet = directory / KUBELET_SOCKET
        self._check_every = check_every
        self._sleep = sleep
        #: Successful registrations so far.
        self.registrations = 0
        #: Set while registered with the current kubelet.
        self.registered = asyncio.Event()
        self._log = log.bind(resource=service.resource, socket=str(self.socket))

    async def run(self, stop: asyncio.Event) -> None:
        """Serve, register, and start over whenever the kubelet restarts; until `stop`."""
        while not stop.is_set():
            server = await self._serve()
            try:
                kubelet = await self._register(stop)
                if kubelet is not None:
                    await self._until_kubelet_restarts(kubelet, stop)
            finally:
                self.registered.clear()
                await server.stop(grace=0.1)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.socket)

    async def _serve(self) -> grpc.aio.Server:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)  # left by an earlier process
        server = grpc.aio.server()
        pb_grpc.add_DevicePluginServicer_to_server(self.service, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix://{self.socket}")
        await server.start()
        self._log.info("device_plugin_serving")
        return server

    async def _register(self, stop: asyncio.Event) -> FileId | None:
        """Register with the kubelet, trying again until it answers; the identity of the
        `kubelet.sock` that answered, or None when stopped first."""
        request = pb.RegisterRequest(
            version=VERSION,
            endpoint=self.socket.name,
            resource_name=self.service.resource,
            options=pb.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True),
        )
        while not stop.is_set():
            kubelet = _file_id(self._kubelet)
            if kubelet is not None and _file_id(self.socket) is not None:
                try:
                    async with grpc.aio.insecure_channel(f"unix://{self._kubelet}") as channel:
                        stub = pb_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
                        await stub.Register(request, timeout=_REGISTER_TIMEOUT)
                except grpc.aio.AioRpcError as exc:
                    self._log.warning(
                        "device_plugin_register_failed", code=exc.code().name, detail=exc.details()
                    )
                else:
                    self.registrations += 1
                    self.registered.set()
                    self._log.info("device_plugin_registered", registrations=self.registrations)
                    return kubelet
            elif _file_id(self.socket) is None:
                return None  # our socket vanished before we registered: serve again
            await until_stopped(self._sleep(self._check_every), stop)
        return None

    async def _until_kubelet_restarts(self, kubelet: FileId, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await until_stopped(self._sleep(self._check_every), stop)
            if _file_id(self.socket) is None or _file_id(self._kubelet) != kubelet:
                self._log.info("kubelet_restarted", detail="serving and registering again")
                return
