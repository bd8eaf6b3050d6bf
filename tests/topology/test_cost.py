"""The cost model: link tiers in hardware order, the DESIGN figures, NVLink priced by width."""

from __future__ import annotations

from itertools import pairwise

import pytest

from aisched.topology.cost import (
    CROSS_NODE_FIXED_MS,
    CROSS_NODE_MS_PER_MB,
    FULL_NVLINK_WIDTH,
    Link,
    link_cost,
    transfer_ms,
)

TIERS_BEST_FIRST = [Link.NVLINK, Link.PCIE_SWITCH, Link.HOST_BRIDGE, Link.CROSS_SOCKET, Link.CROSS_NODE]


def test_tiers_cost_more_in_the_order_nvlink_pcie_switch_host_bridge_cross_socket_cross_node() -> None:
    costs = [link_cost(link, nvlinks=FULL_NVLINK_WIDTH) for link in TIERS_BEST_FIRST]

    assert costs == sorted(costs)
    assert len(set(costs)) == len(costs)


def test_link_enum_order_is_the_cost_order() -> None:
    assert sorted(Link) == TIERS_BEST_FIRST


def test_full_width_nvlink_costs_the_design_figure() -> None:
    assert link_cost(Link.NVLINK, nvlinks=FULL_NVLINK_WIDTH) == pytest.approx(0.002)


def test_nvlink_wider_than_full_width_costs_no_less_than_full_width() -> None:
    assert link_cost(Link.NVLINK, nvlinks=18) == pytest.approx(0.002)


def test_nvlink_of_unknown_width_is_priced_at_full_width() -> None:
    assert link_cost(Link.NVLINK) == pytest.approx(0.002)


def test_one_pcie_root_costs_the_design_figure() -> None:
    assert link_cost(Link.PCIE_SWITCH) == pytest.approx(0.015)


def test_cross_node_costs_the_design_figure_per_mb() -> None:
    assert link_cost(Link.CROSS_NODE) == pytest.approx(0.08)
    assert pytest.approx(0.08) == CROSS_NODE_MS_PER_MB


def test_cross_node_transfer_adds_a_fixed_1_2_ms_per_transfer() -> None:
    assert pytest.approx(1.2) == CROSS_NODE_FIXED_MS
    assert transfer_ms(Link.CROSS_NODE, 100.0) == pytest.approx(1.2 + 100 * 0.08)
    assert transfer_ms(Link.CROSS_NODE, 0.0) == pytest.approx(1.2)


@pytest.mark.parametrize("link", [Link.NVLINK, Link.PCIE_SWITCH, Link.HOST_BRIDGE, Link.CROSS_SOCKET])
def test_transfer_inside_a_node_has_no_fixed_cost(link: Link) -> None:
    assert transfer_ms(link, 0.0) == 0.0
    assert transfer_ms(link, 50.0) == pytest.approx(50 * link_cost(link))


def test_nvlink_transfer_is_priced_by_its_link_count() -> None:
    assert transfer_ms(Link.NVLINK, 10.0, nvlinks=2) == pytest.approx(10 * link_cost(Link.NVLINK, nvlinks=2))
    assert transfer_ms(Link.NVLINK, 10.0, nvlinks=2) > transfer_ms(Link.NVLINK, 10.0, nvlinks=12)


def test_fewer_nvlinks_cost_strictly_more_up_to_full_width() -> None:
    costs = [link_cost(Link.NVLINK, nvlinks=n) for n in range(1, FULL_NVLINK_WIDTH + 1)]

    assert all(fewer > more for fewer, more in pairwise(costs))


@pytest.mark.parametrize("nvlinks", range(1, 19))
def test_any_nvlink_pair_is_cheaper_than_a_pcie_switch(nvlinks: int) -> None:
    assert link_cost(Link.NVLINK, nvlinks=nvlinks) < link_cost(Link.PCIE_SWITCH)


def test_nvlink_count_does_not_change_the_price_of_a_pcie_link() -> None:
    assert link_cost(Link.PCIE_SWITCH, nvlinks=4) == link_cost(Link.PCIE_SWITCH)
