"""`node_info`: a Node object and its GPUNodeTopology status as the scheduler's NodeInfo."""

from __future__ import annotations

from typing import Any

from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.controllers.scheduling.nodes import NodeView, node_events, node_info
from aisched.framework.events import ClusterEvent
from aisched.topology.node import Taint


def node(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "labels": {"aisched.io/rack": "r1"}},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": "7500m", "memory": "64Gi", "pods": "110", "nvidia.com/gpu": "2"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
        },
    }


def topology() -> GPUNodeTopologyStatus:
    return GPUNodeTopologyStatus.model_validate(
        {
            "gpus": [
                {"index": i, "uuid": f"GPU-{i}", "model": "NVIDIA H100 80GB HBM3", "memory": "80Gi"}
                for i in range(2)
            ],
            "pairs": [{"a": 0, "b": 1, "pcie": "PHB", "nvlinks": 18}],
        }
    )


def test_node_info_reads_labels_allocatable_in_snapshot_units_and_readiness() -> None:
    info = node_info(node(), None)
    assert info.name == "n1"
    assert info.rack == "r1"
    assert info.allocatable == {"cpu": 7500, "memory": 64 * 2**30, "pods": 110, "nvidia.com/gpu": 2}
    assert info.ready is True
    assert info.unschedulable is False
    assert info.taints == ()
    assert info.gpus is None


def test_node_info_reads_taints_and_cordon() -> None:
    info = node_info(
        node(
            unschedulable=True,
            taints=[
                {"key": "gpu", "value": "h100", "effect": "NoSchedule"},
                {"key": "maint", "effect": "NoExecute"},
            ],
        ),
        None,
    )
    assert info.unschedulable is True
    assert info.taints == (
        Taint(key="gpu", value="h100", effect="NoSchedule"),
        Taint(key="maint", value="", effect="NoExecute"),
    )


def test_node_without_a_true_ready_condition_is_not_ready() -> None:
    not_ready = node()
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    no_conditions = node()
    del no_conditions["status"]["conditions"]
    assert node_info(not_ready, None).ready is False
    assert node_info(no_conditions, None).ready is False


def test_node_info_takes_gpus_from_the_topology_when_present() -> None:
    info = node_info(node(), topology())
    assert info.gpus is not None
    assert [g.uuid for g in info.gpus.gpus] == ["GPU-0", "GPU-1"]
    assert info.gpu_model == "NVIDIA H100 80GB HBM3"


def _view(**changes: Any) -> NodeView:
    obj: dict[str, Any] = {
        "metadata": {"name": "n1", "labels": {"aisched.io/rack": "r1"}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "8", "nvidia.com/gpu": "8"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    for path, value in changes.items():
        section, _, field = path.partition("__")
        obj[section][field] = value
    return NodeView(obj, None)


def test_a_new_node_is_node_added() -> None:
    assert node_events(None, _view()) == {ClusterEvent.NODE_ADDED}


def test_a_heartbeat_changes_nothing_the_scheduler_reads() -> None:
    assert node_events(_view(), _view(status__nodeInfo={"bootID": "x"})) == set()


def test_each_change_is_the_event_of_what_it_changed() -> None:
    before = _view()
    assert node_events(before, _view(metadata__labels={"aisched.io/rack": "r2"})) == {
        ClusterEvent.NODE_LABELS_CHANGED
    }
    assert node_events(before, _view(spec__taints=[{"key": "k", "effect": "NoSchedule"}])) == {
        ClusterEvent.NODE_TAINTS_CHANGED
    }
    assert node_events(before, _view(spec__unschedulable=True)) == {ClusterEvent.NODE_CONDITION_CHANGED}
    assert node_events(before, _view(status__allocatable={"cpu": "16"})) == {
        ClusterEvent.NODE_ALLOCATABLE_CHANGED
    }
