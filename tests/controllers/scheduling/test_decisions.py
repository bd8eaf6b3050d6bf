"""The decision log: bounded, newest first, one entry per verdict; and the scheduling cycle writing
to it (a runtime with no API server behind it, its cycles run by hand)."""

from __future__ import annotations

from typing import Any, Final

import pytest

from aisched.controllers.scheduling import SchedulerRuntime
from aisched.controllers.scheduling.decisions import MESSAGE_LIMIT, DecisionLog
from aisched.framework.status import Status
from aisched.framework.types import Gang, GangPlacement, PodPlacement
from aisched.kube.client import JsonObject
from aisched.kube.informer import index_key
from aisched.scheduler import ScheduleResult
from tests.binder.fakes import FakeClock
from tests.controllers.scheduling.test_framework_gang_book import Inert
from tests.support.core import node, pod

NS: Final = "team-a"


def lone(name: str) -> Gang:
    return Gang.of(pod(name, gpus=8))


def placed(gang_key: str, *nodes: str) -> ScheduleResult:
    members = [pod(f"p{i}", gpus=8, labels={"aisched.io/job": "ddp"}) for i in range(len(nodes))]
    gang = Gang(key=gang_key, members=members, min_member=len(members))
    pods = tuple(
        PodPlacement(pod=m, node=n, slot=0, gpu_mask=0xFF) for m, n in zip(members, nodes, strict=True)
    )
    return ScheduleResult(status=Status.success(), placement=GangPlacement(gang=gang, pods=pods))


def test_a_log_keeps_the_newest_decisions_and_drops_the_oldest() -> None:
    clock = FakeClock(1000.0)
    log = DecisionLog(clock=clock, size=3)
    for i in range(5):
        clock.now += 1
        log.record(lone(f"g{i}"), ScheduleResult(status=Status.unschedulable("no room", plugin="Fit")))

    assert len(log) == 3
    assert [d.gang for d in log.latest(10)] == ["ml/g4", "ml/g3", "ml/g2"]
    assert [d.gang for d in log.latest(2)] == ["ml/g4", "ml/g3"]
    assert [d.at for d in log] == [1003.0, 1004.0, 1005.0]


def test_a_placement_is_recorded_with_its_distinct_nodes_in_order() -> None:
    log = DecisionLog(clock=FakeClock(5.0))

    result = placed("ml/gang:ddp", "n2", "n1", "n2")
    assert result.placement is not None
    log.record(result.placement.gang, result)

    (decision,) = log.latest(1)
    assert (decision.gang, decision.job, decision.pods) == ("ml/gang:ddp", "ddp", 3)
    assert decision.result == "scheduled"
    assert decision.nodes == ("n2", "n1")
    assert decision.message == "3 pod(s) on 2 node(s)"
    assert decision.at == 5.0


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (
            Status.unschedulable("0/4 nodes are available: 4 Insufficient nvidia.com/gpu.", plugin="Fit"),
            "unschedulable",
        ),
        (Status.error("plugin Fit failed: KeyError", plugin="Fit"), "error"),
    ],
)
def test_a_verdict_without_a_placement_keeps_its_reason(status: Status, result: str) -> None:
    log = DecisionLog(clock=FakeClock())

    log.record(lone("p"), ScheduleResult(status=status))

    (decision,) = log.latest(1)
    assert (decision.result, decision.nodes, decision.message) == (result, (), status.message())


def test_a_crashed_cycle_is_an_error_naming_the_exception() -> None:
    log = DecisionLog(clock=FakeClock())

    log.crashed(lone("p"), ZeroDivisionError("division by zero"))

    assert log.latest(1)[0].message == "scheduling cycle failed: ZeroDivisionError: division by zero"


def test_a_long_message_is_cut_so_the_log_stays_small() -> None:
    log = DecisionLog(clock=FakeClock())

    log.record(lone("p"), ScheduleResult(status=Status.unschedulable("x" * 10 * MESSAGE_LIMIT, plugin="Fit")))

    assert len(log.latest(1)[0].message) == MESSAGE_LIMIT


def test_a_log_keeps_at_least_one_decision() -> None:
    with pytest.raises(ValueError, match="at least one"):
        DecisionLog(clock=FakeClock(), size=0)


# -- written by the scheduling cycle ----------------------------------------------------------------


def pending(name: str, *, gpus: int) -> JsonObject:
    limits: dict[str, Any] = {"nvidia.com/gpu": gpus}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": {
            "schedulerName": "aisched",
            "containers": [{"name": "c", "image": "x", "resources": {"limits": limits}}],
        },
        "status": {"phase": "Pending"},
    }


def cycle(runtime: SchedulerRuntime, obj: JsonObject) -> None:
    """The pods informer delivers `obj`; the loop pops its gang and runs one cycle on it."""
    runtime.pods._index[index_key(obj)] = obj
    runtime.watch.pods.on_add(obj)
    gang = runtime.queue.pop()
    assert gang is not None
    runtime._cycle(gang)


def test_every_cycle_leaves_one_decision_with_its_verdict() -> None:
    wall = FakeClock(1_800_000_000.0)
    runtime = SchedulerRuntime(Inert(), clock=FakeClock(), wall=wall)
    runtime.cache.set_node(node("gpu-0"))

    cycle(runtime, pending("fits", gpus=4))
    cycle(runtime, pending("too-big", gpus=9))

    too_big, fits = runtime.decisions.latest(10)
    assert (fits.gang, fits.result, fits.nodes, fits.at) == (f"{NS}/fits", "scheduled", ("gpu-0",), wall.now)
    assert (fits.job, fits.pods) == ("fits", 1)
    assert (too_big.gang, too_big.result, too_big.nodes) == (f"{NS}/too-big", "unschedulable", ())
    assert "Insufficient nvidia.com/gpu" in too_big.message
