"""Small traces for simulator tests: generated in memory, or written as CSV files like the real ones."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from aisched.simulator.trace import Trace, TraceNode, TracePod

#: The shared traces beside this checkout (`../shared/traces`), or where AISCHED_TEST_TRACES says.
SHARED_TRACES = Path(
    os.environ.get("AISCHED_TEST_TRACES") or Path(__file__).parents[2] / ".." / "shared" / "traces"
)


def real_traces() -> Path:
    """The Alibaba v2023 trace folder; the test is skipped, saying why, when it is not there (the
    data lives outside the repository, e.g. not beside a clone in /tmp)."""
    return _shared("alibaba-gpu-v2023")


def real_expected() -> Path:
    """The FGD paper's result tables (see `real_traces`)."""
    return _shared("fgd-expected-results")


def _shared(name: str) -> Path:
    folder = SHARED_TRACES / name
    if not folder.is_dir():
        pytest.skip(
            f"{folder} is not there: the shared traces live beside the checkout, or set AISCHED_TEST_TRACES"
        )
    return folder


POD_COLUMNS = (
    "name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec",
    "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time",
)  # fmt: skip


def small_trace(*, nodes: int = 48, pods: int = 240, seed: int = 0) -> Trace:
    """A cluster of 2-, 4- and 8-GPU nodes of two models, and a mix of sharing, whole-GPU and CPU pods."""
    rng = np.random.default_rng(seed)
    cluster = tuple(
        TraceNode(f"node-{i:03d}", 32_000 * (1 + i % 3), 262_144, (2, 4, 8)[i % 3], ("T4", "G2")[i % 2])
        for i in range(nodes)
    )
    made = []
    for i in range(pods):
        kind = rng.choice(["share", "one", "many", "cpu"], p=[0.5, 0.3, 0.05, 0.15])
        num_gpu, milli = {"share": (1, int(rng.choice([250, 500, 750]))), "one": (1, 1000),
                          "many": (int(rng.choice([2, 4])), 1000), "cpu": (0, 0)}[kind]  # fmt: skip
        spec = ("G2",) if rng.random() < 0.1 and num_gpu else ()
        created = int(rng.integers(0, 1000))
        made.append(
            TracePod(
                f"pod-{i:04d}",
                int(rng.choice([2000, 4000, 8000])),
                4096,
                num_gpu,
                milli,
                spec,
                created,
                created + int(rng.integers(10, 400)),
                created,
            )
        )
    return Trace("openb_pod_list_small", cluster, tuple(made))


def write_trace(directory: Path, trace: Trace, *, workload: str = "small") -> Path:
    """`trace` as the two CSV files of a trace folder; returns the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "openb_node_list_gpu_node.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sn", "cpu_milli", "memory_mib", "gpu", "model"])
        writer.writerows([n.name, n.cpu_milli, n.memory_mib, n.gpus, n.model] for n in trace.nodes)
    with (directory / f"openb_pod_list_{workload}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(POD_COLUMNS)
        writer.writerows(
            [p.name, p.cpu_milli, p.memory_mib, p.num_gpu, p.gpu_milli, "|".join(p.gpu_spec), "LS", "Running",
             p.creation_time, p.deletion_time, p.scheduled_time]
            for p in trace.pods
        )  # fmt: skip
    return directory


def write_expected(directory: Path, workload: str, values: dict[str, Sequence[float]]) -> Path:
    """A fake `fgd-expected-results` folder: per paper policy name, one seed's 131 values in every file."""
    directory.mkdir(parents=True, exist_ok=True)
    columns = [str(x) for x in range(131)]
    for name in (
        "analysis_allo_discrete.csv",
        "analysis_frag_discrete.csv",
        "analysis_frag_ratio_discrete.csv",
    ):
        with (directory / name).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["workload", "sc_policy", "tune", "seed", *columns])
            for policy, row in values.items():
                writer.writerow([workload, policy, 1.3, 42, *row])
    return directory
