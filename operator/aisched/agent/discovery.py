"""Discovery: what NVML says about this node's GPUs, as a GPUNodeTopology status.

Every query goes through `nvml`, a module object with pynvml's API (the real binding or the
fake), so the same code runs on a DGX and in tests. A GPU that fell off the bus is reported
unhealthy with what is still known of it; it never stops discovery of the others.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aisched.api.gpunodetopology import (
    GPUDevice,
    GPUNodeTopologyStatus,
    GPUPair,
    MigInstance,
    NVLink,
    PCIePath,
)
from aisched.api.mig import MIG_MEMORY_SLOTS, MIG_PROFILE_NAMES
from aisched.api.quantity import Quantity

__all__ = ["Discovery", "NvmlUnavailableError", "discover", "fingerprint", "gpu_model", "nvml_session"]

#: NVML common-ancestor levels → `nvidia-smi topo -m` names.
_ANCESTOR_NAMES: Final[dict[str, PCIePath]] = {
    "SINGLE": "PIX",
    "MULTIPLE": "PXB",
    "HOSTBRIDGE": "PHB",
    "NODE": "NODE",
    "SYSTEM": "SYS",
}
_FAMILIES: Final = re.compile(
    r"(GB200|B200|H200|H100|H20|A100|A800|A30|A40|A10G|A10|L40S|L40|L4|V100|T4|P100)"
)
_NOMINAL_GB: Final = (8, 12, 16, 24, 32, 40, 48, 80, 94, 96, 141, 144, 180, 192)
_SHARED_NAME_GB: Final = re.compile(r"(\d+)\s?GB")


class NvmlUnavailableError(RuntimeError):
    """NVML cannot be used on this machine: no driver, no library, or no permission."""


@dataclass(frozen=True)
class Discovery:
    """The published status plus what only the local print shows (possible MIG placements)."""

    status: GPUNodeTopologyStatus
    #: Per GPU index: MIG profile name → the memory-slot starts where an instance may go.
    mig_placements: dict[int, dict[str, tuple[int, ...]]] = field(default_factory=dict)


@contextmanager
def nvml_session(nvml: Any) -> Iterator[Any]:
    """`nvmlInit` … `nvmlShutdown`, turning a missing driver into `NvmlUnavailableError`."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise NvmlUnavailableError(
            f"NVML is not available ({type(exc).__name__}: {exc});"
            " is the NVIDIA driver installed on this node?"
        ) from exc
    try:
        yield nvml
    finally:
        nvml.nvmlShutdown()


def gpu_model(name: str, memory_bytes: int) -> str:
    """The model name aisched uses (`H100-80GB`) from NVML's marketing name and memory size."""
    family = _FAMILIES.search(name)
    stated = _SHARED_NAME_GB.search(name)
    if stated is not None:
        gb = int(stated.group(1))
    else:
        gib = memory_bytes / 2**30
        gb = next((size for size in _NOMINAL_GB if size >= gib * 0.95), round(gib))
    base = family.group(1) if family else re.sub(r"^(NVIDIA|Tesla)\s+", "", name).split()[0]
    return f"{base}-{gb}GB"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _short_bdf(bus_id: str) -> str:
    """NVML's `00000000:18:00.0` → sysfs' `0000:18:00.0`."""
    domain, _, rest = bus_id.partition(":")
    return f"{int(domain, 16):04x}:{rest}".lower()


def _numa_node(nvml: Any, handle: Any, bus_id: str, sysfs: Path) -> int | None:
    try:
        node = int(nvml.nvmlDeviceGetNumaNodeId(handle))
    except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound, AttributeError):
        path = sysfs / "bus" / "pci" / "devices" / _short_bdf(bus_id) / "numa_node"
        try:
            node = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
    return node if node >= 0 else None


@dataclass
class _Links:
    gpu_links: dict[str, int] = field(default_factory=dict)  # peer PCI bus id → links
    switch_links: int = 0


def _nvlinks(nvml: Any, handle: Any) -> _Links:
    found = _Links()
    for link in range(nvml.NVML_NVLINK_MAX_LINKS):
        try:
            if nvml.nvmlDeviceGetNvLinkState(handle, link) != nvml.NVML_FEATURE_ENABLED:
                continue
            remote = _text(nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId).upper()
            kind = nvml.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link)
        except (nvml.NVMLError_NotSupported, nvml.NVMLError_InvalidArgument):
            continue
        if kind == nvml.NVML_NVLINK_DEVICE_TYPE_SWITCH:
            found.switch_links += 1
        else:
            found.gpu_links[remote] = found.gpu_links.get(remote, 0) + 1
    return found


def _ancestor_name(nvml: Any, level: int) -> PCIePath:
    for suffix, name in _ANCESTOR_NAMES.items():
        if level == getattr(nvml, f"NVML_TOPOLOGY_{suffix}"):
            return name
    if level == nvml.NVML_TOPOLOGY_INTERNAL:
        return "PIX"  # two GPUs on one board: one bridge apart at most
    return "SYS"


def _mig(nvml: Any, handle: Any) -> tuple[bool, list[MigInstance], dict[str, tuple[int, ...]]]:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
        return False, [], {}
    enabled = current == nvml.NVML_DEVICE_MIG_ENABLE
    instances: list[MigInstance] = []
    placements: dict[str, tuple[int, ...]] = {}
    if not enabled:
        return False, instances, placements
    for profile in range(nvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = nvml.nvmlDeviceGetGpuInstanceProfileInfoV(handle, profile)
        except (nvml.NVMLError_NotSupported, nvml.NVMLError_InvalidArgument):
            continue
        name = _text(info.name).removeprefix("MIG ").strip()
        if name not in MIG_PROFILE_NAMES:
            continue
        placements[name] = tuple(p.start for p in _possible_placements(nvml, handle, info.id))
        for gpu_instance in _gpu_instances(nvml, handle, info.id):
            placement = nvml.nvmlGpuInstanceGetInfo(gpu_instance).placement
            instances.append(MigInstance(profile=name, start=placement.start, size=placement.size))
    instances.sort(key=lambda m: m.start)
    return True, instances, placements


def _possible_placements(nvml: Any, handle: Any, profile_id: int) -> list[Any]:
    """NVML fills a caller's array: ask for the count first, then for that many placements."""
    count = ctypes.c_uint(0)
    nvml.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, None, ctypes.byref(count))
    placements = (nvml.c_nvmlGpuInstancePlacement_t * max(count.value, 1))()
    nvml.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, placements, ctypes.byref(count))
    return list(placements[: count.value])


def _gpu_instances(nvml: Any, handle: Any, profile_id: int) -> list[Any]:
    count = ctypes.c_uint(0)
    # No profile has more instances than a GPU has memory slots.
    instances = (nvml.c_nvmlGpuInstance_t * MIG_MEMORY_SLOTS)()
    nvml.nvmlDeviceGetGpuInstances(handle, profile_id, instances, ctypes.byref(count))
    return list(instances[: count.value])


def _fabric_clique(nvml: Any, handle: Any) -> str | None:
    info = nvml.c_nvmlGpuFabricInfo_t()
    try:
        nvml.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(info))
    except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound, AttributeError):
        return None
    if info.state != getattr(nvml, "NVML_GPU_FABRIC_STATE_COMPLETED", info.state):
        return None  # the GPU has not joined its fabric (yet): no clique to report
    uuid = (
        _text(info.clusterUuid)
        if not isinstance(info.clusterUuid, (list, tuple))
        else "".join(f"{b:02x}" for b in info.clusterUuid)
    )
    return f"{uuid}/{info.cliqueId}"


def discover(nvml: Any, *, sysfs: Path = Path("/sys")) -> Discovery:
    """Everything NVML tells about the GPUs (inside an `nvml_session`)."""
    count = nvml.nvmlDeviceGetCount()
    handles: list[Any] = []
    gpus: list[GPUDevice] = []
    links: list[_Links | None] = []
    bus_ids: list[str | None] = []
    placements: dict[int, dict[str, tuple[int, ...]]] = {}
    for index in range(count):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            handles.append(handle)
            bus_id = _text(nvml.nvmlDeviceGetPciInfo(handle).busId).upper()
            memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
            name = _text(nvml.nvmlDeviceGetName(handle))
            gpu_links = _nvlinks(nvml, handle)
            mig_enabled, instances, placements[index] = _mig(nvml, handle)
            gpus.append(
                GPUDevice(
                    index=index,
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    model=gpu_model(name, memory),
                    memory=Quantity(f"{memory // 2**20}Mi"),
                    pci_bus_id=bus_id,
                    numa_node=_numa_node(nvml, handle, bus_id, sysfs),
                    nvswitch=gpu_links.switch_links > 0,
                    clique_id=_fabric_clique(nvml, handle),
                    mig_mode="Enabled" if mig_enabled else "Disabled",
                    mig_instances=instances,
                )
            )
            links.append(gpu_links)
            bus_ids.append(bus_id)
        except nvml.NVMLError_GpuIsLost:
            if len(handles) == index:
                handles.append(None)
            gpus.append(_lost(index))
            links.append(None)
            bus_ids.append(None)
    index_of = {bus: i for i, bus in enumerate(bus_ids) if bus is not None}
    gpus = [_with_nvlinks(g, links[g.index], index_of) for g in gpus]
    pairs = [
        pair
        for a in range(count)
        for b in range(a + 1, count)
        if (pair := _pair(nvml, handles, a, b, links=links, bus_ids=bus_ids)) is not None
    ]
    status = GPUNodeTopologyStatus(
        gpus=gpus,
        pairs=pairs,
        driver_version=_text(nvml.nvmlSystemGetDriverVersion()),
        cuda_version=_cuda_version(nvml.nvmlSystemGetCudaDriverVersion()),
    )
    return Discovery(
        status=status.model_copy(update={"fingerprint": fingerprint(status)}), mig_placements=placements
    )


def _lost(index: int) -> GPUDevice:
    return GPUDevice(
        index=index,
        uuid=f"unknown-{index}",
        model="unknown",
        memory=Quantity(0),
        health="Unhealthy",
        health_reason="GPU has fallen off the bus",
    )


def _with_nvlinks(gpu: GPUDevice, found: _Links | None, index_of: dict[str, int]) -> GPUDevice:
    if found is None:
        return gpu
    nvlinks = [
        NVLink(peer=index_of[bus], links=count, remote="GPU")
        for bus, count in sorted(found.gpu_links.items(), key=lambda item: index_of.get(item[0], 99))
        if bus in index_of
    ]
    if found.switch_links:
        nvlinks.append(NVLink(peer=-1, links=found.switch_links, remote="NVSwitch"))
    return gpu.model_copy(update={"nvlinks": nvlinks})


def _pair(
    nvml: Any, handles: list[Any], a: int, b: int, *, links: list[_Links | None], bus_ids: list[str | None]
) -> GPUPair | None:
    first, second = links[a], links[b]
    if first is None or second is None:
        return None
    try:
        pcie = _ancestor_name(nvml, nvml.nvmlDeviceGetTopologyCommonAncestor(handles[a], handles[b]))
        p2p = nvml.nvmlDeviceGetP2PStatus(handles[a], handles[b], _P2P_READ(nvml)) == nvml.NVML_P2P_STATUS_OK
    except nvml.NVMLError_GpuIsLost:
        return None
    direct = min(first.gpu_links.get(bus_ids[b] or "", 0), second.gpu_links.get(bus_ids[a] or "", 0))
    switched = min(first.switch_links, second.switch_links)
    return GPUPair(a=a, b=b, pcie=pcie, nvlinks=max(direct, switched), p2p=p2p)


def _P2P_READ(nvml: Any) -> int:  # noqa: N802 - a constant, looked up on the module in use
    # nvidia-ml-py 13 defines NVML_P2P_CAPS_INDEX_READ as the tuple (0,) (a stray comma).
    value = nvml.NVML_P2P_CAPS_INDEX_READ
    return int(value[0] if isinstance(value, tuple) else value)


def _cuda_version(raw: int) -> str:
    return f"{raw // 1000}.{raw % 1000 // 10}"


def fingerprint(status: GPUNodeTopologyStatus) -> str:
    """A digest of the hardware view (GPUs, health, wiring, MIG, versions), not of timestamps."""
    view = status.to_dict()
    for volatile in ("fingerprint", "lastUpdateTime", "conditions", "agentVersion"):
        view.pop(volatile, None)
    digest = hashlib.sha256(json.dumps(view, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"sha256:{digest[:32]}"
