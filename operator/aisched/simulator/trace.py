"""The Alibaba GPU cluster trace v2023 ("openb"): node and pod lists read from their CSV files.

Node lists: `sn,cpu_milli,memory_mib,gpu,model`. Pod lists: `name,cpu_milli,memory_mib,num_gpu,
gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time` (the multigpu files
stop after `gpu_milli`). The traces stay where they are (`../shared/traces` beside the
repository by default); nothing is copied into the project.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "DEFAULT_EXPECTED",
    "DEFAULT_TRACES",
    "Trace",
    "TraceNode",
    "TracePod",
    "load_nodes",
    "load_pods",
    "load_trace",
    "resolve",
    "workload_file",
    "workloads",
]

DEFAULT_TRACES: Final = Path("../shared/traces/alibaba-gpu-v2023")
DEFAULT_EXPECTED: Final = Path("../shared/traces/fgd-expected-results")
NODE_FILE: Final = "openb_node_list_gpu_node.csv"
POD_PREFIX: Final = "openb_pod_list_"
MILLI: Final = 1000
#: The repository root: relative trace paths that do not exist from the working directory are
#: looked up from here, so `aisched simulate` works from any directory of the checkout.
_REPOSITORY: Final = Path(__file__).resolve().parents[3]


def resolve(path: Path) -> Path:
    """`path` if it exists as given (absolute, or from the working directory), else from the repository."""
    if path.is_absolute() or path.exists():
        return path
    beside = _REPOSITORY / path
    return beside if beside.exists() else path


@dataclass(frozen=True, slots=True)
class TraceNode:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str


@dataclass(frozen=True, slots=True)
class TracePod:
    """One pod of a pod list. `gpu_milli` is per GPU, clamped to 1000; times are seconds, None when absent."""

    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    gpu_spec: tuple[str, ...] = ()
    creation_time: int | None = None
    deletion_time: int | None = None
    scheduled_time: int | None = None

    @property
    def shares_gpu(self) -> bool:
        """Part of one GPU (`num_gpu` 1, `gpu_milli` below 1000)."""
        return self.num_gpu == 1 and 0 < self.gpu_milli < MILLI

    @property
    def total_gpu_milli(self) -> int:
        """All the GPU milli the pod asks for: its share of one GPU, or 1000 per whole GPU."""
        if self.num_gpu <= 0:
            return 0
        return self.gpu_milli if self.shares_gpu else MILLI * self.num_gpu


@dataclass(frozen=True)
class Trace:
    """A workload's pods on the trace's GPU nodes."""

    workload: str
    nodes: tuple[TraceNode, ...]
    pods: tuple[TracePod, ...]

    @property
    def capacity_milli(self) -> int:
        """The cluster's GPUs in milli (1000 each)."""
        return sum(n.gpus for n in self.nodes) * MILLI

    def on_fraction(self, fraction: float) -> Trace:
        """The same pods on about `fraction` of the nodes, taken evenly from each GPU model (and
        CPU shape) in file order, so every model a pod may ask for stays: the trace's pods ask
        for 98 % of its GPUs in all, so only a smaller cluster can be oversubscribed by them."""
        if not 0 < fraction <= 1:
            raise ValueError(f"the node fraction must be in (0, 1], not {fraction}")
        groups: dict[tuple[str, int, int], list[TraceNode]] = {}
        for node in self.nodes:
            groups.setdefault((node.model, node.gpus, node.cpu_milli), []).append(node)
        kept = {
            id(node)
            for group in groups.values()
            for index, node in enumerate(group)
            if int((index + 1) * fraction) > int(index * fraction) or len(group) == 1
        }
        return Trace(self.workload, tuple(n for n in self.nodes if id(n) in kept), self.pods)


def _int(row: Mapping[str, str | None], column: str) -> int:
    raw = (row.get(column) or "").strip()
    if not raw:
        raise ValueError(f"column {column!r} is empty")
    return int(float(raw))


def _time(row: Mapping[str, str | None], column: str) -> int | None:
    raw = (row.get(column) or "").strip()
    return int(float(raw)) if raw else None


def _rows(path: Path, needed: Iterable[str]) -> list[dict[str, str | None]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(needed) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return list(reader)


def load_nodes(path: Path) -> tuple[TraceNode, ...]:
    """The nodes of a node list, in file order."""
    nodes = []
    for line, row in enumerate(_rows(path, ("sn", "cpu_milli", "memory_mib", "gpu", "model")), start=2):
        try:
            nodes.append(
                TraceNode(
                    name=(row["sn"] or "").strip(),
                    cpu_milli=_int(row, "cpu_milli"),
                    memory_mib=_int(row, "memory_mib"),
                    gpus=_int(row, "gpu"),
                    model=(row.get("model") or "").strip(),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from None
    return tuple(nodes)


def load_pods(path: Path) -> tuple[TracePod, ...]:
    """The pods of a pod list, in file order."""
    pods = []
    for line, row in enumerate(
        _rows(path, ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")), start=2
    ):
        try:
            num_gpu = _int(row, "num_gpu")
            spec = (row.get("gpu_spec") or "").strip()
            pods.append(
                TracePod(
                    name=(row["name"] or "").strip(),
                    cpu_milli=_int(row, "cpu_milli"),
                    memory_mib=_int(row, "memory_mib"),
                    num_gpu=num_gpu,
                    gpu_milli=min(_int(row, "gpu_milli"), MILLI) if num_gpu > 0 else 0,
                    gpu_spec=tuple(m for m in spec.split("|") if m),
                    creation_time=_time(row, "creation_time"),
                    deletion_time=_time(row, "deletion_time"),
                    scheduled_time=_time(row, "scheduled_time"),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from None
    return tuple(pods)


def workload_file(directory: Path, workload: str) -> Path:
    """The pod list of `workload`: a CSV's path, or a name such as `default` or `openb_pod_list_default`."""
    given = Path(workload)
    if given.suffix == ".csv" and given.exists():
        return given
    name = given.name.removesuffix(".csv")
    if not name.startswith(POD_PREFIX):
        name = POD_PREFIX + name
    return directory / f"{name}.csv"


def workloads(directory: Path) -> list[str]:
    """The workload names of the pod lists in `directory` (e.g. `openb_pod_list_default`), sorted."""
    return sorted(p.stem for p in directory.glob(f"{POD_PREFIX}*.csv"))


def load_trace(directory: Path, workload: str = "default", *, nodes: Path | None = None) -> Trace:
    """The workload's pods and the GPU nodes (`openb_node_list_gpu_node.csv` unless `nodes` names another)."""
    directory = resolve(directory)
    pods_file = workload_file(directory, workload)
    if not pods_file.exists():
        known = ", ".join(w.removeprefix(POD_PREFIX) for w in workloads(directory)) or "none"
        raise FileNotFoundError(f"no pod list {pods_file} (workloads in {directory}: {known})")
    return Trace(
        workload=pods_file.stem,
        nodes=load_nodes(nodes if nodes is not None else directory / NODE_FILE),
        pods=load_pods(pods_file),
    )
