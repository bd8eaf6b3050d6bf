import pytest

from aisched.framework.interface import (
    FilterPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    QueueSortPlugin,
    ScorePlugin,
)
from aisched.framework.profile import Profile
from aisched.plugins import default_registry


def test_every_plugin_of_the_default_profile_is_registered() -> None:
    registry = default_registry()

    assert set(Profile().plugin_names()) <= set(registry)


def test_registry_names_every_built_in_plugin() -> None:
    assert sorted(default_registry()) == [
        "BestFit",
        "DotProd",
        "FGD",
        "GPUBinPacking",
        "GPUHealth",
        "GPUModel",
        "GPUSharing",
        "GPUTopology",
        "Gang",
        "GpuClustering",
        "GpuPacking",
        "LeastAllocated",
        "MostAllocated",
        "NodeAffinity",
        "NodeUnschedulable",
        "PrioritySort",
        "Random",
        "ResourceFit",
        "TaintToleration",
    ]


def test_each_plugin_is_built_under_the_name_it_is_registered_by() -> None:
    registry = default_registry()

    # FGD cannot score without the workload's typical pods: it is given one.
    args = {"FGD": {"typicalPods": [{"cpu": 1000, "gpuMilli": 500, "gpus": 1, "weight": 1.0}]}}
    for name in registry:
        expected = "MostAllocated" if name == "GPUBinPacking" else name
        assert registry.build(name, args.get(name, {})).name == expected


@pytest.mark.parametrize(
    ("name", "protocol"),
    [
        ("PrioritySort", QueueSortPlugin),
        ("Gang", PreFilterPlugin),
        ("NodeUnschedulable", FilterPlugin),
        ("TaintToleration", FilterPlugin),
        ("NodeAffinity", FilterPlugin),
        ("GPUModel", FilterPlugin),
        ("ResourceFit", FilterPlugin),
        ("GPUHealth", FilterPlugin),
        ("GPUTopology", ScorePlugin),
        ("GPUTopology", PreScorePlugin),
        ("LeastAllocated", ScorePlugin),
        ("MostAllocated", ScorePlugin),
    ],
)
def test_plugin_implements_its_extension_point(name: str, protocol: type) -> None:
    assert isinstance(default_registry().build(name, {}), protocol)


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'Gang' is already registered"):
        default_registry().register("Gang", lambda args: default_registry().build("Gang", args))
