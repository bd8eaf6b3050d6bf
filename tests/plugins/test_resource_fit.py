from aisched.framework.cycle_state import CycleState
from aisched.framework.types import PodInfo
from aisched.plugins.resource_fit import ResourceFit, insufficient
from aisched.topology import resources
from tests.plugins._cluster import bound, explained, names, snapshot_of
from tests.support.core import GiB, node, pod

FPGA = "example.com/fpga"

NODES = [
    node("roomy", machine=None, cpu=8000, memory=32 * GiB, pods=10, gpus=4),
    node("busy-cpu", machine=None, cpu=8000, memory=32 * GiB, pods=10, gpus=4),
    node("full-pods", machine=None, cpu=8000, memory=32 * GiB, pods=1, gpus=4),
    node("small", machine=None, cpu=1000, memory=1 * GiB, pods=10, gpus=0),
]
PODS = [
    bound("ml/hog", "busy-cpu", cpu=7500, memory=4 * GiB),
    bound("ml/one", "full-pods", cpu=100),
]
#: Nodes of which some offer an extended resource.
FPGA_NODES = [
    node("two", machine=None, extra={FPGA: 2}),
    node("one", machine=None, extra={FPGA: 1}),
    node("none", machine=None),
]


def fit(p: PodInfo) -> tuple[set[str], dict[str, set[str]]]:
    snapshot = snapshot_of(NODES, pods=PODS)
    result = ResourceFit().filter(CycleState(), p, snapshot)
    return names(snapshot, result.mask), explained(snapshot, result)


def test_pod_fits_where_every_requested_resource_has_room() -> None:
    passing, _ = fit(pod("p", cpu=500, memory=GiB))

    assert passing == {"roomy", "busy-cpu", "small"}


def test_cpu_shortage_is_reported_as_insufficient_cpu() -> None:
    passing, why = fit(pod("p", cpu=2000, memory=GiB))

    assert passing == {"roomy"}
    assert why == {"Insufficient cpu": {"busy-cpu", "small"}, "Too many pods": {"full-pods"}}


def test_full_pod_count_is_reported_as_too_many_pods() -> None:
    passing, why = fit(pod("p", cpu=1, memory=1))

    assert "full-pods" not in passing
    assert why == {"Too many pods": {"full-pods"}}


def test_every_short_resource_of_a_node_is_named() -> None:
    _, why = fit(pod("p", cpu=2000, memory=2 * GiB))

    assert why["Insufficient cpu"] == {"busy-cpu", "small"}
    assert why["Insufficient memory"] == {"small"}


def test_gpus_are_counted_like_any_resource() -> None:
    passing, why = fit(pod("p", gpus=4, cpu=100))

    assert passing == {"roomy", "busy-cpu"}
    assert why == {"Insufficient nvidia.com/gpu": {"small"}, "Too many pods": {"full-pods"}}


def test_gpus_held_by_pods_are_not_free() -> None:
    snapshot = snapshot_of(NODES, pods=[bound("ml/gpu", "roomy", gpus=3)])

    result = ResourceFit().filter(CycleState(), pod("p", gpus=2), snapshot)

    assert names(snapshot, result.mask) == {"busy-cpu", "full-pods"}


def test_resource_no_node_offers_fits_nowhere_and_is_named_for_every_node() -> None:
    passing, why = fit(pod("p", extra={"example.com/tpu": 1}))

    assert passing == set()
    assert why["Insufficient example.com/tpu"] == {"roomy", "busy-cpu", "full-pods", "small"}


def test_zero_request_of_a_resource_no_node_offers_does_not_matter() -> None:
    passing, _ = fit(pod("p", cpu=500, memory=GiB, extra={"example.com/tpu": 0}))

    assert passing == {"roomy", "busy-cpu", "small"}


def test_node_overcommitted_on_a_resource_the_pod_does_not_request_still_fits() -> None:
    # More CPU bound than allocatable (a pod admitted by another scheduler): free cpu is negative.
    snapshot = snapshot_of(NODES, pods=[bound("ml/a", "roomy", cpu=9000)])
    assert snapshot.free[snapshot.resource_index[resources.CPU], snapshot.slot_of["roomy"]] < 0

    memory_only = ResourceFit().filter(CycleState(), pod("p", cpu=0, memory=GiB), snapshot)
    gpu_only = ResourceFit().filter(CycleState(), pod("q", cpu=0, memory=0, gpus=1), snapshot)
    with_cpu = ResourceFit().filter(CycleState(), pod("r", cpu=1, memory=0), snapshot)

    assert "roomy" in names(snapshot, memory_only.mask)
    assert "roomy" in names(snapshot, gpu_only.mask)
    assert "roomy" not in names(snapshot, with_cpu.mask)


def test_pod_asking_only_for_a_pod_slot_fits_wherever_one_is_free() -> None:
    bare = PodInfo(namespace="ml", name="bare", requests={resources.PODS: 1})

    passing, _ = fit(bare)

    assert passing == {"roomy", "busy-cpu", "small"}


def test_extended_resource_fits_only_nodes_that_offer_enough_of_it() -> None:
    snapshot = snapshot_of(FPGA_NODES)

    result = ResourceFit().filter(CycleState(), pod("p", extra={FPGA: 2}), snapshot)

    assert names(snapshot, result.mask) == {"two"}
    assert explained(snapshot, result) == {"Insufficient example.com/fpga": {"one", "none"}}


def test_extended_resource_in_use_is_not_free() -> None:
    snapshot = snapshot_of(FPGA_NODES, pods=[bound("ml/f", "two", extra={FPGA: 1})])

    result = ResourceFit().filter(CycleState(), pod("p", extra={FPGA: 1}), snapshot)

    assert names(snapshot, result.mask) == {"two", "one"}


def test_node_overcommitted_on_an_extended_resource_fits_a_pod_not_asking_for_it() -> None:
    snapshot = snapshot_of(FPGA_NODES, pods=[bound("ml/f", "one", extra={FPGA: 3})])

    plain = ResourceFit().filter(CycleState(), pod("p"), snapshot)
    fpga = ResourceFit().filter(CycleState(), pod("q", extra={FPGA: 1}), snapshot)

    assert names(snapshot, plain.mask) == {"two", "one", "none"}
    assert names(snapshot, fpga.mask) == {"two"}


def test_filter_reads_usage_so_it_is_not_static() -> None:
    assert ResourceFit.static is False


def test_insufficient_wording_matches_kube_scheduler() -> None:
    assert insufficient("pods") == "Too many pods"
    assert insufficient("memory") == "Insufficient memory"
    assert insufficient(FPGA) == "Insufficient example.com/fpga"
