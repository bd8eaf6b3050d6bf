"""Replays through the core on a small generated trace: accounting, determinism, every policy."""

from __future__ import annotations

import pytest

from aisched.framework.types import Gang
from aisched.simulator.cluster import FILTERS, POLICIES, node_info, pod_info, policy_profile
from aisched.simulator.replay import build_scheduler, replay
from aisched.simulator.trace import Trace, TraceNode, TracePod
from aisched.simulator.workload import typical_pods
from tests.simulator._traces import small_trace
from tests.test_import_boundaries import PACKAGE, forbidden_imports

TRACE = small_trace()


@pytest.mark.parametrize("policy", list(POLICIES))
def test_every_policy_replays_the_trace_through_the_core(policy: str) -> None:
    run = replay(TRACE, policy=policy, seed=42)

    assert run.arrived > len(TRACE.pods)  # inflated to 130 % of capacity
    assert 0 < run.failed < run.arrived
    log = run.log
    # The snapshot (read by the meter) accounts exactly what the replay placed: nothing lost, nothing twice.
    assert all(a + i == TRACE.capacity_milli for a, i in zip(log.allocated, log.idle, strict=True))
    assert log.arrived[-1] == pytest.approx(1.3 * TRACE.capacity_milli, abs=8000)
    curves = run.curves()
    assert 0 < curves.unallocated_at(130) < 100


def test_a_replay_is_fixed_by_its_seed() -> None:
    first = replay(TRACE, policy="fgd", seed=7).log
    again = replay(TRACE, policy="fgd", seed=7).log
    other = replay(TRACE, policy="fgd", seed=8).log

    assert (first.arrived, first.allocated, first.fragmented) == (
        again.arrived,
        again.allocated,
        again.fragmented,
    )
    assert first.allocated != other.allocated


def test_fgd_leaves_less_unallocated_than_random_once_the_cluster_is_full() -> None:
    fgd = replay(TRACE, policy="fgd", seed=1).curves().unallocated_at(130)
    rand = replay(TRACE, policy="random", seed=1).curves().unallocated_at(130)

    assert fgd < rand


def test_the_profile_is_the_papers_filters_and_exactly_one_policy() -> None:
    typical = typical_pods(TRACE.pods)
    for name, plugin in POLICIES.items():
        profile = policy_profile(name, seed=5, typical=typical)
        assert profile.filter == FILTERS
        assert [s.name for s in profile.score] == [plugin]
        assert profile.tie_break_seed == 5
        assert (profile.pre_filter, profile.post_filter, profile.reserve) == ((), (), ())
    with pytest.raises(ValueError, match="unknown policy"):
        policy_profile("worstfit", seed=1, typical=typical)


def test_trace_pods_ask_the_core_for_shares_whole_gpus_models_and_cpu() -> None:
    nodes = (TraceNode("t4", 16_000, 4096, 2, "T4"), TraceNode("v100", 16_000, 4096, 2, "V100M16"))
    trace = Trace("w", nodes, ())
    sched = build_scheduler(trace, policy_profile("bestfit", seed=1, typical=typical_pods(TRACE.pods)))

    share = sched.schedule(Gang.of(pod_info(TracePod("s", 1000, 10, 1, 300, ("V100M16",))))).placement
    whole = sched.schedule(Gang.of(pod_info(TracePod("w", 1000, 10, 2, 1000)))).placement
    too_big = sched.schedule(Gang.of(pod_info(TracePod("b", 1000, 10, 4, 1000)))).placement

    assert share is not None
    assert share.pods[0].node == "v100"
    assert share.pods[0].gpu_milli == 300
    assert whole is not None
    assert whole.pods[0].gpu_mask.bit_count() == 2
    assert too_big is None
    assert node_info(nodes[0]).allocatable["nvidia.com/gpu"] == 2


def test_the_simulator_imports_no_client_kopf_or_nvml() -> None:
    assert (PACKAGE / "simulator" / "__init__.py").is_file()
    assert forbidden_imports(PACKAGE / "simulator") == []
