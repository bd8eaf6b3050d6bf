"""The scheduling shell's tests run against the demo cluster: `kube` is aisched's client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import KubeClient


@pytest.fixture
async def kube(emulator_cluster: Emulator) -> AsyncIterator[KubeClient]:
    """aisched's own REST client, talking to `emulator_cluster` (8 simulated GPU nodes)."""
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as client:
        yield client
