"""`aisched agent --print`: the discovered topology as `nvidia-smi topo -m` shows it, plus MIG."""

from __future__ import annotations

from typing import Final

from aisched.agent.discovery import Discovery

__all__ = ["render"]

_LEGEND: Final = """\
Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)
  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)
  PIX  = Connection traversing at most a single PCIe bridge
  NV#  = Connection traversing a bonded set of # NVLinks"""


def matrix(discovery: Discovery) -> list[list[str]]:
    """The GPU × GPU cells: X, NV#, PIX, PXB, PHB, NODE or SYS."""
    count = len(discovery.status.gpus)
    cells = [["X" if i == j else "SYS" for j in range(count)] for i in range(count)]
    for pair in discovery.status.pairs:
        cell = f"NV{pair.nvlinks}" if pair.nvlinks else pair.pcie
        cells[pair.a][pair.b] = cells[pair.b][pair.a] = cell
    return cells


def render(discovery: Discovery, *, node: str = "") -> str:
    status = discovery.status
    lines = []
    if node:
        versions = f"driver {status.driver_version}, CUDA {status.cuda_version}"
        lines.append(f"Node {node}: {len(status.gpus)} GPU(s), {versions}")
        lines.append("")
    if not status.gpus:
        lines.append("No GPUs.")
        return "\n".join(lines) + "\n"
    cells = matrix(discovery)
    header = ["", *(f"GPU{g.index}" for g in status.gpus), "NUMA Affinity"]
    rows = [header]
    for gpu, row in zip(status.gpus, cells, strict=True):
        numa = "N/A" if gpu.numa_node is None else str(gpu.numa_node)
        rows.append([f"GPU{gpu.index}", *row, numa])
    widths = [max(len(row[col]) for row in rows) + 2 for col in range(len(header))]
    lines += ["".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += ["", _LEGEND, ""]
    lines.append("GPUs:")
    for gpu in status.gpus:
        health = gpu.health if gpu.health_reason is None else f"{gpu.health} ({gpu.health_reason})"
        switch = ", NVSwitch" if gpu.nvswitch else ""
        lines.append(
            f"  GPU{gpu.index}  {gpu.uuid}  {gpu.model}  {gpu.memory}  PCI {gpu.pci_bus_id}{switch}  {health}"
        )
    mig = [gpu for gpu in status.gpus if gpu.mig_mode == "Enabled"]
    if mig:
        lines += ["", "MIG (memory slots 0-7):"]
        for gpu in mig:
            held = ", ".join(f"{m.profile} @{m.start}-{m.start + m.size - 1}" for m in gpu.mig_instances)
            lines.append(f"  GPU{gpu.index}  instances: {held or 'none'}")
            for profile, starts in sorted(discovery.mig_placements.get(gpu.index, {}).items()):
                lines.append(f"          {profile:<11} may start at {', '.join(map(str, starts))}")
    return "\n".join(lines) + "\n"
