"""Cluster files: examples/clusters/demo.yaml as Node and GPUNodeTopology objects; bad files refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import aiohttp
import pydantic
import pytest

from aisched.emulator.cluster import load_cluster
from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, KubeClient

NODES: Final = "/api/v1/nodes"
TOPOLOGIES: Final = "/apis/aisched.io/v1alpha1/gpunodetopologies"
#: The demo's nodes: GPU product, GPUs, rack (every node is in block-1).
DEMO: Final = {
    **{f"h100-00{i}": ("H100-80GB", 8, "rack-a") for i in range(4)},
    **{f"v100-00{i}": ("V100-32GB", 8, "rack-b") for i in range(2)},
    "l40s-000": ("L40S-48GB", 8, "rack-b"),
    "cpu-000": (None, 0, "rack-b"),
}
GPU_NODES: Final = {name for name, (_, gpus, _) in DEMO.items() if gpus}


@pytest.fixture
async def kube(emulator_cluster: Emulator) -> AsyncIterator[KubeClient]:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as client:
        yield client


async def test_the_demo_cluster_has_eight_nodes_with_gpus_and_placement_labels(kube: KubeClient) -> None:
    nodes = {n["metadata"]["name"]: n for n in (await kube.get(NODES))["items"]}
    assert set(nodes) == set(DEMO)
    for name, (product, gpus, rack) in DEMO.items():
        labels = nodes[name]["metadata"]["labels"]
        assert nodes[name]["status"]["allocatable"]["nvidia.com/gpu"] == str(gpus), name
        assert labels.get("nvidia.com/gpu.product") == product, name
        assert (labels["aisched.io/rack"], labels["aisched.io/block"]) == (rack, "block-1"), name
        ready = [c["status"] for c in nodes[name]["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], name


async def test_node_label_selectors_find_a_rack(kube: KubeClient) -> None:
    listed = await kube.get(NODES, params={"labelSelector": "aisched.io/rack=rack-a,nvidia.com/gpu.present"})
    assert {n["metadata"]["name"] for n in listed["items"]} == {f"h100-00{i}" for i in range(4)}


async def test_every_gpu_node_has_a_topology_holding_its_eight_gpus(kube: KubeClient) -> None:
    nodes = {n["metadata"]["name"]: n for n in (await kube.get(NODES))["items"]}
    topologies = {t["metadata"]["name"]: t for t in (await kube.get(TOPOLOGIES))["items"]}
    assert set(topologies) == GPU_NODES
    for name, topology in topologies.items():
        gpus = topology["status"]["gpus"]
        assert [g["index"] for g in gpus] == list(range(8)), name
        assert {g["model"] for g in gpus} == {DEMO[name][0]}, name
        assert topology["spec"]["nodeName"] == name
        [owner] = topology["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("Node", nodes[name]["metadata"]["uid"])


async def test_deleting_a_node_collects_its_topology(kube: KubeClient) -> None:
    await kube.delete(f"{NODES}/v100-001")
    with pytest.raises(ApiError) as gone:
        await kube.get(f"{TOPOLOGIES}/v100-001")
    assert gone.value.status == 404
    assert await kube.get(f"{TOPOLOGIES}/v100-000")


async def test_the_node_table_shows_readiness(emulator_cluster: Emulator) -> None:
    emulator_cluster.kubelet.fail_node("h100-003")
    async with (
        aiohttp.ClientSession(base_url=emulator_cluster.url) as http,
        http.get(NODES, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as response,
    ):
        table = await response.json()
    status = [c["name"] for c in table["columnDefinitions"]].index("Status")
    rows = {row["cells"][0]: row["cells"][status] for row in table["rows"]}
    assert rows["h100-003"] == "NotReady"
    assert rows["h100-000"] == "Ready"


def test_a_cluster_file_with_an_unknown_machine_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: emulator.aisched.io/v1alpha1\n"
        "kind: SimulatedCluster\n"
        "nodeGroups:\n"
        "  - {name: good, count: 1, machine: dgx-h100}\n"
        "  - {name: bad, count: 2, machine: dgx-z9}\n"
    )
    with pytest.raises(pydantic.ValidationError) as refused:
        load_cluster(path)
    message = str(refused.value)
    assert "nodeGroups.1" in message
    assert "machine 'dgx-z9' is not one of a100-mig, dgx-h100, dgx1-v100, hgx-a100, pcie-8gpu" in message
    with pytest.raises(pydantic.ValidationError, match="dgx-z9"):
        Emulator(cluster=path)
