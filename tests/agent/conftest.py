"""Fixtures the agent's tests share: a fake API server that knows node gpu-1, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aisched.kube.client import KubeClient
from tests.support.fake_apiserver import FakeApiServer


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(status_subresources=["gpunodetopologies"]) as fake:
        async with KubeClient(base_url=fake.url) as client:
            await client.post(
                "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}}
            )
        yield fake


@pytest.fixture
async def client(server: FakeApiServer) -> AsyncIterator[KubeClient]:
    async with KubeClient(base_url=server.url) as kube:
        yield kube
