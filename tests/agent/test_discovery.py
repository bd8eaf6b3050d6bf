"""Discovery through NVML, on fake NVML backends built from the machine templates."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pynvml
import pytest
from structlog.testing import capture_logs

from aisched.agent.discovery import NvmlUnavailableError, discover, gpu_model, nvml_session
from aisched.agent.fake_nvml import FakeNvml
from aisched.agent.render import matrix, render
from aisched.api.gpunodetopology import GPUNodeTopologyStatus
from aisched.api.mig import mig_profiles_for
from aisched.topology.machines import MACHINES


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_discovery_reproduces_the_machines_nvidia_smi_matrix(name: str) -> None:
    nvml = FakeNvml.for_machine(name, node="n1")
    with nvml_session(nvml):
        found = discover(nvml)
    machine = MACHINES[name]
    assert matrix(found) == [list(row) for row in machine.matrix]
    status = found.status
    assert [g.index for g in status.gpus] == list(range(machine.gpu_count))
    assert {g.model for g in status.gpus} == {machine.gpu_model}
    assert [g.numa_node for g in status.gpus] == list(machine.numa)
    assert all(g.memory.value() == machine.gpu_memory_gib * 2**30 for g in status.gpus)
    assert len({g.uuid for g in status.gpus}) == machine.gpu_count
    assert all(g.health == "Healthy" for g in status.gpus)
    assert status.fingerprint is not None
    assert status.fingerprint.startswith("sha256:")


def test_nvswitch_gpus_report_their_links_to_the_switches() -> None:
    nvml = FakeNvml.for_machine("dgx-h100")
    with nvml_session(nvml):
        status = discover(nvml).status
    for gpu in status.gpus:
        assert gpu.nvswitch
        assert [(link.peer, link.links, link.remote) for link in gpu.nvlinks] == [(-1, 18, "NVSwitch")]
    assert {pair.nvlinks for pair in status.pairs} == {18}


def test_a_cube_mesh_reports_per_peer_link_counts() -> None:
    nvml = FakeNvml.for_machine("dgx1-v100")
    with nvml_session(nvml):
        status = discover(nvml).status
    gpu0 = status.gpus[0]
    assert not gpu0.nvswitch
    assert {link.peer: link.links for link in gpu0.nvlinks} == {1: 1, 2: 1, 3: 2, 4: 2}
    cross = next(p for p in status.pairs if (p.a, p.b) == (0, 5))
    assert (cross.pcie, cross.nvlinks) == ("SYS", 0)


def test_pcie_pairs_across_sockets_have_no_peer_to_peer() -> None:
    nvml = FakeNvml.for_machine("pcie-8gpu")
    with nvml_session(nvml):
        status = discover(nvml).status
    by_pair = {(p.a, p.b): p for p in status.pairs}
    assert by_pair[(0, 1)].pcie == "PIX"
    assert by_pair[(0, 1)].p2p
    assert by_pair[(0, 4)].pcie == "SYS"
    assert not by_pair[(0, 4)].p2p


def test_mig_mode_instances_and_possible_placements_in_mixed_mode() -> None:
    nvml = FakeNvml.for_machine("a100-mig")
    with nvml_session(nvml):
        found = discover(nvml)
    machine = MACHINES["a100-mig"]
    table = mig_profiles_for("A100-80GB")
    for gpu in found.status.gpus:
        assert (gpu.mig_mode == "Enabled") is machine.mig_enabled[gpu.index]
        expected = sorted(machine.mig_instances[gpu.index], key=lambda item: item[1])
        assert [(m.profile, m.start) for m in gpu.mig_instances] == expected
        assert all(m.size == table[m.profile].memory_slots for m in gpu.mig_instances)
    assert found.mig_placements[0]["1g.10gb"] == table["1g.10gb"].starts
    assert found.mig_placements[0]["3g.40gb"] == (0, 4)
    assert found.mig_placements[5] == {}


def test_numa_falls_back_to_sysfs_when_nvml_does_not_say(tmp_path: Path) -> None:
    nvml = FakeNvml.for_machine("pcie-8gpu", numa_supported=False)
    machine = MACHINES["pcie-8gpu"]
    for index in range(machine.gpu_count):
        bus = machine.pci_bus_id(index)
        domain, _, rest = bus.partition(":")
        device = tmp_path / "bus" / "pci" / "devices" / f"{int(domain, 16):04x}:{rest}".lower()
        device.mkdir(parents=True)
        device.joinpath("numa_node").write_text(f"{machine.numa[index] if index else -1}\n")
    with nvml_session(nvml):
        status = discover(nvml, sysfs=tmp_path).status
    assert [g.numa_node for g in status.gpus] == [None, *machine.numa[1:]]


def test_a_gpu_that_fell_off_the_bus_is_unhealthy_and_the_rest_are_discovered() -> None:
    nvml = FakeNvml.for_machine("dgx-h100")
    with nvml_session(nvml):
        nvml.lose(3)
        status = discover(nvml).status
    lost = status.gpus[3]
    assert (lost.health, lost.health_reason) == ("Unhealthy", "GPU has fallen off the bus")
    assert all(g.health == "Healthy" for g in status.gpus if g.index != 3)
    assert not any(3 in (p.a, p.b) for p in status.pairs)


def test_a_node_without_gpus_publishes_zero_gpus() -> None:
    nvml = FakeNvml.empty()
    with nvml_session(nvml):
        found = discover(nvml)
    assert found.status.gpus == []
    assert found.status.pairs == []
    assert "No GPUs." in render(found)


def test_no_driver_is_a_clear_error() -> None:
    nvml = FakeNvml.for_machine("dgx-h100")
    nvml.fail_init(nvml.NVMLError_LibraryNotFound)
    with pytest.raises(NvmlUnavailableError, match="is the NVIDIA driver installed"), nvml_session(nvml):
        pass


def test_the_fingerprint_is_stable_and_follows_the_hardware_view() -> None:
    first, second = FakeNvml.for_machine("dgx-h100", node="a"), FakeNvml.for_machine("dgx-h100", node="a")
    with nvml_session(first):
        one = discover(first).status.fingerprint
    with nvml_session(second):
        two = discover(second).status.fingerprint
    other = FakeNvml.for_machine("dgx-h100", node="b")  # other UUIDs: other hardware
    with nvml_session(other):
        three = discover(other).status.fingerprint
    assert one == two
    assert one != three


@pytest.mark.parametrize(
    ("name", "memory_gib", "model"),
    [
        ("NVIDIA H100 80GB HBM3", 80, "H100-80GB"),
        ("NVIDIA A100-SXM4-80GB", 80, "A100-80GB"),
        ("NVIDIA A100-SXM4-40GB", 40, "A100-40GB"),
        ("Tesla V100-SXM2-32GB", 32, "V100-32GB"),
        ("NVIDIA L40S", 45, "L40S-48GB"),
        ("NVIDIA H200", 140, "H200-141GB"),
        ("Tesla T4", 15, "T4-16GB"),
    ],
)
def test_gpu_models_are_named_as_the_api_names_them(name: str, memory_gib: int, model: str) -> None:
    assert gpu_model(name, memory_gib * 2**30) == model


# -- NVLink fabric ----------------------------------------------------------------------------


def test_a_fabric_clique_is_the_cluster_uuid_in_hex_and_stable_across_runs() -> None:
    found = []
    for _ in range(2):
        nvml = FakeNvml.for_machine("dgx-h100", node="a", fabric_clique=7)
        with nvml_session(nvml):
            found.append(discover(nvml).status)
    first, second = found
    cliques = {g.clique_id for g in first.gpus}
    assert len(cliques) == 1
    (clique,) = cliques
    assert clique is not None
    assert re.fullmatch(r"[0-9a-f]{32}/7", clique), clique
    assert first.fingerprint == second.fingerprint


def test_a_failed_fabric_registration_reports_no_clique() -> None:
    nvml = FakeNvml.for_machine("dgx-h100", fabric_clique=7, fabric_status=pynvml.NVML_ERROR_UNKNOWN)
    with nvml_session(nvml):
        status = discover(nvml).status
    assert {g.clique_id for g in status.gpus} == {None}


# -- NVML errors on one GPU -------------------------------------------------------------------


def _pairs_with(status: GPUNodeTopologyStatus, index: int) -> list[tuple[str, bool]]:
    return [(p.pcie, p.p2p) for p in status.pairs if index in (p.a, p.b)]


@dataclass(frozen=True)
class Degradation:
    """NVML `function` answers `error` for GPU 0: `feature` is noted unknown, and `degraded` holds."""

    machine: str
    function: str
    error: type[Exception]
    feature: str
    degraded: Callable[[GPUNodeTopologyStatus], bool]


@pytest.mark.parametrize(
    "case",
    [
        Degradation(
            "a100-mig",
            "nvmlDeviceGetGpuInstances",
            pynvml.NVMLError_NoPermission,
            "mig-instances",
            lambda s: (s.gpus[0].mig_mode, s.gpus[0].mig_instances) == ("Enabled", []),
        ),
        Degradation(
            "a100-mig",
            "nvmlDeviceGetMigMode",
            pynvml.NVMLError_Unknown,
            "mig",
            lambda s: s.gpus[0].mig_mode == "Disabled",
        ),
        Degradation(
            "dgx-h100",
            "nvmlDeviceGetNvLinkState",
            pynvml.NVMLError_Unknown,
            "nvlink",
            lambda s: (s.gpus[0].nvlinks, s.gpus[0].nvswitch) == ([], False),
        ),
        Degradation(
            "dgx-h100",
            "nvmlDeviceGetGpuFabricInfo",
            pynvml.NVMLError_NoPermission,
            "fabric",
            lambda s: s.gpus[0].clique_id is None and s.gpus[1].clique_id is not None,
        ),
        Degradation(
            "pcie-8gpu",
            "nvmlDeviceGetNumaNodeId",
            pynvml.NVMLError_Unknown,
            "numa",
            lambda s: s.gpus[0].numa_node is None and s.gpus[1].numa_node is not None,
        ),
        Degradation(
            "pcie-8gpu",
            "nvmlDeviceGetP2PStatus",
            pynvml.NVMLError_Unknown,
            "p2p",
            lambda s: not any(p2p for _, p2p in _pairs_with(s, 0)),
        ),
        Degradation(
            "pcie-8gpu",
            "nvmlDeviceGetTopologyCommonAncestor",
            pynvml.NVMLError_Unknown,
            "pcie-path",
            lambda s: {pcie for pcie, _ in _pairs_with(s, 0)} == {"SYS"},
        ),
    ],
    ids=lambda case: case.feature,
)
def test_an_nvml_error_on_an_optional_feature_degrades_it_with_a_warning(
    tmp_path: Path, case: Degradation
) -> None:
    nvml = FakeNvml.for_machine(case.machine, fabric_clique=7)
    nvml.fail_call(case.function, case.error, index=0)
    with nvml_session(nvml), capture_logs() as logs:
        status = discover(nvml, sysfs=tmp_path).status
    assert case.degraded(status)
    assert all(g.health == "Healthy" for g in status.gpus)
    assert len(status.gpus) == MACHINES[case.machine].gpu_count
    (warning,) = [e for e in logs if e["event"] == "gpu_feature_unknown"]
    assert warning["log_level"] == "warning"
    assert warning["feature"] == case.feature
    assert warning["gpus"][0].startswith("0")
    assert case.error.__name__ in warning["error"]


@pytest.mark.parametrize(
    ("function", "error", "reason"),
    [
        ("nvmlDeviceGetUUID", pynvml.NVMLError_Unknown, "NVML error: Unknown Error"),
        ("nvmlDeviceGetHandleByIndex", pynvml.NVMLError_NoPermission, "NVML error: Insufficient Permissions"),
        ("nvmlDeviceGetMemoryInfo", pynvml.NVMLError_FunctionNotFound, "NVML error: Function Not Found"),
    ],
)
def test_a_gpu_whose_basic_queries_fail_is_unhealthy_with_the_error_and_the_rest_are_discovered(
    function: str, error: type[Exception], reason: str
) -> None:
    nvml = FakeNvml.for_machine("dgx-h100")
    nvml.fail_call(function, error, index=3)
    with nvml_session(nvml):
        status = discover(nvml).status
    broken = status.gpus[3]
    assert (broken.health, broken.health_reason) == ("Unhealthy", reason)
    assert all(g.health == "Healthy" and g.model == "H100-80GB" for g in status.gpus if g.index != 3)
    assert not any(3 in (p.a, p.b) for p in status.pairs)
    assert len(status.pairs) == 7 * 6 // 2


# -- MIG profiles aisched does not know ------------------------------------------------------


def test_mig_profiles_missing_from_the_table_are_logged_with_the_gpu_model() -> None:
    nvml = FakeNvml.for_machine("a100-mig", gfx_mig_profiles=True)
    with nvml_session(nvml), capture_logs() as logs:
        found = discover(nvml)
    (warning,) = [e for e in logs if e["event"] == "mig_profile_unknown"]
    assert warning["log_level"] == "warning"
    assert (warning["profile"], warning["gpu_model"]) == ("1g.10gb+gfx", "A100-80GB")
    enabled = [str(i) for i, on in enumerate(MACHINES["a100-mig"].mig_enabled) if on]
    assert warning["gpus"] == enabled
    # The API's MigInstance enum cannot hold the name: it stays out of the status.
    assert all("1g.10gb+gfx" not in profiles for profiles in found.mig_placements.values())
    assert found.mig_placements[0]["1g.10gb"]
