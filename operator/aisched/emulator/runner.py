"""Running the emulator: in-process on a free port (`async with Emulator() as api:`), or as a command."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml
from aiohttp import web

from aisched.api.crd import KINDS, crd_for
from aisched.emulator.claims import ClaimController
from aisched.emulator.cluster import ClusterSpec, load_cluster, node_objects
from aisched.emulator.dra import DEVICE_CLASSES, resource_slice
from aisched.emulator.dra import GROUP as DRA_GROUP
from aisched.emulator.kubelet import Kubelet
from aisched.emulator.server import ApiServer

__all__ = ["Emulator", "write_kubeconfig"]


class Emulator:
    """The API server, its simulated cluster and kubelet, listening on 127.0.0.1."""

    def __init__(
        self,
        *,
        cluster: ClusterSpec | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        history: int | None = None,
    ) -> None:
        self.server = ApiServer(history=history)
        self.kubelet = Kubelet(self.server)
        self.claims = ClaimController(self.server)
        self._cluster = load_cluster(cluster) if isinstance(cluster, Path) else cluster
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._cluster is not None:
            self.install_crds()
            self.add_nodes(self._cluster)
        self.kubelet.start()
        self.claims.start()
        # Cancel a handler whose client went away, so an idle watch does not outlive its client.
        self._runner = web.AppRunner(
            self.server.app, handle_signals=False, access_log=None, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self._host}:{port}"

    async def stop(self) -> None:
        self.kubelet.stop()
        self.server.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def install_crds(self) -> None:
        """Create aisched's own CRDs (simulated nodes come with GPUNodeTopology objects)."""
        crds = self.server.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        for kind in KINDS:
            crd = crd_for(kind)
            if self.server.store.find(crds, None, crd["metadata"]["name"]) is None:
                self.server.create(crds, None, copy.deepcopy(crd))

    def add_nodes(self, cluster: ClusterSpec) -> list[str]:
        """Create the Node (and GPUNodeTopology) objects of `cluster`; returns the node names.

        Nodes go through the API server's create path. Of the GPUNodeTopology objects, the first
        of each GPU layout does too (its CRD schema and CEL rules are checked, so a drift between
        the models and the CRD shows at once); the others, which differ from it only in names and
        UUIDs, are written straight to storage, as seed data restored from etcd would be: CEL
        checks cost about 40 ms per object, 40 s for a 1,000-node cluster.
        """
        nodes = self.server.resource("", "v1", "nodes")
        topologies = self.server.resource("aisched.io", "v1alpha1", "gpunodetopologies")
        slices = self.server.resource(DRA_GROUP, "v1", "resourceslices")
        if cluster.dra_driver:
            classes = self.server.resource(DRA_GROUP, "v1", "deviceclasses")
            for device_class in DEVICE_CLASSES:
                if self.server.store.find(classes, None, device_class["metadata"]["name"]) is None:
                    self.server.create(classes, None, copy.deepcopy(device_class))
        checked: set[str] = set()
        names = []
        for node, topology in node_objects(cluster, now=self.server.clock()):
            created = self.server.create(nodes, None, node)
            names.append(created["metadata"]["name"])
            if topology is None:
                continue
            status = topology.pop("status")
            topology["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": created["metadata"]["name"],
                    "uid": created["metadata"]["uid"],
                }
            ]
            layout = _layout(status)
            if cluster.dra_driver:
                piece = resource_slice(created["metadata"]["name"], status)
                piece["metadata"]["ownerReferences"] = copy.deepcopy(topology["metadata"]["ownerReferences"])
                if layout in checked:  # like the topology objects: the first of a layout is checked
                    self.server.store.create(slices, piece)
                else:
                    self.server.create(slices, None, piece)
            if layout in checked:
                stored = self.server.store.create(topologies, topology)
                self.server.store.replace(topologies, stored, {**copy.deepcopy(stored), "status": status})
                continue
            checked.add(layout)
            stored = self.server.create(topologies, None, topology)
            self.server.update(
                topologies, None, stored["metadata"]["name"], {**stored, "status": status}, sub="status"
            )
        return names

    def kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, namespace=namespace)


def _layout(status: dict[str, Any]) -> str:
    """What makes two GPUNodeTopology statuses alike for validation: everything but the names and
    UUIDs of the node and its GPUs."""
    gpus = [{k: v for k, v in gpu.items() if k not in ("uuid", "name")} for gpu in status.get("gpus") or []]
    rest = {k: v for k, v in status.items() if k not in ("gpus", "fingerprint", "lastPublished", "nodeName")}
    return json.dumps([gpus, rest], sort_keys=True, default=str)


def write_kubeconfig(path: Path, url: str, *, namespace: str = "default") -> Path:
    """A kubeconfig for `url` (plain HTTP, no credentials), for kubectl and the clients."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "aisched-emulator", "cluster": {"server": url}}],
        "users": [{"name": "aisched-emulator", "user": {"token": "emulator"}}],
        "contexts": [
            {
                "name": "aisched-emulator",
                "context": {
                    "cluster": "aisched-emulator",
                    "user": "aisched-emulator",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "aisched-emulator",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def serve(*, cluster: Path | None, port: int, kubeconfig: Path | None, stop: asyncio.Event) -> None:
    """`aisched emulator`: serve until `stop` is set."""
    async with Emulator(cluster=cluster, port=port) as emulator:
        if kubeconfig is not None:
            emulator.kubeconfig(kubeconfig)
        print(f"aisched emulator listening on {emulator.url}", flush=True)  # noqa: T201 - the command's output
        if kubeconfig is not None:
            print(f"kubeconfig written to {kubeconfig}", flush=True)  # noqa: T201
        await stop.wait()
