"""Machine types: the GPU servers aisched knows by wiring, one definition each.

The fake NVML of the node agent, the emulator's simulated nodes, the benchmarks and the tests all
build their nodes from these templates, so a DGX H100 is described exactly once. Each matrix is
what `nvidia-smi topo -m` prints for that machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from aisched.api.mig import mig_profiles_for
from aisched.topology.cost import PCIE_PATHS, Link
from aisched.topology.gpu import GPU, GPUTopology

__all__ = ["MACHINES", "MachineType", "machine"]


@dataclass(frozen=True, kw_only=True)
class MachineType:
    """A GPU server model: its GPUs, their NUMA nodes and the `nvidia-smi topo -m` matrix."""

    name: str
    gpu_model: str
    gpu_memory_gib: int
    cpu: int  # allocatable cores
    memory_gib: int  # allocatable memory
    numa: tuple[int, ...]  # NUMA node of each GPU
    #: `nvidia-smi topo -m` GPU×GPU cells: "X" on the diagonal, NV# for NVLink, else the PCIe path.
    matrix: tuple[tuple[str, ...], ...]
    nvswitch: bool = False
    mig_capable: bool = False
    #: Per GPU: MIG mode enabled (empty: disabled everywhere).
    mig_enabled: tuple[bool, ...] = ()
    #: Per GPU: the MIG GPU instances that exist, as (profile name, first memory slot).
    mig_instances: tuple[tuple[tuple[str, int], ...], ...] = ()

    @property
    def gpu_count(self) -> int:
        return len(self.numa)

    def mig_mask(self, index: int) -> int:
        """The memory slots GPU `index`'s existing MIG instances hold (bit i: slot i)."""
        if index >= len(self.mig_instances):
            return 0
        profiles = mig_profiles_for(self.gpu_model)
        return sum(profiles[name].slots_at(start) for name, start in self.mig_instances[index])

    def pci_bus_id(self, index: int) -> str:
        return f"00000000:{0x18 + 0x10 * index:02X}:00.0"

    def topology(self, *, node: str) -> GPUTopology:
        """The topology of one node of this type; GPU UUIDs are derived from the node name."""
        n = self.gpu_count
        links = [[Link.NVLINK] * n for _ in range(n)]
        nvlinks = [[0] * n for _ in range(n)]
        for i in range(n):
            for j in range(n):
                cell = self.matrix[i][j]
                if cell.startswith("NV"):
                    nvlinks[i][j] = int(cell[2:])
                elif cell != "X":
                    links[i][j] = PCIE_PATHS[cell]
        gpus = tuple(
            GPU(
                index=i,
                uuid=f"GPU-{node}-{i}",
                model=self.gpu_model,
                memory_bytes=self.gpu_memory_gib * 2**30,
                pci_bus_id=self.pci_bus_id(i),
                numa_node=self.numa[i],
                mig_enabled=i < len(self.mig_enabled) and self.mig_enabled[i],
                mig_mask=self.mig_mask(i),
            )
            for i in range(n)
        )
        return GPUTopology(
            gpus=gpus,
            links=tuple(tuple(row) for row in links),
            nvlinks=tuple(tuple(row) for row in nvlinks),
            nvswitch=self.nvswitch,
        )


def _matrix(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(line.split()[1:]) for line in text.strip().splitlines())


# 8 × A100 SXM4 80GB on NVSwitch (NV12 everywhere), MIG-capable.
_HGX_A100: Final = MachineType(
    name="hgx-a100",
    gpu_model="A100-80GB",
    gpu_memory_gib=80,
    cpu=256,
    memory_gib=2048,
    numa=(0, 0, 0, 0, 1, 1, 1, 1),
    nvswitch=True,
    mig_capable=True,
    matrix=_matrix("""
        GPU0  X    NV12 NV12 NV12 NV12 NV12 NV12 NV12
        GPU1  NV12 X    NV12 NV12 NV12 NV12 NV12 NV12
        GPU2  NV12 NV12 X    NV12 NV12 NV12 NV12 NV12
        GPU3  NV12 NV12 NV12 X    NV12 NV12 NV12 NV12
        GPU4  NV12 NV12 NV12 NV12 X    NV12 NV12 NV12
        GPU5  NV12 NV12 NV12 NV12 NV12 X    NV12 NV12
        GPU6  NV12 NV12 NV12 NV12 NV12 NV12 X    NV12
        GPU7  NV12 NV12 NV12 NV12 NV12 NV12 NV12 X
    """),
)


MACHINES: Final[dict[str, MachineType]] = {
    m.name: m
    for m in (
        # 8 × H100 SXM on four NVSwitches: every pair NV18. Two sockets, four GPUs each.
        MachineType(
            name="dgx-h100",
            gpu_model="H100-80GB",
            gpu_memory_gib=80,
            cpu=224,
            memory_gib=2048,
            numa=(0, 0, 0, 0, 1, 1, 1, 1),
            nvswitch=True,
            mig_capable=True,
            matrix=_matrix("""
                GPU0  X    NV18 NV18 NV18 NV18 NV18 NV18 NV18
                GPU1  NV18 X    NV18 NV18 NV18 NV18 NV18 NV18
                GPU2  NV18 NV18 X    NV18 NV18 NV18 NV18 NV18
                GPU3  NV18 NV18 NV18 X    NV18 NV18 NV18 NV18
                GPU4  NV18 NV18 NV18 NV18 X    NV18 NV18 NV18
                GPU5  NV18 NV18 NV18 NV18 NV18 X    NV18 NV18
                GPU6  NV18 NV18 NV18 NV18 NV18 NV18 X    NV18
                GPU7  NV18 NV18 NV18 NV18 NV18 NV18 NV18 X
            """),
        ),
        # 8 × V100 SXM2 in a hybrid cube-mesh: two fully linked quads, joined GPU i to GPU i+4.
        MachineType(
            name="dgx1-v100",
            gpu_model="V100-32GB",
            gpu_memory_gib=32,
            cpu=80,
            memory_gib=512,
            numa=(0, 0, 0, 0, 1, 1, 1, 1),
            matrix=_matrix("""
                GPU0  X    NV1  NV1  NV2  NV2  SYS  SYS  SYS
                GPU1  NV1  X    NV2  NV1  SYS  NV2  SYS  SYS
                GPU2  NV1  NV2  X    NV2  SYS  SYS  NV1  SYS
                GPU3  NV2  NV1  NV2  X    SYS  SYS  SYS  NV1
                GPU4  NV2  SYS  SYS  SYS  X    NV1  NV1  NV2
                GPU5  SYS  NV2  SYS  SYS  NV1  X    NV2  NV1
                GPU6  SYS  SYS  NV1  SYS  NV1  NV2  X    NV2
                GPU7  SYS  SYS  SYS  NV1  NV2  NV1  NV2  X
            """),
        ),
        # 8 PCIe GPUs, no NVLink: pairs share a PCIe switch, four GPUs per socket.
        MachineType(
            name="pcie-8gpu",
            gpu_model="L40S-48GB",
            gpu_memory_gib=48,
            cpu=128,
            memory_gib=1024,
            numa=(0, 0, 0, 0, 1, 1, 1, 1),
            matrix=_matrix("""
                GPU0  X    PIX  NODE NODE SYS  SYS  SYS  SYS
                GPU1  PIX  X    NODE NODE SYS  SYS  SYS  SYS
                GPU2  NODE NODE X    PIX  SYS  SYS  SYS  SYS
                GPU3  NODE NODE PIX  X    SYS  SYS  SYS  SYS
                GPU4  SYS  SYS  SYS  SYS  X    PIX  NODE NODE
                GPU5  SYS  SYS  SYS  SYS  PIX  X    NODE NODE
                GPU6  SYS  SYS  SYS  SYS  NODE NODE X    PIX
                GPU7  SYS  SYS  SYS  SYS  NODE NODE PIX  X
            """),
        ),
        _HGX_A100,
        # The same HGX A100 with MIG in mixed mode on four GPUs: different profiles side by side on
        # GPU 0 and 1, one full-size instance on GPU 2, GPU 3 enabled but not yet partitioned.
        dataclasses.replace(
            _HGX_A100,
            name="a100-mig",
            mig_enabled=(True, True, True, True, False, False, False, False),
            mig_instances=(
                (("3g.40gb", 0), ("2g.20gb", 4), ("1g.10gb", 6)),
                (("1g.10gb", 0), ("1g.10gb", 1), ("1g.20gb", 2), ("2g.20gb", 4), ("1g.10gb+me", 6)),
                (("7g.80gb", 0),),
                (),
                (),
                (),
                (),
                (),
            ),
        ),
    )
}


def machine(name: str) -> MachineType:
    """The machine type called `name`; a KeyError lists the known ones."""
    try:
        return MACHINES[name]
    except KeyError:
        raise KeyError(f"unknown machine type {name!r}; known: {', '.join(sorted(MACHINES))}") from None
