"""Fakes for binder tests: a clock that sleeps by moving its hands, clients that fail or count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from aisched.binder import BindingClient
from aisched.framework.types import Gang, GangPlacement, PodInfo, PodPlacement
from aisched.kube.client import ApiError, KubeClient, Params

NAMESPACE = "default"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"


class FakeClock:
    """A clock whose `sleep` advances it at once, recording each wait."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # a yield to the loop, as a real sleep is; no time passes


def service_unavailable() -> ApiError:
    return ApiError(status=503, reason="ServiceUnavailable", message="etcd is sad", body={})


class FlakyClient:
    """Passes calls to `inner`, but answers the first `failures` Binding POSTs (of pods whose
    name is in `only`, if given) with `error()` instead, and the first `delete_failures` DELETEs
    with a 503."""

    def __init__(
        self,
        inner: BindingClient,
        *,
        failures: int,
        error: Callable[[], Exception] = service_unavailable,
        only: Sequence[str] = (),
        delete_failures: int = 0,
    ) -> None:
        self.inner = inner
        self.delete_failures = delete_failures
        self.deletes: list[str] = []
        self.failures = failures
        self.error = error
        self.only = set(only)
        self.posts: list[str] = []

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.posts.append(path)
        name = str(body["metadata"]["name"])
        if self.failures > 0 and (not self.only or name in self.only):
            self.failures -= 1
            raise self.error()
        return await self.inner.post(path, body)

    async def get(self, path: str) -> dict[str, Any]:
        return await self.inner.get(path)

    async def delete(self, path: str, *, params: Params | None = None) -> dict[str, Any]:
        self.deletes.append(path)
        if self.delete_failures > 0:
            self.delete_failures -= 1
            raise service_unavailable()
        return await self.inner.delete(path, params=params)


class CountingClient:
    """An in-memory client that accepts every call and records, per POST, the clock and how many
    calls were in flight."""

    def __init__(self, clock: FakeClock | None = None, *, turns: int = 3) -> None:
        self.clock = clock
        self.turns = turns
        self.in_flight = 0
        self.most_in_flight = 0
        self.post_times: list[float] = []

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.clock is not None:
            self.post_times.append(self.clock.now)
        return await self._call()

    async def get(self, path: str) -> dict[str, Any]:
        return await self._call()

    async def delete(self, path: str, *, params: Params | None = None) -> dict[str, Any]:
        return await self._call()

    async def _call(self) -> dict[str, Any]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(self.turns):  # stay in flight while other tasks run
            await asyncio.sleep(0)
        self.in_flight -= 1
        return {"kind": "Status", "status": "Success", "code": 201}


def placement(
    names: Sequence[str],
    *,
    nodes: Sequence[str] = ("node-a",),
    min_member: int | None = None,
    uids: dict[str, str] | None = None,
    gang: str = "default/train",
) -> GangPlacement:
    """A placement of pods `names` (member i on node i mod len(nodes), one GPU each)."""
    pods = [PodInfo(namespace=NAMESPACE, name=name, uid=(uids or {}).get(name, "")) for name in names]
    members = []
    for i, pod in enumerate(pods):
        node = nodes[i % len(nodes)]
        gpu = i // len(nodes)
        members.append(
            PodPlacement(pod=pod, node=node, slot=0, gpu_mask=1 << gpu, gpu_ids=(f"GPU-{node}-{gpu}",))
        )
    return GangPlacement(
        gang=Gang(key=gang, members=tuple(pods), min_member=len(pods) if min_member is None else min_member),
        pods=tuple(members),
    )


def names(count: int) -> list[str]:
    return [f"train-{i}" for i in range(count)]


def keys(pod_names: Sequence[str]) -> list[str]:
    return [f"{NAMESPACE}/{name}" for name in pod_names]


async def create_pods(kube: KubeClient, pod_names: Sequence[str]) -> dict[str, str]:
    """Create pending pods; returns their uids by name."""
    uids = {}
    for name in pod_names:
        created = await kube.post(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {"schedulerName": "aisched", "containers": [{"name": "main", "image": "trainer"}]},
            },
        )
        uids[name] = created["metadata"]["uid"]
    return uids


async def bind_directly(kube: KubeClient, name: str, node: str) -> None:
    """Bind a pod as another scheduler would."""
    await kube.post(
        f"{PODS}/{name}/binding",
        {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"name": node}},
    )


async def node_of(kube: KubeClient, name: str) -> str | None:
    """The node a pod is bound to (None: pending); raises ApiError 404 if it is gone."""
    pod = await kube.get(f"{PODS}/{name}")
    node: str | None = pod["spec"].get("nodeName")
    return node


async def exists(kube: KubeClient, name: str) -> bool:
    try:
        await kube.get(f"{PODS}/{name}")
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True
