"""The view source the HTTP server asks: none while not leading, one build per rack and second
however often it is asked, a fresh one for a new term."""

from __future__ import annotations

from aisched.controllers.scheduling import SchedulerRuntime
from aisched.view import RuntimeViews
from tests.binder.fakes import FakeClock
from tests.view.cluster import WALL, Cluster, node


class Leading:
    """Which runtime leads now (None: this replica follows)."""

    def __init__(self, runtime: SchedulerRuntime | None) -> None:
        self.runtime = runtime

    def __call__(self) -> SchedulerRuntime | None:
        return self.runtime


def views(leading: Leading, clock: FakeClock) -> RuntimeViews:
    return RuntimeViews(leading, jobs=list, clock=clock, wall=lambda: WALL, ttl=1.0)


def test_a_replica_that_does_not_lead_has_no_view() -> None:
    assert views(Leading(None), FakeClock())(rack=None) is None


def test_a_view_is_reused_for_a_second_then_built_anew() -> None:
    cluster = Cluster(node("n1"))
    clock = FakeClock()
    source = views(Leading(cluster.runtime), clock)

    first = source(rack=None)
    cluster.runtime.cache.set_node(node("n2"))
    clock.now += 0.5
    assert source(rack=None) is first
    clock.now += 0.5
    fresh = source(rack=None)

    assert fresh is not first
    assert fresh is not None
    assert fresh.summary.nodes == 2


def test_each_rack_has_its_own_view_and_a_new_term_its_own() -> None:
    leading = Leading(Cluster(node("n1", rack="r1")).runtime)
    source = views(leading, FakeClock())

    whole, zoomed = source(rack=None), source(rack="r1")
    assert whole is not None
    assert zoomed is not None
    assert (whole.rack, zoomed.rack) == (None, "r1")
    assert source(rack="r1") is zoomed

    leading.runtime = Cluster(node("m1"), node("m2")).runtime
    again = source(rack="r1")
    assert again is not None
    assert again.summary.nodes == 2

    leading.runtime = None
    assert source(rack=None) is None


def test_views_kept_stay_few_whatever_racks_are_asked_for() -> None:
    source = views(Leading(Cluster(node("n1")).runtime), FakeClock())
    for i in range(1000):
        source(rack=f"r{i}")
    assert len(source._kept) <= 32


class SlowClock(FakeClock):
    """A clock that moves on `step` seconds at every reading: the time a view build takes."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_view_slow_to_build_is_reused_for_ten_times_as_long() -> None:
    clock = SlowClock(step=0.25)  # each reading a quarter second later: a build takes 0.25 s
    source = views(Leading(Cluster(node("n1")).runtime), clock)

    first = source(rack=None)  # built from 0.25 to 0.5: fresh until 3.0
    clock.step = 0.0
    clock.now = 2.9
    assert source(rack=None) is first
    clock.now = 3.0
    assert source(rack=None) is not first
