from aisched.api import keys
from aisched.framework.cycle_state import CycleState
from aisched.plugins.gpu_model import REASON, GPUModel
from tests.plugins._cluster import explained, names, snapshot_of
from tests.support.core import node, pod

NODES = [
    node("h100", machine="dgx-h100"),
    node("v100", machine="dgx1-v100"),
    node("l40s", machine="pcie-8gpu"),
    node("labelled", machine=None, gpus=4, labels={keys.LABEL_GPU_PRODUCT: "A100-80GB"}),
    node("cpu", machine=None),
]


def test_pod_naming_no_model_is_skipped() -> None:
    assert GPUModel().filter(CycleState(), pod("p", gpus=1), snapshot_of(NODES)) is None


def test_only_nodes_with_an_allowed_model_pass() -> None:
    snapshot = snapshot_of(NODES)

    result = GPUModel().filter(CycleState(), pod("p", gpus=1, gpu_models=("H100-80GB",)), snapshot)

    assert result is not None
    assert names(snapshot, result.mask) == {"h100"}


def test_any_of_several_allowed_models_will_do() -> None:
    snapshot = snapshot_of(NODES)
    p = pod("p", gpus=1, gpu_models=("V100-32GB", "A100-80GB", "B200"))

    result = GPUModel().filter(CycleState(), p, snapshot)

    assert result is not None
    assert names(snapshot, result.mask) == {"v100", "labelled"}


def test_node_without_a_topology_takes_its_model_from_the_gpu_product_label() -> None:
    snapshot = snapshot_of(NODES)

    result = GPUModel().filter(CycleState(), pod("p", gpus=1, gpu_models=("A100-80GB",)), snapshot)

    assert result is not None
    assert names(snapshot, result.mask) == {"labelled"}


def test_model_no_node_has_matches_no_node() -> None:
    snapshot = snapshot_of(NODES)

    result = GPUModel().filter(CycleState(), pod("p", gpus=1, gpu_models=("B200",)), snapshot)

    assert result is not None
    assert names(snapshot, result.mask) == set()


def test_explanation_names_every_node_without_an_allowed_model_including_cpu_nodes() -> None:
    snapshot = snapshot_of(NODES)

    result = GPUModel().filter(CycleState(), pod("p", gpus=1, gpu_models=("H100-80GB",)), snapshot)

    assert result is not None
    assert explained(snapshot, result) == {REASON: {"v100", "l40s", "labelled", "cpu"}}
    assert REASON == "GPU model not allowed"


def test_plugin_reads_only_static_columns() -> None:
    assert GPUModel.static is True
