"""The gang queue: order, backoff, parking until a cluster event, and updates."""

from __future__ import annotations

from aisched.framework.events import ClusterEvent
from aisched.framework.types import Gang
from aisched.plugins.priority_sort import PrioritySort
from aisched.queue import GangQueue, QueueState
from tests.support.core import pod


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _gang(name: str, *, priority: int = 0, created: float = 0.0, members: int = 1) -> Gang:
    pods = [pod(f"{name}-{i}", gpus=1, priority=priority) for i in range(members)]
    return Gang(key=f"ml/{name}", members=pods, min_member=members, priority=priority, created=created)


def _queue(clock: Clock) -> GangQueue:
    return GangQueue(less=PrioritySort().less, clock=clock)


def test_pop_follows_queue_sort_priority_then_age() -> None:
    queue = _queue(Clock())
    queue.add(_gang("old-low", priority=0, created=1))
    queue.add(_gang("new-high", priority=10, created=5))
    queue.add(_gang("older-low", priority=0, created=0))
    assert [queue.pop().key for _ in range(3)] == ["ml/new-high", "ml/older-low", "ml/old-low"]  # type: ignore[union-attr]
    assert queue.pop() is None


def test_a_popped_gang_is_not_returned_twice_until_it_is_requeued() -> None:
    clock = Clock()
    queue = _queue(clock)
    gang = _gang("a")
    queue.add(gang)
    assert queue.pop() is gang
    assert queue.pop() is None
    queue.backoff(gang)
    assert queue.pop() is None


def test_backoff_doubles_up_to_the_cap_and_releases_on_time() -> None:
    clock = Clock()
    queue = _queue(clock)
    gang = _gang("a")
    queue.add(gang)
    delays = []
    for _ in range(8):
        assert queue.pop() is gang
        delays.append(queue.backoff(gang, reason="binding failed"))
        assert queue.state(gang.key) is QueueState.BACKOFF
        clock.now += delays[-1] - 0.001
        assert queue.pop() is None, "released early"
        clock.now += 0.001
    assert delays == [1, 2, 4, 8, 10, 10, 10, 10]
    assert queue.pop() is gang


def test_an_unschedulable_gang_waits_for_an_event_that_could_help() -> None:
    clock = Clock()
    queue = _queue(clock)
    gang = _gang("a")
    queue.add(gang)
    queue.pop()
    queue.unschedulable(gang, reason="0/4 nodes are available", hints=frozenset({ClusterEvent.POD_DELETED}))
    clock.now += 3600  # time alone never brings it back
    assert queue.pop() is None
    assert queue.on_event(ClusterEvent.NODE_ADDED) == 0
    assert queue.pop() is None
    assert queue.on_event(ClusterEvent.POD_DELETED) == 1
    assert queue.pop() is gang
    assert queue.reason(gang.key) == "0/4 nodes are available"


def test_an_unschedulable_gang_whose_needed_size_changed_is_tried_again_at_once() -> None:
    clock = Clock()
    queue = _queue(clock)
    gang = _gang("a", members=3)
    short = Gang(key=gang.key, members=gang.members, min_member=4, priority=0, created=0.0)
    queue.add(short)
    queue.pop()
    queue.unschedulable(short, reason="has 3 of its 4 members", hints=frozenset({ClusterEvent.GANG_GREW}))
    queue.add(short)  # the same view again: still parked
    assert queue.pop() is None
    queue.add(gang)  # its PodGroup now asks for 3
    assert queue.pop() is gang


def test_a_woken_gang_behind_the_head_still_waits_out_its_backoff() -> None:
    clock = Clock()
    queue = _queue(clock)
    head, later = _gang("a"), _gang("b")
    queue.add(head)
    queue.add(later)
    assert queue.pop() is head
    assert queue.pop() is later
    queue.unschedulable(head, reason="no room")
    queue.unschedulable(later, reason="no room")
    queue.on_event(ClusterEvent.NODE_ADDED)
    assert queue.state(later.key) is QueueState.BACKOFF
    assert queue.next_ready_at() == 101.0
    assert queue.pop() is head, "the head of the queue is tried at once: the room is for it"
    assert queue.pop() is None
    clock.now = 101.0
    assert queue.pop() is later


def test_a_parked_gang_that_gains_members_is_tried_at_once() -> None:
    clock = Clock()
    queue = _queue(clock)
    queue.add(_gang("job", members=2))
    queue.pop()
    queue.unschedulable(_gang("job", members=2), reason="gang has 2 of its 4 members")
    queue.add(_gang("job", members=4))
    popped = queue.pop()
    assert popped is not None
    assert len(popped.members) == 4


def test_updating_an_active_gang_keeps_one_entry_with_the_new_view() -> None:
    queue = _queue(Clock())
    queue.add(_gang("a", priority=0))
    queue.add(_gang("b", priority=5))
    queue.add(_gang("a", priority=10))  # priority raised while waiting
    first, second = queue.pop(), queue.pop()
    assert [first.key, second.key] == ["ml/a", "ml/b"]  # type: ignore[union-attr]
    assert first.priority == 10  # type: ignore[union-attr]
    assert queue.pop() is None


def test_deleted_and_succeeded_gangs_leave_the_queue() -> None:
    clock = Clock()
    queue = _queue(clock)
    a, b = _gang("a"), _gang("b")
    queue.add(a)
    queue.add(b)
    queue.delete(a.key)
    assert queue.pop() is b
    queue.succeeded(b)
    assert len(queue) == 0
    assert queue.pop() is None


def test_depth_counts_gangs_per_state() -> None:
    clock = Clock()
    queue = _queue(clock)
    gangs = [_gang(n) for n in "abc"]
    for gang in gangs:
        queue.add(gang)
    queue.pop()
    queue.backoff(gangs[0])
    queue.pop()
    queue.unschedulable(gangs[1], reason="x")
    assert queue.depth() == {
        QueueState.ACTIVE: 1,
        QueueState.BACKOFF: 1,
        QueueState.UNSCHEDULABLE: 1,
        QueueState.BLOCKED: 0,
    }


def test_iterating_lists_every_queued_gang_also_those_set_aside_from_their_line() -> None:
    queue = _queue(Clock())
    gangs = [_gang(n) for n in "abc"]
    for gang in gangs:
        queue.add(gang)
    queue.pop()
    queue.unschedulable(gangs[0], reason="too big for any node")
    queue.set_aside(gangs[0].key)
    queue.delete(gangs[2].key)

    assert sorted(queue) == ["ml/a", "ml/b"]
    assert set(queue.positions()) == {"ml/b"}


def test_a_gang_turned_away_thousands_of_times_keeps_the_capped_backoff() -> None:
    clock = Clock()
    queue = _queue(clock)
    gang = _gang("a")
    queue.add(gang)
    for _ in range(3000):
        queue.unschedulable(gang, reason="no room")
    assert queue.backoff(gang) == 10.0
