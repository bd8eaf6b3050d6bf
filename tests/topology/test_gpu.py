"""GPUTopology: the cost matrix, NVLink cliques, reading an agent's status, and the uniform guess."""

from __future__ import annotations

from itertools import combinations
from typing import Any, ClassVar

import numpy as np
import pytest

from aisched.api import GPUNodeTopologyStatus
from aisched.topology.cost import Link, link_cost
from aisched.topology.gpu import GPU, MAX_GPUS_PER_NODE, GPUTopology
from aisched.topology.gpuset import GPUSetTables
from aisched.topology.machines import MACHINES, MachineType

NAMES = sorted(MACHINES)


def status_body(
    template: MachineType,
    *,
    node: str = "n1",
    unhealthy: tuple[int, ...] = (),
    clique_ids: tuple[str | None, ...] | None = None,
) -> dict[str, Any]:
    """What an agent on a node of `template` publishes: every GPU and every pair of the matrix."""
    gpus: list[dict[str, Any]] = []
    for i in range(template.gpu_count):
        gpu: dict[str, Any] = {
            "index": i,
            "uuid": f"GPU-{node}-{i}",
            "model": template.gpu_model,
            "memory": f"{template.gpu_memory_gib}Gi",
            "pciBusId": template.pci_bus_id(i),
            "numaNode": template.numa[i],
            "health": "Unhealthy" if i in unhealthy else "Healthy",
        }
        if clique_ids is not None and clique_ids[i] is not None:
            gpu["cliqueId"] = clique_ids[i]
        gpus.append(gpu)
    pairs: list[dict[str, Any]] = []
    for a, b in combinations(range(template.gpu_count), 2):
        cell = template.matrix[a][b]
        if cell.startswith("NV"):
            pcie = "NODE" if template.numa[a] == template.numa[b] else "SYS"
            pairs.append({"a": a, "b": b, "pcie": pcie, "nvlinks": int(cell[2:])})
        else:
            pairs.append({"a": a, "b": b, "pcie": cell})
    return {"gpus": gpus, "pairs": pairs}


def from_body(body: dict[str, Any]) -> GPUTopology:
    return GPUTopology.from_status(GPUNodeTopologyStatus.model_validate(body))


def off_diagonal(matrix: tuple[tuple[Any, ...], ...]) -> dict[tuple[int, int], Any]:
    n = len(matrix)
    return {(i, j): matrix[i][j] for i in range(n) for j in range(n) if i != j}


# -- cost matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_cost_matrix_is_symmetric_with_a_zero_diagonal(name: str) -> None:
    cost = MACHINES[name].topology(node="n").cost_matrix

    assert cost.shape == (8, 8)
    np.testing.assert_array_equal(cost, cost.T)
    np.testing.assert_array_equal(np.diag(cost), np.zeros(8))


@pytest.mark.parametrize("name", NAMES)
def test_cost_matrix_prices_each_pair_by_its_link_and_nvlink_count(name: str) -> None:
    topology = MACHINES[name].topology(node="n")

    for i, j in combinations(range(8), 2):
        expected = link_cost(topology.links[i][j], nvlinks=topology.nvlinks[i][j])
        assert topology.cost_matrix[i, j] == expected, (i, j)


def test_dgx1_v100_prices_a_double_nvlink_below_a_single_one_and_sys_above_both() -> None:
    cost = MACHINES["dgx1-v100"].topology(node="n").cost_matrix

    assert cost[0, 3] < cost[0, 1] < cost[0, 5]  # NV2 < NV1 < SYS


# -- cliques --------------------------------------------------------------------------------


def test_cliques_partition_the_gpus() -> None:
    for name in NAMES:
        cliques = MACHINES[name].topology(node="n").cliques
        union = 0
        for clique in cliques:
            assert union & clique == 0, name
            union |= clique
        assert union == 0xFF, name


def test_cliques_are_listed_largest_first() -> None:
    def mixed_links(i: int, j: int) -> Link:
        # GPUs 1, 2 and 3 share NVLink; 0 hangs off PCIe.
        return Link.NVLINK if i and j else Link.PCIE_SWITCH

    topology = GPUTopology(
        gpus=tuple(GPU(index=i, uuid=f"u{i}", model="m") for i in range(4)),
        links=tuple(tuple(mixed_links(i, j) for j in range(4)) for i in range(4)),
        nvlinks=tuple(tuple(4 if i and j and i != j else 0 for j in range(4)) for i in range(4)),
    )

    assert topology.cliques == (0b1110, 0b0001)


def test_cliques_of_a_wide_node_without_nvlink_take_polynomially_many_clique_checks() -> None:
    # uniform() is what a node without a GPUNodeTopology gets, at up to 32 GPUs; the snapshot asks
    # every node for its cliques, so an enumeration of all 2^n subsets hangs the cache at 32.
    class Counting(GPUTopology):
        checks: ClassVar[list[int]] = []

        def _is_clique(self, mask: int) -> bool:
            self.checks.append(mask)
            return super()._is_clique(mask)

    topology = Counting.uniform(16)

    assert topology.cliques == tuple(1 << i for i in range(16))
    assert len(Counting.checks) <= 16**3


# -- from_status ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_from_status_builds_the_same_pair_links_as_the_template(name: str) -> None:
    template = MACHINES[name]
    expected = template.topology(node="n1")

    topology = from_body(status_body(template, node="n1"))

    assert off_diagonal(topology.links) == off_diagonal(expected.links)
    assert off_diagonal(topology.nvlinks) == off_diagonal(expected.nvlinks)
    np.testing.assert_array_equal(topology.cost_matrix, expected.cost_matrix)
    assert topology.cliques == expected.cliques


@pytest.mark.parametrize("name", NAMES)
def test_from_status_shares_the_templates_gpu_set_table(name: str) -> None:
    # `signature` is documented as equal for nodes wired alike; a node read from its status and one
    # built from the template of the same machine are wired alike.
    template = MACHINES[name]
    tables = GPUSetTables()

    from_template = tables.table_id(template.topology(node="n1"))
    from_status = tables.table_id(from_body(status_body(template, node="n2")))

    assert from_status == from_template


def test_from_status_reads_each_gpus_identity() -> None:
    template = MACHINES["dgx-h100"]

    topology = from_body(status_body(template, node="n1"))

    assert [g.index for g in topology.gpus] == list(range(8))
    assert [g.uuid for g in topology.gpus] == [f"GPU-n1-{i}" for i in range(8)]
    assert [g.numa_node for g in topology.gpus] == list(template.numa)
    assert all(g.memory_bytes == 80 * 2**30 for g in topology.gpus)
    assert topology.model == "H100-80GB"
    assert topology.known


def test_from_status_orders_gpus_by_index_whatever_the_list_order() -> None:
    body = status_body(MACHINES["dgx1-v100"])
    body["gpus"].reverse()

    topology = from_body(body)

    assert [g.index for g in topology.gpus] == list(range(8))
    assert topology.cliques == (0x0F, 0xF0)


def test_from_status_marks_unhealthy_gpus_out_of_the_healthy_mask() -> None:
    topology = from_body(status_body(MACHINES["dgx-h100"], unhealthy=(2, 5)))

    assert [g.healthy for g in topology.gpus] == [True, True, False, True, True, False, True, True]
    assert topology.healthy_mask == 0xFF & ~(1 << 2) & ~(1 << 5)


def test_from_status_links_every_pair_of_nvswitch_gpus_at_the_switch_width() -> None:
    body = status_body(MACHINES["pcie-8gpu"])  # PCIe pairs only: NVLink must come from the switch
    for gpu in body["gpus"]:
        gpu["nvswitch"] = True
        gpu["nvlinks"] = [{"peer": -1, "links": 18, "remote": "NVSwitch"}]

    topology = from_body(body)

    assert topology.nvswitch
    for i, j in combinations(range(8), 2):
        assert topology.links[i][j] is Link.NVLINK
        assert topology.nvlinks[i][j] == 18
    assert topology.cliques == (0xFF,)


def test_from_status_leaves_gpus_off_the_nvswitch_on_their_pcie_links() -> None:
    body = status_body(MACHINES["pcie-8gpu"])
    for gpu in body["gpus"][:4]:
        gpu["nvswitch"] = True
        gpu["nvlinks"] = [{"peer": -1, "links": 18, "remote": "NVSwitch"}]

    topology = from_body(body)

    assert topology.links[0][3] is Link.NVLINK
    assert topology.links[4][5] is Link.PCIE_SWITCH
    assert topology.links[0][4] is Link.CROSS_SOCKET
    assert topology.cliques[0] == 0x0F


def test_from_status_without_an_nvswitch_is_not_switched() -> None:
    assert not from_body(status_body(MACHINES["dgx1-v100"])).nvswitch


def test_from_status_takes_a_single_fabric_clique_id_as_the_nodes_fabric() -> None:
    topology = from_body(status_body(MACHINES["dgx-h100"], clique_ids=("fabric-7",) * 8))

    assert topology.fabric_clique == "fabric-7"


def test_from_status_ignores_gpus_without_a_clique_id_when_naming_the_fabric() -> None:
    ids = ("fabric-7", None, "fabric-7", None, None, None, None, None)

    assert from_body(status_body(MACHINES["dgx-h100"], clique_ids=ids)).fabric_clique == "fabric-7"


def test_from_status_with_conflicting_clique_ids_has_no_fabric() -> None:
    ids = ("fabric-1",) * 4 + ("fabric-2",) * 4

    assert from_body(status_body(MACHINES["dgx-h100"], clique_ids=ids)).fabric_clique is None


def test_from_status_without_clique_ids_has_no_fabric() -> None:
    assert from_body(status_body(MACHINES["dgx-h100"])).fabric_clique is None


def test_from_status_of_a_node_without_gpus_is_empty() -> None:
    topology = from_body({"gpus": [], "pairs": []})

    assert topology.count == 0
    assert topology.cliques == ()
    assert topology.model == ""


# -- uniform --------------------------------------------------------------------------------


def test_uniform_topology_has_unknown_wiring() -> None:
    topology = GPUTopology.uniform(4, model="L4", uuid_prefix="GPU-x-")

    assert not topology.known
    assert topology.count == 4
    assert topology.model == "L4"
    assert topology.uuids(0b1010) == ["GPU-x-1", "GPU-x-3"]


def test_uniform_topology_prices_every_pair_as_a_host_bridge_without_nvlink() -> None:
    topology = GPUTopology.uniform(4)

    for i, j in combinations(range(4), 2):
        assert topology.links[i][j] is Link.HOST_BRIDGE
        assert topology.cost_matrix[i, j] == link_cost(Link.HOST_BRIDGE)
    assert topology.cliques == (1, 2, 4, 8)


def test_uniform_topologies_of_equal_width_share_a_signature() -> None:
    assert (
        GPUTopology.uniform(8, uuid_prefix="a").signature == GPUTopology.uniform(8, uuid_prefix="b").signature
    )
    assert GPUTopology.uniform(8).signature != GPUTopology.uniform(4).signature


def test_uniform_topology_differs_in_signature_from_a_known_machine() -> None:
    assert GPUTopology.uniform(8).signature != MACHINES["dgx-h100"].topology(node="n").signature


# -- invariants -----------------------------------------------------------------------------


def _gpus(indices: list[int]) -> tuple[GPU, ...]:
    return tuple(GPU(index=i, uuid=f"u{i}", model="m") for i in indices)


def _square(n: int) -> tuple[tuple[Link, ...], ...]:
    return tuple(tuple(Link.PCIE_SWITCH for _ in range(n)) for _ in range(n))


def _zeros(n: int) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(0 for _ in range(n)) for _ in range(n))


@pytest.mark.parametrize("indices", [[0, 2], [1, 2], [1, 0], [0, 0]])
def test_topology_refuses_gpu_indices_that_are_not_0_to_n_minus_1_in_order(indices: list[int]) -> None:
    with pytest.raises(ValueError, match="indices"):
        GPUTopology(gpus=_gpus(indices), links=_square(2), nvlinks=_zeros(2))


def test_topology_refuses_more_than_32_gpus() -> None:
    with pytest.raises(ValueError, match="at most 32"):
        GPUTopology.uniform(MAX_GPUS_PER_NODE + 1)


def test_topology_accepts_exactly_32_gpus() -> None:
    assert GPUTopology.uniform(MAX_GPUS_PER_NODE).count == 32


def test_topology_refuses_a_links_matrix_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="n×n"):
        GPUTopology(gpus=_gpus([0, 1, 2]), links=_square(2), nvlinks=_zeros(3))


def test_from_status_records_mig_mode_and_the_memory_slots_instances_hold() -> None:
    status = GPUNodeTopologyStatus.model_validate(
        {
            "gpus": [
                {
                    "index": 0,
                    "uuid": "GPU-a",
                    "model": "A100-80GB",
                    "memory": "80Gi",
                    "migMode": "Enabled",
                    "migInstances": [
                        {"profile": "3g.40gb", "start": 4, "size": 4},
                        {"profile": "1g.10gb", "start": 0, "size": 1},
                    ],
                },
                {"index": 1, "uuid": "GPU-b", "model": "A100-80GB", "memory": "80Gi"},
            ],
            "pairs": [{"a": 0, "b": 1, "pcie": "NODE"}],
        }
    )
    topology = GPUTopology.from_status(status)
    assert topology.gpus[0].mig_enabled
    assert topology.gpus[0].mig_mask == 0b11110001
    assert not topology.gpus[1].mig_enabled
    assert topology.gpus[1].mig_mask == 0
