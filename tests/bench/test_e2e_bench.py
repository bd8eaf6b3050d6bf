"""`aisched bench e2e` at a tiny size: the emulator, the scheduler runtime and the load in three
processes; every pod bound, every gang bound whole, the figures reported. No timing asserted."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter

from aisched.bench.e2e import workload
from aisched.bench.harness import cluster_manifest
from aisched.emulator.cluster import ClusterSpec, node_objects

KEYS = {
    "nodes",
    "pods",
    "gangs",
    "gang_size",
    "pods_total",
    "pods_bound",
    "gangs_bound_whole",
    "gangs_partly_bound",
    "gpu_conflicts",
    "pods_bound_per_s",
    "p50_bind_latency_s",
    "p99_bind_latency_s",
    "wall_s",
    "scheduler_peak_rss_mb",
}


def test_a_tiny_run_binds_every_pod_and_every_gang_whole() -> None:
    command = ["bench", "e2e", "--nodes", "20", "--pods", "60", "--gangs", "3", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "aisched.cli", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures.keys() >= KEYS
    assert (figures["nodes"], figures["pods"], figures["gangs"], figures["gang_size"]) == (20, 60, 3, 8)
    assert figures["pods_total"] == figures["pods_bound"] == 60 + 3 * 8
    assert figures["gangs_bound_whole"] == 3
    assert figures["gpu_conflicts"] == figures["gangs_partly_bound"] == 0
    assert figures["failed_checks"] == []
    assert figures["scheduler_warnings"] == 0
    assert figures["pods_bound_per_s"] > 0
    assert 0 < figures["p50_bind_latency_s"] <= figures["p99_bind_latency_s"]
    assert "pods bound/s" in result.stderr


def test_the_workload_spreads_whole_gangs_among_the_single_pods() -> None:
    order = workload(pods=100, gangs=4, gang_size=8)
    gangs = [gang for gang, _ in order]
    assert Counter(gangs) == {None: 100, "gang-0000": 8, "gang-0001": 8, "gang-0002": 8, "gang-0003": 8}
    # Each gang's members come together, and no two gangs are next to each other.
    starts = [i for i, gang in enumerate(gangs) if gang is not None and (i == 0 or gangs[i - 1] != gang)]
    assert len(starts) == 4
    assert all(gangs[start : start + 8] == [gangs[start]] * 8 for start in starts)
    assert all(b - a > 8 for a, b in itertools.pairwise(starts))
    assert starts[0] > 0
    assert starts[-1] + 8 < len(order)
    member = order[starts[0]][1]
    assert member["metadata"]["labels"] == {"aisched.io/gang": "gang-0000"}
    assert member["metadata"]["annotations"] == {"aisched.io/gang-min-member": "8"}
    assert member["spec"]["schedulerName"] == "aisched"
    assert len({body["metadata"]["name"] for _, body in order}) == len(order)


def test_the_cluster_has_the_nodes_asked_for_32_to_a_rack_4_racks_to_a_block() -> None:
    spec = ClusterSpec.model_validate(cluster_manifest(300))
    nodes = [node for node, _ in node_objects(spec)]
    assert len(nodes) == 300
    racks = Counter(node["metadata"]["labels"]["aisched.io/rack"] for node in nodes)
    assert max(racks.values()) == 32
    blocks: dict[str, set[str]] = {}
    for node in nodes:
        labels = node["metadata"]["labels"]
        blocks.setdefault(labels["aisched.io/block"], set()).add(labels["aisched.io/rack"])
    assert [len(r) for r in blocks.values()] == [4, 4, 2]
    assert all(node["status"]["allocatable"]["nvidia.com/gpu"] == "8" for node in nodes)
