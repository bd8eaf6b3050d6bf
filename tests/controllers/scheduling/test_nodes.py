"""`node_info`: a Node object and its GPUNodeTopology status as the scheduler's NodeInfo."""

from __future__ import annotations

from typing import Any

from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.controllers.scheduling.nodes import NodeView, node_events, node_info
from aisched.framework.events import ClusterEvent
from aisched.scheduler import Scheduler
from aisched.topology.node import DEFAULT_DOMAINS, DomainLabels, Taint
from tests.support import core


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


# -- topology levels from a cluster's own labels ------------------------------------------------

SPINE, LEAF = "network.topology.nvidia.com/spine", "network.topology.nvidia.com/leaf"


def _network_node(i: int) -> dict[str, Any]:
    """Node i of eight: its spine alternates (even/odd), while aisched's own block label, left
    over from an older layout, groups them by halves."""
    labels = {SPINE: f"spine-{i % 2}", LEAF: f"leaf-{i}", "aisched.io/block": f"old-{i // 4}"}
    allocatable = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
    status = {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": "True"}]}
    return {"metadata": {"name": f"n{i}", "labels": labels}, "spec": {}, "status": status}


def _blocks_of_a_placed_gang(domains: DomainLabels) -> set[str]:
    scheduler = Scheduler()
    for i in range(8):
        scheduler.cache.set_node(NodeView(_network_node(i), None, domains=domains).info())
    members = [core.pod(f"w{k}", gpus=8, gang="train", gang_min_member=4) for k in range(4)]
    result = scheduler.schedule(core.gang("train", members, policy="Required", level="block"))
    assert result.placement is not None
    spines = {int(p.node[1:]) % 2 for p in result.placement.pods}
    return {f"spine-{s}" for s in spines}


def test_a_gang_required_in_one_block_lands_in_one_block_of_the_configured_labels() -> None:
    domains = DomainLabels(block=SPINE, rack=LEAF)
    info = NodeView(_network_node(3), None, domains=domains).info()
    assert (info.block, info.rack) == ("spine-1", "leaf-3")
    assert len(_blocks_of_a_placed_gang(domains)) == 1
    assert len(_blocks_of_a_placed_gang(DEFAULT_DOMAINS)) == 2, "by the old labels it spans both spines"
