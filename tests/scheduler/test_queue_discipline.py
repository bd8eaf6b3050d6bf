"""Queue discipline in the core: submission order, StrictFIFO, reservations and backfill, aging.

The bursts are whole-node gangs whose sizes, in submission order, fill the cluster exactly in
waves of equal run time (the queue benchmark's scenario, in virtual time): the optimal makespan
is waves x run time.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from aisched.framework.events import ClusterEvent
from aisched.framework.reservations import Reservation, order_of
from aisched.framework.types import Gang
from aisched.plugins.reservation import RESERVED
from aisched.queue import GangQueue, QueueState
from aisched.queue.policy import CONSERVATIVE_DEPTH, QueueingPolicy
from aisched.quota import GPU_MILLI, Tenant
from aisched.scheduler import Scheduler
from aisched.scheduler.queueing import gang_queue, gone, queue_note, turned_away, without_queue_note
from aisched.scheduler.usage import pod_usage
from tests.support.core import node, pod
from tests.support.queueing import Clock, run_burst, whole_node_gang

STRICT = QueueingPolicy(strategy="StrictFIFO")
BEST_EFFORT = QueueingPolicy(strategy="BestEffortFIFO")
TODAY = QueueingPolicy(strategy="BestEffortFIFO", reservation=False)


def _burst(rng: random.Random, *, nodes: int, waves: int, limit: float | None) -> list[Gang]:
    sizes: list[int] = []
    for _ in range(waves):
        left = nodes
        while left:
            size = rng.randint(1, left)
            sizes.append(size)
            left -= size
    return [whole_node_gang(f"j{i}", size, index=i, runtime_limit=limit) for i, size in enumerate(sizes)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), waves=st.integers(2, 5), limits=st.booleans())
def test_under_strict_fifo_no_later_gang_starts_before_an_earlier_one(
    seed: int, waves: int, limits: bool
) -> None:
    gangs = _burst(random.Random(seed), nodes=8, waves=waves, limit=12.0 if limits else None)
    run = run_burst(gangs, nodes=8, policy=STRICT, run=6.0, seed=seed)
    assert run.overtakes() == 0
    order = [run.started[g.key] for g in gangs]
    assert order == sorted(order)
    assert run.makespan <= waves * 6.0 * 1.05


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), waves=st.integers(2, 5))
def test_best_effort_fifo_with_estimates_fills_the_waves_without_delaying_them(seed: int, waves: int) -> None:
    gangs = _burst(random.Random(seed), nodes=8, waves=waves, limit=12.0)
    run = run_burst(gangs, nodes=8, policy=BEST_EFFORT, run=6.0, seed=seed)
    assert len(run.started) == len(gangs)
    assert run.makespan <= waves * 6.0 * 1.05


def test_without_reservations_small_gangs_overtake_and_the_waves_stretch() -> None:
    """The behaviour queue discipline fixes, shown on the same burst: the measure can fail."""
    gangs = _burst(random.Random(7), nodes=16, waves=6, limit=12.0)
    today = run_burst(gangs, nodes=16, policy=TODAY, run=6.0)
    strict = run_burst(gangs, nodes=16, policy=STRICT, run=6.0)
    assert strict.makespan <= 6 * 6.0 * 1.05 < today.makespan
    assert today.overtakes() > 0 == strict.overtakes()


# -- reservations ------------------------------------------------------------------------------


class _World:
    """Four whole-node pods running with known ends (limits), a queue over the core."""

    def __init__(
        self, *, ends: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0), policy: QueueingPolicy = BEST_EFFORT
    ) -> None:
        self.clock = Clock()
        self.scheduler = Scheduler(clock=self.clock)
        for i, end in enumerate(ends):
            name = f"n{i}"
            self.scheduler.cache.set_node(node(name))
            running = pod(f"run-{i}", gpus=8, namespace="other", runtime_limit=end)
            self.scheduler.cache.set_pod(pod_usage(running, node=name, gang=running.key, started=0.0))
        self.queue: GangQueue = gang_queue(self.scheduler, self.clock, lambda _: ("ml", policy))

    def turn_away(self, gang: Gang) -> Reservation | None:
        self.queue.add(gang)
        popped = self.queue.pop()
        assert popped is not None
        assert popped.key == gang.key
        result = self.scheduler.schedule(gang)
        assert result.placement is None
        return turned_away(self.scheduler, self.queue, gang, result)


def test_a_blocked_head_holds_the_nodes_that_free_first_from_when_they_do() -> None:
    world = _World()
    head = whole_node_gang("head", 2, index=0, runtime_limit=50.0)
    reservation = world.turn_away(head)
    assert reservation is not None
    assert sorted(reservation.nodes) == ["n0", "n1"]
    assert reservation.start == 20.0
    assert reservation.end == 70.0
    assert reservation.gpus == 16
    assert reservation.ready_nodes == 0
    assert reservation.describe() == "reserved: 0 of 2 nodes held since 00:00:00Z, expected start 00:00:20Z"
    assert reservation.spare == (), "enforced limits say which nodes free first: only those are held"


def test_a_holders_verdict_names_its_queue_and_a_fresher_reader_can_take_that_off() -> None:
    world = _World()
    reservation = world.turn_away(whole_node_gang("head", 2, index=0, runtime_limit=50.0))
    assert reservation is not None
    verdict = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu." + queue_note(reservation)
    assert verdict.endswith(f" Waiting in queue ml; {reservation.describe()}.")
    assert without_queue_note(verdict) == "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
    assert without_queue_note("no node fits") == "no node fits"


def test_a_backfilled_gang_never_delays_the_heads_computed_start() -> None:
    world = _World()
    head = whole_node_gang("head", 2, index=0, runtime_limit=50.0)
    reserved = world.turn_away(head)
    assert reserved is not None
    assert reserved.start == 20.0
    world.clock.now = 10.0  # n0 frees: a short job ends before the head starts, a long one would not
    world.scheduler.cache.remove_pod("other/run-0")
    long = whole_node_gang("long", 1, index=1, runtime_limit=30.0)
    result = world.scheduler.schedule(long)
    assert result.placement is None
    assert RESERVED in result.message
    short = whole_node_gang("short", 1, index=2, runtime_limit=5.0)
    placed = world.scheduler.schedule(short)
    assert placed.placement is not None
    assert placed.placement.pods[0].node == "n0"
    world.scheduler.release(head.key)  # plan afresh: the backfill must not have moved the start
    again = world.scheduler.reserve(head, queue="ml", priority=0)
    assert again is not None
    assert again.start is not None
    assert again.start <= reserved.start


def test_a_gang_ahead_of_the_holder_ignores_the_reservation() -> None:
    world = _World()
    head = whole_node_gang("head", 2, index=5, runtime_limit=50.0)
    assert world.turn_away(head) is not None
    world.scheduler.cache.remove_pod("other/run-0")
    urgent = Gang(**{**vars(whole_node_gang("urgent", 1, index=9)), "priority": 10})
    earlier = whole_node_gang("earlier", 1, index=1)
    assert world.scheduler.schedule(urgent).placement is not None
    world.scheduler.cache.remove_pod("other/run-1")
    assert world.scheduler.schedule(earlier).placement is not None


def test_without_estimates_the_nodes_are_held_as_they_free_and_the_start_is_unknown() -> None:
    world = _World()
    head = whole_node_gang("head", 2, index=0)
    for i in range(4):  # running pods without limits
        world.scheduler.cache.remove_pod(f"other/run-{i}")
        unbounded = pod(f"free-{i}", gpus=8, namespace="other")
        world.scheduler.cache.set_pod(
            pod_usage(unbounded, node=f"n{i}", gang=unbounded.key, started=float(-i))
        )
    reservation = world.turn_away(head)
    assert reservation is not None
    assert reservation.start is None
    assert reservation.guess is not None
    assert "start unknown" in reservation.describe()
    world.scheduler.cache.remove_pod(f"other/free-{reservation.nodes[0][1]}")
    backfill = whole_node_gang("backfill", 1, index=1, runtime_limit=1.0)
    assert world.scheduler.schedule(backfill).placement is None, "a held node is not lent without a start"


def _kept_off(world: _World, gang: Gang, *, by: Gang) -> None:
    """`gang` is refused while `by` holds its reservation, and placed once that is released."""
    refused = world.scheduler.schedule(gang)
    assert refused.placement is None
    assert RESERVED in refused.message
    world.scheduler.release(by.key)
    assert world.scheduler.schedule(gang).placement is not None, f"only {by.key}'s hold kept it off"


def _unbounded(world: _World, gpus: int = 8) -> None:
    """Replace the running pods by ones without limits, n3 the youngest (guessed to end first)."""
    for i in range(4):
        world.scheduler.cache.remove_pod(f"other/run-{i}")
        running = pod(f"free-{i}", gpus=gpus, namespace="other")
        usage = pod_usage(running, node=f"n{i}", gang=running.key, started=float(-10 + i))
        world.scheduler.cache.set_pod(usage)


def test_a_head_needing_whole_nodes_without_enforced_ends_holds_every_node_it_could_start_on() -> None:
    world = _World()
    _unbounded(world)
    head = whole_node_gang("head", 1, index=0)
    reservation = world.turn_away(head)
    assert reservation is not None
    assert reservation.nodes == ("n3",), "planned where the guess says a node frees first"
    assert sorted(reservation.spare) == ["n0", "n1", "n2"]
    assert "(and 3 more it could start on, until one is ready)" in reservation.describe()
    world.scheduler.cache.remove_pod("other/free-0")  # the guess was wrong: n0 drains first
    later = whole_node_gang("later", 1, index=1, runtime_limit=1.0)
    refused = world.scheduler.schedule(later)
    assert refused.placement is None
    assert RESERVED in refused.message, "a spare node is held from the gangs behind"
    started = world.scheduler.schedule(head)
    assert started.placement is not None
    assert started.placement.pods[0].node == "n0", "the head starts on whichever node is ready first"
    assert world.scheduler.reservations.get(head.key) is None


def test_a_head_with_learned_estimates_only_holds_spares_too() -> None:
    world = _World()
    _unbounded(world)
    for _ in range(5):  # whole-node pods of "other" have run 30 s: estimates, not limits
        world.scheduler.estimates.learn(("other", "gpus:8/0"), 30.0)
    reservation = world.turn_away(whole_node_gang("head", 1, index=0))
    assert reservation is not None
    assert reservation.start is not None, "learned estimates still plan a start"
    assert len(reservation.spare) == 3, "but they promise nothing: every node it could use is held"


def test_a_head_of_small_pods_holds_only_its_planned_node() -> None:
    world = _World()
    _unbounded(world)
    small = Gang.of(pod("small", gpus=2, created=0.0))  # one GPU freeing anywhere serves it
    reservation = world.turn_away(small)
    assert reservation is not None
    assert len(reservation.nodes) == 1
    assert reservation.spare == ()


def test_a_gang_needing_whole_nodes_is_protected_behind_the_head_of_its_line() -> None:
    world = _World()
    _unbounded(world, gpus=7)  # one GPU free on each node, taken by pods without a limit
    head = Gang.of(pod("head", gpus=2, created=0.0, sequence=0))  # a small head: holds one node
    assert world.turn_away(head) is not None
    big = whole_node_gang("big", 1, index=1)
    held = world.turn_away(big)
    assert held is not None, "not first in its line, yet it holds: it waits for a node to drain"
    assert len(held.nodes) + len(held.spare) == 4
    small = Gang.of(pod("small", gpus=1, created=1.0, sequence=2))
    _kept_off(world, small, by=big)  # a later small gang does not refill the nodes the big one waits on


def test_no_more_than_the_conservative_depth_of_gangs_hold_in_one_line() -> None:
    world = _World(ends=tuple(10.0 * (i + 1) for i in range(CONSERVATIVE_DEPTH + 4)))
    held = [world.turn_away(whole_node_gang(f"g{i}", 1, index=i)) for i in range(CONSERVATIVE_DEPTH + 2)]
    assert all(r is not None for r in held[:CONSERVATIVE_DEPTH]), "the head, and those behind it"
    assert held[CONSERVATIVE_DEPTH:] == [None, None], "each with fewer than the depth holding ahead"
    nodes = [r.nodes for r in held if r is not None]
    assert len(set(nodes)) == len(nodes), "each planned on a node of its own"


def test_a_replanned_hold_blocks_its_new_nodes_only() -> None:
    world = _World()
    for i in range(4):
        world.scheduler.cache.remove_pod(f"other/run-{i}")  # an empty cluster
    book = world.scheduler.reservations
    held = Reservation(gang="ml/gang:head", queue="ml", order=(0, -1.0, 0, "ml/gang:head"), nodes=("n0",),
                       start=None, end=None, since=0.0, wants=(8,), spare=("n1", "n2"))  # fmt: skip
    book.hold(held)
    later = whole_node_gang("later", 3, index=1)
    assert world.scheduler.schedule(later).placement is None, "n0-n2 are held: three nodes not free"
    book.hold(replace(held, nodes=("n3",), spare=()))
    placed = world.scheduler.schedule(later)
    assert placed.placement is not None
    assert sorted(p.node for p in placed.placement.pods) == ["n0", "n1", "n2"]
    world.scheduler.forget(placed.placement)
    world.scheduler.cache.remove_node("n0")  # the nodes change: slots are looked up again
    assert world.scheduler.schedule(later).placement is None


def test_a_gang_waiting_for_its_own_tenants_quota_holds_no_node_from_other_tenants() -> None:
    world = _World()
    world.scheduler.ledger.set_tenants(
        [
            Tenant(name="research", namespaces=frozenset({"ml"}), maximum={GPU_MILLI: 8000}),
            Tenant(name="inference", namespaces=frozenset({"serve"})),
        ]
    )
    _unbounded(world)
    running = pod("mine", gpus=8, namespace="ml")  # research is at its maximum of 8 GPUs
    world.scheduler.cache.remove_pod("other/free-0")
    world.scheduler.cache.set_pod(pod_usage(running, node="n0", gang=running.key, started=0.0))
    head = whole_node_gang("head", 1, index=0)
    assert world.turn_away(head) is None, "held back by its own quota: it holds nothing"
    assert world.scheduler.reservations.get(head.key) is None
    world.scheduler.cache.remove_pod("other/free-1")  # n1 frees
    later = Gang.of(replace(pod("serve-job", gpus=8, namespace="serve"), created=5.0, sequence=9))
    placed = world.scheduler.schedule(later)
    assert placed.placement is not None, "another tenant's later gang takes the room"
    assert placed.placement.pods[0].node == "n1"


def test_a_deleted_head_releases_its_reservation_and_wakes_who_it_blocked() -> None:
    world = _World()
    head = whole_node_gang("head", 2, index=0, runtime_limit=50.0)
    assert world.turn_away(head) is not None
    world.scheduler.cache.remove_pod("other/run-0")
    blocked = whole_node_gang("blocked", 1, index=1, runtime_limit=30.0)
    world.queue.add(blocked)
    assert world.queue.pop() is blocked
    result = world.scheduler.schedule(blocked)
    assert result.placement is None
    assert ClusterEvent.RESERVATION_RELEASED in result.events
    world.queue.unschedulable(blocked, reason=result.message, hints=result.events)
    gone(world.scheduler, world.queue, head.key)
    assert world.scheduler.reservations.get(head.key) is None
    assert world.queue.state(blocked.key) in (QueueState.ACTIVE, QueueState.BACKOFF)
    assert world.scheduler.schedule(blocked).placement is not None


def test_a_standing_reservation_is_kept_until_its_start_passes() -> None:
    world = _World()
    head = whole_node_gang("head", 2, index=0, runtime_limit=50.0)
    first = world.turn_away(head)
    runs = world.scheduler.planner.dry_runs
    world.clock.now = 5.0
    assert world.scheduler.reserve(head, queue="ml", priority=0) == first
    assert world.scheduler.planner.dry_runs == runs, "kept without a dry run"
    world.clock.now = 25.0  # overdue: planned again
    world.scheduler.reserve(head, queue="ml", priority=0)
    assert world.scheduler.planner.dry_runs > runs


def test_only_the_front_of_a_line_reserves() -> None:
    world = _World()
    gangs = [Gang.of(pod(f"g{i}", gpus=2, created=float(i), sequence=i)) for i in range(3)]
    reservations = [world.turn_away(g) for g in gangs]  # no estimates: EASY, the head only
    assert reservations[0] is not None
    assert reservations[1:] == [None, None]


def test_a_gang_needing_whole_nodes_that_none_can_be_planned_for_yet_still_keeps_the_later_ones_off() -> None:
    world = _World()
    _unbounded(world)
    first, second = (whole_node_gang(f"g{i}", 4, index=i) for i in range(2))  # all four nodes each
    assert world.turn_away(first) is not None
    behind = world.turn_away(second)
    assert behind is not None, "the first holds every node: no start can be planned, yet it holds"
    assert behind.nodes == ()
    assert behind.start is None
    assert sorted(behind.spare) == ["n0", "n1", "n2", "n3"]
    assert behind.ahead == (first.key,)
    world.scheduler.release(first.key)  # say the first is deleted: the second's hold still stands
    world.scheduler.cache.remove_pod("other/free-0")
    later = whole_node_gang("later", 1, index=2, runtime_limit=1.0)
    _kept_off(world, later, by=second)  # a later gang does not take the node the second waits on


# -- order -------------------------------------------------------------------------------------


def test_jobs_created_in_the_same_second_keep_their_submission_order() -> None:
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    queue = gang_queue(scheduler, clock, lambda _: ("ml", STRICT))
    gangs = [
        Gang(key=f"ml/gang:j{i}", members=(pod(f"j{i}", created=100.0, sequence=1000 + i),), min_member=1,
             created=100.0, sequence=1000 + i)
        for i in (10, 2, 1)
    ]  # fmt: skip
    for gang in gangs:
        queue.add(gang)
    assert [g.key for g in queue.front("ml/gang:j1", 3)] == ["ml/gang:j1", "ml/gang:j2", "ml/gang:j10"]
    assert queue.pop() is gangs[2]
    assert queue.pop() is None, "StrictFIFO hands out only the head"
    assert queue.state("ml/gang:j2") is QueueState.BLOCKED


def test_aging_lifts_a_waiting_gang_within_its_band_only() -> None:
    policy = QueueingPolicy(aging_interval=60, aging_step=5, aging_max_boost=500, band_width=1000)
    assert policy.queue_priority(0, 59) == 0
    assert policy.queue_priority(0, 600) == 50
    assert policy.queue_priority(990, 600) == 999, "never into the next band"
    assert policy.queue_priority(0, 10**6) == 500
    assert QueueingPolicy(aging_interval=0).queue_priority(3, 10**6) == 3


def test_under_strict_fifo_aging_puts_a_starved_low_priority_gang_first() -> None:
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    policy = QueueingPolicy(strategy="StrictFIFO", aging_interval=10, aging_step=1, aging_max_boost=50)
    queue = gang_queue(scheduler, clock, lambda _: ("ml", policy))
    old = whole_node_gang("old", 1, index=0)
    queue.add(old)
    clock.now = 100.0  # old has aged by 10
    new = Gang(**{**vars(whole_node_gang("new", 1, index=1)), "priority": 5})
    queue.add(new)
    assert queue.is_head(old.key)
    assert queue.queue_priority(old.key) == 10
    assert order_of(new) > order_of(old, queue.queue_priority(old.key))


def test_a_head_that_fits_nowhere_even_empty_does_not_block_its_strict_fifo_queue() -> None:
    world = _World(policy=STRICT)
    impossible = whole_node_gang("impossible", 5, index=0)  # five whole nodes on a four-node cluster
    assert world.turn_away(impossible) is None
    assert world.queue.line_of(impossible.key) is not None
    later = whole_node_gang("later", 1, index=1)
    world.queue.add(later)
    assert world.queue.is_head(later.key)
    assert world.queue.pop() is later
    world.queue.on_event(ClusterEvent.NODE_ADDED)  # a node came: it is tried again, first in line
    assert world.queue.is_head(impossible.key)


def test_a_gang_kept_from_planning_only_by_its_own_missing_limit_holds_nothing_behind() -> None:
    world = _World()  # every running pod has an enforced limit
    head = whole_node_gang("head", 1, index=0, runtime_limit=50.0)
    assert world.turn_away(head) is not None  # holds one node, with a promised start
    big = whole_node_gang("big", 4, index=1)  # needs all four; no limit, so no end to plan around
    assert world.turn_away(big) is None, "the head leaves it nodes: no hold on all of them"
    world.scheduler.cache.remove_pod("other/run-3")
    short = whole_node_gang("short", 1, index=2, runtime_limit=5.0)
    assert world.scheduler.schedule(short).placement is not None, "a free node nobody holds is used"


def test_a_hold_behind_holders_is_planned_again_when_their_expected_start_passes() -> None:
    world = _World()
    _unbounded(world)
    first, second = (whole_node_gang(f"g{i}", 4, index=i) for i in range(2))
    ahead = world.turn_away(first)
    assert ahead is not None
    behind = world.turn_away(second)
    assert behind is not None
    assert behind.guess == ahead.guess, "planned again once the first is expected to have started"
    assert "behind 1 gang(s) ahead that hold them" in behind.describe()
    assert behind.ready_nodes == 0


def test_a_head_held_back_only_by_reservations_ahead_keeps_its_place_in_its_line() -> None:
    world = _World()
    world.queue = gang_queue(world.scheduler, world.clock, lambda g: (g.namespace, STRICT))
    first = whole_node_gang("first", 4, index=0, runtime_limit=50.0)  # holds all four nodes
    assert world.turn_away(first) is not None
    other = Gang(**{**vars(whole_node_gang("other", 1, index=1)), "key": "team/gang:other"})
    other = Gang(**{**vars(other), "members": tuple(replace(m, namespace="team") for m in other.members)})
    assert world.turn_away(other) is None, "no estimate: nothing it may hold beside the first's nodes"
    assert world.queue.is_head(other.key), "it fits an empty cluster: not set aside from its line"


def test_a_learned_estimate_never_admits_a_backfill_onto_a_held_node() -> None:
    world = _World()
    head = whole_node_gang("head", 2, index=0, runtime_limit=50.0)
    assert world.turn_away(head) is not None
    world.clock.now = 10.0
    world.scheduler.cache.remove_pod("other/run-0")  # n0 is free and held
    for _ in range(5):  # the namespace teaches its class that whole-node pods run 1 s
        world.scheduler.estimates.learn(("ml", "gpus:8/0"), 1.0)
    unbounded = whole_node_gang("steered", 1, index=1)
    assert world.scheduler.estimates.gang_duration(unbounded) == 1.0
    assert world.scheduler.schedule(unbounded).placement is None


def test_an_elastic_jobs_surplus_at_the_front_holds_nothing_and_holds_up_no_one() -> None:
    world = _World(policy=QueueingPolicy(strategy="StrictFIFO"))
    surplus = replace(Gang.of(replace(pod("grow", gpus=8, namespace="ml"), surplus=True)), created=0.0)
    assert surplus.opportunistic
    assert world.turn_away(surplus) is None
    assert world.scheduler.reservations.get(surplus.key) is None
    later = whole_node_gang("later", 1, index=1)
    world.queue.add(later)
    assert world.queue.is_head(later.key), "set aside: the StrictFIFO line is not blocked by it"
