"""Shared fixtures: the embedded API emulator, started in-process on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import KubeClient

DEMO_CLUSTER: Final = Path(__file__).parents[1] / "examples" / "clusters" / "demo.yaml"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An empty API server (system namespaces only, no CRDs, no nodes)."""
    async with Emulator() as running:
        yield running


@pytest.fixture
async def emulator_cluster() -> AsyncIterator[Emulator]:
    """An API server holding aisched's CRDs and the 8 simulated nodes of examples/clusters/demo.yaml."""
    async with Emulator(cluster=DEMO_CLUSTER) as running:
        yield running


@pytest.fixture
async def kube(emulator: Emulator) -> AsyncIterator[KubeClient]:
    """aisched's own REST client, talking to `emulator`."""
    async with KubeClient(base_url=emulator.url, timeout=10.0) as client:
        yield client
