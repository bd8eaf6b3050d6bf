import dataclasses

from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.framework.cycle_state import CycleState
from aisched.plugins.gpu_health import REASON, GPUHealth
from aisched.topology.gpu import GPUTopology
from aisched.topology.machines import MACHINES
from aisched.topology.node import NodeInfo
from tests.plugins._cluster import bound, cluster, explained, names, snapshot_of
from tests.support.core import node, pod


def with_unhealthy(name: str, *indices: int) -> NodeInfo:
    """A DGX H100 node whose GPUs at `indices` the node agent reports unhealthy."""
    topology = MACHINES["dgx-h100"].topology(node=name)
    gpus = tuple(dataclasses.replace(g, healthy=g.index not in indices) for g in topology.gpus)
    return dataclasses.replace(node(name), gpus=dataclasses.replace(topology, gpus=gpus))


NODES = [
    node("free"),  # 8 healthy, free GPUs
    with_unhealthy("sick", 0, 1),  # 6 healthy
    node("by-device"),  # 3 held by a pod whose devices are known
    node("by-uuid"),  # 2 held by a pod that names its GPU UUIDs
    node("blind"),  # 3 held by a pod bound elsewhere, devices unknown
    node("cpu", machine=None),
]
PODS = [
    bound("ml/a", "by-device", gpus=3, gpu_mask=0b111),
    bound("ml/b", "by-uuid", gpus=2, gpu_uuids=("GPU-by-uuid-4", "GPU-by-uuid-5")),
    bound("ml/c", "blind", gpus=3),
]


def passing(gpus: int) -> set[str]:
    snapshot = snapshot_of(NODES, pods=PODS)
    result = GPUHealth().filter(CycleState(), pod("p", gpus=gpus), snapshot)
    assert result is not None
    return names(snapshot, result.mask)


def test_pod_without_gpus_is_skipped() -> None:
    assert GPUHealth().filter(CycleState(), pod("p"), snapshot_of(NODES, pods=PODS)) is None


def test_unhealthy_gpus_are_not_on_offer() -> None:
    assert "sick" in passing(6)
    assert "sick" not in passing(7)


def test_gpus_held_by_device_are_not_on_offer() -> None:
    assert "by-device" in passing(5)
    assert "by-device" not in passing(6)


def test_gpus_held_by_uuid_are_not_on_offer() -> None:
    assert "by-uuid" in passing(6)
    assert "by-uuid" not in passing(7)


def test_gpus_held_blind_still_count_against_the_node() -> None:
    assert "blind" in passing(5)
    assert "blind" not in passing(6)


def test_each_node_offers_its_healthy_free_gpu_count() -> None:
    assert passing(6) == {"free", "sick", "by-uuid"}
    assert passing(8) == {"free"}


def test_explanation_names_the_nodes_with_too_few_healthy_free_gpus() -> None:
    snapshot = snapshot_of(NODES, pods=PODS)

    result = GPUHealth().filter(CycleState(), pod("p", gpus=7), snapshot)

    assert result is not None
    assert explained(snapshot, result) == {REASON: {"sick", "by-device", "by-uuid", "blind", "cpu"}}


def test_unhealthy_gpu_from_a_published_topology_is_not_on_offer() -> None:
    status = GPUNodeTopologyStatus.model_validate(
        {
            "gpus": [
                {"index": i, "uuid": f"GPU-{i}", "model": "H100-80GB", "memory": "80Gi", "health": health}
                for i, health in enumerate(["Healthy", "Unhealthy", "Healthy", "Healthy"])
            ],
        }
    )
    agent = NodeInfo(name="agent", allocatable={"nvidia.com/gpu": 4}, gpus=GPUTopology.from_status(status))
    snapshot = snapshot_of([agent, node("other", machine=None, gpus=4)])

    three = GPUHealth().filter(CycleState(), pod("p", gpus=3), snapshot)
    four = GPUHealth().filter(CycleState(), pod("p", gpus=4), snapshot)

    assert three is not None
    assert four is not None
    assert names(snapshot, three.mask) == {"agent", "other"}
    assert names(snapshot, four.mask) == {"other"}


def test_gpus_freed_by_a_pod_leaving_are_on_offer_again() -> None:
    sched = cluster([node("a"), node("b")], pods=[bound("ml/x", "a", gpus=8, gpu_mask=0xFF)])
    before = GPUHealth().filter(CycleState(), pod("p", gpus=1), sched.snapshot)
    assert before is not None
    assert names(sched.snapshot, before.mask) == {"b"}

    sched.cache.remove_pod("ml/x")
    sched.cache.update_snapshot(sched.snapshot)
    after = GPUHealth().filter(CycleState(), pod("p", gpus=1), sched.snapshot)

    assert after is not None
    assert names(sched.snapshot, after.mask) == {"a", "b"}


def test_filter_reads_usage_so_it_is_not_static() -> None:
    assert GPUHealth.static is False
