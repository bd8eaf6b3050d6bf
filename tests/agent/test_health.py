"""GPU health from NVML events and probes: critical XIDs and ECC errors, lost GPUs, recovery."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pynvml
import pytest
from structlog.testing import capture_logs

from aisched.agent.fake_nvml import FakeNvml
from aisched.agent.health import EventBackoff, GpuHealth, HealthMonitor


class Changes:
    """Collects health flips from any thread; `wait_for(n)` blocks until n have arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, GpuHealth]] = []
        self._condition = threading.Condition()

    def __call__(self, index: int, health: GpuHealth) -> None:
        with self._condition:
            self.seen.append((index, health))
            self._condition.notify_all()

    def wait_for(self, count: int) -> list[tuple[int, GpuHealth]]:
        with self._condition:
            assert self._condition.wait_for(lambda: len(self.seen) >= count, timeout=10), self.seen
            return list(self.seen)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def nvml() -> Iterator[FakeNvml]:
    fake = FakeNvml.for_machine("dgx-h100")
    fake.nvmlInit()
    yield fake
    fake.nvmlShutdown()


class Watching:
    """The monitor's event thread, started; `stop()` ends it and checks that it ended."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self.monitor = monitor
        self._stop = threading.Event()
        self.thread = threading.Thread(target=monitor.watch_events, args=(self._stop,))
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def watched(nvml: FakeNvml) -> Iterator[tuple[HealthMonitor, Changes]]:
    changes = Changes()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock())
    watching = Watching(monitor)
    try:
        # NVML reports only events that arrive after registration: wait for it.
        assert monitor.watching.wait(timeout=10), "the event thread never registered"
        yield monitor, changes
    finally:
        watching.stop()


class StopWaits:
    """The event thread's backoff wait, recorded and returning at once (stop set or not)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, stop: threading.Event, seconds: float) -> bool:
        self.delays.append(seconds)
        return stop.is_set()


class Failures:
    """Collects what the event thread reports as it dies."""

    def __init__(self) -> None:
        self.seen: list[BaseException] = []
        self.reported = threading.Event()

    def __call__(self, error: BaseException) -> None:
        self.seen.append(error)
        self.reported.set()


def test_a_critical_xid_makes_the_gpu_unhealthy(
    nvml: FakeNvml, watched: tuple[HealthMonitor, Changes]
) -> None:
    monitor, changes = watched
    nvml.inject_xid(2, 79)
    assert changes.wait_for(1) == [(2, GpuHealth(False, "XID 79"))]
    assert monitor.health()[2] == GpuHealth(False, "XID 79")
    assert all(h.healthy for i, h in monitor.health().items() if i != 2)


def test_application_xids_are_not_gpu_faults(nvml: FakeNvml, watched: tuple[HealthMonitor, Changes]) -> None:
    monitor, changes = watched
    for xid in (13, 31, 43, 45, 68):
        nvml.inject_xid(1, xid)
    nvml.inject_xid(5, 48)  # processed after the others: when it shows, they have been handled
    assert changes.wait_for(1) == [(5, GpuHealth(False, "XID 48"))]
    assert monitor.health()[1].healthy


def test_a_double_bit_ecc_error_makes_the_gpu_unhealthy(
    nvml: FakeNvml, watched: tuple[HealthMonitor, Changes]
) -> None:
    _, changes = watched
    nvml.inject_double_bit_ecc(6)
    assert changes.wait_for(1) == [(6, GpuHealth(False, "double-bit ECC error"))]


def test_a_lost_gpu_is_unhealthy_and_the_monitor_keeps_going(nvml: FakeNvml) -> None:
    changes = Changes()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock())
    nvml.lose(4)
    monitor.probe()
    assert changes.seen == [(4, GpuHealth(False, "GPU has fallen off the bus"))]
    monitor.probe()  # still lost: no new flip, no exception
    assert len(changes.seen) == 1


def test_a_gpu_recovers_after_it_answers_with_nothing_pending_for_the_hold_time(nvml: FakeNvml) -> None:
    changes = Changes()
    clock = Clock()
    monitor = HealthMonitor(nvml, on_change=changes, clock=clock, recovery_after=300)
    nvml.lose(4)
    monitor.probe()
    nvml.recover(4)
    clock.now += 299
    monitor.probe()
    assert not monitor.health()[4].healthy, "recovered before the hold time"
    clock.now += 1
    monitor.probe()
    assert monitor.health()[4] == GpuHealth(True)
    assert changes.seen[-1] == (4, GpuHealth(True))


def test_pending_page_retirement_keeps_a_gpu_unhealthy_until_reset(nvml: FakeNvml) -> None:
    changes = Changes()
    clock = Clock()
    monitor = HealthMonitor(nvml, on_change=changes, clock=clock, recovery_after=0)
    nvml.set_pending_retirement(0, True)
    monitor.probe()
    assert monitor.health()[0] == GpuHealth(False, "page retirement pending; reset the GPU")
    nvml.set_pending_retirement(0, False)
    monitor.probe()
    assert monitor.health()[0] == GpuHealth(True)
    assert [index for index, _ in changes.seen] == [0, 0]


def test_an_xid_on_a_recovered_gpu_flips_it_again(
    nvml: FakeNvml, watched: tuple[HealthMonitor, Changes]
) -> None:
    monitor, changes = watched
    nvml.inject_xid(3, 64)
    changes.wait_for(1)
    monitor._clock.now += 1000  # type: ignore[attr-defined]
    monitor.probe()
    assert changes.wait_for(2)[-1] == (3, GpuHealth(True))
    nvml.inject_xid(3, 94)
    assert changes.wait_for(3)[-1] == (3, GpuHealth(False, "XID 94"))


def test_the_watched_fixture_yields_only_once_events_are_registered(
    watched: tuple[HealthMonitor, Changes],
) -> None:
    monitor, _ = watched
    assert monitor.watching.is_set()


def test_an_event_on_a_gpu_lost_before_it_is_handled_runs_a_probe_instead_of_failing(nvml: FakeNvml) -> None:
    changes = Changes()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock())
    event = pynvml.c_nvmlEventData_t()
    event.device = nvml.nvmlDeviceGetHandleByIndex(2)  # a new pointer object, as each read gives
    event.eventType = pynvml.nvmlEventTypeXidCriticalError
    event.eventData = 79
    nvml.lose(2)  # every lookup of the device now answers GpuIsLost
    monitor.handle_event(event)
    assert changes.seen == [(2, GpuHealth(False, "GPU has fallen off the bus"))]


def test_an_event_whose_device_nvml_cannot_name_is_logged_and_skipped(nvml: FakeNvml) -> None:
    changes = Changes()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock())
    event = pynvml.c_nvmlEventData_t()
    event.device = nvml.nvmlDeviceGetHandleByIndex(2)
    event.eventType = pynvml.nvmlEventTypeXidCriticalError
    event.eventData = 79
    for function in ("nvmlDeviceGetUUID", "nvmlDeviceGetPciInfo", "nvmlDeviceGetIndex"):
        nvml.fail_call(function, pynvml.NVMLError_Unknown, index=2)
    with capture_logs() as logs:
        monitor.handle_event(event)
    assert changes.seen == []
    assert [e["event"] for e in logs] == ["gpu_event_unknown_device"]


def test_an_event_is_mapped_by_pci_bus_id_when_the_uuid_cannot_be_read(
    nvml: FakeNvml, watched: tuple[HealthMonitor, Changes]
) -> None:
    _, changes = watched
    for function in ("nvmlDeviceGetUUID", "nvmlDeviceGetIndex"):
        nvml.fail_call(function, pynvml.NVMLError_Unknown, index=6)
    nvml.inject_xid(6, 79)
    assert changes.wait_for(1) == [(6, GpuHealth(False, "XID 79"))]


def test_nvml_errors_in_the_event_wait_back_off_on_the_stop_event_and_the_thread_keeps_going(
    nvml: FakeNvml,
) -> None:
    changes = Changes()
    waits = StopWaits()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock(), stop_wait=waits)
    nvml.fail_call("nvmlEventSetWait_v2", pynvml.NVMLError_Unknown, times=3)
    watching = Watching(monitor)
    try:
        nvml.inject_xid(1, 79)  # queued: seen once the wait answers again
        assert changes.wait_for(1) == [(1, GpuHealth(False, "XID 79"))]
        assert waits.delays == [1.0, 2.0, 4.0]
    finally:
        watching.stop()


def test_the_event_backoff_doubles_up_to_its_cap() -> None:
    backoff = EventBackoff(initial=1.0, cap=30.0)
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_an_event_set_that_cannot_be_created_is_retried(nvml: FakeNvml) -> None:
    changes = Changes()
    waits = StopWaits()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock(), stop_wait=waits)
    nvml.fail_call("nvmlEventSetCreate", pynvml.NVMLError_Unknown, times=2)
    watching = Watching(monitor)
    try:
        assert monitor.watching.wait(timeout=10)
        nvml.inject_xid(4, 79)
        assert changes.wait_for(1) == [(4, GpuHealth(False, "XID 79"))]
        assert waits.delays == [1.0, 2.0]
    finally:
        watching.stop()


def test_an_unexpected_exception_ends_the_event_thread_and_is_reported(nvml: FakeNvml) -> None:
    failures = Failures()
    monitor = HealthMonitor(nvml, on_change=Changes(), clock=Clock(), on_failure=failures)
    nvml.fail_call("nvmlEventSetWait_v2", RuntimeError)
    watching = Watching(monitor)
    assert failures.reported.wait(timeout=10)
    watching.thread.join(timeout=10)
    assert not watching.thread.is_alive()
    assert [type(e) for e in failures.seen] == [RuntimeError]
    assert not monitor.watching.is_set()


def test_only_supported_event_types_are_registered_so_xids_arrive_without_ecc() -> None:
    nvml = FakeNvml.for_machine("pcie-8gpu", ecc_enabled=False)
    nvml.nvmlInit()
    changes = Changes()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock())
    watching = Watching(monitor)
    try:
        assert monitor.watching.wait(timeout=10)
        nvml.inject_xid(2, 79)
        assert changes.wait_for(1) == [(2, GpuHealth(False, "XID 79"))]
    finally:
        watching.stop()
        nvml.nvmlShutdown()


def test_a_gpu_without_xid_or_ecc_events_is_warned_about() -> None:
    nvml = FakeNvml.for_machine("pcie-8gpu", events_supported=False)
    nvml.nvmlInit()
    monitor = HealthMonitor(nvml, on_change=Changes(), clock=Clock())
    with capture_logs() as logs:
        watching = Watching(monitor)
        try:
            assert monitor.watching.wait(timeout=10)
        finally:
            watching.stop()
            nvml.nvmlShutdown()
    warned = [e["gpu"] for e in logs if e["event"] == "gpu_events_unsupported"]
    assert warned == list(range(8))
    assert all(e["log_level"] == "warning" for e in logs if e["event"] == "gpu_events_unsupported")


def test_a_probe_error_other_than_lost_makes_the_gpu_unhealthy_and_keeps_probing(nvml: FakeNvml) -> None:
    changes = Changes()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock())
    nvml.fail_call("nvmlDeviceGetUUID", pynvml.NVMLError_Unknown, index=5)
    monitor.probe()
    assert changes.seen == [(5, GpuHealth(False, "NVML error: Unknown Error"))]


def test_pending_checks_nvml_will_not_answer_do_not_make_a_gpu_unhealthy(nvml: FakeNvml) -> None:
    changes = Changes()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock())
    nvml.fail_call("nvmlDeviceGetRemappedRows", pynvml.NVMLError_FunctionNotFound)
    nvml.fail_call("nvmlDeviceGetRetiredPagesPendingStatus", pynvml.NVMLError_NoPermission)
    monitor.probe()
    assert changes.seen == []
