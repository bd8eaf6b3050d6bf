import dataclasses

from aisched.framework.cycle_state import CycleState
from aisched.framework.types import Toleration
from aisched.plugins.node_unschedulable import (
    COOLING,
    CORDONED,
    NAME,
    NOT_READY,
    UNSCHEDULABLE_TAINT,
    NodeUnschedulable,
    new,
)
from tests.plugins._cluster import explained, names, snapshot_of
from tests.support.core import handle, node, pod

NODES = [
    node("ready", machine=None),
    node("not-ready", machine=None, ready=False),
    node("cordoned", machine=None, unschedulable=True),
    node("not-ready-and-cordoned", machine=None, ready=False, unschedulable=True),
]


def test_only_ready_uncordoned_nodes_pass() -> None:
    snapshot = snapshot_of(NODES)

    result = NodeUnschedulable().filter(CycleState(), pod("p"), snapshot)

    assert names(snapshot, result.mask) == {"ready"}


def test_explanation_tells_not_ready_from_cordoned_and_reports_each_node_once() -> None:
    snapshot = snapshot_of(NODES)

    result = NodeUnschedulable().filter(CycleState(), pod("p"), snapshot)

    assert explained(snapshot, result) == {
        NOT_READY: {"not-ready", "not-ready-and-cordoned"},
        CORDONED: {"cordoned"},
    }
    assert NOT_READY == "node(s) were not ready"
    assert CORDONED == "node(s) were unschedulable"


def test_pod_tolerating_the_unschedulable_taint_may_use_a_cordoned_node() -> None:
    snapshot = snapshot_of(NODES)
    tolerant = pod("p", tolerations=(Toleration(key=UNSCHEDULABLE_TAINT, operator="Exists"),))

    result = NodeUnschedulable().filter(CycleState(), tolerant, snapshot)

    assert names(snapshot, result.mask) == {"ready", "cordoned"}
    assert explained(snapshot, result) == {NOT_READY: {"not-ready", "not-ready-and-cordoned"}}


def test_toleration_for_another_effect_does_not_open_a_cordoned_node() -> None:
    snapshot = snapshot_of(NODES)
    wrong_effect = pod(
        "p", tolerations=(Toleration(key=UNSCHEDULABLE_TAINT, operator="Exists", effect="NoExecute"),)
    )

    result = NodeUnschedulable().filter(CycleState(), wrong_effect, snapshot)

    assert names(snapshot, result.mask) == {"ready"}


def test_empty_key_exists_toleration_tolerates_cordon() -> None:
    snapshot = snapshot_of(NODES)
    everything = pod("p", tolerations=(Toleration(operator="Exists"),))

    result = NodeUnschedulable().filter(CycleState(), everything, snapshot)

    assert names(snapshot, result.mask) == {"ready", "cordoned"}


def test_no_toleration_opens_a_node_that_is_not_ready() -> None:
    snapshot = snapshot_of(NODES)
    everything = pod("p", tolerations=(Toleration(operator="Exists"),))

    result = NodeUnschedulable().filter(CycleState(), everything, snapshot)

    assert not {"not-ready", "not-ready-and-cordoned"} & names(snapshot, result.mask)


def test_plugin_is_static_and_named_by_its_factory() -> None:
    plugin = new({}, handle())

    assert plugin.name == NAME == "NodeUnschedulable"
    assert plugin.static is True


def test_a_node_cooling_down_after_a_fault_is_closed_whatever_the_pod_tolerates() -> None:
    nodes = [node("ready", machine=None), dataclasses.replace(node("cooling", machine=None), cooling=True)]
    snapshot = snapshot_of(nodes)
    tolerant = pod("p", tolerations=(Toleration(operator="Exists"),))

    result = NodeUnschedulable().filter(CycleState(), tolerant, snapshot)

    assert names(snapshot, result.mask) == {"ready"}
    assert explained(snapshot, result) == {COOLING: {"cooling"}}
