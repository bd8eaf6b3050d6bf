"""The device plugin against a fake kubelet over real unix sockets, pods from the API emulator.

The agent runs on a fake NVML machine; the plugin registers with the fake kubelet, streams the
GPUs with their health, and hands each container the GPUs aisched's binding wrote on its pod.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("grpc", reason="the deviceplugin extra is not installed")

from aisched.agent.deviceplugin.registration import socket_name
from aisched.agent.deviceplugin.runner import DevicePlugins, DevicePluginSettings
from aisched.agent.fake_nvml import FakeNvml, fake_gpu_uuid
from aisched.agent.publisher import Publisher
from aisched.agent.runner import Agent
from aisched.emulator.runner import Emulator
from aisched.kube.client import KubeClient
from aisched.kube.rbac import AGENT_PERMISSIONS
from tests.agent.deviceplugin.fake_kubelet import FakeKubelet

NODE = "gpu-1"
NAMESPACE = "team"
GPU = "nvidia.com/gpu"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"


def uuid(index: int) -> str:
    return fake_gpu_uuid(NODE, index)


@pytest.fixture
def directory() -> Iterator[Path]:
    """A short path: a unix socket's path is limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="dp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def api() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        emulator.kubelet.stop()  # the fake kubelet admits pods here; nothing else starts them
        emulator.install_crds()
        async with KubeClient(base_url=emulator.url) as kube:
            await kube.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
            for namespace in ("aisched-agents", NAMESPACE):
                await kube.post("/api/v1/namespaces", {"metadata": {"name": namespace}})
        yield emulator


class Rig:
    """The agent and its device plugin on one fake machine, the fake kubelet, and an API client."""

    def __init__(self, *, kube: KubeClient, nvml: FakeNvml, directory: Path, pod_wait: float) -> None:
        self.kube = kube
        self.nvml = nvml
        publisher = Publisher(
            kube, node=NODE, namespace="aisched-agents", now=lambda: datetime.now(UTC), sleep=asyncio.sleep
        )
        self.agent = Agent(nvml=nvml, publisher=publisher, clock=time.monotonic, sleep=asyncio.sleep)
        settings = DevicePluginSettings(directory=directory, check_every=0.02, pod_wait=pod_wait)
        self.plugins = DevicePlugins(client=kube, node=NODE, devices=self.agent, settings=settings)
        self.kubelet = FakeKubelet(directory)
        self.stop = asyncio.Event()

    async def bind(
        self, name: str, *, gpus: str | None, containers: tuple[int, ...] = (1,), wait: bool = True
    ) -> None:
        """Create pod `name` asking `containers` GPUs per container, and bind it to the node with
        `aisched.io/gpus` = `gpus` (as aisched's binder does; None: no annotation)."""
        spec = {
            "schedulerName": "aisched",
            "containers": [
                {"name": f"c{i}", "image": "cuda", "resources": {"limits": {GPU: str(n)}}}
                for i, n in enumerate(containers)
            ],
        }
        await self.kube.post(
            PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
        )
        annotations = {} if gpus is None else {"aisched.io/gpus": gpus}
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "annotations": annotations},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        }
        await self.kube.post(f"{PODS}/{name}/binding", binding)
        if wait:  # until the plugin's informer has it, so that admissions come in binding order
            key = f"{NAMESPACE}/{name}"
            changes = self.plugins.pods_changed
            async with asyncio.timeout(5):
                while not any(c.key == key for c in self.plugins.book.waiting()):
                    await changes.wait_past(changes.version)

    async def set_phase(self, name: str, phase: str) -> None:
        pod = await self.kube.get(f"{PODS}/{name}")
        pod["status"]["phase"] = phase
        await self.kube.put(f"{PODS}/{name}/status", pod)


@pytest.fixture
def machine() -> str:
    return "dgx-h100"


@pytest.fixture
def pod_wait() -> float:
    return 2.0


@pytest.fixture
async def rig(api: Emulator, directory: Path, machine: str, pod_wait: float) -> AsyncIterator[Rig]:
    nvml = FakeNvml.for_machine(machine, node=NODE)
    nvml.nvmlInit()
    async with KubeClient(base_url=api.url) as kube:
        rig = Rig(kube=kube, nvml=nvml, directory=directory, pod_wait=pod_wait)
        await rig.kubelet.start()
        tasks = [
            asyncio.create_task(rig.agent.run(rig.stop)),
            asyncio.create_task(rig.plugins.run(rig.stop)),
        ]
        try:
            await rig.kubelet.until(lambda: bool(rig.kubelet.devices(GPU)))
            await rig.plugins.informer.synced.wait()
            yield rig
        finally:
            rig.stop.set()
            await rig.kubelet.stop()
            async with asyncio.timeout(10):
                for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                    assert not isinstance(outcome, BaseException), outcome
            nvml.nvmlShutdown()


# -- registration and the device list ----------------------------------------------------------


async def test_the_plugin_registers_its_socket_for_whole_gpus(rig: Rig, directory: Path) -> None:
    [request] = rig.kubelet.registrations
    assert request.version == "v1beta1"
    assert request.resource_name == GPU
    assert request.endpoint == socket_name(GPU)
    assert (directory / request.endpoint).is_socket()
    assert request.options.get_preferred_allocation_available
    assert not request.options.pre_start_required


async def test_the_listed_devices_are_the_gpus_nvml_reports_all_healthy(rig: Rig) -> None:
    nvml = rig.nvml
    expected = {
        nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)): "Healthy"
        for i in range(nvml.nvmlDeviceGetCount())
    }
    assert len(expected) == 8
    assert rig.kubelet.devices(GPU) == expected
    numa = rig.kubelet.plugins[GPU].listings[-1].numa
    published = {g.uuid: g.numa_node for g in rig.agent.desired().gpus}
    assert numa == {device: [published[device]] for device in expected}


async def test_the_plugin_registers_again_when_the_kubelet_restarts(rig: Rig) -> None:
    await rig.kubelet.restart()

    await rig.kubelet.until(lambda: len(rig.kubelet.registrations) == 2 and bool(rig.kubelet.devices(GPU)))
    assert rig.kubelet.registrations[1] == rig.kubelet.registrations[0]
    await rig.bind("after-restart", gpus=uuid(3))
    admitted = await rig.kubelet.admit(GPU, 1)
    assert admitted.visible == [uuid(3)]


@pytest.mark.parametrize("machine", ["a100-mig"])
async def test_gpus_in_mig_mode_are_not_listed_as_whole_gpus(rig: Rig) -> None:
    # a100-mig: GPUs 0-3 have MIG enabled, 4-7 do not.
    assert sorted(rig.kubelet.devices(GPU)) == sorted(uuid(i) for i in range(4, 8))


# -- health -----------------------------------------------------------------------------------


async def test_a_critical_xid_makes_the_gpu_unhealthy_in_the_stream_within_a_second(rig: Rig) -> None:
    await asyncio.to_thread(rig.agent.monitor.watching.wait, 5)  # NVML reports events once registered
    listings = rig.kubelet.plugins[GPU].listings
    before = len(listings)

    injected = time.monotonic()
    rig.nvml.inject_xid(5, 79)  # fallen off the bus
    await rig.kubelet.until(lambda: rig.kubelet.devices(GPU).get(uuid(5)) == "Unhealthy", seconds=1.0)

    latency = listings[-1].at - injected
    assert latency < 1.0
    assert len(listings) == before + 1
    assert [d for d, h in rig.kubelet.devices(GPU).items() if h == "Unhealthy"] == [uuid(5)]


async def test_an_application_xid_leaves_the_gpu_healthy(rig: Rig) -> None:
    await asyncio.to_thread(rig.agent.monitor.watching.wait, 5)
    rig.nvml.inject_xid(2, 13)  # a fault of the application, not of the GPU
    rig.nvml.inject_xid(4, 48)  # double-bit ECC: this one counts
    await rig.kubelet.until(lambda: rig.kubelet.devices(GPU).get(uuid(4)) == "Unhealthy")
    assert rig.kubelet.devices(GPU)[uuid(2)] == "Healthy"


# -- allocation -------------------------------------------------------------------------------


async def test_every_admitted_pod_gets_exactly_the_gpus_aisched_chose(rig: Rig) -> None:
    chosen = {"a": [uuid(5), uuid(6)], "b": [uuid(0)], "c": [uuid(2), uuid(3), uuid(4), uuid(7)]}
    for name, gpus in chosen.items():
        await rig.bind(name, gpus=",".join(gpus), containers=(len(gpus),))

    for name, gpus in chosen.items():
        admitted = await rig.kubelet.admit(GPU, len(gpus))
        assert admitted.error is None, (name, admitted.error)
        assert admitted.visible == gpus
        assert admitted.cdi == [f"nvidia.com/gpu={g}" for g in gpus]
        assert admitted.chose == gpus  # the kubelet took the plugin's preference
    assert rig.plugins.book.waiting() == []


async def test_a_pod_bound_with_gpu_indices_gets_those_gpus(rig: Rig) -> None:
    await rig.bind("by-index", gpus="1,2", containers=(2,))
    admitted = await rig.kubelet.admit(GPU, 2)
    assert admitted.visible == [uuid(1), uuid(2)]


async def test_each_container_of_a_pod_gets_its_own_share_of_the_pods_gpus(rig: Rig) -> None:
    await rig.bind("two-containers", gpus=",".join(uuid(i) for i in (4, 5, 6)), containers=(1, 2))
    first = await rig.kubelet.admit(GPU, 1)
    second = await rig.kubelet.admit(GPU, 2)
    assert (first.visible, second.visible) == ([uuid(4)], [uuid(5), uuid(6)])


async def test_a_pod_that_reaches_the_plugin_after_the_kubelet_asks_is_still_served(rig: Rig) -> None:
    admitting = asyncio.create_task(rig.kubelet.admit(GPU, 1))
    await rig.bind("late", gpus=uuid(7), wait=False)
    admitted = await admitting
    assert admitted.visible == [uuid(7)]


async def test_a_pod_that_ended_gives_its_gpus_back(rig: Rig) -> None:
    await rig.bind("first", gpus=uuid(1))
    assert (await rig.kubelet.admit(GPU, 1)).visible == [uuid(1)]
    await rig.set_phase("first", "Succeeded")
    rig.kubelet.in_use.clear()

    await rig.bind("second", gpus=uuid(1))
    assert (await rig.kubelet.admit(GPU, 1)).visible == [uuid(1)]


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpus", "containers", "kubelet_asks", "reason"),
    [
        (
            f"{uuid(0)},{uuid(1)}",
            (1,),
            1,
            "aisched.io/gpus names 2 device(s) but its containers ask for 1 nvidia.com/gpu",
        ),
        (uuid(0), (2,), 2, "aisched.io/gpus names 1 device(s) but its containers ask for 2 nvidia.com/gpu"),
        (
            f"{uuid(0)},{uuid(1)}",
            (2,),
            1,
            "the kubelet allocates 1 nvidia.com/gpu to a container that asks for 2",
        ),
        ("GPU-not-here", (1,), 1, "GPU-not-here is not a nvidia.com/gpu device of node gpu-1"),
        ("8", (1,), 1, "8 is not a nvidia.com/gpu device of node gpu-1"),
        ("\uff11", (1,), 1, "\uff11 is not a nvidia.com/gpu device of node gpu-1"),  # a fullwidth digit
        (f"{uuid(2)},{uuid(2)}", (2,), 2, f"aisched.io/gpus='{uuid(2)},{uuid(2)}' names a device twice"),
        (" , ,", (1,), 1, "aisched.io/gpus names 0 device(s) but its containers ask for 1 nvidia.com/gpu"),
        (None, (1,), 1, "it has no aisched.io/gpus annotation: aisched did not bind it"),
    ],
    ids=[
        "more-devices-than-asked",
        "fewer-devices-than-asked",
        "kubelet-count-differs",
        "unknown-uuid",
        "index-out-of-range",
        "non-ascii-digit",
        "duplicate",
        "empty-entries",
        "no-annotation",
    ],
)
async def test_a_pod_whose_annotation_and_request_disagree_is_refused_with_the_reason(
    rig: Rig, gpus: str | None, containers: tuple[int, ...], kubelet_asks: int, reason: str
) -> None:
    await rig.bind("odd", gpus=gpus, containers=containers)

    refused = await rig.kubelet.admit(GPU, kubelet_asks)

    assert refused.response is None
    assert refused.error == f"pod {NAMESPACE}/odd: {reason}"
    # The server lives on: the pod failing admission makes room for the next one.
    await rig.set_phase("odd", "Failed")
    await rig.bind("fine", gpus=uuid(6))
    assert (await rig.kubelet.admit(GPU, 1)).visible == [uuid(6)]


async def test_a_pod_whose_gpu_turned_unhealthy_is_refused(rig: Rig) -> None:
    await asyncio.to_thread(rig.agent.monitor.watching.wait, 5)
    rig.nvml.inject_xid(3, 79)
    await rig.kubelet.until(lambda: rig.kubelet.devices(GPU).get(uuid(3)) == "Unhealthy")
    await rig.bind("on-a-sick-gpu", gpus=f"{uuid(2)},{uuid(3)}", containers=(2,))

    refused = await rig.kubelet.admit(GPU, 2)

    assert refused.error == (
        f"pod {NAMESPACE}/on-a-sick-gpu: device(s) chosen for it are unhealthy: {uuid(3)} (XID 79)"
    )


async def test_a_gpu_another_running_pod_holds_is_not_handed_out_twice(rig: Rig) -> None:
    await rig.bind("holder", gpus=uuid(0))
    assert (await rig.kubelet.admit(GPU, 1)).visible == [uuid(0)]
    await rig.set_phase("holder", "Running")
    await rig.bind("stale", gpus=uuid(0))

    refused = await rig.kubelet.admit(GPU, 1)

    assert (
        refused.error
        == f"pod {NAMESPACE}/stale: device(s) chosen for it are held: {uuid(0)} by {NAMESPACE}/holder"
    )


@pytest.mark.parametrize("pod_wait", [0.2])
async def test_an_allocation_without_any_pending_pod_is_refused(rig: Rig) -> None:
    refused = await rig.kubelet.admit(GPU, 1)
    assert refused.error == (
        "no pending pod bound to node gpu-1 asks for nvidia.com/gpu with devices chosen by aisched"
        " (aisched.io/gpus); pods placed by other schedulers are not served by this plugin"
    )


async def test_a_pod_of_another_node_is_never_taken(rig: Rig, api: Emulator) -> None:
    await rig.kube.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-2"}})
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "image": "cuda", "resources": {"limits": {GPU: "1"}}}],
        "nodeName": "gpu-2",
    }
    pod = {"metadata": {"name": "elsewhere", "annotations": {"aisched.io/gpus": uuid(0)}}, "spec": spec}
    await rig.kube.post(PODS, pod)
    await rig.bind("here", gpus=uuid(1))
    assert (await rig.kubelet.admit(GPU, 1)).visible == [uuid(1)]
    assert [c.key for c in rig.plugins.book.waiting()] == []


async def test_the_agent_rbac_grants_the_plugins_list_and_watch_of_its_nodes_pods(rig: Rig) -> None:
    informer = rig.plugins.informer
    assert informer.path == "/api/v1/pods"  # cluster-wide: a field selector, not a namespace
    assert informer._selectors == {"fieldSelector": f"spec.nodeName={NODE}"}
    granted = {(p.group, p.resource): set(p.verbs) for p in AGENT_PERMISSIONS}
    assert granted[("", "pods")] == {"list", "watch"}
