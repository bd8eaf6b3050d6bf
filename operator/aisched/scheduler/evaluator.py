"""`Evaluator`: preemption's one implementation, run by the operator, the simulator and the tests.

Given a gang that found no place, it lists the running gangs it may evict (whole gangs read from
the cache, filtered and ordered by `scheduler.preemption.candidates`), takes the cheapest few, and
asks for each set it weighs whether the gang would then be placed: a dry run of the scheduling
cycle on a clone of the snapshot with the set's pods written out, judged against a what-if copy
of the quota ledger with their charges released (kube-scheduler's Evaluator works on node clones
the same way). The live cache, snapshot and ledger are never touched. The answer is a
`Nomination`: the fewest victims (with a reprieve pass) and the placement to hold for the gang.

Who may make room: a gang evicts lower-priority gangs (of its own tenant, by its TenantQuota's
`withinTenant`), and a tenant refused what it is guaranteed (or asking no more than it is
guaranteed, on every resource it asks for) reclaims from the tenants of its cohort that borrow.
A victim stays accounted until its pods are gone (the shell deletes them); until then it is
never nominated twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aisched.cache import PodUsage
from aisched.framework.nomination import Nomination, Workload
from aisched.framework.types import Gang, GangPlacement
from aisched.quota import gang_usage
from aisched.scheduler.preemption import candidates, choose_victims

if TYPE_CHECKING:
    from aisched.scheduler.scheduler import Scheduler

__all__ = ["Evaluator"]


class Evaluator:
    """Preemption for one `Scheduler` (see the module's docstring)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._victims: set[str] = set()  # pod keys nominated for eviction, until the cache drops them
        self._priorities: Counter[int] = Counter()  # pods accounted, by priority
        scheduler.cache.subscribe(self._pod_changed)
        #: Dry runs of the scheduling cycle made so far (each costs about one cycle).
        self.dry_runs = 0

    def _pod_changed(self, old: PodUsage | None, new: PodUsage | None) -> None:
        if old is not None:
            self._priorities[old.priority] -= 1
            if not self._priorities[old.priority]:
                del self._priorities[old.priority]
            if new is None:
                self._victims.discard(old.key)
        if new is not None:
            self._priorities[new.priority] += 1

    def evicting(self, pod_key: str) -> bool:
        """Whether the pod was nominated as a victim and is still accounted."""
        return pod_key in self._victims

    def nominate(self, gang: Gang, *, max_candidates: int) -> Nomination | None:
        """The fewest cheapest victims whose eviction lets `gang` be placed, and that placement;
        None when no allowed set of the `max_candidates` cheapest candidates makes room."""
        if not gang.members or gang.size < gang.min_member:
            return None  # an incomplete gang waits for its members, not for room
        self._scheduler.cache.update_snapshot(self._scheduler.snapshot)
        ledger = self._scheduler.ledger
        tenant = ledger.charged_to(gang.tenant, gang.namespace)
        request = gang_usage(gang.members)
        reclaim = tenant is not None and (
            ledger.admit(tenant, request).reclaim or self._within_guarantee(tenant, request)
        )
        own = ledger.tenant(tenant) if tenant is not None else None
        lenders = {
            t.name
            for t in ledger.cohort(own.cohort if own is not None else None)
            if reclaim and t.name != tenant and ledger.borrowed(t.name)
        }
        if not lenders and min(self._priorities, default=gang.priority) >= gang.priority:
            return None  # nobody to reclaim from, and nothing of lower priority runs
        now = self._scheduler.clock()
        ordered = candidates(
            tenant=tenant,
            priority=gang.priority,
            reclaim=reclaim,
            workloads=self._running(below=gang.priority, tenants=lenders),
            ledger=ledger,
            now=now,
        )[:max_candidates]
        if not ordered:
            return None
        tried: dict[frozenset[str], GangPlacement | None] = {}

        def fits(chosen: Sequence[Workload]) -> bool:
            key = frozenset(w.key for w in chosen)
            if key not in tried:
                tried[key] = self._dry_run(gang, chosen)
            return tried[key] is not None

        victims = choose_victims(ordered, fits)
        if victims is None:
            return None
        placement = tried[frozenset(w.key for w in victims)]
        assert placement is not None  # choose_victims returns only sets that fit
        nomination = Nomination(placement=placement, victims=tuple(victims))
        self._victims.update(nomination.victim_pods)
        return nomination

    def _within_guarantee(self, tenant: str, request: dict[str, int]) -> bool:
        """Whether `tenant` asks for no more than it is guaranteed, on every resource it asks for."""
        ledger = self._scheduler.ledger
        found = ledger.tenant(tenant)
        if found is None or not found.guaranteed:
            return False
        used = ledger.used(tenant)
        return all(
            used.get(r, 0) + request.get(r, 0) <= found.guaranteed.get(r, 0)
            for r in found.guaranteed
            if request.get(r, 0)
        )

    def _running(self, *, below: int, tenants: set[str]) -> list[Workload]:
        """The running gangs that could be victims: whole, none of them assumed or already
        nominated, with a member below priority `below` or charged to one of `tenants`."""
        ledger = self._scheduler.ledger
        out = []
        for key, members in self._scheduler.cache.gangs():
            first = next(iter(members.values()))
            charge = ledger.charge_of(first.key)
            tenant = charge[0] if charge is not None else ledger.charged_to(first.tenant, first.namespace)
            if tenant not in tenants and all(m.priority >= below for m in members.values()):
                continue  # the cheap test first: most gangs are no candidate at all
            if any(m.assumed or m.key in self._victims for m in members.values()):
                continue
            out.append(Workload.of(key, members.values(), tenant=tenant))
        return out

    def _dry_run(self, gang: Gang, victims: Sequence[Workload]) -> GangPlacement | None:
        """Where `gang` would go were `victims` gone, on clones (the live state untouched)."""
        scheduler = self._scheduler
        live = scheduler.snapshot
        free = int(live.gpus_free_count().sum())
        if free + sum(v.whole_gpus for v in victims) < gang.total_gpus():
            return None  # not enough GPUs by count alone: no need for a cycle
        self.dry_runs += 1
        return scheduler.dry_run_without(gang, [usage.key for victim in victims for usage in victim.pods])
