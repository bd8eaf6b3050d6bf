"""Hardware faults injected into the emulator's cluster through its API (`aisched fault`).

Each is what the real cluster would show: a node whose kubelet stops reporting (its Ready
condition False), a kubelet that restarts (not ready for a moment, its pods untouched), a node
deleted, a GPU its node agent reports unhealthy with an XID (the GPUNodeTopology status the agent
writes). The simulated kubelet follows the Ready condition: it starts and stops no pod on a node
that is not ready. Refused against anything but the emulator, so a real cluster is never touched.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Final, Protocol

from aisched.api.objects import rfc3339
from aisched.emulator.cluster import with_ready
from aisched.kube.client import ApiError, JsonObject, KubeClient, Params

__all__ = ["FaultError", "check_emulator", "delete_node", "gpu_health", "kubelet_restart", "set_ready"]

_NODES: Final = "/api/v1/nodes"
_TOPOLOGIES: Final = "/apis/aisched.io/v1alpha1/gpunodetopologies"
_EMULATOR_VERSION: Final = "-aisched"
_CONFLICT: Final = 409


class FaultError(Exception):
    """The fault cannot be injected (not the emulator, no such node or GPU)."""


class VersionClient(Protocol):
    async def get(self, path: str, *, params: Params | None = None) -> JsonObject: ...


async def check_emulator(client: VersionClient) -> None:
    version = await client.get("/version")
    if not str(version.get("gitVersion", "")).endswith(_EMULATOR_VERSION):
        raise FaultError(
            f"the API server is {version.get('gitVersion', 'unknown')}, not aisched's emulator:"
            " faults are injected only there"
        )


async def set_ready(client: KubeClient, node: str, ready: bool, *, reason: str | None = None) -> None:
    """Set the node's Ready condition, as its kubelet reporting (or not) would."""

    await _update_status(
        client,
        f"{_NODES}/{node}",
        lambda obj: with_ready(obj, ready, reason, at=rfc3339(time.time())),
        what=f"node {node}",
    )


async def kubelet_restart(client: KubeClient, node: str, *, down: float) -> None:
    """The node's kubelet restarts: not ready for `down` seconds, then ready; its pods keep running."""
    await set_ready(client, node, False, reason="KubeletRestarting")
    await asyncio.sleep(down)
    await set_ready(client, node, True)


async def delete_node(client: KubeClient, node: str) -> None:
    try:
        await client.delete(f"{_NODES}/{node}")
    except ApiError as exc:
        raise FaultError(f"cannot delete node {node}: {exc}") from exc


async def gpu_health(client: KubeClient, node: str, index: int, *, xid: int | None) -> None:
    """Mark GPU `index` of `node` unhealthy with `xid` (as the agent does on a critical XID), or
    healthy again with None."""

    def change(obj: JsonObject) -> JsonObject:
        obj = copy.deepcopy(obj)
        gpus = (obj.get("status") or {}).get("gpus") or []
        gpu = next((g for g in gpus if g.get("index") == index), None)
        if gpu is None:
            raise FaultError(f"node {node} has no GPU {index} (it has {len(gpus)})")
        if xid is None:
            gpu["health"] = "Healthy"
            gpu.pop("healthReason", None)
        else:
            gpu["health"] = "Unhealthy"
            gpu["healthReason"] = f"XID {xid}"
        return obj

    await _update_status(client, f"{_TOPOLOGIES}/{node}", change, what=f"the GPUNodeTopology of {node}")


async def _update_status(
    client: KubeClient, path: str, change: Callable[[JsonObject], JsonObject], *, what: str
) -> None:
    """Read the object at `path`, write back its status as `change` makes it, again on a conflict."""
    for _ in range(10):
        try:
            current = await client.get(path)
        except ApiError as exc:
            raise FaultError(f"cannot read {what}: {exc}") from exc
        updated = change(current)
        try:
            await client.put(f"{path}/status", updated)
            return
        except ApiError as exc:
            if exc.status != _CONFLICT:
                raise FaultError(f"cannot write {what}: {exc}") from exc
    raise FaultError(f"{what} kept changing: gave up")
