import pytest

from aisched.framework.cycle_state import CycleState
from aisched.framework.types import Toleration
from aisched.plugins.taint_toleration import TaintToleration
from aisched.topology.node import Taint, TaintEffect
from aisched.topology.snapshot import Snapshot
from tests.plugins._cluster import cluster, explained, names, snapshot_of
from tests.support.core import node, pod, scheduler

GPU_TAINT = Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule")
DRAIN = Taint(key="drain", value="yes", effect="NoExecute")
SOFT = Taint(key="spot", value="true", effect="PreferNoSchedule")

NODES = [
    node("clean", machine=None),
    node("gpu", machine=None, taints=[GPU_TAINT]),
    node("draining", machine=None, taints=[DRAIN]),
    node("soft", machine=None, taints=[SOFT]),
    node("both", machine=None, taints=[GPU_TAINT, DRAIN]),
]


def passing(*tolerations: Toleration) -> set[str]:
    snapshot = snapshot_of(NODES)
    result = TaintToleration().filter(CycleState(), pod("p", tolerations=tolerations), snapshot)
    return names(snapshot, result.mask)


def test_no_schedule_and_no_execute_taints_block_a_pod_without_tolerations() -> None:
    assert passing() == {"clean", "soft"}


def test_prefer_no_schedule_taint_never_blocks() -> None:
    assert "soft" in passing()


def test_equal_toleration_needs_key_value_and_effect_to_match() -> None:
    assert passing(Toleration(key="nvidia.com/gpu", value="present", effect="NoSchedule")) == {
        "clean",
        "soft",
        "gpu",
    }
    assert passing(Toleration(key="nvidia.com/gpu", value="absent", effect="NoSchedule")) == {"clean", "soft"}


def test_exists_toleration_ignores_the_value() -> None:
    assert passing(Toleration(key="nvidia.com/gpu", operator="Exists")) == {"clean", "soft", "gpu"}


def test_toleration_without_effect_tolerates_every_effect_of_its_key() -> None:
    assert passing(Toleration(key="drain", value="yes")) == {"clean", "soft", "draining"}


def test_toleration_for_another_effect_does_not_tolerate() -> None:
    assert passing(Toleration(key="drain", value="yes", effect="NoSchedule")) == {"clean", "soft"}


def test_empty_key_with_exists_tolerates_every_taint() -> None:
    assert passing(Toleration(operator="Exists")) == {"clean", "gpu", "draining", "soft", "both"}


def test_empty_key_with_equal_tolerates_nothing() -> None:
    assert passing(Toleration(operator="Equal")) == {"clean", "soft"}


def test_node_with_two_taints_needs_both_tolerated() -> None:
    gpu_only = Toleration(key="nvidia.com/gpu", operator="Exists")
    drain_only = Toleration(key="drain", operator="Exists")

    assert "both" not in passing(gpu_only)
    assert "both" not in passing(drain_only)
    assert "both" in passing(gpu_only, drain_only)


def test_explanation_names_each_node_under_its_first_untolerated_taint() -> None:
    snapshot = snapshot_of(NODES)

    result = TaintToleration().filter(CycleState(), pod("p"), snapshot)

    assert explained(snapshot, result) == {
        "node(s) had untolerated taint {nvidia.com/gpu: present}": {"gpu", "both"},
        "node(s) had untolerated taint {drain: yes}": {"draining"},
    }


def test_explanation_skips_tolerated_taints_when_naming_the_first() -> None:
    snapshot = snapshot_of(NODES)
    tolerant = pod("p", tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists"),))

    result = TaintToleration().filter(CycleState(), tolerant, snapshot)

    assert explained(snapshot, result) == {"node(s) had untolerated taint {drain: yes}": {"draining", "both"}}


def test_cluster_without_blocking_taints_passes_every_node_and_explains_nothing() -> None:
    snapshot = snapshot_of([node("a", machine=None), node("b", machine=None, taints=[SOFT])])

    result = TaintToleration().filter(CycleState(), pod("p"), snapshot)

    assert names(snapshot, result.mask) == {"a", "b"}
    assert result.explain() == []


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_removing_a_taint_from_a_node_opens_it(effect: TaintEffect) -> None:
    sched = cluster(
        [node("a", machine=None, taints=[Taint(key="maint", effect=effect)]), node("b", machine=None)]
    )
    before = TaintToleration().filter(CycleState(), pod("p"), sched.snapshot)
    assert names(sched.snapshot, before.mask) == {"b"}

    sched.cache.set_node(node("a", machine=None))
    sched.cache.update_snapshot(sched.snapshot)
    after = TaintToleration().filter(CycleState(), pod("p"), sched.snapshot)

    assert names(sched.snapshot, after.mask) == {"a", "b"}


def test_taints_stay_readable_after_the_snapshot_grows() -> None:
    # Two distinct taints widen the snapshot's taint matrix; the third node then outgrows the
    # snapshot's two slots, which reallocates every column.
    sched = scheduler(
        [node("a", machine=None, taints=[GPU_TAINT, DRAIN]), node("b", machine=None), node("c", machine=None)]
    )
    snapshot = sched.cache.update_snapshot(Snapshot(capacity=2))

    result = TaintToleration().filter(CycleState(), pod("p"), snapshot)

    assert names(snapshot, result.mask) == {"b", "c"}
