"""Where the gang queue and the reservations meet: what happens to a gang the cycle turned away,
and to one that left the queue. The operator's runtime and the simulator both call these, so
queue discipline has one implementation.

A gang turned away is parked until a cluster event that may help (an elastic job's surplus pods
hold nothing and are set aside: they take idle room only). If its line reserves and it is first
in its line, or within the first `CONSERVATIVE_DEPTH` gangs of its line when every one of them up
to it has an estimated run time (conservative backfill), or its pods each need half of the
largest node or more and fewer than `CONSERVATIVE_DEPTH` gangs ahead of it in its line hold (such
a gang waits for nodes to drain, and gangs behind it would refill them), the scheduler holds the
nodes it will start on; otherwise any reservation it held is dropped. A gang held back by its
own tenant's quota holds nothing: it waits for its tenant, not for room. A gang that would not
fit even on an empty cluster (too big for every node, or over its tenant's quota) is set aside
from its line, so that under StrictFIFO it does not block the gangs behind it.

`QueueStatus` is a waiting gang's place as the runtime reports it (the AIJob controller shows it on
the job). A holder's pods are told where it waits by a sentence their verdict ends with
(`queue_note`); `without_queue_note` takes it off again, for a reader with a fresher view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aisched.framework.events import ClusterEvent
from aisched.framework.handle import Clock
from aisched.framework.reservations import Reservation
from aisched.framework.status import Code
from aisched.framework.types import Gang
from aisched.plugins.quota import NAME as QUOTA
from aisched.queue import GangQueue
from aisched.queue.policy import CONSERVATIVE_DEPTH, QueueOf, Strategy
from aisched.scheduler.explain import PlacementVerdict, PreemptionVerdict, QuotaVerdict, quota_verdict
from aisched.scheduler.scheduler import Scheduler, ScheduleResult

__all__ = [
    "POSITIONS_EVERY",
    "Explanation",
    "QueueStatus",
    "attempt",
    "explain",
    "gang_queue",
    "gone",
    "queue_note",
    "turned_away",
    "without_queue_note",
]

#: How stale the positions a `QueueStatus` reports may be (seconds): the runtime ranks every line
#: at most this often, and a gang queued since is at position 0 until the next ranking.
POSITIONS_EVERY: Final = 1.0
_NOTE: Final = " Waiting in queue "


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """A waiting gang's place: its queue (`tenant/<name>` or `namespace/<name>`) and strategy, its
    1-based position there and the queue's length as of the last ranking (`POSITIONS_EVERY`; both
    0 for a gang queued since), its reservation, and why its last attempt failed ("" before one):
    fresher than what its pods' conditions say, which are rewritten only now and then."""

    queue: str
    strategy: Strategy
    position: int
    length: int
    reservation: Reservation | None
    verdict: str = ""
    #: Why, as fields: the last attempt's placement and preemption verdicts, and the gang against
    #: its tenant's quota now (None before an attempt turned it away, or after an error).
    explanation: Explanation | None = None


@dataclass(frozen=True)
class Explanation:
    """A waiting gang's last failed attempt, as fields (`aisched explain`)."""

    placement: PlacementVerdict | None
    quota: QuotaVerdict
    preemption: PreemptionVerdict | None


def explain(scheduler: Scheduler, queue: GangQueue, key: str) -> Explanation | None:
    """Why the queued gang `key` waits: its last refusal's verdicts (kept by `turned_away`) and its
    quota as the ledger stands now; None when no attempt turned it away since it last backed off."""
    result, gang = queue.detail(key), queue.gang(key)
    if not isinstance(result, ScheduleResult) or gang is None:
        return None
    blocked = result.message if result.status.plugin == QUOTA else ""
    return Explanation(
        placement=result.verdict,
        quota=quota_verdict(scheduler.ledger, gang, blocked=blocked),
        preemption=result.preemption,
    )


def queue_note(reservation: Reservation) -> str:
    """The sentence a holder's verdict ends with: ` Waiting in queue tenant/a; reserved: ...`."""
    return f"{_NOTE}{reservation.queue}; {reservation.describe()}."


def without_queue_note(verdict: str) -> str:
    """`verdict` without the `queue_note` it may end with."""
    return verdict.partition(_NOTE)[0]


def gang_queue(scheduler: Scheduler, clock: Clock, queue_of: QueueOf, **options: Any) -> GangQueue:
    """The gang queue for `scheduler`: ordered by its QueueSort, lines by `queue_of`, holders of
    reservations tried at once when woken, and every released reservation a cluster event."""
    framework = scheduler.framework
    queue = GangQueue(
        less=framework.less,
        clock=clock,
        order_version=getattr(framework.queue_sort, "order_version", None),
        queue_of=queue_of,
        holds=lambda key: scheduler.reservations.get(key) is not None,
        **options,
    )

    def released(_: Reservation) -> None:
        queue.on_event(ClusterEvent.RESERVATION_RELEASED)

    scheduler.reservations.subscribe(released)
    scheduler.reservations.rank_by(
        lambda key: queue.queue_priority(key) if queue.state(key) is not None else None
    )
    return queue


def turned_away(
    scheduler: Scheduler, queue: GangQueue, gang: Gang, result: ScheduleResult
) -> Reservation | None:
    """Park `gang` until one of `result.events`; hold its start if it is at the front of its line.
    Returns the reservation it holds now, if any."""
    queue.unschedulable(gang, reason=result.message, hints=result.events, detail=result)
    line = queue.line_of(gang.key)
    if result.status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE or gang.opportunistic:
        # No node could ever take it, or it is an elastic job's surplus, which waits for idle
        # room: either way it holds nothing and holds up no one.
        scheduler.release(gang.key)
        queue.set_aside(gang.key)
        return None
    if result.status.plugin == QUOTA:
        # It waits for its own tenant's quota, not for room: holding nodes would let one tenant's
        # limit keep every other tenant's later gangs off them.
        scheduler.release(gang.key)
        return None
    if line is None or not line[1].reservation or not _at_front(scheduler, queue, gang, line[0]):
        scheduler.release(gang.key)
        return None
    reservation = scheduler.reserve(gang, queue=line[0], priority=queue.queue_priority(gang.key))
    if reservation is None and not scheduler.planner.fits_when_empty(gang):
        queue.set_aside(gang.key)  # it would not fit even on an empty cluster
    return reservation


def attempt(scheduler: Scheduler, queue: GangQueue, gang: Gang) -> ScheduleResult:
    """One cycle for `gang`, popped from `queue`, booked as a loop without I/O books it (the
    simulator, virtual-time tests): placed and bound at once and out of the queue, or turned away.
    The operator's runtime books a placement only once its binding is sent, a nomination once its
    victims are gone; a refusal goes through the same `turned_away`."""
    result = scheduler.schedule(gang)
    if result.placement is None:
        turned_away(scheduler, queue, gang, result)
        return result
    queue.succeeded(gang)
    scheduler.bound(p.pod.key for p in result.placement.pods)
    return result


def gone(scheduler: Scheduler, queue: GangQueue, key: str) -> None:
    """The gang `key` left the queue for good (deleted, or every member placed): forget it, and
    free what was held for it."""
    queue.delete(key)
    scheduler.release(key)


def _at_front(scheduler: Scheduler, queue: GangQueue, gang: Gang, line: str) -> bool:
    if queue.is_head(gang.key):
        return True
    if scheduler.planner.drains(gang):
        # A gang that needs nodes to drain is protected wherever it waits: while fewer than
        # CONSERVATIVE_DEPTH gangs ahead of it in its line hold, it holds too, so that the gangs
        # behind it do not refill every node it could start on.
        ahead = scheduler.reservations.ahead_of(scheduler.reservations.order_for(gang))
        return sum(1 for r in ahead if r.queue == line and r.gang != gang.key) < CONSERVATIVE_DEPTH
    if scheduler.estimates.gang_duration(gang) is None:
        return False  # behind the head only with an estimate: the cheap test before the queue's
    front = queue.front(gang.key, CONSERVATIVE_DEPTH)
    keys = [g.key for g in front]
    if gang.key not in keys:
        return False
    ahead_in_line = front[: keys.index(gang.key) + 1]
    return all(scheduler.estimates.gang_duration(g) is not None for g in ahead_in_line)
