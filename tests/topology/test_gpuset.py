"""GPU-set tables: the best subset per free mask and size, its score, and the flat multi-wiring array."""

from __future__ import annotations

from itertools import combinations

import pytest

from aisched.topology.cost import Link
from aisched.topology.gpu import GPU, GPUTopology
from aisched.topology.gpuset import (
    TABLE_MAX_GPUS,
    UNTABLED_SCORE,
    GPUSetTable,
    GPUSetTables,
    best_gpu_set,
    set_cost,
)
from aisched.topology.machines import MACHINES

NAMES = sorted(MACHINES)


def topology_of(name: str, node: str = "n") -> GPUTopology:
    return MACHINES[name].topology(node=node)


def bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def to_mask(indices: tuple[int, ...]) -> int:
    return sum(1 << i for i in indices)


def brute_force_min_cost(topology: GPUTopology, free: int, g: int) -> float:
    return min(set_cost(topology.cost_matrix, to_mask(c)) for c in combinations(bits(free), g))


def two_islands() -> GPUTopology:
    """16 GPUs: two NVSwitch islands of 8 (GPUs 0-7, 8-15) joined across sockets."""

    def link(i: int, j: int) -> Link:
        return Link.NVLINK if i // 8 == j // 8 else Link.CROSS_SOCKET

    return GPUTopology(
        gpus=tuple(GPU(index=i, uuid=f"u{i}", model="m", numa_node=i // 8) for i in range(16)),
        links=tuple(tuple(link(i, j) for j in range(16)) for i in range(16)),
        nvlinks=tuple(tuple(18 if i // 8 == j // 8 and i != j else 0 for j in range(16)) for i in range(16)),
    )


# -- the table against brute force ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_table_best_is_a_g_subset_of_the_free_mask_or_minus_one(name: str) -> None:
    table = GPUSetTable.build(topology_of(name))

    for mask in range(256):
        for g in range(9):
            best = int(table.best[mask, g])
            if mask.bit_count() < g:
                assert best == -1, (mask, g)
            else:
                assert best & ~mask == 0, (mask, g, best)
                assert best.bit_count() == g, (mask, g, best)


@pytest.mark.parametrize("name", NAMES)
def test_table_best_costs_the_brute_force_minimum_over_all_g_subsets(name: str) -> None:
    topology = topology_of(name)
    table = GPUSetTable.build(topology)

    for mask in range(256):
        for g in range(mask.bit_count() + 1):
            expected = brute_force_min_cost(topology, mask, g)
            best = int(table.best[mask, g])
            assert set_cost(topology.cost_matrix, best) == pytest.approx(expected, rel=1e-12), (mask, g)
            assert table.cost[mask, g] == pytest.approx(expected, rel=1e-12), (mask, g)


@pytest.mark.parametrize("name", NAMES)
def test_table_cost_is_infinite_when_the_mask_has_too_few_gpus(name: str) -> None:
    table = GPUSetTable.build(topology_of(name))

    assert table.cost[0b0000_0111, 4] == float("inf")
    assert table.score[0b0000_0111, 4] == 0.0


def test_table_of_a_narrow_node_has_one_row_per_mask_and_one_column_per_size() -> None:
    table = GPUSetTable.build(GPUTopology.uniform(3))

    assert table.width == 3
    assert table.best.shape == (8, 4)


def test_table_refuses_a_node_wider_than_8_gpus() -> None:
    with pytest.raises(ValueError, match="best_gpu_set"):
        GPUSetTable.build(GPUTopology.uniform(TABLE_MAX_GPUS + 1))


# -- what the table picks ---------------------------------------------------------------------


def test_dgx1_v100_4_gpu_request_on_a_free_node_takes_one_quad() -> None:
    table = GPUSetTable.build(topology_of("dgx1-v100"))

    assert int(table.best[0xFF, 4]) in {0x0F, 0xF0}


def test_dgx1_v100_4_gpu_request_takes_the_intact_quad_when_the_other_is_broken() -> None:
    table = GPUSetTable.build(topology_of("dgx1-v100"))

    assert int(table.best[0b1111_0011, 4]) == 0xF0


def test_dgx1_v100_2_gpu_request_takes_a_double_nvlink_pair() -> None:
    topology = topology_of("dgx1-v100")
    best = int(GPUSetTable.build(topology).best[0xFF, 2])
    i, j = bits(best)

    assert topology.nvlinks[i][j] == 2


def test_dgx_h100_prefers_a_same_numa_set_when_costs_tie() -> None:
    # GPU 0 is taken: {1,2,3,4} is the lowest mask, but only {4,5,6,7} stays on one socket.
    table = GPUSetTable.build(topology_of("dgx-h100"))

    assert int(table.best[0b1111_1110, 4]) == 0b1111_0000


def test_dgx_h100_two_gpus_come_from_one_numa_node_when_either_socket_can_give_them() -> None:
    numa = MACHINES["dgx-h100"].numa
    table = GPUSetTable.build(topology_of("dgx-h100"))

    for mask in (0b0011_1000, 0b0111_1110, 0b1001_1001, 0b1100_0011):
        best = int(table.best[mask, 2])
        assert len({numa[i] for i in bits(best)}) == 1, (mask, best)


def test_ties_go_to_the_set_that_leaves_the_rest_best_connected() -> None:
    # PCIe 8-GPU, free {0,1,2}: one GPU costs nothing anywhere; taking 2 leaves the PIX pair {0,1}.
    table = GPUSetTable.build(topology_of("pcie-8gpu"))

    assert int(table.best[0b0111, 1]) == 0b0100


def test_ties_with_nothing_else_to_choose_go_to_the_lowest_mask() -> None:
    table = GPUSetTable.build(topology_of("dgx-h100"))

    assert int(table.best[0x0F, 2]) == 0b0011


# -- scores -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_score_is_100_for_every_size_on_a_fully_free_node(name: str) -> None:
    table = GPUSetTable.build(topology_of(name))

    assert table.score[0xFF].tolist() == pytest.approx([100.0] * 9, abs=1e-9)


def test_score_drops_when_only_a_poorly_connected_set_remains() -> None:
    # DGX-1: only GPUs 0 and 5 free (across sockets) against the best pair's double NVLink.
    topology = topology_of("dgx1-v100")
    table = GPUSetTable.build(topology)
    ideal = float(table.cost[0xFF, 2])

    score = float(table.score[0b0010_0001, 2])

    assert score < 100.0
    assert score == pytest.approx(100.0 * ideal / topology.cost_matrix[0, 5])


def test_score_ranks_a_well_connected_remainder_above_a_poor_one() -> None:
    table = GPUSetTable.build(topology_of("pcie-8gpu"))

    assert table.score[0b0000_0011, 2] > table.score[0b0000_0101, 2] > table.score[0b0001_0001, 2]


@pytest.mark.parametrize("name", NAMES)
def test_score_lies_between_0_and_100(name: str) -> None:
    table = GPUSetTable.build(topology_of(name))

    assert float(table.score.min()) >= 0.0
    assert float(table.score.max()) <= 100.0


# -- best_gpu_set -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_best_gpu_set_costs_what_the_table_costs_on_an_8_gpu_node(name: str) -> None:
    topology = topology_of(name)
    table = GPUSetTable.build(topology)

    for mask in range(256):
        for g in range(1, mask.bit_count() + 1):
            chosen = best_gpu_set(topology, mask, g)
            assert set_cost(topology.cost_matrix, chosen) == pytest.approx(float(table.cost[mask, g]))


@pytest.mark.parametrize("name", NAMES)
def test_best_gpu_set_picks_the_tables_set_on_an_8_gpu_node(name: str) -> None:
    # Placement on a narrow node and the score the table gives it must describe the same GPUs.
    topology = topology_of(name)
    table = GPUSetTable.build(topology)
    disagreements = [
        (mask, g, int(table.best[mask, g]), best_gpu_set(topology, mask, g))
        for mask in range(256)
        for g in range(1, mask.bit_count() + 1)
        if best_gpu_set(topology, mask, g) != int(table.best[mask, g])
    ]

    assert disagreements == []


def test_best_gpu_set_returns_0_when_too_few_gpus_are_free() -> None:
    assert best_gpu_set(topology_of("dgx-h100"), 0b0111, 4) == 0
    assert best_gpu_set(GPUTopology.uniform(16), 0b0111, 4) == 0


def test_best_gpu_set_returns_0_for_zero_gpus() -> None:
    assert best_gpu_set(GPUTopology.uniform(16), 0xFFFF, 0) == 0


@pytest.mark.parametrize("free", [0xFFFF, 0b1010_1010_1010_1010, 0xFF00, 0b1000_0000_0111_0001])
def test_best_gpu_set_on_a_16_gpu_uniform_node_returns_g_distinct_free_gpus(free: int) -> None:
    topology = GPUTopology.uniform(16)

    for g in range(1, free.bit_count() + 1):
        chosen = best_gpu_set(topology, free, g)
        assert chosen & ~free == 0, (free, g)
        assert chosen.bit_count() == g, (free, g)


def test_best_gpu_set_on_a_16_gpu_node_keeps_8_gpus_on_one_nvlink_island() -> None:
    chosen = best_gpu_set(two_islands(), 0xFFFF, 8)

    assert chosen in {0x00FF, 0xFF00}


# -- GPUSetTables -----------------------------------------------------------------------------


def test_tables_give_nodes_wired_alike_the_same_table_id() -> None:
    tables = GPUSetTables()

    first = tables.table_id(topology_of("dgx-h100", node="a"))
    second = tables.table_id(topology_of("dgx-h100", node="b"))

    assert first == second == 0
    assert tables.best.shape == (2 * tables.stride,)


def test_tables_give_each_wiring_its_own_block() -> None:
    tables = GPUSetTables()
    wirings = {topology_of(name).signature: name for name in NAMES}  # a100-mig is wired as hgx-a100

    ids = [tables.table_id(topology_of(name)) for name in wirings.values()]

    assert sorted(ids) == list(range(len(wirings)))
    assert [tables.base(i) for i in ids] == [(i + 1) * tables.stride for i in ids]
    assert tables.score.shape == ((len(wirings) + 1) * tables.stride,)
    assert tables.table_id(topology_of("a100-mig")) == tables.table_id(topology_of("hgx-a100"))


def test_untabled_node_gets_id_minus_one_and_the_constant_block_at_base_0() -> None:
    tables = GPUSetTables()

    table_id = tables.table_id(GPUTopology.uniform(16))

    assert table_id == -1
    assert tables.base(table_id) == 0
    assert set(tables.score[: tables.stride].tolist()) == {UNTABLED_SCORE}
    assert set(tables.best[: tables.stride].tolist()) == {-1}


def test_untabled_nodes_add_no_block() -> None:
    tables = GPUSetTables()

    tables.table_id(GPUTopology.uniform(16))

    assert tables.score.shape == (tables.stride,)


@pytest.mark.parametrize("name", NAMES)
def test_flat_index_gathers_the_wirings_table(name: str) -> None:
    tables = GPUSetTables()
    tables.table_id(topology_of("pcie-8gpu"))  # another wiring first, so the block is not the first
    topology = topology_of(name)
    table_id = tables.table_id(topology)
    table = GPUSetTable.build(topology)

    for mask in range(256):
        for g in range(9):
            at = tables.index(table_id, mask, g)
            assert tables.best[at] == table.best[mask, g]
            assert tables.score[at] == table.score[mask, g]
            assert tables.cost[at] == table.cost[mask, g]


def test_a_narrower_nodes_table_fills_the_top_left_of_its_block() -> None:
    tables = GPUSetTables()
    topology = GPUTopology.uniform(3)
    table_id = tables.table_id(topology)
    table = GPUSetTable.build(topology)

    for mask in range(8):
        for g in range(4):
            assert tables.best[tables.index(table_id, mask, g)] == table.best[mask, g]
            assert tables.score[tables.index(table_id, mask, g)] == table.score[mask, g]
    assert tables.score[tables.index(table_id, 0b111, 4)] == 0.0
    assert tables.best[tables.index(table_id, 0b111, 4)] == -1
