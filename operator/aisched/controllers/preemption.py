"""The operator's side of preemption: find victims on the live cache, hold the room, evict.

When a gang cannot be placed, `Preemptor.preempt_for` lists the running gangs it may evict
(`aisched.scheduler.preemption.candidates`), asks the real scheduler whether the gang would fit
without a set of them (a what-if on the cache, undone at once), and picks the fewest. It then
takes the victims out of the cache, places the gang in the room they leave and holds that
placement, assumed but not bound: nobody else can take the room while the victims shut down.
Their pods are annotated (`aisched.io/preempted-by`, which the AIJob controller reads to requeue
the job rather than fail it) and deleted, with their job's checkpoint grace period. Once every
victim pod is gone the held placement is bound like any other.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from aisched.api import keys
from aisched.controllers.gangs import gang_key
from aisched.framework.types import Gang, GangPlacement, PodInfo
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject
from aisched.kube.retry import Backoff
from aisched.observability.logging import get_logger
from aisched.quota import GPU_MILLI, gang_usage
from aisched.scheduler.preemption import Workload, candidates, choose_victims

if TYPE_CHECKING:
    from aisched.controllers.runtime import SchedulerRuntime

__all__ = ["MAX_CANDIDATES", "Preemptor"]

log = get_logger(__name__)

_TERMINAL: Final = frozenset({"Succeeded", "Failed"})
_NOT_FOUND: Final = 404
_RETRY: Final = Backoff(initial=0.5, cap=30.0)
#: Victim candidates weighed per preemption attempt (cheapest first): each costs up to two what-ifs.
MAX_CANDIDATES: Final = 32


class Preemptor:
    """Preemption for one `SchedulerRuntime` (see the module's docstring)."""

    def __init__(self, runtime: SchedulerRuntime, *, wall: Callable[[], float]) -> None:
        """`wall` is wall-clock time in epoch seconds (pods' start times are)."""
        self._runtime = runtime
        self._wall = wall
        self._evicting: dict[str, str] = {}  # victim pod key -> the gang it makes room for
        self._held: dict[str, tuple[GangPlacement, set[str]]] = {}  # gang -> placement, victims left
        self.ready: list[GangPlacement] = []  # held placements whose victims are all gone
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the runtime's hooks -------------------------------------------------------------------

    def evicting(self, pod_key: str) -> bool:
        return pod_key in self._evicting

    def holds(self, gang: str) -> bool:
        return gang in self._held

    def gone(self, pod_key: str) -> None:
        """A victim pod is gone (or ended): release its gang's held placement once all are."""
        gang = self._evicting.pop(pod_key, None)
        if gang is None or gang not in self._held:
            return
        placement, left = self._held[gang]
        left.discard(pod_key)
        if not left:
            del self._held[gang]
            self.ready.append(placement)

    def member_gone(self, pod_key: str) -> None:
        """A pod of a held gang is gone (its job deleted or restarted): the hold ends. Its other
        members' assumed places are dropped; the victims, already told to go, still go, and stay
        accounted until they have."""
        for gang, (placement, _) in list(self._held.items()):
            keys_held = [p.pod.key for p in placement.pods]
            if pod_key in keys_held:
                del self._held[gang]
                self._runtime.drop_assumed(k for k in keys_held if k != pod_key)
                log.bind(gang=gang).info("preemption_hold_dropped", pod=pod_key)

    def preempt_for(self, gang: Gang) -> GangPlacement | None:
        """Make room for `gang` by evicting whole gangs; the placement now held for it, or None."""
        runtime = self._runtime
        quota = runtime.quota
        if quota is None or gang.key in self._held or gang.size < gang.min_member:
            return None  # an incomplete gang waits for its members, not for room
        tenant = quota.gang_tenant(gang)
        request = gang_usage(gang.members)
        # Over its own quota, only its own lower-priority gangs can make room (the what-if below
        # runs the Quota check with the victims' charges released); others' only when reclaiming.
        admission = quota.admit(tenant, request) if tenant is not None else None
        found = self._tenant_guaranteed(tenant, request)
        now = self._wall()
        reclaim = bool(admission is not None and admission.reclaim) or found
        own = quota.tenant(tenant) if tenant is not None else None
        lenders = {
            t.name
            for t in quota.cohort(own.cohort if own is not None else None)
            if reclaim and t.name != tenant and quota.borrowed(t.name)
        }
        ordered = candidates(
            tenant=tenant,
            priority=gang.priority,
            reclaim=reclaim,
            workloads=self._workloads(below=gang.priority, tenants=lenders),
            ledger=quota,
            now=now,
        )
        if not ordered:
            return None
        # Each what-if is a full scheduling cycle: try the cheapest few only.
        victims = choose_victims(ordered[:MAX_CANDIDATES], lambda chosen: self._fits(gang, chosen))
        if victims is None:
            return None
        return self._hold(gang, victims)

    # -- internals -------------------------------------------------------------------------------

    def _tenant_of(self, obj: JsonObject) -> str | None:
        meta = obj.get("metadata") or {}
        named = (meta.get("annotations") or {}).get(keys.ANNOTATION_TENANT)
        quota = self._runtime.quota
        return quota.charged_to(named, meta.get("namespace") or "default") if quota else named

    def _tenant_guaranteed(self, tenant: str | None, request: dict[str, int]) -> bool:
        """Whether `tenant` asks for no more than it is guaranteed (so it may reclaim)."""
        quota = self._runtime.quota
        found = quota.tenant(tenant) if quota is not None and tenant is not None else None
        if found is None or not found.guaranteed:
            return False
        used = quota.used(found.name) if quota is not None else {}
        return all(
            used.get(r, 0) + request.get(r, 0) <= found.guaranteed.get(r, 0)
            for r in found.guaranteed
            if request.get(r, 0)
        )

    def _workloads(self, *, below: int, tenants: set[str]) -> list[Workload]:
        """The running gangs, whole, from the pods the informer holds and the cache accounts: only
        those that could be victims (a member of lower priority than `below`, or of `tenants`)."""
        runtime = self._runtime
        members: dict[str, list[tuple[PodInfo, JsonObject]]] = {}
        for obj in runtime.informers[0].index.values():
            spec, meta = obj.get("spec") or {}, obj.get("metadata") or {}
            if not spec.get("nodeName") or meta.get("deletionTimestamp"):
                continue
            if _priority(obj) >= below and self._tenant_of(obj) not in tenants:
                continue  # cheap test first: most pods are no candidate at all
            if (obj.get("status") or {}).get("phase") in _TERMINAL:
                continue
            try:
                pod = PodInfo.from_manifest(obj)
            except ValueError:
                continue
            usage = runtime.cache.pod(pod.key)
            if usage is None or usage.assumed or pod.key in self._evicting:
                continue
            members.setdefault(gang_key(pod), []).append((pod, obj))
        out = []
        for key, pods in members.items():
            infos = [p for p, _ in pods]
            quota = runtime.quota
            named = next((p.tenant for p in infos if p.tenant), None)
            tenant = quota.charged_to(named, infos[0].namespace) if quota is not None else named
            usages = tuple(u for u in (runtime.cache.pod(p.key) for p in infos) if u is not None)
            out.append(
                Workload(
                    key=key,
                    tenant=tenant,
                    priority=max(p.priority for p in infos),
                    preemptible=all(
                        (o["metadata"].get("annotations") or {}).get(keys.ANNOTATION_PREEMPTIBLE) != "false"
                        for _, o in pods
                    ),
                    started=max(_started(o) for _, o in pods),
                    pods=usages,
                    gpu_milli=gang_usage(infos).get(GPU_MILLI, 0),
                )
            )
        return out

    def _without(self, victims: Sequence[Workload]) -> list[tuple[Any, tuple[str, dict[str, int]] | None]]:
        """Take `victims` out of the cache and the ledger; what to put back."""
        runtime = self._runtime
        taken = []
        for workload in victims:
            for usage in workload.pods:
                charge = runtime.quota.charge_of(usage.key) if runtime.quota is not None else None
                runtime.remove_usage(usage.key)
                if runtime.quota is not None:
                    runtime.quota.release(usage.key)
                taken.append((usage, charge))
        return taken

    def _restore(self, taken: Iterable[tuple[Any, tuple[str, dict[str, int]] | None]]) -> None:
        runtime = self._runtime
        for usage, charge in taken:
            runtime.set_usage(usage)
            if charge is not None and runtime.quota is not None:
                runtime.quota.charge(usage.key, *charge)

    def _fits(self, gang: Gang, victims: Sequence[Workload]) -> bool:
        """Whether the real scheduler would place `gang` were `victims` gone (undone at once)."""
        taken = self._without(victims)
        try:
            result = self._runtime.scheduler.schedule(gang)
            if result.placement is not None:
                self._runtime.scheduler.forget(result.placement)
                return True
            return False
        finally:
            self._restore(taken)

    def _hold(self, gang: Gang, victims: Sequence[Workload]) -> GangPlacement | None:
        """Place `gang` in the victims' room and keep both accounted: the victims until they are
        gone, the gang (assumed) from now on. The room is booked twice on paper, so nobody else
        is given it, and no GPU is used twice: the gang is bound only once the victims are gone."""
        runtime = self._runtime
        taken = self._without(victims)
        try:
            result = runtime.scheduler.schedule(gang)
        finally:
            self._restore(taken)
        if result.placement is None:  # cannot happen after a fitting what-if; stay safe
            return None
        victim_keys = {usage.key for usage, _ in taken}
        for key in victim_keys:
            self._evicting[key] = gang.key
        self._held[gang.key] = (result.placement, set(victim_keys))
        reason = ", ".join(v.key for v in victims)
        log.bind(gang=gang.key).info("gang_preempting", victims=reason, pods=len(victim_keys))
        own = runtime.quota.gang_tenant(gang) if runtime.quota is not None else gang.tenant
        for workload in victims:
            runtime.metrics.preemption("priority" if workload.tenant == own else "reclaim")
            task = asyncio.get_running_loop().create_task(self._evict(workload, gang))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return result.placement

    async def _evict(self, workload: Workload, gang: Gang) -> None:
        """Tell the victim's pods to save their state as their job asked, then delete them.

        `Annotation`: set `aisched.io/checkpoint-requested` on the pods, wait the grace period,
        then delete. `Signal`: delete with the grace period, so the kubelet sends the containers
        their stop signal (SIGTERM, or the image's STOPSIGNAL) and waits that long before killing
        them (another signal cannot be sent through the API). `None`: delete at once.
        """
        runtime = self._runtime
        index = runtime.informers[0].index
        namespace, _, name = workload.pods[0].key.partition("/") if workload.pods else ("", "", "")
        first = index.get((namespace, name))
        annotations = ((first or {}).get("metadata") or {}).get("annotations") or {}
        method = annotations.get(keys.ANNOTATION_CHECKPOINT_METHOD, "None")
        raw_grace = annotations.get(keys.ANNOTATION_CHECKPOINT_GRACE, "")
        grace = int(raw_grace) if raw_grace.isdigit() else None
        marks = {keys.ANNOTATION_PREEMPTED_BY: gang.key, keys.ANNOTATION_PREEMPTED_AT: str(int(self._wall()))}
        if method == "Annotation":
            marks[keys.ANNOTATION_CHECKPOINT_REQUESTED] = "true"
        paths = [
            f"/api/v1/namespaces/{u.key.split('/', 1)[0]}/pods/{u.key.split('/', 1)[1]}"
            for u in workload.pods
        ]
        body: JsonObject = {"metadata": {"annotations": marks}}
        for path in paths:
            await self._call(functools.partial(runtime.client.patch, path, body), path)
        if method == "Annotation" and grace:
            await asyncio.sleep(grace)  # the job saves its state and may exit by itself meanwhile
        params = {"gracePeriodSeconds": grace} if method == "Signal" and grace is not None else None
        for path in paths:
            await self._call(functools.partial(runtime.client.delete, path, params=params), path)

    @staticmethod
    async def _call(request: Callable[[], Awaitable[JsonObject]], path: str) -> None:
        """Make the call until it succeeds or the pod is gone (404), backing off: a victim that
        is never deleted would hold its room for ever."""
        for attempt in itertools.count():
            try:
                await request()
                return
            except ApiError as exc:
                if exc.status == _NOT_FOUND:
                    return
                error = str(exc)
            except ApiUnavailable as exc:
                error = str(exc)
            delay = _RETRY.delay(attempt)
            log.warning("preemption_evict_retry", pod=path, error=error, retry_in=round(delay, 2))
            await asyncio.sleep(delay)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _priority(obj: JsonObject) -> int:
    """A pod's priority read cheaply (as PodInfo would: its spec's, else its job's annotation)."""
    spec = obj.get("spec") or {}
    if spec.get("priority") is not None:
        return int(spec["priority"])
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(keys.ANNOTATION_PRIORITY, "0")
    return int(raw) if raw.lstrip("-").isdigit() else 0


def _started(obj: JsonObject) -> float:
    """When the pod started (its status.startTime, else its creation), epoch seconds."""
    text = (obj.get("status") or {}).get("startTime") or (obj.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(text, str):
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
