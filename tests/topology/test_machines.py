"""Machine templates: each `nvidia-smi topo -m` matrix is well formed and yields the known wiring."""

from __future__ import annotations

import pytest

from aisched.api.mig import mig_profiles_for
from aisched.topology.cost import PCIE_PATHS, Link
from aisched.topology.machines import MACHINES, MachineType, machine

NAMES = sorted(MACHINES)


@pytest.fixture(params=NAMES)
def template(request: pytest.FixtureRequest) -> MachineType:
    return MACHINES[request.param]


def test_the_known_machines_are_defined() -> None:
    assert set(MACHINES) == {"dgx-h100", "dgx1-v100", "pcie-8gpu", "hgx-a100", "a100-mig"}


def test_the_mig_machine_is_wired_like_the_hgx_a100_and_partitions_validly() -> None:
    mig, hgx = MACHINES["a100-mig"], MACHINES["hgx-a100"]
    assert mig.matrix == hgx.matrix
    assert mig.topology(node="n").signature == hgx.topology(node="n").signature
    profiles = mig_profiles_for(mig.gpu_model)
    for enabled, instances in zip(mig.mig_enabled, mig.mig_instances, strict=True):
        assert enabled or not instances
        used = 0
        for name, start in instances:
            assert profiles[name].fits_at(start)
            slots = ((1 << profiles[name].memory_slots) - 1) << start
            assert used & slots == 0, "overlapping MIG instances"
            used |= slots


def test_each_machine_is_registered_under_its_own_name(template: MachineType) -> None:
    assert MACHINES[template.name] is template


def test_each_machine_has_8_gpus_and_an_8_by_8_matrix(template: MachineType) -> None:
    assert template.gpu_count == 8
    assert len(template.matrix) == 8
    assert all(len(row) == 8 for row in template.matrix)


def test_each_matrix_has_x_exactly_on_the_diagonal(template: MachineType) -> None:
    for i, row in enumerate(template.matrix):
        for j, cell in enumerate(row):
            assert (cell == "X") == (i == j), (i, j, cell)


def test_each_matrix_is_symmetric(template: MachineType) -> None:
    m = template.matrix
    assert all(m[i][j] == m[j][i] for i in range(8) for j in range(8))


def test_each_cell_is_an_nvlink_count_or_a_known_pcie_path(template: MachineType) -> None:
    for i, row in enumerate(template.matrix):
        for j, cell in enumerate(row):
            if i == j:
                continue
            if cell.startswith("NV"):
                assert int(cell[2:]) >= 1
            else:
                assert cell in PCIE_PATHS


def test_each_machine_puts_four_gpus_on_each_of_two_numa_nodes(template: MachineType) -> None:
    assert template.numa == (0, 0, 0, 0, 1, 1, 1, 1)


def test_template_topology_carries_each_gpus_numa_node(template: MachineType) -> None:
    topology = template.topology(node="n1")

    assert [g.numa_node for g in topology.gpus] == list(template.numa)


def test_template_topology_links_follow_the_matrix_cells(template: MachineType) -> None:
    topology = template.topology(node="n1")

    for i in range(8):
        for j in range(8):
            cell = template.matrix[i][j]
            if cell == "X":
                continue
            if cell.startswith("NV"):
                assert topology.links[i][j] is Link.NVLINK
                assert topology.nvlinks[i][j] == int(cell[2:])
            else:
                assert topology.links[i][j] is PCIE_PATHS[cell]
                assert topology.nvlinks[i][j] == 0


def test_template_topology_derives_gpu_uuids_from_the_node_name(template: MachineType) -> None:
    topology = template.topology(node="gpu-17")

    assert [g.uuid for g in topology.gpus] == [f"GPU-gpu-17-{i}" for i in range(8)]
    assert len({g.pci_bus_id for g in topology.gpus}) == 8


def test_template_topology_has_the_machines_model_and_memory(template: MachineType) -> None:
    topology = template.topology(node="n1")

    assert topology.model == template.gpu_model
    assert all(g.memory_bytes == template.gpu_memory_gib * 2**30 for g in topology.gpus)
    assert topology.nvswitch is template.nvswitch
    assert topology.known


def test_dgx_h100_is_one_nvlink_clique_of_8() -> None:
    assert MACHINES["dgx-h100"].topology(node="n").cliques == (0xFF,)


def test_hgx_a100_is_one_nvlink_clique_of_8() -> None:
    assert MACHINES["hgx-a100"].topology(node="n").cliques == (0xFF,)


def test_dgx1_v100_splits_into_the_two_quads() -> None:
    assert MACHINES["dgx1-v100"].topology(node="n").cliques == (0b0000_1111, 0b1111_0000)


def test_pcie_8gpu_has_8_singleton_cliques() -> None:
    cliques = MACHINES["pcie-8gpu"].topology(node="n").cliques

    assert sorted(cliques) == [1 << i for i in range(8)]


def test_machine_returns_the_named_template() -> None:
    assert machine("dgx1-v100") is MACHINES["dgx1-v100"]


def test_machine_rejects_an_unknown_name_listing_the_known_ones() -> None:
    with pytest.raises(KeyError, match="dgx-h100"):
        machine("dgx-z900")
