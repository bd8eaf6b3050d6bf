"""A fake of the `pynvml` module (nvidia-ml-py 13.x), built from a machine template.

`FakeNvml.for_machine("dgx-h100")` behaves like `import pynvml` on that machine for the calls the
node agent makes, so the real discovery and health code runs without GPUs (`aisched agent --fake`)
and in tests. It is drop-in for those calls: the same positional arguments, the real ctypes
handle and struct types as results (`pynvml.c_nvmlDevice_t`, `nvmlPciInfo_t`, ...; string fields
read back as `str`, as the real `_PrintableStructure` decodes them), the same "fill the caller's
buffer" conventions (`nvmlDeviceGetGpuInstancePossiblePlacements(h, info.id, placements,
byref(count))`, `nvmlDeviceGetGpuFabricInfo(h, byref(info))`) and the real `NVMLError_*` classes.
Every `NVML_*` constant, `nvmlEventType*` mask, `NVMLError*` class and `c_nvml*`/`nvml*_t` struct
type of `pynvml` is re-exported, on the module and on every `FakeNvml`; NVML functions the fake
does not implement raise AttributeError rather than pretend.

Where real NVML would scribble past a too-small caller buffer, the fake raises
NVMLError_InsufficientSize instead; where the real binding would hand ctypes a value it cannot
convert (notably `pynvml.NVML_P2P_CAPS_INDEX_READ`, which is the tuple `(0,)` in 13.x), the fake
raises the same `ctypes.ArgumentError`.
"""

# ruff: noqa: N802, N803, N815 - the names and parameters are pynvml's own

from __future__ import annotations

import ctypes
import dataclasses
import inspect
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pynvml

from aisched.api.mig import MigProfile, mig_profiles_for
from aisched.topology.machines import MachineType, machine

__all__ = ["FakeNvml", "fake_gpu_uuid"]

_UINT_MASK: Final = 0xFFFFFFFF
_NVIDIA_VENDOR: Final = 0x10DE
_UUID_NAMESPACE: Final = uuid.UUID("6f1d3c2e-9a4b-5c7d-8e0f-a1b2c3d4e5f6")
_XID_DOUBLE_BIT_ECC: Final = 48


# -- re-exports ------------------------------------------------------------------------------


def _reexported(name: str) -> Any:
    """The `pynvml` attribute `name` if the fake re-exports it (constants, errors, struct types)."""
    if not name.startswith(("NVML_", "NVMLError", "nvml", "c_nvml", "struct_c_nvml")):
        raise AttributeError(name)
    try:
        value = getattr(pynvml, name)
    except AttributeError:
        raise AttributeError(name) from None
    if inspect.isroutine(value):  # an NVML function: only those FakeNvml implements exist
        raise AttributeError(name)
    return value


def __getattr__(name: str) -> Any:
    try:
        return _reexported(name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


# -- per-model facts -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Model:
    name: str  # nvmlDeviceGetName
    pci_device_id: int  # PCI device id (upper 16 bits of nvmlPciInfo_t.pciDeviceId)
    nvlink_ports: int = 0  # physical NVLink links of the GPU
    switch_links: tuple[int, ...] = ()  # links to each NVSwitch, on NVSwitch systems
    switch_device_id: int = 0
    sms_per_slice: int = 0  # MIG: streaming multiprocessors per compute slice
    row_remapping: bool = True  # Ampere and later; Volta retires pages instead


_MODELS: Final[dict[str, _Model]] = {
    "H100-80GB": _Model(
        name="NVIDIA H100 80GB HBM3",
        pci_device_id=0x2330,
        nvlink_ports=18,
        switch_links=(5, 4, 4, 5),
        switch_device_id=0x22A3,
        sms_per_slice=16,
    ),
    "H200-141GB": _Model(
        name="NVIDIA H200",
        pci_device_id=0x2335,
        nvlink_ports=18,
        switch_links=(5, 4, 4, 5),
        switch_device_id=0x22A3,
        sms_per_slice=16,
    ),
    "A100-80GB": _Model(
        name="NVIDIA A100-SXM4-80GB",
        pci_device_id=0x20B2,
        nvlink_ports=12,
        switch_links=(2, 2, 2, 2, 2, 2),
        switch_device_id=0x1AF1,
        sms_per_slice=14,
    ),
    "A100-40GB": _Model(
        name="NVIDIA A100-SXM4-40GB",
        pci_device_id=0x20B0,
        nvlink_ports=12,
        switch_links=(2, 2, 2, 2, 2, 2),
        switch_device_id=0x1AF1,
        sms_per_slice=14,
    ),
    "V100-32GB": _Model(
        name="Tesla V100-SXM2-32GB", pci_device_id=0x1DB5, nvlink_ports=6, row_remapping=False
    ),
    "L40S-48GB": _Model(name="NVIDIA L40S", pci_device_id=0x26B9),
}

# NVML_GPU_INSTANCE_PROFILE_* → (compute slices, memory slots, media extensions) of the profile,
# and the profile id NVML reports for it (`nvidia-smi mig -lgip`, A100 and H100 alike).
_PROFILE_SHAPES: Final[dict[int, tuple[int, int, bool]]] = {
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE: (1, 1, False),
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1: (1, 1, True),  # 1g.Xgb+me
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2: (1, 2, False),  # 1g with two memory slots
    pynvml.NVML_GPU_INSTANCE_PROFILE_2_SLICE: (2, 2, False),
    pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE: (3, 4, False),
    pynvml.NVML_GPU_INSTANCE_PROFILE_4_SLICE: (4, 4, False),
    pynvml.NVML_GPU_INSTANCE_PROFILE_7_SLICE: (7, 8, False),
}
_PROFILE_IDS: Final[dict[int, int]] = {
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE: 19,
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1: 20,
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2: 15,
    pynvml.NVML_GPU_INSTANCE_PROFILE_2_SLICE: 14,
    pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE: 9,
    pynvml.NVML_GPU_INSTANCE_PROFILE_4_SLICE: 5,
    pynvml.NVML_GPU_INSTANCE_PROFILE_7_SLICE: 0,
}

_GFX_PROFILE_ID: Final = 47  # NVML_GPU_INSTANCE_PROFILE_1_SLICE_GFX, as R570 drivers number it

_PCIE_LEVELS: Final[dict[str, int]] = {
    "PIX": pynvml.NVML_TOPOLOGY_SINGLE,
    "PXB": pynvml.NVML_TOPOLOGY_MULTIPLE,
    "PHB": pynvml.NVML_TOPOLOGY_HOSTBRIDGE,
    "NODE": pynvml.NVML_TOPOLOGY_NODE,
    "SYS": pynvml.NVML_TOPOLOGY_SYSTEM,
}

_ECC_EVENTS: Final[int] = pynvml.nvmlEventTypeSingleBitEccError | pynvml.nvmlEventTypeDoubleBitEccError
_BASE_EVENTS: Final[int] = (
    _ECC_EVENTS
    | pynvml.nvmlEventTypePState
    | pynvml.nvmlEventTypeXidCriticalError
    | pynvml.nvmlEventTypeClock
)


def fake_gpu_uuid(node: str, index: int) -> str:
    """The UUID the fake gives GPU `index` of `node`: "GPU-" and a stable 36-character UUID."""
    return f"GPU-{uuid.uuid5(_UUID_NAMESPACE, f'{node}/{index}')}"


def _model(gpu_model: str) -> _Model:
    return _MODELS.get(gpu_model, _Model(name=f"NVIDIA {gpu_model}", pci_device_id=0))


# -- state -----------------------------------------------------------------------------------


class _Opaque:
    """The memory an opaque NVML handle points at; handles are compared by this address."""

    def __init__(self) -> None:
        self._buffer = ctypes.create_string_buffer(1)
        self.address = ctypes.addressof(self._buffer)

    def handle(self, pointer_type: Any) -> Any:
        """A fresh pointer of `pointer_type` to this memory, as NVML returns a fresh handle."""
        return ctypes.cast(self._buffer, pointer_type)


@dataclass(frozen=True)
class _Link:
    remote_bus_id: str
    remote_type: int
    remote_device_id: int


@dataclass(frozen=True)
class _MigEntry:
    """One GPU instance profile of a model, as NVML describes it."""

    constant: int
    id: int
    profile: MigProfile

    @property
    def instance_count(self) -> int:
        if self.profile.media_extensions:
            return 1  # one set of media engines per GPU
        return min(len(self.profile.starts), 7 // self.profile.compute_slices)


@dataclass(frozen=True)
class _GpuInstance:
    gpu: int
    id: int
    entry: _MigEntry
    start: int
    memory: _Opaque = field(default_factory=_Opaque, compare=False)


@dataclass(eq=False)
class _Gpu:
    index: int
    uuid: str
    name: str
    memory_bytes: int
    bus_id: str
    numa: int
    pci_device_id: int
    links: tuple[_Link, ...]  # the active NVLinks, by link number
    nvlink_ports: int
    row_remapping: bool
    mig_capable: bool
    mig_enabled: bool
    mig: dict[int, _MigEntry]  # by NVML_GPU_INSTANCE_PROFILE_* constant
    instances: list[_GpuInstance]
    memory: _Opaque = field(default_factory=_Opaque)
    lost: bool = False
    retirement_pending: bool = False
    remapped_corrected: int = 0
    remapped_uncorrected: int = 0
    remap_pending: bool = False
    remap_failed: bool = False

    def supported_events(self, *, ecc: bool) -> int:
        mask = _BASE_EVENTS | (pynvml.nvmlEventMigConfigChange if self.mig_capable else 0)
        return mask if ecc else mask & ~_ECC_EVENTS


@dataclass
class _Failure:
    """What `fail_call` set up: raise `error()`, `times` more times (None: until cleared)."""

    error: type[Exception]
    times: int | None


@dataclass(frozen=True)
class _Event:
    gpu: int
    type: int
    data: int = 0
    gpu_instance_id: int = _UINT_MASK
    compute_instance_id: int = _UINT_MASK


_LOST: Final = object()  # queued in an event set when one of its GPUs falls off the bus


@dataclass(eq=False)
class _EventSet:
    memory: _Opaque = field(default_factory=_Opaque)
    registered: dict[int, int] = field(default_factory=dict)  # GPU index → event mask
    queue: deque[object] = field(default_factory=deque)


def _bus_fields(bus_id: str) -> tuple[int, int, int]:
    domain, bus, rest = bus_id.split(":")
    return int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)


def _fill_pci(info: Any, bus_id: str, device_id: int) -> Any:
    domain, bus, device = _bus_fields(bus_id)
    info.busId = bus_id
    info.busIdLegacy = f"{domain:04X}:{bus:02X}:{device:02X}.0"
    info.domain = domain
    info.bus = bus
    info.device = device
    info.pciDeviceId = (device_id << 16) | _NVIDIA_VENDOR
    info.pciSubSystemId = (device_id << 16) | _NVIDIA_VENDOR
    return info


def _raw_int(value: object, position: int) -> int:
    """An argument ctypes would pass as a C integer; what it cannot convert, it refuses."""
    if not isinstance(value, int):
        raise ctypes.ArgumentError(
            f"argument {position}: TypeError: Don't know how to convert parameter {position}"
        )
    return value & _UINT_MASK


def _target(ref: object, what: str) -> Any:
    """The ctypes object behind `byref(x)` or `pointer(x)`; NULL is None."""
    if ref is None:
        return None
    obj = getattr(ref, "_obj", None)  # ctypes.byref(x)
    if obj is not None:
        return obj
    if isinstance(ref, ctypes.Array):  # an array decays to a pointer to its first element
        return ref
    if isinstance(ref, ctypes._Pointer):
        return ref.contents if ref else None
    raise TypeError(f"{what} must be passed as ctypes.byref(...) or a ctypes pointer, not {ref!r}")


def _out_count(countRef: object) -> Any:
    count = _target(countRef, "countRef")
    if count is None:
        raise pynvml.NVMLError_InvalidArgument()
    if not isinstance(count, ctypes.c_uint):
        raise TypeError(f"countRef must point at a ctypes.c_uint, not {count!r}")
    return count


def _out_array(ref: object, what: str, needed: int) -> Any:
    """The caller's output array (or pointer); NVMLError_InsufficientSize if it is too small."""
    target = ref if isinstance(ref, (ctypes.Array, ctypes._Pointer)) else _target(ref, what)
    if isinstance(target, ctypes.Array) and len(target) < needed:
        raise pynvml.NVMLError_InsufficientSize()
    return target


# -- the fake module -------------------------------------------------------------------------


class FakeNvml:
    """A fake `pynvml` for one machine: pass it wherever the real module would go.

    Knobs: `numa_supported` (False: nvmlDeviceGetNumaNodeId raises NotSupported, so callers
    fall back to sysfs); `fabric_clique` (an int: nvmlDeviceGetGpuFabricInfo[V] reports a
    completed fabric registration in that clique; None: NotSupported) and `fabric_status` (the
    registration's result, NVML_SUCCESS unless it failed); `ecc_enabled` (False: ECC is off, so
    the ECC event types are not supported); `events_supported` (False: no event type is supported,
    as under some vGPU and WSL setups); `gfx_mig_profiles` (MIG GPUs also list the 1-slice `+gfx`
    profile of newer drivers, which aisched's MIG table does not know). Test hooks: `inject_xid`,
    `inject_double_bit_ecc`, `lose`, `recover`, `set_pending_retirement`, `fail_init`, `fail_call`.
    """

    def __init__(
        self,
        machine_type: MachineType | None,
        *,
        node: str = "fake-node",
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
        numa_supported: bool = True,
        fabric_clique: int | None = None,
        fabric_status: int = pynvml.NVML_SUCCESS,
        ecc_enabled: bool = True,
        events_supported: bool = True,
        gfx_mig_profiles: bool = False,
    ) -> None:
        self.machine = machine_type
        self.node = node
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.numa_supported = numa_supported
        self.fabric_clique = fabric_clique
        self.fabric_status = fabric_status
        self.ecc_enabled = ecc_enabled
        self.events_supported = events_supported
        self._cond = threading.Condition()
        self._refcount = 0
        self._init_error: type[Exception] | None = None
        self._failing: dict[str, dict[int | None, _Failure]] = {}
        self._gpus: list[_Gpu] = []
        self._event_sets: dict[int, _EventSet] = {}
        if machine_type is not None:
            self._build(machine_type, gfx_mig_profiles=gfx_mig_profiles)
        self._by_address = {gpu.memory.address: gpu for gpu in self._gpus}
        self._instances = {gi.memory.address: gi for gpu in self._gpus for gi in gpu.instances}

    @classmethod
    def for_machine(
        cls,
        name: str,
        *,
        node: str = "fake-node",
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
        numa_supported: bool = True,
        fabric_clique: int | None = None,
        fabric_status: int = pynvml.NVML_SUCCESS,
        ecc_enabled: bool = True,
        events_supported: bool = True,
        gfx_mig_profiles: bool = False,
    ) -> FakeNvml:
        """The fake NVML of a node of machine type `name` (a key of `MACHINES`)."""
        return cls(
            machine(name),
            node=node,
            driver_version=driver_version,
            cuda_driver_version=cuda_driver_version,
            numa_supported=numa_supported,
            fabric_clique=fabric_clique,
            fabric_status=fabric_status,
            ecc_enabled=ecc_enabled,
            events_supported=events_supported,
            gfx_mig_profiles=gfx_mig_profiles,
        )

    @classmethod
    def empty(cls, *, node: str = "fake-node") -> FakeNvml:
        """A driver with no GPUs."""
        return cls(None, node=node)

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name.startswith("nvml") and name in super().__getattribute__("_failing"):
            return self._failing_call(name, value)
        return value

    def __getattr__(self, name: str) -> Any:
        try:
            return _reexported(name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None

    def __repr__(self) -> str:
        kind = self.machine.name if self.machine else "empty"
        return f"FakeNvml({kind!r}, node={self.node!r}, gpus={len(self._gpus)})"

    # -- construction ----------------------------------------------------------------------

    def _build(self, m: MachineType, *, gfx_mig_profiles: bool) -> None:
        model = _model(m.gpu_model)
        n = m.gpu_count
        entries = self._mig_entries(m, gfx=gfx_mig_profiles) if m.mig_capable else {}
        by_name = {e.profile.name: e for e in entries.values()}
        for i in range(n):
            links: list[_Link] = []
            if m.nvswitch:
                width = max((int(c[2:]) for c in m.matrix[i] if c.startswith("NV")), default=0)
                split = model.switch_links if sum(model.switch_links) == width else (width,)
                for s, count in enumerate(split):  # NVSwitch s sits at PCI bus 0x05 + s
                    switch = _Link(
                        f"00000000:{0x05 + s:02X}:00.0",
                        pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH,
                        model.switch_device_id,
                    )
                    links += [switch] * count
            else:
                for j in range(n):
                    cell = m.matrix[i][j]
                    if cell.startswith("NV"):
                        peer = _Link(m.pci_bus_id(j), pynvml.NVML_NVLINK_DEVICE_TYPE_GPU, model.pci_device_id)
                        links += [peer] * int(cell[2:])
            enabled = bool(m.mig_enabled[i]) if i < len(m.mig_enabled) else False
            wanted = m.mig_instances[i] if i < len(m.mig_instances) else ()
            if wanted and not enabled:
                raise ValueError(f"{m.name}: GPU {i} has MIG instances but MIG mode disabled")
            instances = []
            for profile_name, start in wanted:
                entry = by_name.get(profile_name)
                if entry is None or not entry.profile.fits_at(start):
                    raise ValueError(f"{m.name}: GPU {i}: no MIG profile {profile_name!r} at slot {start}")
                instances.append(
                    _GpuInstance(gpu=i, id=_gpu_instance_id(entry.profile, start), entry=entry, start=start)
                )
            self._gpus.append(
                _Gpu(
                    index=i,
                    uuid=fake_gpu_uuid(self.node, i),
                    name=model.name,
                    memory_bytes=m.gpu_memory_gib * 2**30,
                    bus_id=m.pci_bus_id(i),
                    numa=m.numa[i],
                    pci_device_id=model.pci_device_id,
                    links=tuple(links),
                    nvlink_ports=max(model.nvlink_ports, len(links)),
                    row_remapping=model.row_remapping,
                    mig_capable=bool(entries),
                    mig_enabled=enabled,
                    mig=entries,
                    instances=instances,
                )
            )

    @staticmethod
    def _mig_entries(m: MachineType, *, gfx: bool) -> dict[int, _MigEntry]:
        shapes = {
            (p.compute_slices, p.memory_slots, p.media_extensions): p
            for p in mig_profiles_for(m.gpu_model).values()
        }
        entries = {
            constant: _MigEntry(constant=constant, id=_PROFILE_IDS[constant], profile=shapes[shape])
            for constant, shape in _PROFILE_SHAPES.items()
            if shape in shapes
        }
        one_slice = shapes.get(_PROFILE_SHAPES[pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE])
        if gfx and one_slice is not None:
            constant = pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_GFX
            gfx_profile = dataclasses.replace(one_slice, name=f"{one_slice.name}+gfx")
            entries[constant] = _MigEntry(constant=constant, id=_GFX_PROFILE_ID, profile=gfx_profile)
        return entries

    # -- lookups (call with the lock held) ---------------------------------------------------

    def _check_init(self) -> None:
        if self._refcount == 0:
            raise pynvml.NVMLError_Uninitialized()

    def _gpu(self, handle: object) -> _Gpu:
        self._check_init()
        gpu = None
        if isinstance(handle, pynvml.c_nvmlDevice_t) and handle:
            gpu = self._by_address.get(ctypes.cast(handle, ctypes.c_void_p).value or 0)
        if gpu is None:
            raise pynvml.NVMLError_InvalidArgument()
        if gpu.lost:
            raise pynvml.NVMLError_GpuIsLost()
        return gpu

    def _event_set(self, eventSet: object) -> _EventSet:
        self._check_init()
        found = None
        if isinstance(eventSet, pynvml.c_nvmlEventSet_t) and eventSet:
            found = self._event_sets.get(ctypes.cast(eventSet, ctypes.c_void_p).value or 0)
        if found is None:
            raise pynvml.NVMLError_InvalidArgument()
        return found

    def _device_handle(self, gpu: _Gpu) -> Any:
        return gpu.memory.handle(pynvml.c_nvmlDevice_t)

    def _mig_entry(self, gpu: _Gpu, profile_id: int) -> _MigEntry:
        if not gpu.mig_capable:
            raise pynvml.NVMLError_NotSupported()
        for entry in gpu.mig.values():
            if entry.id == profile_id:
                return entry
        raise pynvml.NVMLError_InvalidArgument()

    # -- initialisation and system --------------------------------------------------------

    def nvmlInit(self) -> None:
        with self._cond:
            if self._init_error is not None:
                raise self._init_error()
            self._refcount += 1

    def nvmlShutdown(self) -> None:
        with self._cond:
            self._check_init()
            self._refcount -= 1
            if self._refcount == 0:
                self._event_sets.clear()
                self._cond.notify_all()

    def nvmlSystemGetDriverVersion(self) -> str:
        with self._cond:
            self._check_init()
            return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        with self._cond:
            self._check_init()
            return self.cuda_driver_version

    # -- devices ---------------------------------------------------------------------------

    def nvmlDeviceGetCount(self) -> int:
        with self._cond:
            self._check_init()
            return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        with self._cond:
            self._check_init()
            i = ctypes.c_uint(index).value
            if i >= len(self._gpus):
                raise pynvml.NVMLError_InvalidArgument()
            gpu = self._gpus[i]
            if gpu.lost:
                raise pynvml.NVMLError_GpuIsLost()
            return self._device_handle(gpu)

    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        with self._cond:
            return self._gpu(handle).index

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        with self._cond:
            return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        with self._cond:
            return self._gpu(handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any:
        with self._cond:
            gpu = self._gpu(handle)
            if not version:
                info = pynvml.c_nvmlMemory_t()
            elif version == pynvml.nvmlMemory_v2:
                info = pynvml.c_nvmlMemory_v2_t()
                info.version = version
                info.reserved = 0
            else:
                raise pynvml.NVMLError_ArgumentVersionMismatch()
            info.total = gpu.memory_bytes
            info.free = gpu.memory_bytes
            info.used = 0
            return info

    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        with self._cond:
            gpu = self._gpu(handle)
            return _fill_pci(pynvml.nvmlPciInfo_t(), gpu.bus_id, gpu.pci_device_id)

    def nvmlDeviceGetNumaNodeId(self, handle: Any) -> int:
        with self._cond:
            gpu = self._gpu(handle)
            if not self.numa_supported:
                raise pynvml.NVMLError_NotSupported()
            return gpu.numa

    def nvmlDeviceGetTopologyCommonAncestor(self, device1: Any, device2: Any) -> int:
        with self._cond:
            a, b = self._gpu(device1), self._gpu(device2)
            if a is b:
                return int(pynvml.NVML_TOPOLOGY_INTERNAL)
            assert self.machine is not None
            cell = self.machine.matrix[a.index][b.index]
            if cell in _PCIE_LEVELS:
                return _PCIE_LEVELS[cell]
            # An NVLink cell hides the PCIe path: the GPUs share a socket or they do not.
            same_socket = a.numa == b.numa
            return int(pynvml.NVML_TOPOLOGY_NODE if same_socket else pynvml.NVML_TOPOLOGY_SYSTEM)

    def nvmlDeviceGetP2PStatus(self, device1: Any, device2: Any, p2pIndex: int) -> int:
        with self._cond:
            index = _raw_int(p2pIndex, 3)
            a, b = self._gpu(device1), self._gpu(device2)
            if index >= pynvml.NVML_P2P_CAPS_INDEX_UNKNOWN:
                raise pynvml.NVMLError_InvalidArgument()
            if a is b:
                return int(pynvml.NVML_P2P_STATUS_OK)
            assert self.machine is not None
            cell = self.machine.matrix[a.index][b.index]
            nvlinked = cell.startswith("NV")
            if index == pynvml.NVML_P2P_CAPS_INDEX_NVLINK:
                return int(pynvml.NVML_P2P_STATUS_OK if nvlinked else pynvml.NVML_P2P_STATUS_NOT_SUPPORTED)
            if not nvlinked and cell == "SYS":  # PCIe peer-to-peer does not cross the CPU interconnect
                return int(pynvml.NVML_P2P_STATUS_CHIPSET_NOT_SUPPORTED)
            return int(pynvml.NVML_P2P_STATUS_OK)

    # -- NVLink ----------------------------------------------------------------------------

    def _link(self, device: Any, link: object) -> tuple[_Gpu, _Link | None]:
        number = _raw_int(link, 2)
        gpu = self._gpu(device)
        if number >= pynvml.NVML_NVLINK_MAX_LINKS:
            raise pynvml.NVMLError_InvalidArgument()
        if number >= gpu.nvlink_ports:
            raise pynvml.NVMLError_NotSupported()
        return gpu, gpu.links[number] if number < len(gpu.links) else None

    def nvmlDeviceGetNvLinkState(self, device: Any, link: int) -> int:
        with self._cond:
            _gpu, active = self._link(device, link)
            return int(pynvml.NVML_FEATURE_ENABLED if active else pynvml.NVML_FEATURE_DISABLED)

    def nvmlDeviceGetNvLinkRemotePciInfo(self, device: Any, link: int) -> Any:
        with self._cond:
            _gpu, active = self._link(device, link)
            if active is None:
                raise pynvml.NVMLError_NotSupported()
            return _fill_pci(pynvml.nvmlPciInfo_t(), active.remote_bus_id, active.remote_device_id)

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle: Any, link: int) -> int:
        with self._cond:
            _gpu, active = self._link(handle, link)
            if active is None:
                raise pynvml.NVMLError_NotSupported()
            return active.remote_type

    # -- MIG -------------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, device: Any) -> list[int]:
        with self._cond:
            gpu = self._gpu(device)
            if not gpu.mig_capable:
                raise pynvml.NVMLError_NotSupported()
            mode = int(pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig_enabled else pynvml.NVML_DEVICE_MIG_DISABLE)
            return [mode, mode]

    def nvmlDeviceGetGpuInstanceProfileInfo(self, device: Any, profile: int, version: int = 2) -> Any:
        with self._cond:
            if version == 2:
                info = pynvml.c_nvmlGpuInstanceProfileInfo_v2_t()
            elif version == 1:
                info = pynvml.c_nvmlGpuInstanceProfileInfo_t()
            else:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            constant = _raw_int(profile, 2)
            gpu = self._gpu(device)
            entry = gpu.mig.get(constant)
            if entry is None:
                raise pynvml.NVMLError_NotSupported()
            p = entry.profile
            info.id = entry.id
            info.isP2pSupported = 0
            info.sliceCount = p.compute_slices
            info.instanceCount = entry.instance_count
            info.multiprocessorCount = p.compute_slices * _model(p.gpu_model).sms_per_slice
            info.copyEngineCount = p.compute_slices
            info.decoderCount = 1 if p.media_extensions else p.compute_slices * 5 // 7
            info.encoderCount = 0
            info.jpegCount = 1 if p.media_extensions or p.compute_slices == 7 else 0
            info.ofaCount = 1 if p.media_extensions or p.compute_slices == 7 else 0
            info.memorySizeMB = round(p.memory_gib * 1024)
            if version == 2:
                info.name = f"MIG {p.name}"
            return info

    nvmlDeviceGetGpuInstanceProfileInfoV = nvmlDeviceGetGpuInstanceProfileInfo

    def nvmlDeviceGetGpuInstancePossiblePlacements(
        self, device: Any, profileId: int, placementsRef: Any, countRef: Any
    ) -> int:
        """Fill `placementsRef` (an array of c_nvmlGpuInstancePlacement_t, or None to count only)."""
        with self._cond:
            entry = self._mig_entry(self._gpu(device), _raw_int(profileId, 2))
            count = _out_count(countRef)
            starts = entry.profile.starts
            if placementsRef is not None:
                out = _out_array(placementsRef, "placementsRef", len(starts))
                for k, start in enumerate(starts):
                    out[k].start = start
                    out[k].size = entry.profile.memory_slots
            count.value = len(starts)
            return int(pynvml.NVML_SUCCESS)

    def nvmlDeviceGetGpuInstances(
        self, device: Any, profileId: int, gpuInstancesRef: Any, countRef: Any
    ) -> int:
        """Fill `gpuInstancesRef` (an array of c_nvmlGpuInstance_t) with the existing instances."""
        with self._cond:
            gpu = self._gpu(device)
            entry = self._mig_entry(gpu, _raw_int(profileId, 2))
            if not gpu.mig_enabled:
                raise pynvml.NVMLError_NotSupported()
            count = _out_count(countRef)
            if gpuInstancesRef is None:
                raise pynvml.NVMLError_InvalidArgument()
            found = [gi for gi in gpu.instances if gi.entry.id == entry.id]
            out = _out_array(gpuInstancesRef, "gpuInstancesRef", len(found))
            for k, gi in enumerate(found):
                out[k] = gi.memory.handle(pynvml.c_nvmlGpuInstance_t)
            count.value = len(found)
            return int(pynvml.NVML_SUCCESS)

    def nvmlGpuInstanceGetInfo(self, gpuInstance: Any) -> Any:
        with self._cond:
            self._check_init()
            gi = None
            if isinstance(gpuInstance, pynvml.c_nvmlGpuInstance_t) and gpuInstance:
                gi = self._instances.get(ctypes.cast(gpuInstance, ctypes.c_void_p).value or 0)
            if gi is None:
                raise pynvml.NVMLError_InvalidArgument()
            gpu = self._gpus[gi.gpu]
            if gpu.lost:
                raise pynvml.NVMLError_GpuIsLost()
            info = pynvml.c_nvmlGpuInstanceInfo_t()
            info.device = self._device_handle(gpu)
            info.id = gi.id
            info.profileId = gi.entry.id
            info.placement.start = gi.start
            info.placement.size = gi.entry.profile.memory_slots
            return info

    # -- fabric ----------------------------------------------------------------------------

    def _fabric(self, device: Any, gpuFabricInfo: Any, *, versioned: bool) -> int:
        self._gpu(device)
        info = _target(gpuFabricInfo, "gpuFabricInfo")
        if info is None:
            raise pynvml.NVMLError_InvalidArgument()
        if versioned and info.version not in (pynvml.nvmlGpuFabricInfo_v2, pynvml.nvmlGpuFabricInfo_v3):
            raise pynvml.NVMLError_ArgumentVersionMismatch()
        if self.fabric_clique is None:
            raise pynvml.NVMLError_NotSupported()
        for k, byte in enumerate(uuid.uuid5(_UUID_NAMESPACE, "nvlink-domain").bytes):
            info.clusterUuid[k] = byte
        info.status = self.fabric_status
        info.cliqueId = self.fabric_clique
        info.state = pynvml.NVML_GPU_FABRIC_STATE_COMPLETED
        if versioned:
            info.healthMask = 0
            if info.version == pynvml.nvmlGpuFabricInfo_v3:
                info.healthSummary = pynvml.NVML_GPU_FABRIC_HEALTH_SUMMARY_HEALTHY
        return int(pynvml.NVML_SUCCESS)

    def nvmlDeviceGetGpuFabricInfo(self, device: Any, gpuFabricInfo: Any) -> int:
        """Fill `byref(c_nvmlGpuFabricInfo_t())`."""
        with self._cond:
            return self._fabric(device, gpuFabricInfo, versioned=False)

    def nvmlDeviceGetGpuFabricInfoV(self, device: Any, gpuFabricInfo: Any) -> int:
        """Fill `byref(c_nvmlGpuFabricInfoV_t())` (version 2 or 3)."""
        with self._cond:
            return self._fabric(device, gpuFabricInfo, versioned=True)

    # -- health ----------------------------------------------------------------------------

    def nvmlDeviceGetRetiredPagesPendingStatus(self, device: Any) -> int:
        with self._cond:
            gpu = self._gpu(device)
            return int(
                pynvml.NVML_FEATURE_ENABLED if gpu.retirement_pending else pynvml.NVML_FEATURE_DISABLED
            )

    def nvmlDeviceGetRemappedRows(self, device: Any) -> tuple[int, int, int, int]:
        with self._cond:
            gpu = self._gpu(device)
            return (
                gpu.remapped_corrected,
                gpu.remapped_uncorrected,
                int(gpu.remap_pending),
                int(gpu.remap_failed),
            )

    # -- events ----------------------------------------------------------------------------

    def _supported_events(self, gpu: _Gpu) -> int:
        return gpu.supported_events(ecc=self.ecc_enabled) if self.events_supported else 0

    def nvmlDeviceGetSupportedEventTypes(self, handle: Any) -> int:
        with self._cond:
            return self._supported_events(self._gpu(handle))

    def nvmlEventSetCreate(self) -> Any:
        with self._cond:
            self._check_init()
            event_set = _EventSet()
            self._event_sets[event_set.memory.address] = event_set
            return event_set.memory.handle(pynvml.c_nvmlEventSet_t)

    def nvmlDeviceRegisterEvents(self, handle: Any, eventTypes: int, eventSet: Any) -> None:
        with self._cond:
            mask = ctypes.c_ulonglong(eventTypes).value
            gpu = self._gpu(handle)
            event_set = self._event_set(eventSet)
            if mask & ~self._supported_events(gpu):
                raise pynvml.NVMLError_NotSupported()
            event_set.registered[gpu.index] = event_set.registered.get(gpu.index, 0) | mask

    def nvmlEventSetWait_v2(self, eventSet: Any, timeoutms: int) -> Any:
        """The next event of the set; NVMLError_Timeout if none arrives within `timeoutms`.

        Blocks on a condition variable (injections and `lose` wake it). A GPU of the set falling
        off the bus is reported once, in order, as NVMLError_GpuIsLost.
        """
        timeout = ctypes.c_uint(timeoutms).value / 1000
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                event_set = self._event_set(eventSet)
                if event_set.queue:
                    item = event_set.queue.popleft()
                    if not isinstance(item, _Event):
                        raise pynvml.NVMLError_GpuIsLost()
                    data = pynvml.c_nvmlEventData_t()
                    data.device = self._device_handle(self._gpus[item.gpu])
                    data.eventType = item.type
                    data.eventData = item.data
                    data.gpuInstanceId = item.gpu_instance_id
                    data.computeInstanceId = item.compute_instance_id
                    return data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise pynvml.NVMLError_Timeout()
                self._cond.wait(remaining)

    def nvmlEventSetFree(self, eventSet: Any) -> None:
        with self._cond:
            event_set = self._event_set(eventSet)
            del self._event_sets[event_set.memory.address]
            self._cond.notify_all()

    # -- test hooks ------------------------------------------------------------------------

    def _post(self, event: object, gpu: int, event_type: int) -> None:
        for event_set in self._event_sets.values():
            if event_set.registered.get(gpu, 0) & event_type:
                event_set.queue.append(event)
        self._cond.notify_all()

    def _hook_gpu(self, index: int) -> _Gpu:
        if not 0 <= index < len(self._gpus):
            raise IndexError(f"{self!r} has no GPU {index}")
        return self._gpus[index]

    def inject_xid(
        self,
        index: int,
        xid: int,
        *,
        gpu_instance_id: int | None = None,
        compute_instance_id: int | None = None,
    ) -> None:
        """An Xid critical error on GPU `index`, for the event sets that registered for it."""
        with self._cond:
            self._hook_gpu(index)
            event = _Event(
                gpu=index,
                type=pynvml.nvmlEventTypeXidCriticalError,
                data=xid,
                gpu_instance_id=_UINT_MASK if gpu_instance_id is None else gpu_instance_id,
                compute_instance_id=_UINT_MASK if compute_instance_id is None else compute_instance_id,
            )
            self._post(event, index, event.type)

    def inject_double_bit_ecc(self, index: int, *, driver_effects: bool = False) -> None:
        """A double-bit ECC error on GPU `index`: a DoubleBitEccError event for the sets registered
        for that type.

        `driver_effects=True` adds what a real driver does besides: an Xid 48 event (for the sets
        registered for Xids) and a pending memory repair (a row remap on Ampere and later, a page
        retirement on Volta) until `recover`.
        """
        with self._cond:
            gpu = self._hook_gpu(index)
            dbe = pynvml.nvmlEventTypeDoubleBitEccError
            self._post(_Event(gpu=index, type=dbe), index, dbe)
            if not driver_effects:
                return
            xid = pynvml.nvmlEventTypeXidCriticalError
            self._post(_Event(gpu=index, type=xid, data=_XID_DOUBLE_BIT_ECC), index, xid)
            if gpu.row_remapping:
                gpu.remapped_uncorrected += 1
                gpu.remap_pending = True
            else:
                gpu.retirement_pending = True

    def lose(self, index: int) -> None:
        """GPU `index` falls off the bus: every call on it raises NVMLError_GpuIsLost."""
        with self._cond:
            gpu = self._hook_gpu(index)
            if not gpu.lost:
                gpu.lost = True
                self._post(_LOST, index, ~0)

    def recover(self, index: int) -> None:
        """GPU `index` is back (reset): not lost, no page retirement or row remap pending."""
        with self._cond:
            gpu = self._hook_gpu(index)
            gpu.lost = False
            gpu.retirement_pending = False
            gpu.remap_pending = False
            gpu.remap_failed = False

    def set_pending_retirement(self, index: int, pending: bool) -> None:
        """Whether GPU `index` has retired pages waiting for a reset."""
        with self._cond:
            self._hook_gpu(index).retirement_pending = pending

    def fail_init(self, error_cls: type[Exception] | None) -> None:
        """Make nvmlInit raise `error_cls()` (e.g. NVMLError_DriverNotLoaded); None: succeed again."""
        with self._cond:
            self._init_error = error_cls

    def fail_call(
        self,
        function: str,
        error_cls: type[Exception] | None,
        *,
        index: int | None = None,
        times: int | None = None,
    ) -> None:
        """Make the NVML function `function` raise `error_cls()` (e.g. NVMLError_NoPermission).

        With `index`, only calls about GPU `index` fail (those whose first argument is its handle,
        or its index for `...ByIndex` functions); with `times`, only the next `times` calls.
        `error_cls=None` makes `function` (for `index`) answer again.
        """
        if not callable(getattr(type(self), function, None)):
            raise AttributeError(f"{self!r} does not implement {function}")
        with self._cond:
            rules = self._failing.setdefault(function, {})
            if error_cls is None:
                rules.pop(index, None)
            else:
                rules[index] = _Failure(error_cls, times)
            if not rules:
                del self._failing[function]

    def _failing_call(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._cond:
                error = self._failure(name, args[0] if args else None)
            if error is not None:
                raise error()
            return function(*args, **kwargs)

        return call

    def _failure(self, name: str, first: object) -> type[Exception] | None:
        """The error `fail_call` set up for this call of `name`, if any (call with the lock held)."""
        index: int | None = None
        if isinstance(first, pynvml.c_nvmlDevice_t) and first:
            gpu = self._by_address.get(ctypes.cast(first, ctypes.c_void_p).value or 0)
            index = gpu.index if gpu is not None else None
        elif isinstance(first, int) and name.endswith("ByIndex"):
            index = first
        rules = self._failing.get(name, {})
        key = index if index in rules else None
        failure = rules.get(key)
        if failure is None:
            return None
        if failure.times is not None:
            failure.times -= 1
            if failure.times <= 0:
                del rules[key]
                if not rules:
                    del self._failing[name]
        return failure.error


def _gpu_instance_id(profile: MigProfile, start: int) -> int:
    """The GPU instance id NVML gives an instance at `start`: 0 for the whole GPU, then halves,
    quarters and eighths of the memory numbered left to right (1-2, 3-6, 7-14)."""
    return {8: 0, 4: 1, 2: 3, 1: 7}[profile.memory_slots] + start // profile.memory_slots
