"""Discovery: what NVML says about this node's GPUs, as a GPUNodeTopology status.

Every query goes through `nvml`, a module object with pynvml's API (the real binding or the
fake), so the same code runs on a DGX and in tests. One GPU's trouble never stops discovery of
the others: a GPU that fell off the bus, or whose basic queries (handle, PCI, memory, name, UUID)
fail, is reported Unhealthy with the reason; an optional feature NVML will not tell (NVLink, MIG,
fabric, NUMA, a pair's PCIe path or P2P) is reported absent, and logged once per discovery.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

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
from aisched.observability.logging import get_logger

__all__ = [
    "LOST_REASON",
    "Discovery",
    "NvmlUnavailableError",
    "discover",
    "fingerprint",
    "gpu_model",
    "nvml_session",
]

log = get_logger(__name__)
T = TypeVar("T")

#: The health reason of a GPU that fell off the bus (NVMLError_GpuIsLost).
LOST_REASON: Final = "GPU has fallen off the bus"

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


class _Notes:
    """What NVML would not tell during one discovery, logged once per kind at its end."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._unknown: dict[tuple[str, str], list[str]] = {}
        self._profiles: dict[tuple[str, str], list[str]] = {}

    def unknown(self, feature: str, where: str, exc: Exception) -> None:
        """`feature` of GPU (or pair) `where` is unknown: NVML answered `exc`."""
        error = f"{type(exc).__name__}: {exc}"
        self._unknown.setdefault((feature, error), []).append(where)

    def optional(self, query: Callable[[], T], *, absent: T, feature: str, where: str) -> T:
        """`query()`, or `absent` (noted) when NVML refuses; a lost GPU still propagates."""
        nvml = self._nvml
        try:
            return query()
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError as exc:
            self.unknown(feature, where, exc)
            return absent

    def unlisted_profile(self, profile: str, model: str, where: str) -> None:
        self._profiles.setdefault((profile, model), []).append(where)

    def log(self) -> None:
        for (feature, error), gpus in self._unknown.items():
            log.warning("gpu_feature_unknown", feature=feature, gpus=gpus, error=error)
        for (profile, model), gpus in self._profiles.items():
            # MigInstance's enum holds only the table's names: such instances cannot be published.
            log.warning(
                "mig_profile_unknown",
                profile=profile,
                gpu_model=model,
                gpus=gpus,
                detail="not in aisched's MIG table (aisched.api.mig): left out of the published status",
            )


def _numa_node(nvml: Any, handle: Any, *, bus_id: str, sysfs: Path, notes: _Notes, where: str) -> int | None:
    node: int | None
    try:
        node = int(nvml.nvmlDeviceGetNumaNodeId(handle))
    except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound, AttributeError):
        node = _sysfs_numa_node(bus_id, sysfs)
    except nvml.NVMLError_GpuIsLost:
        raise
    except nvml.NVMLError as exc:
        notes.unknown("numa", where, exc)
        node = _sysfs_numa_node(bus_id, sysfs)
    return node if node is not None and node >= 0 else None


def _sysfs_numa_node(bus_id: str, sysfs: Path) -> int | None:
    path = sysfs / "bus" / "pci" / "devices" / _short_bdf(bus_id) / "numa_node"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


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


@dataclass(frozen=True)
class _Mig:
    enabled: bool = False
    instances: tuple[MigInstance, ...] = ()
    placements: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _mig(nvml: Any, handle: Any, *, model: str, notes: _Notes, where: str) -> _Mig:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
        return _Mig()
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return _Mig()
    try:
        instances, placements = _mig_layout(nvml, handle, model=model, notes=notes, where=where)
    except nvml.NVMLError_GpuIsLost:
        raise
    except nvml.NVMLError as exc:
        # Typically NoPermission: listing instances needs MIG monitor access (manifests/base/40-agent.yaml).
        notes.unknown("mig-instances", where, exc)
        return _Mig(enabled=True)
    return _Mig(enabled=True, instances=tuple(instances), placements=placements)


def _mig_layout(
    nvml: Any, handle: Any, *, model: str, notes: _Notes, where: str
) -> tuple[list[MigInstance], dict[str, tuple[int, ...]]]:
    instances: list[MigInstance] = []
    placements: dict[str, tuple[int, ...]] = {}
    for profile in range(nvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = nvml.nvmlDeviceGetGpuInstanceProfileInfoV(handle, profile)
        except (nvml.NVMLError_NotSupported, nvml.NVMLError_InvalidArgument):
            continue
        name = _text(info.name).removeprefix("MIG ").strip()
        if name not in MIG_PROFILE_NAMES:
            notes.unlisted_profile(name, model, where)
            continue
        placements[name] = tuple(p.start for p in _possible_placements(nvml, handle, info.id))
        for gpu_instance in _gpu_instances(nvml, handle, info.id):
            placement = nvml.nvmlGpuInstanceGetInfo(gpu_instance).placement
            instances.append(MigInstance(profile=name, start=placement.start, size=placement.size))
    instances.sort(key=lambda m: m.start)
    return instances, placements


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
    """`<cluster uuid hex>/<clique id>` once the GPU has joined its NVLink fabric, else None."""
    info = nvml.c_nvmlGpuFabricInfo_t()
    try:
        nvml.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(info))
    except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound, AttributeError):
        return None
    # `status` is the registration's result, meaningful only once `state` says it completed.
    if info.state != nvml.NVML_GPU_FABRIC_STATE_COMPLETED or info.status != nvml.NVML_SUCCESS:
        return None
    # A c_ubyte array in the binding: its bytes, not its repr (which changes from run to run).
    return f"{bytes(info.clusterUuid).hex()}/{info.cliqueId}"


@dataclass(frozen=True)
class _Found:
    """One GPU as discovered; `links` and `bus_id` are None when it could not be queried."""

    gpu: GPUDevice
    handle: Any = None
    links: _Links | None = None
    bus_id: str | None = None
    placements: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _discover_gpu(nvml: Any, index: int, *, sysfs: Path, notes: _Notes) -> _Found:
    """Basic queries (NVMLError propagates: the GPU is unusable) and optional ones (degrade)."""
    where = str(index)
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    bus_id = _text(nvml.nvmlDeviceGetPciInfo(handle).busId).upper()
    memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
    model = gpu_model(_text(nvml.nvmlDeviceGetName(handle)), memory)
    uuid = _text(nvml.nvmlDeviceGetUUID(handle))
    links = notes.optional(lambda: _nvlinks(nvml, handle), absent=_Links(), feature="nvlink", where=where)
    mig = notes.optional(
        lambda: _mig(nvml, handle, model=model, notes=notes, where=where),
        absent=_Mig(),
        feature="mig",
        where=where,
    )
    clique = notes.optional(lambda: _fabric_clique(nvml, handle), absent=None, feature="fabric", where=where)
    gpu = GPUDevice(
        index=index,
        uuid=uuid,
        model=model,
        memory=Quantity(f"{memory // 2**20}Mi"),
        pci_bus_id=bus_id,
        numa_node=_numa_node(nvml, handle, bus_id=bus_id, sysfs=sysfs, notes=notes, where=where),
        nvswitch=links.switch_links > 0,
        clique_id=clique,
        mig_mode="Enabled" if mig.enabled else "Disabled",
        mig_instances=list(mig.instances),
    )
    return _Found(gpu=gpu, handle=handle, links=links, bus_id=bus_id, placements=mig.placements)


def discover(nvml: Any, *, sysfs: Path = Path("/sys")) -> Discovery:
    """Everything NVML tells about the GPUs (inside an `nvml_session`)."""
    count = nvml.nvmlDeviceGetCount()
    notes = _Notes(nvml)
    found: list[_Found] = []
    for index in range(count):
        try:
            found.append(_discover_gpu(nvml, index, sysfs=sysfs, notes=notes))
        except nvml.NVMLError_GpuIsLost:
            found.append(_Found(gpu=_unhealthy(index, LOST_REASON)))
        except nvml.NVMLError as exc:
            log.warning("gpu_unusable", gpu=index, error=f"{type(exc).__name__}: {exc}")
            found.append(_Found(gpu=_unhealthy(index, f"NVML error: {exc}")))
    links = [f.links for f in found]
    bus_ids = [f.bus_id for f in found]
    handles = [f.handle for f in found]
    index_of = {bus: i for i, bus in enumerate(bus_ids) if bus is not None}
    gpus = [_with_nvlinks(f.gpu, f.links, index_of) for f in found]
    pairs = [
        pair
        for a in range(count)
        for b in range(a + 1, count)
        if (pair := _pair(nvml, handles, a, b, links=links, bus_ids=bus_ids, notes=notes)) is not None
    ]
    notes.log()
    status = GPUNodeTopologyStatus(
        gpus=gpus,
        pairs=pairs,
        driver_version=_text(nvml.nvmlSystemGetDriverVersion()),
        cuda_version=_cuda_version(nvml.nvmlSystemGetCudaDriverVersion()),
    )
    return Discovery(
        status=status.model_copy(update={"fingerprint": fingerprint(status)}),
        mig_placements={i: f.placements for i, f in enumerate(found)},
    )


def _unhealthy(index: int, reason: str) -> GPUDevice:
    return GPUDevice(
        index=index,
        uuid=f"unknown-{index}",
        model="unknown",
        memory=Quantity(0),
        health="Unhealthy",
        health_reason=reason,
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
    nvml: Any,
    handles: list[Any],
    a: int,
    b: int,
    *,
    links: list[_Links | None],
    bus_ids: list[str | None],
    notes: _Notes,
) -> GPUPair | None:
    first, second = links[a], links[b]
    if first is None or second is None:
        return None
    where = f"{a}-{b}"
    try:
        pcie = notes.optional(
            lambda: _ancestor_name(nvml, nvml.nvmlDeviceGetTopologyCommonAncestor(handles[a], handles[b])),
            absent="SYS",  # unknown: assume the farthest path
            feature="pcie-path",
            where=where,
        )
        p2p = notes.optional(
            lambda: (
                nvml.nvmlDeviceGetP2PStatus(handles[a], handles[b], _P2P_READ(nvml))
                == nvml.NVML_P2P_STATUS_OK
            ),
            absent=False,
            feature="p2p",
            where=where,
        )
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
