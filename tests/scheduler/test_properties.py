"""Properties of the scheduling core on random clusters and random gangs.

For any cluster and any sequence of gangs: no resource is ever over-committed, GPUs handed out are
distinct and healthy, gangs are placed whole or not at all, Required topology is honoured, and the
same inputs give the same placements.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aisched.framework.types import LEVELS, Gang, GangPlacement, TopologyPolicy
from aisched.scheduler import Scheduler
from aisched.topology.machines import MACHINES
from aisched.topology.node import NodeInfo
from tests.support.core import gang, node, pod, scheduler

MACHINE_NAMES = sorted(MACHINES)


@st.composite
def clusters(draw: st.DrawFn) -> list[NodeInfo]:
    count = draw(st.integers(min_value=1, max_value=12))
    nodes = []
    for i in range(count):
        machine = draw(st.sampled_from([*MACHINE_NAMES, None]))
        info = node(
            f"n{i:02d}",
            machine=machine,
            gpus=None if machine else draw(st.integers(min_value=0, max_value=4)),
            rack=draw(st.sampled_from(["r0", "r1", "r2", None])),
            block=draw(st.sampled_from(["b0", "b1", None])),
            cpu=draw(st.sampled_from([16_000, 64_000, 200_000])),
            pods=draw(st.integers(min_value=1, max_value=16)),
        )
        if info.gpus is not None and draw(st.booleans()):
            sick = draw(st.integers(min_value=0, max_value=info.gpus.count - 1))
            gpus = tuple(dataclasses.replace(g, healthy=g.index != sick) for g in info.gpus.gpus)
            info = dataclasses.replace(info, gpus=dataclasses.replace(info.gpus, gpus=gpus))
        nodes.append(info)
    return nodes


@st.composite
def gangs(draw: st.DrawFn, index: int) -> Gang:
    roles = draw(st.integers(min_value=1, max_value=2))
    members = []
    for r in range(roles):
        gpus = draw(st.sampled_from([0, 1, 2, 4, 8]))
        cpu = draw(st.sampled_from([500, 4000, 16_000]))
        for k in range(draw(st.integers(min_value=1, max_value=4))):
            members.append(pod(f"g{index}-r{r}-{k}", gpus=gpus, cpu=cpu))
    policy: TopologyPolicy = draw(st.sampled_from(["Required", "Preferred", "None"]))
    level = draw(st.sampled_from(LEVELS)) if policy == "Required" else None
    return gang(f"g{index}", members, policy=policy, level=level)


@st.composite
def workloads(draw: st.DrawFn) -> list[Gang]:
    return [draw(gangs(i)) for i in range(draw(st.integers(min_value=1, max_value=8)))]


def _run(nodes: list[NodeInfo], work: list[Gang]) -> tuple[Scheduler, list[GangPlacement | None]]:
    sched = scheduler(nodes)
    results = []
    for g in work:
        before = sorted(sched.cache.assumed())
        result = sched.schedule(g)
        if result.placement is None:
            assert sorted(sched.cache.assumed()) == before, "a failed gang left pods assumed"
        results.append(result.placement)
    return sched, results


def _check_invariants(sched: Scheduler, work: list[Gang], placements: list[GangPlacement | None]) -> None:
    snapshot = sched.cache.update_snapshot(sched.snapshot)
    infos = {info.name: info for info in snapshot.infos if info is not None}
    used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    gpus_taken: dict[str, int] = defaultdict(int)
    for g, placement in zip(work, placements, strict=True):
        if placement is None:
            continue
        assert sorted(p.pod.name for p in placement.pods) == sorted(m.name for m in g.members), "gang split"
        for placed in placement.pods:
            for resource, amount in placed.pod.requests.items():
                used[placed.node][resource] += amount
            info = infos[placed.node]
            topology = info.gpu_topology()
            assert bin(placed.gpu_mask).count("1") == placed.pod.gpus
            assert placed.gpu_mask & gpus_taken[placed.node] == 0, "a GPU handed out twice"
            assert placed.gpu_mask & ~topology.healthy_mask == 0, "an unhealthy GPU handed out"
            gpus_taken[placed.node] |= placed.gpu_mask
        if g.topology_policy == "Required":
            level = g.topology_level
            slots = [p.slot for p in placement.pods]
            if level == "node":
                assert len({p.node for p in placement.pods}) == 1
            elif level == "rack":
                racks = {snapshot.infos[s].rack or snapshot.infos[s].name for s in slots}  # type: ignore[union-attr]
                assert len(racks) == 1
            elif level == "block":
                blocks = {snapshot.infos[s].block or snapshot.infos[s].name for s in slots}  # type: ignore[union-attr]
                assert len(blocks) == 1
            elif level == "nvlink":
                for name in {p.node for p in placement.pods}:
                    union = 0
                    for p in placement.pods:
                        if p.node == name:
                            union |= p.gpu_mask
                    cliques = infos[name].gpu_topology().cliques
                    assert any(union & ~clique == 0 for clique in cliques), "gang GPUs span NVLink cliques"
    for name, resources_used in used.items():
        for resource, amount in resources_used.items():
            assert amount <= infos[name].allocatable.get(resource, 0), f"{resource} over-committed on {name}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), workloads())
def test_placements_never_overcommit_and_gangs_are_whole(nodes: list[NodeInfo], work: list[Gang]) -> None:
    sched, placements = _run(nodes, work)
    _check_invariants(sched, work, placements)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), workloads())
def test_the_same_inputs_give_the_same_placements(nodes: list[NodeInfo], work: list[Gang]) -> None:
    _, first = _run(nodes, work)
    _, second = _run(list(reversed(nodes)), work)

    def shape(placements: list[GangPlacement | None]) -> list[object]:
        return [None if p is None else [(x.pod.name, x.node, x.gpu_mask) for x in p.pods] for p in placements]

    assert shape(first) == shape(second)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    racks=st.integers(min_value=2, max_value=4),
    per_rack=st.integers(min_value=1, max_value=3),
    extra=st.integers(min_value=1, max_value=3),
)
def test_a_gang_that_fits_only_by_counting_gets_the_topology_reason(
    racks: int, per_rack: int, extra: int
) -> None:
    nodes = [node(f"r{r}n{i}", rack=f"r{r}") for r in range(racks) for i in range(per_rack)]
    # More 8-GPU pods than any rack can hold, but never more than the whole cluster can.
    members = min(per_rack + extra, racks * per_rack)
    assume(members > per_rack)
    sched = scheduler(nodes)
    result = sched.schedule(
        gang("g", [pod(f"p{i}", gpus=8) for i in range(members)], policy="Required", level="rack")
    )
    assert result.placement is None
    assert f"needs {members * 8} GPUs in one rack; largest rack has {per_rack * 8} free" in result.message
