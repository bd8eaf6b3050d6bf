"""GPU health from NVML events and probes: critical XIDs and ECC errors, lost GPUs, recovery."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from aisched.agent.fake_nvml import FakeNvml
from aisched.agent.health import GpuHealth, HealthMonitor


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


@pytest.fixture
def watched(nvml: FakeNvml) -> Iterator[tuple[HealthMonitor, Changes]]:
    changes = Changes()
    monitor = HealthMonitor(nvml, on_change=changes, clock=Clock())
    stop = threading.Event()
    thread = threading.Thread(target=monitor.watch_events, args=(stop,))
    thread.start()
    yield monitor, changes
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


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
