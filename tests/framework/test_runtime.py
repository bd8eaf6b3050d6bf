from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from aisched.cache import Cache, PodUsage
from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ALL_EVENTS, ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import Bools, FilterResult, Floats, Plugin, Reasons
from aisched.framework.profile import Profile, ScorePluginRef
from aisched.framework.registry import PluginFactory, Registry
from aisched.framework.runtime import Feasibility, Framework
from aisched.framework.status import Code, Status
from aisched.framework.types import Gang, GangPlacement, PodInfo
from aisched.plugins import default_registry, priority_sort
from aisched.topology import resources
from aisched.topology.node import NodeInfo, Taint
from aisched.topology.snapshot import Snapshot
from tests.support.core import gang, handle, node, pod

# -- fakes -------------------------------------------------------------------------------------


@dataclass
class FakeFilter:
    """Rejects the nodes named in `rejects`, giving every one of `reasons`; counts its calls."""

    name: str
    static: bool = True
    rejects: set[str] = field(default_factory=set)
    reasons: tuple[str, ...] = ()
    calls: int = 0

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult:
        self.calls += 1
        mask = np.ones(snapshot.size, dtype=np.bool_)
        for name in self.rejects:
            mask[snapshot.slot_of[name]] = False
        rejected = ~mask
        reasons = self.reasons or (f"rejected by {self.name}",)
        return FilterResult(mask, lambda: [(reason, rejected) for reason in reasons])


@dataclass
class FakeScore:
    """Scores each node by name from `by_node`; skips every pod when `skip` is set."""

    name: str
    by_node: Mapping[str, float]
    skip: bool = False

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return Status.skip(plugin=self.name) if self.skip else Status.success()

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        out = np.zeros(snapshot.size)
        for name, value in self.by_node.items():
            out[snapshot.slot_of[name]] = value
        return out


@dataclass
class PlainScore:
    """A score plugin without a pre-score: always applies."""

    name: str
    value: float

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        return np.full(snapshot.size, self.value)


@dataclass
class NormalisingScore:
    """Raw scores by node name, normalised to 0..100 by the best feasible one; records what it saw."""

    name: str
    by_node: Mapping[str, float]
    seen_feasible: list[set[str]] = field(default_factory=list)
    snapshot: Snapshot | None = None

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Floats:
        self.snapshot = snapshot
        out = np.zeros(snapshot.size)
        for name, value in self.by_node.items():
            out[snapshot.slot_of[name]] = value
        return out

    def normalize(self, scores: Floats, feasible: Bools) -> Floats:
        assert self.snapshot is not None
        self.seen_feasible.append(names(self.snapshot, feasible))
        best = float(scores[feasible].max())
        return np.where(feasible, 100.0 * scores / best, 0.0)


@dataclass
class FakeReserve:
    """Records reserve/unreserve calls in a shared log; reserve answers `status`."""

    name: str
    log: list[str]
    status: Status = field(default_factory=Status.success)

    def reserve(self, state: CycleState, placement: GangPlacement, snapshot: Snapshot) -> Status:
        self.log.append(f"reserve {self.name}")
        return self.status

    def unreserve(self, state: CycleState, placement: GangPlacement, snapshot: Snapshot) -> None:
        self.log.append(f"unreserve {self.name}")


@dataclass
class FakePermit:
    name: str
    log: list[str]
    status: Status = field(default_factory=Status.success)

    def permit(self, state: CycleState, placement: GangPlacement) -> Status:
        self.log.append(self.name)
        return self.status


@dataclass
class FakePreFilter:
    name: str
    log: list[str]
    status: Status = field(default_factory=Status.success)

    def pre_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot) -> Status:
        self.log.append(self.name)
        return self.status


@dataclass
class FakePostFilter:
    name: str
    log: list[str]
    status: Status

    def post_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot, failure: Status) -> Status:
        self.log.append(self.name)
        return self.status


def registry_of(*plugins: Plugin) -> Registry:
    """A registry that hands out these plugin instances by name, plus PrioritySort."""

    def factory(plugin: Plugin) -> PluginFactory:
        return lambda args, handle: plugin

    registry = Registry({p.name: factory(p) for p in plugins})
    registry.register(priority_sort.NAME, priority_sort.new)
    return registry


def framework(*plugins: Plugin, **profile: Any) -> Framework:
    """A framework over `plugins` whose profile names only what `profile` sets."""
    defaults: dict[str, Any] = {
        "queue_sort": "PrioritySort",
        "pre_filter": (),
        "filter": (),
        "post_filter": (),
        "score": (),
    }
    return Framework(Profile(**{**defaults, **profile}), registry_of(*plugins), handle())


def filled(nodes: Iterable[NodeInfo], *, pods: Iterable[PodUsage] = ()) -> tuple[Cache, Snapshot]:
    cache = Cache()
    for info in nodes:
        cache.set_node(info)
    for usage in pods:
        cache.set_pod(usage)
    return cache, cache.update_snapshot(Snapshot())


def names(snapshot: Snapshot, mask: Bools) -> set[str]:
    assert mask.shape == (snapshot.size,)
    return {name for name, slot in snapshot.slot_of.items() if mask[slot]}


def placement_of(p: PodInfo) -> GangPlacement:
    return GangPlacement(gang=Gang.of(p), pods=())


ABC = [node("a", machine=None), node("b", machine=None), node("c", machine=None)]

# -- building ------------------------------------------------------------------------------------


def test_default_profile_builds_with_the_default_registry() -> None:
    fw = Framework(Profile(), default_registry(), handle())

    assert [f.name for f in fw.filters] == list(Profile().filter)
    assert [p.name for p in fw.pre_filters] == ["Gang", "Quota", "Reservation"]
    assert [p.name for p in fw.post_filters] == ["DefaultPreemption"]
    assert [(p.name, w) for p, w in fw.scores] == [
        ("GPUTopology", 2.0),
        ("GPUBinPacking", 1.0),  # MostAllocated over GPUs
        ("LeastAllocated", 1.0),
        ("GPUSharing", 1.0),
    ]
    assert fw.queue_sort.name == "FairShare"


def test_unknown_plugin_name_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="unknown plugin 'NoSuchPlugin'"):
        Framework(Profile(filter=("NodeAffinity", "NoSuchPlugin")), default_registry(), handle())


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (Profile(filter=("PrioritySort",)), "plugin 'PrioritySort' cannot run at filter"),
        (Profile(queue_sort="Gang"), "plugin 'Gang' cannot run at queueSort"),
        (Profile(pre_filter=("ResourceFit",)), "plugin 'ResourceFit' cannot run at preFilter"),
        (Profile(score=(ScorePluginRef(name="NodeAffinity"),)), "plugin 'NodeAffinity' cannot run at score"),
        (Profile(reserve=("GPUTopology",)), "plugin 'GPUTopology' cannot run at reserve"),
        (Profile(permit=("Gang",)), "plugin 'Gang' cannot run at permit"),
        (Profile(post_filter=("GPUHealth",)), "plugin 'GPUHealth' cannot run at postFilter"),
    ],
)
def test_plugin_at_an_extension_point_it_does_not_implement_is_refused(
    profile: Profile, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Framework(profile, default_registry(), handle())


def test_plugin_args_reach_the_factory() -> None:
    seen: list[Mapping[str, Any]] = []

    def factory(args: Mapping[str, Any], handle: Handle) -> Plugin:
        seen.append(args)
        return FakeFilter("Fake")

    registry = registry_of()
    registry.register("Fake", factory)
    Framework(
        Profile(
            queue_sort="PrioritySort",
            pre_filter=(),
            filter=("Fake",),
            post_filter=(),
            score=(),
            plugin_args={"Fake": {"x": 1}},
        ),
        registry,
        handle(),
    )

    assert seen == [{"x": 1}]


def test_plugin_used_at_two_points_is_built_once() -> None:
    built: list[str] = []

    def factory(args: Mapping[str, Any], handle: Handle) -> Plugin:
        built.append("TwoPoints")
        return FakeScore("TwoPoints", {})

    registry = registry_of()
    registry.register("TwoPoints", factory)
    Framework(
        Profile(
            queue_sort="PrioritySort",
            pre_filter=(),
            filter=(),
            post_filter=(),
            score=(ScorePluginRef(name="TwoPoints"),),
            permit=(),
        ),
        registry,
        handle(),
    )

    assert built == ["TwoPoints"]


# -- queue sort and pre-filter -------------------------------------------------------------------


def test_less_is_the_queue_sort_plugins_order() -> None:
    fw = framework()
    high = Gang.of(pod("z", priority=5))
    low = Gang.of(pod("a"))

    assert fw.less(high, low)
    assert not fw.less(low, high)


def test_pre_filter_returns_the_first_failure_named_after_its_plugin() -> None:
    log: list[str] = []
    skip = FakePreFilter("Skipper", log, Status.skip())
    fail = FakePreFilter("Quota", log, Status(Code.UNSCHEDULABLE, ("over quota",)))
    never = FakePreFilter("Never", log)
    fw = framework(skip, fail, never, pre_filter=("Skipper", "Quota", "Never"))
    _, snapshot = filled(ABC)

    status = fw.pre_filter(CycleState(), Gang.of(pod("p")), snapshot)

    assert status == Status(Code.UNSCHEDULABLE, ("over quota",), "Quota")
    assert log == ["Skipper", "Quota"]


def test_pre_filter_keeps_the_plugin_name_a_status_already_carries() -> None:
    fail = FakePreFilter("Outer", [], Status.unschedulable("no", plugin="Inner"))
    fw = framework(fail, pre_filter=("Outer",))
    _, snapshot = filled(ABC)

    assert fw.pre_filter(CycleState(), Gang.of(pod("p")), snapshot).plugin == "Inner"


def test_default_pre_filter_holds_back_an_incomplete_gang() -> None:
    fw = Framework(Profile(), default_registry(), handle())
    _, snapshot = filled(ABC)

    status = fw.pre_filter(CycleState(), gang("g", [pod("w0")], min_member=2), snapshot)

    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE  # only its members can help
    assert status.plugin == "Gang"


# -- filter ----------------------------------------------------------------------------------------


def test_filter_mask_is_the_and_of_every_filter() -> None:
    first = FakeFilter("First", rejects={"a"})
    second = FakeFilter("Second", static=False, rejects={"b"})
    fw = framework(first, second, filter=("First", "Second"))
    _, snapshot = filled(ABC)

    feasibility = fw.filter(CycleState(), pod("p"), snapshot)

    assert names(snapshot, feasibility.mask) == {"c"}


def test_filter_returning_none_says_nothing() -> None:
    @dataclass
    class Silent:
        name: str = "Silent"
        static: bool = False

        def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
            return None

    fw = framework(Silent(), filter=("Silent",))
    _, snapshot = filled(ABC)

    feasibility = fw.filter(CycleState(), pod("p"), snapshot)

    assert names(snapshot, feasibility.mask) == {"a", "b", "c"}
    assert feasibility.results == ()


def test_removed_node_is_never_feasible() -> None:
    fw = framework(FakeFilter("Static"), filter=("Static",))
    cache, snapshot = filled(ABC)
    cache.remove_node("b")
    cache.update_snapshot(snapshot)

    feasibility = fw.filter(CycleState(), pod("p"), snapshot)

    assert not feasibility.mask[1]
    assert names(snapshot, feasibility.mask) == {"a", "c"}


def test_static_filter_runs_once_for_pods_of_one_template() -> None:
    static = FakeFilter("Static")
    dynamic = FakeFilter("Dynamic", static=False)
    fw = framework(static, dynamic, filter=("Static", "Dynamic"))
    _, snapshot = filled(ABC)

    fw.filter(CycleState(), pod("w0", gpus=1), snapshot)
    fw.filter(CycleState(), pod("w1", gpus=1), snapshot)
    fw.filter(CycleState(), pod("w2", gpus=1), snapshot)

    assert static.calls == 1
    assert dynamic.calls == 3


def test_static_filter_runs_again_for_another_template() -> None:
    static = FakeFilter("Static")
    fw = framework(static, filter=("Static",))
    _, snapshot = filled(ABC)

    fw.filter(CycleState(), pod("w0", gpus=1), snapshot)
    fw.filter(CycleState(), pod("w1", gpus=2), snapshot)
    fw.filter(CycleState(), pod("w2", gpus=1, tolerations=()), snapshot)

    assert static.calls == 2


def test_cached_static_answer_is_the_same_as_a_fresh_one() -> None:
    static = FakeFilter("Static", rejects={"b"})
    fw = framework(static, filter=("Static",))
    _, snapshot = filled(ABC)

    first = fw.filter(CycleState(), pod("w0"), snapshot)
    second = fw.filter(CycleState(), pod("w1"), snapshot)

    assert static.calls == 1
    assert names(snapshot, first.mask) == names(snapshot, second.mask) == {"a", "c"}
    assert second.reasons() == Counter({"rejected by Static": 1})


def test_static_cache_is_invalidated_when_a_node_changes() -> None:
    static = FakeFilter("Static")
    fw = framework(static, filter=("Static",))
    cache, snapshot = filled(ABC)
    fw.filter(CycleState(), pod("w0"), snapshot)

    cache.set_node(node("b", machine=None, taints=[Taint(key="k")]))
    cache.update_snapshot(snapshot)
    fw.filter(CycleState(), pod("w1"), snapshot)

    assert static.calls == 2


def test_static_cache_is_invalidated_when_a_node_is_added_or_removed() -> None:
    static = FakeFilter("Static")
    fw = framework(static, filter=("Static",))
    cache, snapshot = filled(ABC)
    fw.filter(CycleState(), pod("w0"), snapshot)

    cache.set_node(node("d", machine=None))
    cache.update_snapshot(snapshot)
    added = fw.filter(CycleState(), pod("w1"), snapshot)
    cache.remove_node("a")
    cache.update_snapshot(snapshot)
    removed = fw.filter(CycleState(), pod("w2"), snapshot)

    assert static.calls == 3
    assert names(snapshot, added.mask) == {"b", "c", "d"}
    assert names(snapshot, removed.mask) == {"b", "c", "d"}


def test_static_cache_survives_pods_coming_and_going() -> None:
    static = FakeFilter("Static")
    fw = framework(static, filter=("Static",))
    cache, snapshot = filled(ABC)
    fw.filter(CycleState(), pod("w0"), snapshot)

    cache.set_pod(PodUsage(key="ml/x", node="a", requests={resources.CPU: 100, resources.PODS: 1}))
    cache.update_snapshot(snapshot)
    fw.filter(CycleState(), pod("w1"), snapshot)

    assert static.calls == 1


def test_dynamic_filter_does_not_spoil_the_cached_static_mask() -> None:
    dynamic = FakeFilter("Dynamic", static=False, rejects={"a", "b"})
    fw = framework(FakeFilter("Static"), dynamic, filter=("Static", "Dynamic"))
    _, snapshot = filled(ABC)
    fw.filter(CycleState(), pod("w0"), snapshot)

    dynamic.rejects = set()
    feasibility = fw.filter(CycleState(), pod("w1"), snapshot)

    assert names(snapshot, feasibility.mask) == {"a", "b", "c"}


# -- reasons -----------------------------------------------------------------------------------------


def test_reasons_count_each_node_once_by_the_first_filter_that_rejected_it() -> None:
    first = FakeFilter("First", rejects={"a"})
    second = FakeFilter("Second", rejects={"a", "b"})
    fw = framework(first, second, filter=("First", "Second"))
    _, snapshot = filled(ABC)

    reasons = fw.filter(CycleState(), pod("p"), snapshot).reasons()

    assert reasons == Counter({"rejected by First": 1, "rejected by Second": 1})


def test_reasons_follow_profile_order_even_when_a_dynamic_filter_comes_first() -> None:
    dynamic = FakeFilter("Dynamic", static=False, rejects={"a"})
    static = FakeFilter("Static", rejects={"a", "b"})
    fw = framework(dynamic, static, filter=("Dynamic", "Static"))
    _, snapshot = filled(ABC)

    reasons = fw.filter(CycleState(), pod("p"), snapshot).reasons()

    assert reasons == Counter({"rejected by Dynamic": 1, "rejected by Static": 1})


def test_all_reasons_a_filter_gives_for_one_node_are_counted() -> None:
    many = FakeFilter("Many", rejects={"a", "b"}, reasons=("Insufficient cpu", "Insufficient memory"))
    fw = framework(many, filter=("Many",))
    _, snapshot = filled(ABC)

    reasons = fw.filter(CycleState(), pod("p"), snapshot).reasons()

    assert reasons == Counter({"Insufficient cpu": 2, "Insufficient memory": 2})


def test_no_reasons_when_every_node_passes() -> None:
    fw = framework(FakeFilter("Static"), filter=("Static",))
    _, snapshot = filled(ABC)

    assert fw.filter(CycleState(), pod("p"), snapshot).reasons() == Counter()


def test_reasons_without_any_filter_result_are_empty() -> None:
    none, every = np.zeros(3, dtype=np.bool_), np.ones(3, dtype=np.bool_)
    assert Feasibility(none, (), every, every).reasons() == Counter()


def test_explanations_are_computed_only_when_reasons_are_asked_for() -> None:
    asked: list[str] = []

    @dataclass
    class Lazy:
        name: str = "Lazy"
        static: bool = False

        def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult:
            mask = np.zeros(snapshot.size, dtype=np.bool_)

            def explain() -> Reasons:
                asked.append("explain")
                return [("nope", ~mask)]

            return FilterResult(mask, explain)

    fw = framework(Lazy(), filter=("Lazy",))
    _, snapshot = filled(ABC)
    feasibility = fw.filter(CycleState(), pod("p"), snapshot)
    assert asked == []

    assert feasibility.reasons() == Counter({"nope": 3})
    assert asked == ["explain"]


def test_removed_nodes_are_not_counted_among_the_rejected() -> None:
    fw = Framework(Profile(filter=("ResourceFit",)), default_registry(), handle())
    cache, snapshot = filled(ABC)
    cache.remove_node("c")
    cache.update_snapshot(snapshot)

    reasons = fw.filter(CycleState(), pod("p", cpu=10**9), snapshot).reasons()

    assert reasons == Counter({"Insufficient cpu": 2})


def test_default_profile_explains_each_rejected_node_by_its_first_failing_filter() -> None:
    fw = Framework(Profile(), default_registry(), handle())
    taint = Taint(key="dedicated", value="infer")
    _, snapshot = filled(
        [
            node("ok"),
            node("cordoned", unschedulable=True),
            node("tainted", taints=[taint]),
            node("v100", machine="dgx1-v100"),
            node("full"),
            node("cordoned-v100", machine="dgx1-v100", unschedulable=True),
        ],
        pods=[
            PodUsage(key="ml/x", node="full", requests={resources.GPU: 8, resources.PODS: 1}, gpu_mask=0xFF)
        ],
    )
    p = pod("p", gpus=8, gpu_models=("H100-80GB",))

    feasibility = fw.filter(CycleState(), p, snapshot)

    assert names(snapshot, feasibility.mask) == {"ok"}
    assert feasibility.reasons() == Counter(
        {
            "node(s) were unschedulable": 2,
            "node(s) had untolerated taint {dedicated: infer}": 1,
            "GPU model not allowed": 1,
            "Insufficient nvidia.com/gpu": 1,
        }
    )


# -- score ---------------------------------------------------------------------------------------------


def everywhere(snapshot: Snapshot) -> Bools:
    return np.ones(snapshot.size, dtype=np.bool_)


def test_score_is_the_weighted_sum_of_the_plugins() -> None:
    one = FakeScore("One", {"a": 10.0, "b": 20.0, "c": 30.0})
    two = FakeScore("Two", {"a": 5.0, "b": 0.0, "c": 1.0})
    fw = framework(
        one, two, score=(ScorePluginRef(name="One", weight=3), ScorePluginRef(name="Two", weight=1))
    )
    _, snapshot = filled(ABC)

    total = fw.score(CycleState(), pod("p"), snapshot, everywhere(snapshot))

    assert {n: float(total[s]) for n, s in snapshot.slot_of.items()} == {"a": 35.0, "b": 60.0, "c": 91.0}


def test_score_plugin_whose_pre_score_skips_is_left_out() -> None:
    kept = FakeScore("Kept", {"a": 1.0, "b": 2.0, "c": 3.0})
    skipped = FakeScore("Skipped", {"a": 100.0}, skip=True)
    fw = framework(
        kept, skipped, score=(ScorePluginRef(name="Kept"), ScorePluginRef(name="Skipped", weight=50))
    )
    _, snapshot = filled(ABC)

    total = fw.score(CycleState(), pod("p"), snapshot, everywhere(snapshot))

    assert total.tolist() == [1.0, 2.0, 3.0]


def test_score_plugin_without_pre_score_always_applies() -> None:
    fw = framework(PlainScore("Plain", 7.0), score=(ScorePluginRef(name="Plain", weight=2),))
    _, snapshot = filled(ABC)

    assert fw.score(CycleState(), pod("p"), snapshot, everywhere(snapshot)).tolist() == [14.0, 14.0, 14.0]


def test_score_is_zero_everywhere_when_no_plugin_applies() -> None:
    fw = framework(FakeScore("Skipped", {"a": 9.0}, skip=True), score=(ScorePluginRef(name="Skipped"),))
    _, snapshot = filled(ABC)

    total = fw.score(CycleState(), pod("p"), snapshot, everywhere(snapshot))

    assert total.shape == (snapshot.size,)
    assert not total.any()


def test_scoring_twice_gives_the_same_answer() -> None:
    one = FakeScore("One", {"a": 10.0, "b": 20.0})
    fw = framework(one, score=(ScorePluginRef(name="One", weight=4),))
    _, snapshot = filled(ABC)

    first = fw.score(CycleState(), pod("p"), snapshot, everywhere(snapshot)).tolist()
    second = fw.score(CycleState(), pod("p"), snapshot, everywhere(snapshot)).tolist()

    assert first == second == [40.0, 80.0, 0.0]


def test_normalising_plugin_rescales_its_raw_scores_over_feasible_nodes_before_the_weight() -> None:
    normalising = NormalisingScore("Norm", {"a": 2.0, "b": 4.0, "c": 400.0})
    plain = PlainScore("Plain", 1.0)
    fw = framework(
        normalising,
        plain,
        score=(ScorePluginRef(name="Norm", weight=2), ScorePluginRef(name="Plain")),
    )
    _, snapshot = filled(ABC)
    feasible = np.zeros(snapshot.size, dtype=np.bool_)
    feasible[[snapshot.slot_of["a"], snapshot.slot_of["b"]]] = True

    total = fw.score(CycleState(), pod("p"), snapshot, feasible)

    assert normalising.seen_feasible == [{"a", "b"}]
    # a: 2/4 → 50, b: 4/4 → 100, both doubled; c is infeasible (its score is not looked at).
    assert float(total[snapshot.slot_of["a"]]) == 101.0
    assert float(total[snapshot.slot_of["b"]]) == 201.0


def test_plugin_without_normalize_is_used_raw() -> None:
    fw = framework(FakeScore("Raw", {"a": 250.0}), score=(ScorePluginRef(name="Raw"),))
    _, snapshot = filled(ABC)

    total = fw.score(CycleState(), pod("p"), snapshot, everywhere(snapshot))

    assert float(total[snapshot.slot_of["a"]]) == 250.0


# -- post-filter, reserve, permit ------------------------------------------------------------------


def test_post_filter_that_makes_room_adds_its_reasons_but_the_cycle_still_fails() -> None:
    log: list[str] = []
    no = FakePostFilter("No", log, Status.unschedulable("cannot preempt", plugin="No"))
    yes = FakePostFilter("Yes", log, Status(Code.SUCCESS, ("preempting ml/low",), "Yes"))
    never = FakePostFilter("Never", log, Status.success())
    fw = framework(no, yes, never, post_filter=("No", "Yes", "Never"))
    _, snapshot = filled(ABC)
    failure = Status.unschedulable("0/3 nodes are available", plugin="ResourceFit")

    status = fw.post_filter(CycleState(), Gang.of(pod("p")), snapshot, failure)

    assert status == Status(
        Code.UNSCHEDULABLE, ("0/3 nodes are available", "preempting ml/low"), "ResourceFit"
    )
    assert log == ["No", "Yes"]


def test_post_filter_without_success_returns_the_original_failure() -> None:
    no = FakePostFilter("No", [], Status.unschedulable("cannot preempt", plugin="No"))
    fw = framework(no, post_filter=("No",))
    _, snapshot = filled(ABC)
    failure = Status.unschedulable("0/3 nodes", plugin="ResourceFit")

    assert fw.post_filter(CycleState(), Gang.of(pod("p")), snapshot, failure) is failure


def test_post_filter_with_no_plugins_returns_the_failure() -> None:
    fw = framework()
    _, snapshot = filled(ABC)
    failure = Status.unresolvable("0/3 nodes", plugin="NodeAffinity")

    assert fw.post_filter(CycleState(), Gang.of(pod("p")), snapshot, failure) is failure


def test_reserve_runs_every_plugin_in_order_when_all_succeed() -> None:
    log: list[str] = []
    fw = framework(FakeReserve("A", log), FakeReserve("B", log), reserve=("A", "B"))
    _, snapshot = filled(ABC)

    status = fw.reserve(CycleState(), placement_of(pod("p")), snapshot)

    assert status.ok
    assert log == ["reserve A", "reserve B"]


def test_reserve_failure_unreserves_in_reverse_order_and_stops() -> None:
    log: list[str] = []
    plugins = [
        FakeReserve("A", log),
        FakeReserve("B", log),
        FakeReserve("C", log, Status(Code.UNSCHEDULABLE, ("GPUs gone",))),
        FakeReserve("D", log),
    ]
    fw = framework(*plugins, reserve=("A", "B", "C", "D"))
    _, snapshot = filled(ABC)

    status = fw.reserve(CycleState(), placement_of(pod("p")), snapshot)

    assert status == Status(Code.UNSCHEDULABLE, ("GPUs gone",), "C")
    # The failing plugin is unreserved too (it may have claimed part); D never reserved.
    assert log == ["reserve A", "reserve B", "reserve C", "unreserve C", "unreserve B", "unreserve A"]


def test_unreserve_gives_back_in_reverse_order() -> None:
    log: list[str] = []
    fw = framework(FakeReserve("A", log), FakeReserve("B", log), reserve=("A", "B"))
    _, snapshot = filled(ABC)

    fw.unreserve(CycleState(), placement_of(pod("p")), snapshot)

    assert log == ["unreserve B", "unreserve A"]


def test_permit_succeeds_when_every_plugin_approves() -> None:
    log: list[str] = []
    fw = framework(FakePermit("A", log), FakePermit("B", log), permit=("A", "B"))

    assert fw.permit(CycleState(), placement_of(pod("p"))) == Status.success()
    assert log == ["A", "B"]


def test_permit_rejection_stops_later_permits() -> None:
    log: list[str] = []
    deny = FakePermit("Deny", log, Status.unschedulable("not now", plugin="Deny"))
    fw = framework(deny, FakePermit("Later", log), permit=("Deny", "Later"))

    status = fw.permit(CycleState(), placement_of(pod("p")))

    assert status == Status.unschedulable("not now", plugin="Deny")
    assert log == ["Deny"]


def test_permit_rejection_keeps_the_plugin_name_it_carries() -> None:
    deny = FakePermit("Deny", [], Status.unschedulable("quota", plugin="Quota"))
    fw = framework(deny, permit=("Deny",))

    status = fw.permit(CycleState(), placement_of(pod("p")))

    assert status.rejected
    assert status.plugin == "Quota"


# -- queueing hints ------------------------------------------------------------------------------


@dataclass
class Hinting:
    name: str
    events: frozenset[ClusterEvent]
    static: bool = True

    def events_to_register(self) -> frozenset[ClusterEvent]:
        return self.events

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        return None


def test_a_gang_turned_away_waits_for_the_events_its_rejectors_registered() -> None:
    labels = Hinting("Labels", frozenset({ClusterEvent.NODE_LABELS_CHANGED}))
    taints = Hinting("Taints", frozenset({ClusterEvent.NODE_TAINTS_CHANGED}))
    fw = framework(labels, taints, filter=("Labels", "Taints"))

    assert fw.events_for({"Labels"}) == {ClusterEvent.NODE_LABELS_CHANGED}
    assert fw.events_for({"Labels", "Taints"}) == {
        ClusterEvent.NODE_LABELS_CHANGED,
        ClusterEvent.NODE_TAINTS_CHANGED,
    }


def test_a_plugin_that_registers_nothing_and_an_unknown_rejector_mean_every_event() -> None:
    fw = framework(FakeFilter("Silent"), filter=("Silent",))

    assert fw.events_for({"Silent"}) == ALL_EVENTS
    assert fw.events_for({"NotAPlugin"}) == ALL_EVENTS
    assert fw.events_for(set()) == ALL_EVENTS


def test_rejectors_are_the_filters_that_turned_away_a_node_first() -> None:
    fw = Framework(Profile(filter=("NodeUnschedulable", "ResourceFit")), default_registry(), handle())
    _, snapshot = filled([node("ok"), node("cordoned", unschedulable=True, gpus=0)])

    feasibility = fw.filter(CycleState(), pod("p", gpus=1), snapshot)

    # ResourceFit would refuse the cordoned node too, but NodeUnschedulable turned it away first.
    assert feasibility.rejectors() == {"NodeUnschedulable"}
    _, short = filled([node("small", gpus=0), node("cordoned", unschedulable=True)])
    assert fw.filter(CycleState(), pod("p", gpus=1), short).rejectors() == {
        "NodeUnschedulable",
        "ResourceFit",
    }
