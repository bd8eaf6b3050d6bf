"""GPU health: critical XID and double-bit ECC events from NVML, and periodic probes.

NVML's event wait blocks, so `HealthMonitor.watch_events` runs in a thread of its own and
reports changes through a callback (the agent hands them to its event loop thread-safely).

A GPU turns unhealthy on a critical XID that is not an application fault, on a double-bit ECC
error, when it falls off the bus, or while it has page retirement / row remapping pending. It
turns healthy again when a probe finds it answering with nothing pending, and no XID arrived for
`recovery_after` seconds: a GPU that faults again keeps its unhealthy state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["APPLICATION_XIDS", "GpuHealth", "HealthMonitor"]

#: XIDs caused by the application, not the GPU: illegal address, MMU fault from user code,
#: reset channel on user request, preemptive cleanup, video processor exception.
APPLICATION_XIDS: Final = frozenset({13, 31, 43, 45, 68})
_WAIT_MS: Final = 1000


@dataclass(frozen=True)
class GpuHealth:
    healthy: bool
    reason: str | None = None


OnChange = Callable[[int, GpuHealth], None]
_LOST = GpuHealth(False, "GPU has fallen off the bus")


class HealthMonitor:
    """Health of each GPU, kept from NVML events and probes; `on_change` hears every flip."""

    def __init__(
        self,
        nvml: Any,
        *,
        on_change: OnChange,
        clock: Callable[[], float],
        recovery_after: float = 300.0,
    ) -> None:
        self._nvml = nvml
        self._on_change = on_change
        self._clock = clock
        self._recovery_after = recovery_after
        self._lock = threading.Lock()
        self._handles: list[Any] = []
        self._state: dict[int, GpuHealth] = {}
        self._last_fault: dict[int, float] = {}
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                self._handles.append(nvml.nvmlDeviceGetHandleByIndex(index))
                self._state[index] = GpuHealth(True)
            except nvml.NVMLError_GpuIsLost:
                self._handles.append(None)
                self._state[index] = _LOST
                self._last_fault[index] = clock()
        self._index = {id(h): i for i, h in enumerate(self._handles) if h is not None}
        #: Set while the event thread is registered with NVML (events before that are not seen).
        self.watching = threading.Event()

    def health(self) -> dict[int, GpuHealth]:
        with self._lock:
            return dict(self._state)

    def _set(self, index: int, health: GpuHealth) -> None:
        with self._lock:
            changed = self._state.get(index) != health
            self._state[index] = health
            if not health.healthy:
                self._last_fault[index] = self._clock()
        if changed:
            self._on_change(index, health)

    # -- events (a thread of their own) -----------------------------------------------------

    def watch_events(self, stop: threading.Event) -> None:
        """Wait for XID and ECC events until `stop` is set; for `threading.Thread(target=...)`."""
        nvml = self._nvml
        events = nvml.nvmlEventSetCreate()
        wanted = nvml.nvmlEventTypeXidCriticalError | nvml.nvmlEventTypeDoubleBitEccError
        try:
            for index, handle in enumerate(self._handles):
                if handle is None:
                    continue
                try:
                    nvml.nvmlDeviceRegisterEvents(handle, wanted, events)
                except nvml.NVMLError_NotSupported:
                    continue
                except nvml.NVMLError_GpuIsLost:
                    self._set(index, _LOST)
            self.watching.set()
            while not stop.is_set():
                try:
                    event = nvml.nvmlEventSetWait_v2(events, _WAIT_MS)
                except nvml.NVMLError_Timeout:
                    continue
                except nvml.NVMLError_GpuIsLost:
                    self.probe()  # find out which GPU, rather than guessing
                    continue
                self.handle_event(event)
        finally:
            self.watching.clear()
            nvml.nvmlEventSetFree(events)

    def handle_event(self, event: Any) -> None:
        """Apply one NVML event: critical XIDs and double-bit ECC errors make the GPU unhealthy."""
        nvml = self._nvml
        index = self._index.get(id(event.device))
        if index is None:
            index = int(nvml.nvmlDeviceGetIndex(event.device))
        if event.eventType == nvml.nvmlEventTypeDoubleBitEccError:
            self._set(index, GpuHealth(False, "double-bit ECC error"))
        elif event.eventType == nvml.nvmlEventTypeXidCriticalError:
            xid = int(event.eventData)
            if xid not in APPLICATION_XIDS:
                self._set(index, GpuHealth(False, f"XID {xid}"))

    # -- probes --------------------------------------------------------------------------

    def probe(self) -> None:
        """Ask every GPU whether it is still there and has nothing pending; heal those that recovered."""
        nvml = self._nvml
        now = self._clock()
        for index in range(len(self._handles)):
            try:
                if self._handles[index] is None:  # lost when the monitor started: is it back?
                    self._handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
                    self._index[id(self._handles[index])] = index
                handle = self._handles[index]
                nvml.nvmlDeviceGetUUID(handle)
                pending = self._pending(handle)
            except nvml.NVMLError_GpuIsLost:
                self._set(index, _LOST)
                continue
            if pending:
                self._set(index, GpuHealth(False, pending))
                continue
            current = self.health()[index]
            last = self._last_fault.get(index)
            if not current.healthy and (last is None or now - last >= self._recovery_after):
                with self._lock:
                    self._last_fault.pop(index, None)
                self._set(index, GpuHealth(True))

    def _pending(self, handle: Any) -> str | None:
        nvml = self._nvml
        try:
            if nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle) == nvml.NVML_FEATURE_ENABLED:
                return "page retirement pending; reset the GPU"
        except nvml.NVMLError_NotSupported:
            pass
        try:
            _corrected, _uncorrected, is_pending, failed = nvml.nvmlDeviceGetRemappedRows(handle)
        except nvml.NVMLError_NotSupported:
            return None
        if failed:
            return "row remapping failed"
        return "row remapping pending; reset the GPU" if is_pending else None
