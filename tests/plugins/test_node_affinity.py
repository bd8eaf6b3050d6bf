import pytest

from aisched.framework.cycle_state import CycleState
from aisched.framework.interface import FilterResult
from aisched.framework.types import Operator, PodInfo, Requirement, SelectorTerm
from aisched.plugins.node_affinity import REASON, NodeAffinity
from aisched.topology.snapshot import Snapshot
from tests.plugins._cluster import cluster, explained, names, snapshot_of
from tests.support.core import node, pod

NODES = [
    node("a", machine=None, labels={"zone": "z1", "disk": "ssd", "cores": "8"}),
    node("b", machine=None, labels={"zone": "z2", "disk": "hdd", "cores": "32"}),
    node("c", machine=None, labels={"zone": "z3", "cores": "many"}),
    node("d", machine=None, labels={"zone": "z1", "cores": "64"}),
    node("e", machine=None),
]


def run(p: PodInfo, snapshot: Snapshot | None = None) -> tuple[Snapshot, FilterResult]:
    snapshot = snapshot if snapshot is not None else snapshot_of(NODES)
    result = NodeAffinity().filter(CycleState(), p, snapshot)
    assert result is not None
    return snapshot, result


def passing_selector(*pairs: tuple[str, str]) -> set[str]:
    snapshot, result = run(pod("p", node_selector=tuple(sorted(pairs))))
    return names(snapshot, result.mask)


def passing_terms(*terms: SelectorTerm) -> set[str]:
    snapshot, result = run(pod("p", affinity=terms))
    return names(snapshot, result.mask)


def expr(key: str, operator: Operator, *values: str) -> Requirement:
    return Requirement(key=key, operator=operator, values=values)


def term(*expressions: Requirement) -> SelectorTerm:
    return SelectorTerm(expressions=expressions)


def test_pod_without_selector_or_affinity_is_skipped() -> None:
    assert NodeAffinity().filter(CycleState(), pod("p"), snapshot_of(NODES)) is None


def test_node_selector_matches_nodes_with_that_label_value() -> None:
    assert passing_selector(("zone", "z1")) == {"a", "d"}


def test_node_selector_entries_are_all_required() -> None:
    assert passing_selector(("zone", "z1"), ("disk", "ssd")) == {"a"}


def test_node_selector_value_no_node_has_matches_no_node() -> None:
    assert passing_selector(("zone", "z9")) == set()


def test_node_selector_key_no_node_has_matches_no_node() -> None:
    assert passing_selector(("rack", "r1")) == set()


def test_selector_terms_are_ored() -> None:
    assert passing_terms(term(expr("zone", "In", "z2")), term(expr("disk", "In", "ssd"))) == {"a", "b"}


def test_expressions_within_a_term_are_anded() -> None:
    assert passing_terms(term(expr("zone", "In", "z1"), expr("disk", "In", "ssd"))) == {"a"}


def test_node_selector_and_affinity_must_both_hold() -> None:
    snapshot, result = run(
        pod("p", node_selector=(("zone", "z1"),), affinity=(term(expr("cores", "Gt", "10")),))
    )

    assert names(snapshot, result.mask) == {"d"}


def test_in_matches_any_of_its_values() -> None:
    assert passing_terms(term(expr("zone", "In", "z2", "z3", "z9"))) == {"b", "c"}


def test_not_in_passes_nodes_without_the_label() -> None:
    assert passing_terms(term(expr("disk", "NotIn", "hdd"))) == {"a", "c", "d", "e"}


def test_not_in_with_values_no_node_has_passes_every_node() -> None:
    assert passing_terms(term(expr("zone", "NotIn", "z9"))) == {"a", "b", "c", "d", "e"}


def test_exists_and_does_not_exist_split_nodes_by_label_presence() -> None:
    assert passing_terms(term(expr("disk", "Exists"))) == {"a", "b"}
    assert passing_terms(term(expr("disk", "DoesNotExist"))) == {"c", "d", "e"}


def test_gt_and_lt_compare_label_values_as_integers() -> None:
    assert passing_terms(term(expr("cores", "Gt", "8"))) == {"b", "d"}
    assert passing_terms(term(expr("cores", "Lt", "33"))) == {"a", "b"}


def test_gt_and_lt_fail_nodes_without_the_label() -> None:
    assert "e" not in passing_terms(term(expr("cores", "Lt", "1000")))
    assert "e" not in passing_terms(term(expr("cores", "Gt", "-1000")))


@pytest.mark.parametrize("value", ["many", "8.0", "1e3", "1_000", ""])
def test_gt_and_lt_fail_nodes_whose_label_is_not_an_integer(value: str) -> None:
    snapshot = snapshot_of(
        [node("odd", machine=None, labels={"cores": value}), node("ok", machine=None, labels={"cores": "5"})]
    )

    gt = NodeAffinity().filter(CycleState(), pod("p", affinity=(term(expr("cores", "Gt", "0")),)), snapshot)
    lt = NodeAffinity().filter(
        CycleState(), pod("p", affinity=(term(expr("cores", "Lt", "9999")),)), snapshot
    )

    assert gt is not None
    assert lt is not None
    assert names(snapshot, gt.mask) == {"ok"}
    assert names(snapshot, lt.mask) == {"ok"}


@pytest.mark.parametrize("values", [(), ("ten",), ("1", "2")])
def test_gt_needs_exactly_one_integer_value_or_matches_nothing(values: tuple[str, ...]) -> None:
    assert passing_terms(term(Requirement(key="cores", operator="Gt", values=values))) == set()


def test_match_fields_select_nodes_by_name() -> None:
    by_name = SelectorTerm(fields=(expr("metadata.name", "In", "b", "e", "gone"),))
    not_by_name = SelectorTerm(fields=(expr("metadata.name", "NotIn", "b"),))

    assert passing_terms(by_name) == {"b", "e"}
    assert passing_terms(not_by_name) == {"a", "c", "d", "e"}


def test_match_fields_on_another_field_matches_nothing() -> None:
    assert passing_terms(SelectorTerm(fields=(expr("metadata.uid", "In", "a"),))) == set()


def test_match_fields_and_expressions_of_one_term_are_anded() -> None:
    both = SelectorTerm(
        expressions=(expr("zone", "In", "z1"),), fields=(expr("metadata.name", "In", "a", "b"),)
    )

    assert passing_terms(both) == {"a"}


def test_empty_term_matches_no_node() -> None:
    assert passing_terms(SelectorTerm()) == set()


def test_empty_term_does_not_stop_another_term_from_matching() -> None:
    assert passing_terms(SelectorTerm(), term(expr("zone", "In", "z2"))) == {"b"}


def test_explanation_names_every_rejected_node() -> None:
    snapshot, result = run(pod("p", node_selector=(("zone", "z1"),)))

    assert explained(snapshot, result) == {REASON: {"b", "c", "e"}}
    assert REASON == "node(s) didn't match Pod's node affinity/selector"


def test_label_columns_follow_a_node_whose_labels_change() -> None:
    sched = cluster(NODES)
    selector = pod("p", node_selector=(("zone", "z1"),))
    _, before = run(selector, sched.snapshot)  # materialises the zone column
    assert names(sched.snapshot, before.mask) == {"a", "d"}

    sched.cache.set_node(node("a", machine=None, labels={"zone": "z2"}))
    sched.cache.set_node(node("e", machine=None, labels={"zone": "z1"}))
    sched.cache.update_snapshot(sched.snapshot)
    _, after = run(selector, sched.snapshot)

    assert names(sched.snapshot, after.mask) == {"d", "e"}


def test_label_removed_from_a_node_no_longer_matches() -> None:
    sched = cluster(NODES)
    _, before = run(pod("p", affinity=(term(expr("disk", "Exists")),)), sched.snapshot)
    assert names(sched.snapshot, before.mask) == {"a", "b"}

    sched.cache.set_node(node("a", machine=None, labels={"zone": "z1"}))
    sched.cache.update_snapshot(sched.snapshot)
    _, after = run(pod("p", affinity=(term(expr("disk", "Exists")),)), sched.snapshot)

    assert names(sched.snapshot, after.mask) == {"b"}


def test_node_added_after_a_label_column_exists_is_labelled() -> None:
    sched = cluster(NODES)
    selector = pod("p", node_selector=(("zone", "z3"),))
    run(selector, sched.snapshot)

    sched.cache.set_node(node("f", machine=None, labels={"zone": "z3"}))
    sched.cache.update_snapshot(sched.snapshot)
    _, result = run(selector, sched.snapshot)

    assert names(sched.snapshot, result.mask) == {"c", "f"}
