"""Bucketing the per-pod metrics into curves, and measuring the cluster's fragmentation as it changes."""

from __future__ import annotations

import numpy as np
import pytest

from aisched.cache import PodUsage
from aisched.plugins.policies import FragmentationTable, TypicalPod
from aisched.simulator.cluster import node_info
from aisched.simulator.metrics import Curves, EventLog, FragmentationMeter, bucket, mean_curves
from aisched.simulator.trace import TraceNode
from aisched.topology import resources
from tests.plugins._cluster import cluster


def test_events_are_averaged_per_arrived_percent_rounded_half_up() -> None:
    arrived = np.array([0.2, 0.4, 0.5, 1.4, 2.6])
    values = np.array([1.0, 3.0, 10.0, 20.0, 30.0])

    curve = bucket(arrived, values)

    assert curve.shape == (131,)
    assert curve[0] == 2.0  # 0.2 and 0.4
    assert curve[1] == 15.0  # 0.5 rounds up to 1, with 1.4
    assert curve[3] == 30.0


def test_an_empty_bucket_takes_its_neighbours_events() -> None:
    arrived = np.array([9.0, 9.2, 11.0, 130.4, 131.2])
    values = np.array([1.0, 2.0, 6.0, 50.0, 70.0])

    curve = bucket(arrived, values)

    assert curve[10] == pytest.approx((1.0 + 2.0 + 6.0) / 3)  # none rounds to 10: 9 and 11 stand in
    assert curve[130] == 50.0
    assert np.isnan(curve[50])  # no events within ±1


def test_mean_curves_average_only_the_runs_that_reach_a_point() -> None:
    a = Curves(np.array([1.0, np.nan]), np.array([2.0, 2.0]), np.array([0.0, 0.0]))
    b = Curves(np.array([3.0, 5.0]), np.array([4.0, 6.0]), np.array([0.0, 0.0]))

    mean = mean_curves([a, b])

    assert mean.allocated.tolist() == [2.0, 5.0]
    assert mean.fragmentation.tolist() == [3.0, 4.0]
    assert mean.unallocated.tolist() == [98.0, 95.0]


def test_event_log_curves_are_percent_of_capacity_and_of_idle() -> None:
    log = EventLog()
    log.record(arrived=500, allocated=500, fragmented=100.0, idle=9500)
    log.record(arrived=1500, allocated=1000, fragmented=900.0, idle=9000)

    curves = log.curves(capacity_milli=10_000)

    assert curves.allocated[5] == 5.0
    assert curves.unallocated_at(15) == 90.0
    assert curves.fragmentation[15] == pytest.approx(9.0)
    assert curves.fragmentation_ratio[15] == pytest.approx(10.0)


def test_fragmentation_meter_follows_the_nodes_placements_change() -> None:
    table = FragmentationTable([TypicalPod(cpu=1000, gpu_milli=500, gpus=1, weight=1.0)])
    sched = cluster([node_info(TraceNode(f"n{i}", 8000, 1024, 2, "T4")) for i in range(3)])
    meter = FragmentationMeter(table, sched.snapshot)
    assert (meter.fragmented, meter.idle) == (0.0, 6000)

    usage = PodUsage(key="t/a", node="n1", requests={resources.CPU: 1000}, gpu_mask=0b01, gpu_milli=700)
    sched.cache.assume([(usage, sched.snapshot.slot_of["n1"])])
    meter.update([sched.snapshot.slot_of["n1"]])

    assert (meter.fragmented, meter.idle) == (300.0, 5300)  # 300 m left on GPU 0: too small for 500 m
