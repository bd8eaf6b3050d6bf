"""The GPUs of one node and how each pair is connected.

`GPUTopology` is built from a node's GPUNodeTopology status, from a machine template, or, when a
node publishes none, as a uniform set of GPUs whose wiring is unknown. It yields the pair cost
matrix of the cost model and the node's NVLink cliques.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Final

import numpy as np
import numpy.typing as npt

from aisched.api.gpunodetopology import GPUNodeTopologyStatus, MigInstance
from aisched.topology.cost import PCIE_PATHS, Link, link_cost

__all__ = ["GPU", "MAX_GPUS_PER_NODE", "GPUTopology"]

#: The widest node the columnar snapshot holds (GPU masks are uint32 bit sets).
MAX_GPUS_PER_NODE: Final = 32


#: Up to this many GPUs, cliques are found exactly (all subsets); wider nodes grow them greedily.
_EXACT_CLIQUE_GPUS: Final = 10


@dataclass(frozen=True, kw_only=True)
class GPU:
    """One physical GPU as the scheduler sees it."""

    index: int
    uuid: str
    model: str
    memory_bytes: int = 0
    pci_bus_id: str | None = None
    numa_node: int | None = None
    healthy: bool = True
    #: MIG mode, and the GPU's 8 memory slots held by existing MIG instances (bit i: slot i).
    mig_enabled: bool = False
    mig_mask: int = 0


@dataclass(frozen=True, kw_only=True, eq=False)
class GPUTopology:
    """A node's GPUs and the link between every pair (`links[i][j]`, `nvlinks[i][j]` links)."""

    gpus: tuple[GPU, ...]
    links: tuple[tuple[Link, ...], ...]
    nvlinks: tuple[tuple[int, ...], ...]
    nvswitch: bool = False
    #: Nodes that share a fabric clique (multi-node NVLink) form one NVLink domain.
    fabric_clique: str | None = None
    #: Whether the wiring was discovered (False: a uniform guess for a node without a topology object).
    known: bool = True
    _signature: tuple[object, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        count = len(self.gpus)
        if count > MAX_GPUS_PER_NODE:
            raise ValueError(f"{count} GPUs on one node; at most {MAX_GPUS_PER_NODE} are supported")
        if [g.index for g in self.gpus] != list(range(count)):
            raise ValueError("GPU indices must be 0..n-1 in order")
        if len(self.links) != count or any(len(row) != count for row in self.links):
            raise ValueError("links must be an n×n matrix")
        # Off-diagonal cells only: the diagonal (a GPU to itself) carries no meaning and sources
        # disagree on what to put there.
        upper = tuple((self.links[i][j], self.nvlinks[i][j]) for i, j in combinations(range(count), 2))
        object.__setattr__(self, "_signature", (count, upper))

    @property
    def count(self) -> int:
        return len(self.gpus)

    @property
    def model(self) -> str:
        """The node's GPU model (the first GPU's: nodes with mixed models are not a case we place on)."""
        return self.gpus[0].model if self.gpus else ""

    @property
    def signature(self) -> tuple[object, ...]:
        """Equal for nodes wired alike: they share one precomputed GPU-set table."""
        return self._signature

    @property
    def healthy_mask(self) -> int:
        return sum(1 << g.index for g in self.gpus if g.healthy)

    @cached_property
    def cost_matrix(self) -> npt.NDArray[np.float64]:
        """Milliseconds per MB between each pair of GPUs (0 on the diagonal)."""
        n = self.count
        out = np.zeros((n, n), dtype=np.float64)
        for i, j in combinations(range(n), 2):
            out[i, j] = out[j, i] = link_cost(self.links[i][j], nvlinks=self.nvlinks[i][j])
        return out

    @cached_property
    def cliques(self) -> tuple[int, ...]:
        """The node's GPUs partitioned into NVLink cliques (bit masks), largest first.

        A clique is a set of GPUs every pair of which has an NVLink. Where cliques overlap
        (a hybrid cube-mesh), the largest is taken first, then the largest of what remains.
        """
        remaining = (1 << self.count) - 1
        found: list[int] = []
        while remaining:
            best = self._largest_clique(remaining) if remaining.bit_count() <= _EXACT_CLIQUE_GPUS else 0
            if not best:
                best = self._greedy_clique(remaining)
            found.append(best)
            remaining &= ~best
        return tuple(found)

    def _largest_clique(self, remaining: int) -> int:
        for mask in _submasks_by_size(remaining):
            if self._is_clique(mask):
                return mask
        return 0

    def _greedy_clique(self, remaining: int) -> int:
        """A maximal clique grown from the best-linked GPU (wide nodes: exact search is exponential)."""
        members = [i for i in range(self.count) if remaining >> i & 1]

        def linked(i: int, among: list[int]) -> int:
            return sum(1 for j in among if j != i and self.links[i][j] is Link.NVLINK)

        clique = [max(members, key=lambda i: (linked(i, members), -i))]
        candidates = [j for j in members if j != clique[0] and self.links[clique[0]][j] is Link.NVLINK]
        while candidates:
            pick = max(candidates, key=lambda i: (linked(i, candidates), -i))
            clique.append(pick)
            candidates = [j for j in candidates if j != pick and self.links[pick][j] is Link.NVLINK]
        return sum(1 << i for i in clique)

    def _is_clique(self, mask: int) -> bool:
        members = [i for i in range(self.count) if mask >> i & 1]
        return all(self.links[i][j] is Link.NVLINK for i, j in combinations(members, 2))

    def uuids(self, mask: int) -> list[str]:
        return [g.uuid for g in self.gpus if mask >> g.index & 1]

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_status(cls, status: GPUNodeTopologyStatus) -> GPUTopology:
        """The topology an agent published in a GPUNodeTopology's status."""
        gpus = tuple(
            GPU(
                index=g.index,
                uuid=g.uuid,
                model=g.model,
                memory_bytes=g.memory.value(),
                pci_bus_id=g.pci_bus_id,
                numa_node=g.numa_node,
                healthy=g.health == "Healthy",
                mig_enabled=g.mig_mode == "Enabled",
                mig_mask=_mig_mask(g.mig_instances),
            )
            for g in sorted(status.gpus, key=lambda g: g.index)
        )
        n = len(gpus)
        links = [[Link.CROSS_SOCKET] * n for _ in range(n)]
        nvlinks = [[0] * n for _ in range(n)]
        for pair in status.pairs:
            link = Link.NVLINK if pair.nvlinks else PCIE_PATHS[pair.pcie]
            links[pair.a][pair.b] = links[pair.b][pair.a] = link
            nvlinks[pair.a][pair.b] = nvlinks[pair.b][pair.a] = pair.nvlinks
        nvswitch = any(g.nvswitch for g in status.gpus)
        if nvswitch:  # every GPU on the switch reaches every other at full width
            switched = [g.index for g in status.gpus if g.nvswitch]
            width = max((link.links for g in status.gpus for link in g.nvlinks), default=0)
            for i, j in combinations(switched, 2):
                links[i][j] = links[j][i] = Link.NVLINK
                nvlinks[i][j] = nvlinks[j][i] = max(nvlinks[i][j], width)
        cliques = {g.clique_id for g in status.gpus if g.clique_id}
        return cls(
            gpus=gpus,
            links=tuple(tuple(row) for row in links),
            nvlinks=tuple(tuple(row) for row in nvlinks),
            nvswitch=nvswitch,
            fabric_clique=next(iter(cliques)) if len(cliques) == 1 else None,
        )

    @classmethod
    def uniform(cls, count: int, *, model: str = "", uuid_prefix: str = "") -> GPUTopology:
        """`count` GPUs of unknown wiring, priced as if every pair crossed a host bridge."""
        gpus = tuple(GPU(index=i, uuid=f"{uuid_prefix}{i}", model=model) for i in range(count))
        return cls(
            gpus=gpus,
            links=tuple(tuple(Link.HOST_BRIDGE for _ in range(count)) for _ in range(count)),
            nvlinks=tuple(tuple(0 for _ in range(count)) for _ in range(count)),
            known=False,
        )


def _mig_mask(instances: Iterable[MigInstance]) -> int:
    """The memory slots the MIG instances hold, as bits of an 8-slot mask."""
    mask = 0
    for instance in instances:
        mask |= ((1 << instance.size) - 1) << instance.start
    return mask


def _submasks_by_size(mask: int) -> list[int]:
    """Every non-empty sub-mask of `mask`, largest first, then lowest value first."""
    subs = []
    sub = mask
    while sub:
        subs.append(sub)
        sub = (sub - 1) & mask
    return sorted(subs, key=lambda s: (-s.bit_count(), s))
