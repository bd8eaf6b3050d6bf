"""GPU health: critical XID and double-bit ECC events from NVML, and periodic probes.

NVML's event wait blocks, so `HealthMonitor.watch_events` runs in a thread of its own and
reports changes through a callback (the agent hands them to its event loop thread-safely).
Probes run in other threads (`asyncio.to_thread`) at the same time: the handle table and the
health state each sit behind a lock, and probes run one at a time.

A GPU turns unhealthy on a critical XID that is not an application fault, on a double-bit ECC
error, when it falls off the bus, or while it has page retirement / row remapping pending. It
turns healthy again when a probe finds it answering with nothing pending, and no XID arrived for
`recovery_after` seconds: a GPU that faults again keeps its unhealthy state.

The event thread survives NVML errors: it logs them and waits (on its stop event) for a backoff
before trying again. Should it end with an unexpected exception all the same, `on_failure`
hears it, so that the agent stops rather than running on without health monitoring.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aisched.agent.discovery import LOST_REASON
from aisched.observability.logging import get_logger

__all__ = ["APPLICATION_XIDS", "EventBackoff", "GpuHealth", "HealthMonitor"]

log = get_logger(__name__)

#: XIDs caused by the application, not the GPU: illegal address, MMU fault from user code,
#: reset channel on user request, preemptive cleanup, video processor exception.
APPLICATION_XIDS: Final = frozenset({13, 31, 43, 45, 68})
_WAIT_MS: Final = 1000


@dataclass(frozen=True)
class GpuHealth:
    healthy: bool
    reason: str | None = None


OnChange = Callable[[int, GpuHealth], None]
OnFailure = Callable[[BaseException], None]
#: Wait on the stop event for up to the given seconds; True when stop was set (threading.Event.wait).
StopWait = Callable[[threading.Event, float], bool]
_LOST = GpuHealth(False, LOST_REASON)


@dataclass(frozen=True)
class EventBackoff:
    """Pauses of the event thread after NVML errors: initial × 2^n seconds, capped."""

    initial: float = 1.0
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.initial * 2.0 ** max(failures - 1, 0))


def _wait_on_stop(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(seconds)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _DeviceLost(Exception):  # noqa: N818 - an outcome of the lookup, not an error
    """The event's device answered GpuIsLost: which GPU it was is for a probe to find out."""


@dataclass
class _Gpu:
    """What the monitor knows of GPU `index` to recognise it: NVML's handle, UUID and PCI bus id."""

    handle: Any = None
    uuid: str | None = None
    bus_id: str | None = None


class HealthMonitor:
    """Health of each GPU, kept from NVML events and probes; `on_change` hears every flip."""

    def __init__(
        self,
        nvml: Any,
        *,
        on_change: OnChange,
        clock: Callable[[], float],
        recovery_after: float = 300.0,
        on_failure: OnFailure | None = None,
        backoff: EventBackoff = EventBackoff(),
        stop_wait: StopWait = _wait_on_stop,
    ) -> None:
        self._nvml = nvml
        self._on_change = on_change
        self._on_failure = on_failure
        self._clock = clock
        self._recovery_after = recovery_after
        self._backoff = backoff
        self._stop_wait = stop_wait
        self._lock = threading.Lock()  # health state
        self._table_lock = threading.Lock()  # the GPU table
        self._probing = threading.Lock()  # one probe at a time
        self._gpus: list[_Gpu] = []
        self._state: dict[int, GpuHealth] = {}
        self._last_fault: dict[int, float] = {}
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                self._gpus.append(self._identify(nvml.nvmlDeviceGetHandleByIndex(index)))
                self._state[index] = GpuHealth(True)
            except nvml.NVMLError as exc:  # lost, or not answering: probes will ask again
                lost = isinstance(exc, nvml.NVMLError_GpuIsLost)
                self._gpus.append(_Gpu())
                self._state[index] = _LOST if lost else GpuHealth(False, f"NVML error: {exc}")
                self._last_fault[index] = clock()
        #: Set while the event thread is registered with NVML (events before that are not seen).
        self.watching = threading.Event()

    def _identify(self, handle: Any) -> _Gpu:
        """The GPU behind `handle`, known by what it tells (GpuIsLost propagates)."""
        nvml = self._nvml
        return _Gpu(
            handle=handle,
            uuid=self._ask(lambda: _text(nvml.nvmlDeviceGetUUID(handle))),
            bus_id=self._ask(lambda: _text(nvml.nvmlDeviceGetPciInfo(handle).busId).upper()),
        )

    def _ask(self, query: Callable[[], str]) -> str | None:
        """`query()`, or None when NVML will not say; a lost GPU propagates."""
        nvml = self._nvml
        try:
            return query()
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError:
            return None

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

    def _handles(self) -> list[tuple[int, Any]]:
        with self._table_lock:
            return [(index, gpu.handle) for index, gpu in enumerate(self._gpus)]

    # -- events (a thread of their own) -----------------------------------------------------

    def watch_events(self, stop: threading.Event) -> None:
        """Wait for XID and ECC events until `stop` is set; for `threading.Thread(target=...)`."""
        try:
            self._watch(stop)
        except BaseException as exc:
            log.exception("gpu_event_thread_failed")
            if self._on_failure is None:
                raise
            self._on_failure(exc)

    def _watch(self, stop: threading.Event) -> None:
        nvml = self._nvml
        events: Any = None
        failures = 0
        try:
            while not stop.is_set():
                try:
                    if events is None:
                        events = nvml.nvmlEventSetCreate()
                        self._register(events)
                        self.watching.set()
                    try:
                        event = nvml.nvmlEventSetWait_v2(events, _WAIT_MS)
                    except nvml.NVMLError_Timeout:
                        failures = 0
                        continue
                    except nvml.NVMLError_GpuIsLost:
                        self.probe()  # find out which GPU, rather than guessing
                        continue
                    failures = 0
                    self.handle_event(event)
                except nvml.NVMLError as exc:
                    failures += 1
                    delay = self._backoff.delay(failures)
                    log.warning("gpu_event_error", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
                    if self._stop_wait(stop, delay):
                        return
        finally:
            self.watching.clear()
            if events is not None:
                try:
                    nvml.nvmlEventSetFree(events)
                except nvml.NVMLError as exc:  # shut down already, or the driver is gone
                    log.warning("gpu_event_set_free_failed", error=f"{type(exc).__name__}: {exc}")

    def _register(self, events: Any) -> None:
        """Register each GPU for the wanted event types it supports."""
        nvml = self._nvml
        wanted = nvml.nvmlEventTypeXidCriticalError | nvml.nvmlEventTypeDoubleBitEccError
        for index, handle in self._handles():
            if handle is None:
                continue
            try:
                types = wanted & nvml.nvmlDeviceGetSupportedEventTypes(handle)
                if not types:
                    log.warning("gpu_events_unsupported", gpu=index, detail="no XID or ECC events")
                    continue
                nvml.nvmlDeviceRegisterEvents(handle, types, events)
            except nvml.NVMLError_GpuIsLost:
                self._set(index, _LOST)
            except nvml.NVMLError as exc:
                log.warning("gpu_events_unavailable", gpu=index, error=f"{type(exc).__name__}: {exc}")

    def handle_event(self, event: Any) -> None:
        """Apply one NVML event: critical XIDs and double-bit ECC errors make the GPU unhealthy."""
        nvml = self._nvml
        try:
            index = self._index_of(event.device)
        except _DeviceLost:
            self.probe()
            return
        if index is None:
            log.warning("gpu_event_unknown_device", event_type=int(event.eventType))
            return
        if event.eventType == nvml.nvmlEventTypeDoubleBitEccError:
            self._set(index, GpuHealth(False, "double-bit ECC error"))
        elif event.eventType == nvml.nvmlEventTypeXidCriticalError:
            xid = int(event.eventData)
            if xid not in APPLICATION_XIDS:
                self._set(index, GpuHealth(False, f"XID {xid}"))

    def _index_of(self, device: Any) -> int | None:
        """The index of the GPU `device` points at, by UUID, else by PCI bus id (each read of
        `event.device` is a new pointer object, so its identity says nothing)."""
        nvml = self._nvml
        try:
            seen = self._identify(device)
        except nvml.NVMLError_GpuIsLost as exc:
            raise _DeviceLost() from exc
        with self._table_lock:
            for index, gpu in enumerate(self._gpus):
                if seen.uuid is not None and gpu.uuid == seen.uuid:
                    return index
            for index, gpu in enumerate(self._gpus):
                if seen.bus_id is not None and gpu.bus_id == seen.bus_id:
                    return index
        return None

    # -- probes --------------------------------------------------------------------------

    def probe(self) -> None:
        """Ask every GPU whether it is still there and has nothing pending; heal those that recovered."""
        with self._probing:
            now = self._clock()
            for index, handle in self._handles():
                self._probe_one(index, handle, now)

    def _probe_one(self, index: int, handle: Any, now: float) -> None:
        nvml = self._nvml
        try:
            if handle is None:  # lost when the monitor started: is it back?
                found = self._identify(nvml.nvmlDeviceGetHandleByIndex(index))
                with self._table_lock:
                    self._gpus[index] = found
                handle = found.handle
            nvml.nvmlDeviceGetUUID(handle)
            pending = self._pending(index, handle)
        except nvml.NVMLError_GpuIsLost:
            self._set(index, _LOST)
            return
        except nvml.NVMLError as exc:
            self._set(index, GpuHealth(False, f"NVML error: {exc}"))
            return
        if pending:
            self._set(index, GpuHealth(False, pending))
            return
        with self._lock:  # check and heal at once: an XID arriving meanwhile must not be undone
            current = self._state.get(index)
            last = self._last_fault.get(index)
            heal = current is not None and not current.healthy
            heal = heal and (last is None or now - last >= self._recovery_after)
            if heal:
                self._last_fault.pop(index, None)
                self._state[index] = GpuHealth(True)
        if heal:
            self._on_change(index, GpuHealth(True))

    def _pending(self, index: int, handle: Any) -> str | None:
        nvml = self._nvml
        unsupported = (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound)
        try:
            if nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle) == nvml.NVML_FEATURE_ENABLED:
                return "page retirement pending; reset the GPU"
        except unsupported:
            pass
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError as exc:
            log.warning("gpu_probe_unknown", gpu=index, check="retired-pages", error=str(exc))
        try:
            _corrected, _uncorrected, is_pending, failed = nvml.nvmlDeviceGetRemappedRows(handle)
        except unsupported:
            return None
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError as exc:
            log.warning("gpu_probe_unknown", gpu=index, check="remapped-rows", error=str(exc))
            return None
        if failed:
            return "row remapping failed"
        return "row remapping pending; reset the GPU" if is_pending else None
