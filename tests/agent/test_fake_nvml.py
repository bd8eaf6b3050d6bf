"""The fake NVML: drop-in for pynvml's calling conventions, and faithful to the machine templates."""

from __future__ import annotations

import ctypes
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pynvml
import pytest

from aisched.agent import fake_nvml
from aisched.agent.fake_nvml import FakeNvml, fake_gpu_uuid
from aisched.api.mig import mig_profiles_for
from aisched.topology.machines import MACHINES, MachineType

NAMES = sorted(MACHINES)
NAMES_BY_MODEL = {
    "H100-80GB": "NVIDIA H100 80GB HBM3",
    "V100-32GB": "Tesla V100-SXM2-32GB",
    "L40S-48GB": "NVIDIA L40S",
    "A100-80GB": "NVIDIA A100-SXM4-80GB",
}
PCIE_LEVELS = {
    "PIX": pynvml.NVML_TOPOLOGY_SINGLE,
    "PXB": pynvml.NVML_TOPOLOGY_MULTIPLE,
    "PHB": pynvml.NVML_TOPOLOGY_HOSTBRIDGE,
    "NODE": pynvml.NVML_TOPOLOGY_NODE,
    "SYS": pynvml.NVML_TOPOLOGY_SYSTEM,
}
P2P_READ = 0  # pynvml.NVML_P2P_CAPS_INDEX_READ is the tuple (0,) in nvidia-ml-py 13


def started(name: str, **options: Any) -> FakeNvml:
    fake = FakeNvml.for_machine(name, node="n1", **options)
    fake.nvmlInit()
    return fake


@pytest.fixture(params=NAMES)
def template(request: pytest.FixtureRequest) -> MachineType:
    return MACHINES[request.param]


@pytest.fixture
def h100() -> Iterator[FakeNvml]:
    fake = started("dgx-h100")
    yield fake
    fake.nvmlShutdown()


def handles(fake: FakeNvml) -> list[Any]:
    return [fake.nvmlDeviceGetHandleByIndex(i) for i in range(fake.nvmlDeviceGetCount())]


def links(fake: FakeNvml, handle: Any) -> list[tuple[str, int]]:
    """(remote bus id, remote device type) of each active NVLink, probed as discovery does."""
    found = []
    for link in range(fake.NVML_NVLINK_MAX_LINKS):
        try:
            if fake.nvmlDeviceGetNvLinkState(handle, link) != fake.NVML_FEATURE_ENABLED:
                continue
        except fake.NVMLError_NotSupported:
            continue
        remote = fake.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId
        found.append((remote, fake.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link)))
    return found


def possible_placements(fake: FakeNvml, handle: Any, profile_id: int) -> list[tuple[int, int]]:
    count = ctypes.c_uint()
    fake.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, None, ctypes.byref(count))
    placements = (pynvml.c_nvmlGpuInstancePlacement_t * count.value)()
    fake.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, placements, ctypes.byref(count))
    return [(placements[k].start, placements[k].size) for k in range(count.value)]


def gpu_instances(fake: FakeNvml, handle: Any, info: Any) -> list[Any]:
    count = ctypes.c_uint()
    instances = (pynvml.c_nvmlGpuInstance_t * info.instanceCount)()
    fake.nvmlDeviceGetGpuInstances(handle, info.id, instances, ctypes.byref(count))
    return [fake.nvmlGpuInstanceGetInfo(instances[k]) for k in range(count.value)]


# -- module shape ----------------------------------------------------------------------------


def test_errors_constants_and_structs_are_pynvmls_own() -> None:
    fake = FakeNvml.empty()
    assert fake.NVMLError_NotSupported is pynvml.NVMLError_NotSupported
    assert fake_nvml.NVMLError_GpuIsLost is pynvml.NVMLError_GpuIsLost
    assert fake.NVMLError is pynvml.NVMLError
    assert fake.NVML_TOPOLOGY_NODE == pynvml.NVML_TOPOLOGY_NODE
    assert fake.nvmlEventTypeXidCriticalError == pynvml.nvmlEventTypeXidCriticalError
    assert fake.c_nvmlGpuInstancePlacement_t is pynvml.c_nvmlGpuInstancePlacement_t


def test_nvml_functions_the_fake_lacks_are_missing_not_faked() -> None:
    fake = FakeNvml.empty()
    with pytest.raises(AttributeError):
        _ = fake.nvmlDeviceGetPowerUsage
    with pytest.raises(AttributeError):
        _ = fake.byref


# -- init ------------------------------------------------------------------------------------


def test_calls_before_init_and_after_the_last_shutdown_raise_uninitialized() -> None:
    fake = FakeNvml.for_machine("dgx-h100")
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlShutdown()
    fake.nvmlInit()
    fake.nvmlInit()
    fake.nvmlShutdown()
    assert fake.nvmlDeviceGetCount() == 8  # reference counted, like the real library
    fake.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlSystemGetDriverVersion()


@pytest.mark.parametrize("error", [pynvml.NVMLError_LibraryNotFound, pynvml.NVMLError_DriverNotLoaded])
def test_fail_init_makes_nvml_init_raise(error: type[Exception]) -> None:
    fake = FakeNvml.for_machine("dgx-h100")
    fake.fail_init(error)
    with pytest.raises(error):
        fake.nvmlInit()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    fake.fail_init(None)
    fake.nvmlInit()
    assert fake.nvmlDeviceGetCount() == 8


def test_system_versions() -> None:
    fake = started("hgx-a100")
    assert fake.nvmlSystemGetDriverVersion() == "550.54.15"
    assert fake.nvmlSystemGetCudaDriverVersion() == 12040


def test_an_empty_machine_has_no_gpus() -> None:
    fake = FakeNvml.empty()
    fake.nvmlInit()
    assert fake.nvmlDeviceGetCount() == 0
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(0)


# -- devices ---------------------------------------------------------------------------------


def test_devices_match_the_template(template: MachineType) -> None:
    fake = started(template.name)
    assert fake.nvmlDeviceGetCount() == template.gpu_count
    uuids = set()
    for i, handle in enumerate(handles(fake)):
        assert isinstance(handle, pynvml.c_nvmlDevice_t)
        assert fake.nvmlDeviceGetIndex(handle) == i
        assert fake.nvmlDeviceGetName(handle) == NAMES_BY_MODEL[template.gpu_model]
        memory = fake.nvmlDeviceGetMemoryInfo(handle)
        assert memory.total == template.gpu_memory_gib * 2**30
        assert memory.free + memory.used == memory.total
        pci = fake.nvmlDeviceGetPciInfo(handle)
        assert pci.busId == template.pci_bus_id(i)
        assert isinstance(pci.busId, str)  # _PrintableStructure decodes char arrays
        assert (pci.domain, pci.bus, pci.device) == (0, 0x18 + 0x10 * i, 0)
        assert fake.nvmlDeviceGetNumaNodeId(handle) == template.numa[i]
        gpu_uuid = fake.nvmlDeviceGetUUID(handle)
        assert gpu_uuid == fake_gpu_uuid("n1", i)
        assert gpu_uuid.startswith("GPU-")
        assert str(uuid.UUID(gpu_uuid.removeprefix("GPU-"))) == gpu_uuid.removeprefix("GPU-")
        uuids.add(gpu_uuid)
    assert len(uuids) == template.gpu_count


def test_uuids_are_stable_per_node_and_differ_between_nodes() -> None:
    assert fake_gpu_uuid("a", 0) == fake_gpu_uuid("a", 0)
    assert fake_gpu_uuid("a", 0) != fake_gpu_uuid("b", 0)


def test_memory_info_v2() -> None:
    fake = started("dgx-h100")
    memory = fake.nvmlDeviceGetMemoryInfo(fake.nvmlDeviceGetHandleByIndex(0), version=pynvml.nvmlMemory_v2)
    assert memory.version == pynvml.nvmlMemory_v2
    assert memory.total == 80 * 2**30


def test_handles_of_another_fake_are_invalid() -> None:
    first, second = started("dgx-h100"), started("dgx-h100")
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        second.nvmlDeviceGetUUID(first.nvmlDeviceGetHandleByIndex(0))
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        first.nvmlDeviceGetUUID(None)


def test_numa_node_can_be_unsupported_so_callers_fall_back_to_sysfs() -> None:
    fake = started("pcie-8gpu", numa_supported=False)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetNumaNodeId(fake.nvmlDeviceGetHandleByIndex(0))


# -- topology --------------------------------------------------------------------------------


def test_common_ancestor_reproduces_the_pcie_cells(template: MachineType) -> None:
    fake = started(template.name)
    hs = handles(fake)
    for i, row in enumerate(template.matrix):
        for j, cell in enumerate(row):
            level = fake.nvmlDeviceGetTopologyCommonAncestor(hs[i], hs[j])
            if cell == "X":
                assert level == pynvml.NVML_TOPOLOGY_INTERNAL
            elif cell.startswith("NV"):  # the PCIe path under an NVLink: same socket or not
                same = template.numa[i] == template.numa[j]
                assert level == (pynvml.NVML_TOPOLOGY_NODE if same else pynvml.NVML_TOPOLOGY_SYSTEM)
            else:
                assert level == PCIE_LEVELS[cell], (i, j, cell)


def test_nvlink_counts_reproduce_the_direct_links_of_the_dgx1() -> None:
    template = MACHINES["dgx1-v100"]
    fake = started("dgx1-v100")
    bus_to_index = {template.pci_bus_id(i): i for i in range(template.gpu_count)}
    for i, handle in enumerate(handles(fake)):
        found = links(fake, handle)
        assert {kind for _, kind in found} == {pynvml.NVML_NVLINK_DEVICE_TYPE_GPU}
        per_peer = Counter(bus_to_index[bus] for bus, _ in found)
        expected = {j: int(c[2:]) for j, c in enumerate(template.matrix[i]) if c.startswith("NV")}
        assert dict(per_peer) == expected
        assert len(found) == 6  # every V100 NVLink is used in the hybrid cube-mesh
        with pytest.raises(pynvml.NVMLError_NotSupported):
            fake.nvmlDeviceGetNvLinkState(handle, 6)


def test_every_h100_has_18_links_to_four_nvswitches(h100: FakeNvml) -> None:
    gpu_buses = {MACHINES["dgx-h100"].pci_bus_id(i) for i in range(8)}
    switches: set[str] = set()
    for handle in handles(h100):
        found = links(h100, handle)
        assert len(found) == 18
        assert {kind for _, kind in found} == {pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH}
        assert sorted(Counter(bus for bus, _ in found).values()) == [4, 4, 5, 5]
        switches |= {bus for bus, _ in found}
        with pytest.raises(pynvml.NVMLError_NotSupported):
            h100.nvmlDeviceGetNvLinkState(handle, 18)
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            h100.nvmlDeviceGetNvLinkState(handle, pynvml.NVML_NVLINK_MAX_LINKS)
    assert len(switches) == 4
    assert not switches & gpu_buses


def test_every_a100_has_12_links_to_six_nvswitches() -> None:
    fake = started("hgx-a100")
    for handle in handles(fake):
        found = links(fake, handle)
        assert len(found) == 12
        assert len({bus for bus, _ in found}) == 6


def test_a_pcie_gpu_has_no_nvlink() -> None:
    fake = started("pcie-8gpu")
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    assert links(fake, handle) == []
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetNvLinkRemotePciInfo(handle, 0)


def test_p2p_is_ok_except_across_sockets_over_pcie() -> None:
    fake = started("pcie-8gpu")
    hs = handles(fake)
    assert fake.nvmlDeviceGetP2PStatus(hs[0], hs[1], P2P_READ) == pynvml.NVML_P2P_STATUS_OK
    assert fake.nvmlDeviceGetP2PStatus(hs[0], hs[3], P2P_READ) == pynvml.NVML_P2P_STATUS_OK
    assert fake.nvmlDeviceGetP2PStatus(hs[0], hs[4], P2P_READ) == pynvml.NVML_P2P_STATUS_CHIPSET_NOT_SUPPORTED
    nvlink = pynvml.NVML_P2P_CAPS_INDEX_NVLINK
    assert fake.nvmlDeviceGetP2PStatus(hs[0], hs[1], nvlink) == pynvml.NVML_P2P_STATUS_NOT_SUPPORTED


def test_p2p_is_ok_between_every_pair_on_nvswitch(h100: FakeNvml) -> None:
    hs = handles(h100)
    for a in hs:
        for b in hs:
            assert h100.nvmlDeviceGetP2PStatus(a, b, P2P_READ) == pynvml.NVML_P2P_STATUS_OK
            assert h100.nvmlDeviceGetP2PStatus(a, b, pynvml.NVML_P2P_CAPS_INDEX_NVLINK) == 0


def test_the_tuple_p2p_read_constant_fails_as_ctypes_would(h100: FakeNvml) -> None:
    hs = handles(h100)
    assert pynvml.NVML_P2P_CAPS_INDEX_READ == (0,)
    with pytest.raises(ctypes.ArgumentError):
        h100.nvmlDeviceGetP2PStatus(hs[0], hs[1], pynvml.NVML_P2P_CAPS_INDEX_READ)


# -- MIG -------------------------------------------------------------------------------------


def test_mig_mode_per_gpu() -> None:
    template = MACHINES["a100-mig"]
    fake = started("a100-mig")
    for i, handle in enumerate(handles(fake)):
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if template.mig_enabled[i] else pynvml.NVML_DEVICE_MIG_DISABLE
        assert fake.nvmlDeviceGetMigMode(handle) == [mode, mode]
    plain = started("hgx-a100")
    assert plain.nvmlDeviceGetMigMode(plain.nvmlDeviceGetHandleByIndex(0)) == [0, 0]


@pytest.mark.parametrize("name", ["dgx1-v100", "pcie-8gpu"])
def test_mig_is_not_supported_without_mig_hardware(name: str) -> None:
    fake = started(name)
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetMigMode(handle)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetGpuInstanceProfileInfo(handle, pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE)


def test_profile_info_and_placements_follow_the_mig_table() -> None:
    fake = started("a100-mig")
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    constants = {
        "1g.10gb": pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE,
        "1g.10gb+me": pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1,
        "1g.20gb": pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2,
        "2g.20gb": pynvml.NVML_GPU_INSTANCE_PROFILE_2_SLICE,
        "3g.40gb": pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE,
        "4g.40gb": pynvml.NVML_GPU_INSTANCE_PROFILE_4_SLICE,
        "7g.80gb": pynvml.NVML_GPU_INSTANCE_PROFILE_7_SLICE,
    }
    table = mig_profiles_for("A100-80GB")
    assert set(constants) == set(table)
    ids = set()
    for name, constant in constants.items():
        profile = table[name]
        info = fake.nvmlDeviceGetGpuInstanceProfileInfoV(handle, constant)
        assert info.name == f"MIG {name}"
        assert info.sliceCount == profile.compute_slices
        assert info.memorySizeMB == round(profile.memory_gib * 1024)
        assert 1 <= info.instanceCount <= len(profile.starts)
        v1 = fake.nvmlDeviceGetGpuInstanceProfileInfo(handle, constant, version=1)
        assert (v1.id, v1.sliceCount) == (info.id, info.sliceCount)
        assert possible_placements(fake, handle, info.id) == [
            (s, profile.memory_slots) for s in profile.starts
        ]
        ids.add(info.id)
    assert len(ids) == len(constants)
    assert fake.nvmlDeviceGetGpuInstanceProfileInfo(handle, pynvml.NVML_GPU_INSTANCE_PROFILE_7_SLICE).id == 0
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetGpuInstanceProfileInfo(handle, pynvml.NVML_GPU_INSTANCE_PROFILE_2_SLICE_REV1)


def test_placements_into_a_too_small_buffer_are_refused() -> None:
    fake = started("a100-mig")
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    info = fake.nvmlDeviceGetGpuInstanceProfileInfo(handle, pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1)
    assert info.instanceCount == 1  # one set of media engines, yet seven places to put it
    too_small = (pynvml.c_nvmlGpuInstancePlacement_t * info.instanceCount)()
    with pytest.raises(pynvml.NVMLError_InsufficientSize):
        fake.nvmlDeviceGetGpuInstancePossiblePlacements(
            handle, info.id, too_small, ctypes.byref(ctypes.c_uint())
        )


def test_existing_gpu_instances_match_the_template() -> None:
    template = MACHINES["a100-mig"]
    fake = started("a100-mig")
    for i, handle in enumerate(handles(fake)):
        if not template.mig_enabled[i]:
            info = fake.nvmlDeviceGetGpuInstanceProfileInfo(handle, pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE)
            with pytest.raises(pynvml.NVMLError_NotSupported):
                gpu_instances(fake, handle, info)
            continue
        found = []
        for constant in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
            try:
                info = fake.nvmlDeviceGetGpuInstanceProfileInfoV(handle, constant)
            except pynvml.NVMLError_NotSupported:
                continue
            for gi in gpu_instances(fake, handle, info):
                assert gi.profileId == info.id
                assert fake.nvmlDeviceGetIndex(gi.device) == i
                assert gi.placement.size == mig_profiles_for(template.gpu_model)[info.name[4:]].memory_slots
                found.append((info.name.removeprefix("MIG "), gi.placement.start, gi.id))
        assert sorted((name, start) for name, start, _ in found) == sorted(template.mig_instances[i])
        assert len({gi_id for _, _, gi_id in found}) == len(found)


# -- fabric ----------------------------------------------------------------------------------


def test_fabric_info_is_not_supported_by_default(h100: FakeNvml) -> None:
    info = pynvml.c_nvmlGpuFabricInfo_t()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        h100.nvmlDeviceGetGpuFabricInfo(h100.nvmlDeviceGetHandleByIndex(0), ctypes.byref(info))


def test_a_fabric_clique_fills_the_callers_struct() -> None:
    fake = started("dgx-h100", fabric_clique=7)
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    info = pynvml.c_nvmlGpuFabricInfo_t()
    assert fake.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(info)) == pynvml.NVML_SUCCESS
    assert info.cliqueId == 7
    assert info.state == pynvml.NVML_GPU_FABRIC_STATE_COMPLETED
    assert info.status == pynvml.NVML_SUCCESS
    assert any(info.clusterUuid)
    versioned = pynvml.c_nvmlGpuFabricInfoV_t()
    assert fake.nvmlDeviceGetGpuFabricInfoV(handle, ctypes.byref(versioned)) == pynvml.NVML_SUCCESS
    assert (versioned.cliqueId, list(versioned.clusterUuid)) == (7, list(info.clusterUuid))
    versioned.version = 1
    with pytest.raises(pynvml.NVMLError_ArgumentVersionMismatch):
        fake.nvmlDeviceGetGpuFabricInfoV(handle, ctypes.byref(versioned))


# -- health ----------------------------------------------------------------------------------


def test_pending_retirement_and_remapped_rows(h100: FakeNvml) -> None:
    handle = h100.nvmlDeviceGetHandleByIndex(2)
    assert h100.nvmlDeviceGetRetiredPagesPendingStatus(handle) == pynvml.NVML_FEATURE_DISABLED
    assert h100.nvmlDeviceGetRemappedRows(handle) == (0, 0, 0, 0)
    h100.set_pending_retirement(2, True)
    assert h100.nvmlDeviceGetRetiredPagesPendingStatus(handle) == pynvml.NVML_FEATURE_ENABLED
    h100.inject_double_bit_ecc(2, driver_effects=True)
    assert h100.nvmlDeviceGetRemappedRows(handle) == (0, 1, 1, 0)
    h100.recover(2)
    assert h100.nvmlDeviceGetRetiredPagesPendingStatus(handle) == pynvml.NVML_FEATURE_DISABLED
    assert h100.nvmlDeviceGetRemappedRows(handle)[2] == 0


def test_a_lost_gpu_raises_gpu_is_lost_until_it_recovers(h100: FakeNvml) -> None:
    handle = h100.nvmlDeviceGetHandleByIndex(3)
    h100.lose(3)
    for call in (h100.nvmlDeviceGetUUID, h100.nvmlDeviceGetPciInfo, h100.nvmlDeviceGetRemappedRows):
        with pytest.raises(pynvml.NVMLError_GpuIsLost):
            call(handle)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        h100.nvmlDeviceGetHandleByIndex(3)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        h100.nvmlDeviceGetTopologyCommonAncestor(h100.nvmlDeviceGetHandleByIndex(0), handle)
    assert h100.nvmlDeviceGetCount() == 8
    assert h100.nvmlDeviceGetUUID(h100.nvmlDeviceGetHandleByIndex(2)) == fake_gpu_uuid("n1", 2)
    h100.recover(3)
    assert h100.nvmlDeviceGetUUID(handle) == fake_gpu_uuid("n1", 3)


# -- events ----------------------------------------------------------------------------------


def test_wait_times_out_when_nothing_is_queued(h100: FakeNvml) -> None:
    events = h100.nvmlEventSetCreate()
    h100.nvmlDeviceRegisterEvents(
        h100.nvmlDeviceGetHandleByIndex(0), pynvml.nvmlEventTypeXidCriticalError, events
    )
    with pytest.raises(pynvml.NVMLError_Timeout):
        h100.nvmlEventSetWait_v2(events, 0)
    with pytest.raises(pynvml.NVMLError_Timeout):
        h100.nvmlEventSetWait_v2(events, 1)
    h100.nvmlEventSetFree(events)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        h100.nvmlEventSetWait_v2(events, 0)


def test_an_injected_xid_reaches_a_waiting_thread(h100: FakeNvml) -> None:
    events = h100.nvmlEventSetCreate()
    for handle in handles(h100):
        h100.nvmlDeviceRegisterEvents(
            handle, pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError, events
        )
    received: list[Any] = []
    waiter = threading.Thread(target=lambda: received.append(h100.nvmlEventSetWait_v2(events, 10_000)))
    waiter.start()
    h100.inject_xid(5, 79)
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    (event,) = received
    assert h100.nvmlDeviceGetIndex(event.device) == 5
    assert event.eventType == pynvml.nvmlEventTypeXidCriticalError
    assert event.eventData == 79
    assert (event.gpuInstanceId, event.computeInstanceId) == (0xFFFFFFFF, 0xFFFFFFFF)
    h100.inject_double_bit_ecc(1)
    event = h100.nvmlEventSetWait_v2(events, 0)
    assert (h100.nvmlDeviceGetIndex(event.device), event.eventType) == (
        1,
        pynvml.nvmlEventTypeDoubleBitEccError,
    )
    with pytest.raises(pynvml.NVMLError_Timeout):  # no Xid 48 unless asked for driver effects
        h100.nvmlEventSetWait_v2(events, 0)


def test_only_registered_devices_and_types_are_queued(h100: FakeNvml) -> None:
    events = h100.nvmlEventSetCreate()
    h100.nvmlDeviceRegisterEvents(
        h100.nvmlDeviceGetHandleByIndex(0), pynvml.nvmlEventTypeDoubleBitEccError, events
    )
    h100.inject_xid(0, 79)  # type not registered
    h100.inject_double_bit_ecc(1)  # device not registered
    with pytest.raises(pynvml.NVMLError_Timeout):
        h100.nvmlEventSetWait_v2(events, 0)


def test_unsupported_event_types_are_refused(h100: FakeNvml) -> None:
    events = h100.nvmlEventSetCreate()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        h100.nvmlDeviceRegisterEvents(h100.nvmlDeviceGetHandleByIndex(0), pynvml.nvmlEventTypeAll, events)


def test_a_lost_gpu_is_reported_once_to_its_event_sets(h100: FakeNvml) -> None:
    events = h100.nvmlEventSetCreate()
    h100.nvmlDeviceRegisterEvents(
        h100.nvmlDeviceGetHandleByIndex(4), pynvml.nvmlEventTypeXidCriticalError, events
    )
    h100.inject_xid(4, 31)
    h100.lose(4)
    assert h100.nvmlEventSetWait_v2(events, 0).eventData == 31
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        h100.nvmlEventSetWait_v2(events, 0)
    with pytest.raises(pynvml.NVMLError_Timeout):
        h100.nvmlEventSetWait_v2(events, 0)


def test_shutdown_wakes_a_waiter() -> None:
    fake = started("dgx-h100")
    events = fake.nvmlEventSetCreate()
    errors: list[Exception] = []

    def wait() -> None:
        try:
            fake.nvmlEventSetWait_v2(events, 10_000)
        except pynvml.NVMLError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    fake.nvmlShutdown()
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], (pynvml.NVMLError_Uninitialized, pynvml.NVMLError_InvalidArgument))


def test_supported_event_types_follow_the_ecc_and_event_knobs() -> None:
    ecc = pynvml.nvmlEventTypeSingleBitEccError | pynvml.nvmlEventTypeDoubleBitEccError
    xid = pynvml.nvmlEventTypeXidCriticalError
    on = started("pcie-8gpu")
    off = started("pcie-8gpu", ecc_enabled=False)
    none = started("pcie-8gpu", events_supported=False)
    assert on.nvmlDeviceGetSupportedEventTypes(on.nvmlDeviceGetHandleByIndex(0)) & (ecc | xid) == ecc | xid
    assert off.nvmlDeviceGetSupportedEventTypes(off.nvmlDeviceGetHandleByIndex(0)) & (ecc | xid) == xid
    assert none.nvmlDeviceGetSupportedEventTypes(none.nvmlDeviceGetHandleByIndex(0)) == 0
    events = off.nvmlEventSetCreate()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        off.nvmlDeviceRegisterEvents(
            off.nvmlDeviceGetHandleByIndex(0), pynvml.nvmlEventTypeDoubleBitEccError, events
        )


# -- test hooks ------------------------------------------------------------------------------


def test_fail_call_fails_one_function_for_one_gpu(h100: FakeNvml) -> None:
    h100.fail_call("nvmlDeviceGetUUID", pynvml.NVMLError_NoPermission, index=2)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        h100.nvmlDeviceGetUUID(h100.nvmlDeviceGetHandleByIndex(2))
    assert h100.nvmlDeviceGetUUID(h100.nvmlDeviceGetHandleByIndex(3)) == fake_gpu_uuid("n1", 3)
    h100.fail_call("nvmlDeviceGetHandleByIndex", pynvml.NVMLError_Unknown, index=5)
    with pytest.raises(pynvml.NVMLError_Unknown):
        h100.nvmlDeviceGetHandleByIndex(5)
    h100.fail_call("nvmlDeviceGetUUID", None, index=2)
    assert h100.nvmlDeviceGetUUID(h100.nvmlDeviceGetHandleByIndex(2)) == fake_gpu_uuid("n1", 2)


def test_fail_call_may_fail_every_call_a_number_of_times(h100: FakeNvml) -> None:
    h100.fail_call("nvmlDeviceGetCount", pynvml.NVMLError_Unknown, times=2)
    for _ in range(2):
        with pytest.raises(pynvml.NVMLError_Unknown):
            h100.nvmlDeviceGetCount()
    assert h100.nvmlDeviceGetCount() == 8


def test_fail_call_refuses_functions_the_fake_lacks(h100: FakeNvml) -> None:
    with pytest.raises(AttributeError):
        h100.fail_call("nvmlDeviceGetPowerUsage", pynvml.NVMLError_Unknown)


def test_gfx_profiles_are_listed_under_a_name_the_mig_table_lacks() -> None:
    fake = started("a100-mig", gfx_mig_profiles=True)
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    info = fake.nvmlDeviceGetGpuInstanceProfileInfoV(handle, pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_GFX)
    assert info.name == "MIG 1g.10gb+gfx"
    assert "1g.10gb+gfx" not in mig_profiles_for("A100-80GB")
    assert possible_placements(fake, handle, info.id) == [(s, 1) for s in range(7)]
    plain = started("a100-mig")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        plain.nvmlDeviceGetGpuInstanceProfileInfo(
            plain.nvmlDeviceGetHandleByIndex(0), pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_GFX
        )


def test_a_failed_fabric_registration_reports_its_status() -> None:
    fake = started("dgx-h100", fabric_clique=7, fabric_status=pynvml.NVML_ERROR_UNKNOWN)
    info = pynvml.c_nvmlGpuFabricInfo_t()
    fake.nvmlDeviceGetGpuFabricInfo(fake.nvmlDeviceGetHandleByIndex(0), ctypes.byref(info))
    assert (info.state, info.status) == (pynvml.NVML_GPU_FABRIC_STATE_COMPLETED, pynvml.NVML_ERROR_UNKNOWN)
