"""The communication-cost model: what moving one MB between two GPUs costs, by how they connect.

Tiers, best first (per MB, in milliseconds):

| link                                   | `nvidia-smi topo -m` | cost      |
|----------------------------------------|----------------------|-----------|
| NVLink (direct or through NVSwitch)    | NV#                  | 0.002     |
| one PCIe root (one or more switches)   | PIX, PXB             | 0.015     |
| same CPU socket, through host bridges  | PHB, NODE            | 0.030     |
| across CPU sockets (UPI/xGMI)          | SYS                  | 0.050     |
| across nodes (network)                 | -                    | 0.080 + 1.2 ms per transfer |

The NVLink, PCIe-root and cross-node figures are the ones DESIGN.md fixes; the two host tiers sit
between them in the order the hardware imposes (a host bridge is slower than a PCIe switch, the
inter-socket link slower again). NVLink cost falls with the number of links between a pair:
NV18 moves data 18 links wide, NV1 one link wide, priced as 0.002 ms/MB at 12 links or more and
proportionally dearer below.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "CROSS_NODE_FIXED_MS",
    "CROSS_NODE_MS_PER_MB",
    "FULL_NVLINK_WIDTH",
    "Link",
    "link_cost",
    "transfer_ms",
]


class Link(IntEnum):
    """How two GPUs reach each other, best first (the order is meaningful)."""

    NVLINK = 0
    PCIE_SWITCH = 1  # PIX / PXB: behind one PCIe root
    HOST_BRIDGE = 2  # PHB / NODE: same socket, across host bridges
    CROSS_SOCKET = 3  # SYS
    CROSS_NODE = 4


_MS_PER_MB: Final = {
    Link.NVLINK: 0.002,
    Link.PCIE_SWITCH: 0.015,
    Link.HOST_BRIDGE: 0.030,
    Link.CROSS_SOCKET: 0.050,
    Link.CROSS_NODE: 0.080,
}
CROSS_NODE_MS_PER_MB: Final = _MS_PER_MB[Link.CROSS_NODE]
CROSS_NODE_FIXED_MS: Final = 1.2
#: NVLink pairs with at least this many links are priced at the full NVLink rate.
FULL_NVLINK_WIDTH: Final = 12

#: `nvidia-smi topo -m` PCIe path names → link tier.
PCIE_PATHS: Final = {
    "PIX": Link.PCIE_SWITCH,
    "PXB": Link.PCIE_SWITCH,
    "PHB": Link.HOST_BRIDGE,
    "NODE": Link.HOST_BRIDGE,
    "SYS": Link.CROSS_SOCKET,
}


def link_cost(link: Link, *, nvlinks: int = 0) -> float:
    """Milliseconds per MB over `link` (for NVLink, with `nvlinks` links between the pair)."""
    if link is Link.NVLINK:
        width = max(1, min(nvlinks, FULL_NVLINK_WIDTH)) if nvlinks else FULL_NVLINK_WIDTH
        # Never dearer than the PCIe tier it bypasses: one NVLink still beats a PCIe switch hop.
        return min(_MS_PER_MB[Link.NVLINK] * FULL_NVLINK_WIDTH / width, _MS_PER_MB[Link.PCIE_SWITCH] * 0.9)
    return _MS_PER_MB[link]


def transfer_ms(link: Link, megabytes: float, *, nvlinks: int = 0) -> float:
    """Milliseconds to move `megabytes` over `link`, including the fixed cost of a network hop."""
    fixed = CROSS_NODE_FIXED_MS if link is Link.CROSS_NODE else 0.0
    return fixed + megabytes * link_cost(link, nvlinks=nvlinks)
