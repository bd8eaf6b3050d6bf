"""Properties of GPU sharing and MIG on random clusters and workloads: no GPU is over-committed
(Σ milli ≤ 1000 and Σ memory ≤ its memory), MIG instances never overlap each other or the
instances the node already had, and whole-GPU pods never land on a shared or MIG GPU."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisched.api.mig import mig_profiles_for
from aisched.framework.types import GangPlacement, PodInfo
from aisched.topology.node import NodeInfo
from tests.support.core import GiB, gang, node, pod, scheduler

MIG_NAMES = sorted(mig_profiles_for("A100-80GB"))


@st.composite
def clusters(draw: st.DrawFn) -> list[NodeInfo]:
    machines = st.sampled_from(["dgx-h100", "pcie-8gpu", "a100-mig", "a100-mig", None])
    return [node(f"n{i}", machine=draw(machines)) for i in range(draw(st.integers(1, 4)))]


@st.composite
def members(draw: st.DrawFn, index: int) -> list[PodInfo]:
    kind = draw(st.sampled_from(["share", "share", "memory", "mig", "whole"]))
    count = draw(st.integers(1, 3))
    fields: dict[str, object]
    if kind == "share":
        fields = {"gpu_milli": draw(st.integers(1, 999))}
    elif kind == "memory":
        fields = {
            "gpu_milli": draw(st.integers(1, 999)),
            "gpu_memory": draw(st.sampled_from([4, 20, 40])) * GiB,
        }
    elif kind == "mig":
        fields = {"mig_profile": draw(st.sampled_from(MIG_NAMES))}
    else:
        fields = {"gpus": draw(st.sampled_from([1, 2, 4, 8]))}
    return [pod(f"g{index}-{k}", cpu=100, **fields) for k in range(count)]  # type: ignore[arg-type]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=clusters(), data=st.data())
def test_no_gpu_is_over_committed_and_mig_instances_never_overlap(
    nodes: list[NodeInfo], data: st.DataObject
) -> None:
    sched = scheduler(nodes)
    placements: list[GangPlacement] = []
    for i in range(data.draw(st.integers(1, 25))):
        result = sched.schedule(gang(f"g{i}", data.draw(members(i))))
        if result.placement is not None:
            placements.append(result.placement)

    topologies = {info.name: info.gpu_topology() for info in nodes}
    milli: dict[tuple[str, int], int] = defaultdict(int)
    memory: dict[tuple[str, int], int] = defaultdict(int)
    mig: dict[tuple[str, int], int] = defaultdict(int)
    whole: dict[str, int] = defaultdict(int)
    for placement in placements:
        for p in placement.pods:
            gpus = topologies[p.node].gpus
            if p.pod.gpus:
                assert p.gpu_mask.bit_count() == p.pod.gpus
                assert not whole[p.node] & p.gpu_mask, "a whole GPU handed out twice"
                whole[p.node] |= p.gpu_mask
                continue
            (index,) = p.gpu_indices
            gpu = gpus[index]
            assert gpu.healthy
            if p.pod.mig_profile is not None:
                profile = mig_profiles_for(gpu.model)[p.pod.mig_profile]
                assert gpu.mig_enabled
                assert p.mig is not None
                assert p.mig[0] == index
                assert p.mig[1] in profile.starts
                assert p.mig_slots == profile.slots_at(p.mig[1])
                assert not p.mig_slots & gpu.mig_mask, "on the slots of an existing instance"
                assert not p.mig_slots & mig[(p.node, index)], "two MIG instances overlap"
                mig[(p.node, index)] |= p.mig_slots
            else:
                assert not gpu.mig_enabled
                assert (p.gpu_milli, p.gpu_memory) == (p.pod.gpu_milli, p.pod.gpu_memory)
                milli[(p.node, index)] += p.gpu_milli
                memory[(p.node, index)] += p.gpu_memory
    for (name, index), total in milli.items():
        assert total <= 1000, f"GPU {index} of {name} over-committed: {total} milli"
        assert memory[(name, index)] <= topologies[name].gpus[index].memory_bytes
        assert not whole[name] >> index & 1, "a whole-GPU pod on a shared GPU"
    for name, index in mig:
        assert not whole[name] >> index & 1, "a whole-GPU pod on a MIG GPU"

    snapshot = sched.cache.update_snapshot(sched.snapshot)
    for (name, index), total in milli.items():
        assert snapshot.gpu_milli_free[snapshot.slot_of[name], index] == 1000 - total
