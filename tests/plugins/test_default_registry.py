from typing import Any

import pytest

from aisched.framework.cycle_state import CycleState
from aisched.framework.interface import (
    FilterPlugin,
    PostFilterPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    QueueSortPlugin,
    ScorePlugin,
)
from aisched.framework.profile import Profile
from aisched.plugins import default_registry, gang
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant
from aisched.topology.snapshot import Snapshot
from tests.support.core import gang as gang_of
from tests.support.core import handle, pod


def test_every_plugin_of_the_default_profile_is_registered() -> None:
    registry = default_registry()

    assert set(Profile().plugin_names()) <= set(registry)


def test_registry_names_every_built_in_plugin() -> None:
    assert sorted(default_registry()) == [
        "BestFit",
        "DefaultPreemption",
        "DotProd",
        "FGD",
        "FairShare",
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
        "Quota",
        "Random",
        "Reservation",
        "ResourceFit",
        "TaintToleration",
    ]


def test_each_plugin_is_built_under_the_name_it_is_registered_by() -> None:
    registry = default_registry()

    # FGD cannot score without the workload's typical pods: it is given one.
    args = {"FGD": {"typicalPods": [{"cpu": 1000, "gpuMilli": 500, "gpus": 1, "weight": 1.0}]}}
    for name in registry:
        assert registry.build(name, args.get(name, {}), handle()).name == name


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
        ("Quota", PreFilterPlugin),
        ("Reservation", PreFilterPlugin),
        ("Reservation", FilterPlugin),
        ("FairShare", QueueSortPlugin),
        ("DefaultPreemption", PostFilterPlugin),
    ],
)
def test_plugin_implements_its_extension_point(name: str, protocol: type) -> None:
    assert isinstance(default_registry().build(name, {}, handle()), protocol)


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'Gang' is already registered"):
        default_registry().register("Gang", gang.new)


def test_every_plugin_taken_from_the_registry_works_on_the_handles_state() -> None:
    """No plugin can be built as a silent no-op: Quota and FairShare read the handle's ledger."""
    ledger = QuotaLedger([Tenant(name="a", namespaces=frozenset({"ml"}), guaranteed={GPU_MILLI: 1000})])
    registry = default_registry()
    quota = registry.build("Quota", {}, handle(ledger=ledger))
    assert isinstance(quota, PreFilterPlugin)
    two = gang_of("g", [pod("p0", gpus=1), pod("p1", gpus=1)])

    status = quota.pre_filter(CycleState(), two, Snapshot())

    assert "tenant a would use 2 nvidia.com/gpu, over its quota of 1" in status.message()


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("LeastAllocated", {"resources": {"cpu": 0}}, "resources.cpu"),
        ("GPUBinPacking", {"gpuPods": True}, "gpuPods"),
        ("Random", {"seed": "x"}, "seed"),
        ("FGD", {}, "typicalPods"),
        ("DefaultPreemption", {"maxCandidates": 0}, "maxCandidates"),
        ("Gang", {"minMember": 2}, "minMember"),
    ],
)
def test_bad_arguments_are_refused_when_the_plugin_is_built(
    name: str, args: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"plugin {name}: invalid args: {field}"):
        default_registry().build(name, args, handle())
