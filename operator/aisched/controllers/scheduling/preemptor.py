"""The operator's side of preemption: the I/O that carries out the core's nominations.

The core (`scheduler.evaluator.Evaluator`, through the DefaultPreemption PostFilter) chooses the
victims and the placement for the gang, and assumes that placement at once: the room is held,
booked twice on paper while the victims shut down, so nobody else is given it and no GPU is used
twice. Here the victims' pods are annotated (`aisched.io/preempted-by`, which the AIJob
controller reads to requeue the job rather than fail it) and deleted, with their job's checkpoint
grace period; once every victim pod is gone the held placement is `ready` to bind. A held gang
that loses a member loses its hold (`pod_gone` says which assumed places to drop).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

from aisched.api import keys
from aisched.api.objects import PodView, decimal
from aisched.framework.nomination import Nomination, Workload
from aisched.framework.types import GangPlacement
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, Params, PatchType, resource_path
from aisched.kube.informer import ObjectKey
from aisched.kube.retry import Backoff
from aisched.observability.logging import get_logger
from aisched.observability.metrics import Metrics

__all__ = ["Preemptor"]

log = get_logger(__name__)

_NOT_FOUND: Final = 404
_RETRY: Final = Backoff(initial=0.5, cap=30.0)


class EvictionClient(Protocol):
    async def patch(self, path: str, body: JsonObject, *, patch: PatchType = "merge") -> JsonObject: ...

    async def delete(self, path: str, *, params: Params | None = None) -> JsonObject: ...


class PodIndex(Protocol):
    """The pods as the informer last saw them (for the victims' checkpoint contract)."""

    @property
    def index(self) -> Mapping[ObjectKey, JsonObject]: ...


class Preemptor:
    """Evicts nominated victims and holds their room until they are gone (see the module docstring)."""

    def __init__(
        self, client: EvictionClient, *, wall: Callable[[], float], metrics: Metrics, pods: PodIndex
    ) -> None:
        """`wall` is epoch seconds (stamped on the victims as `aisched.io/preempted-at`)."""
        self._client = client
        self._wall = wall
        self._metrics = metrics
        self._pods = pods
        self._evicting: dict[str, str] = {}  # victim pod key -> the gang it makes room for
        self._held: dict[str, tuple[GangPlacement, set[str]]] = {}  # gang -> placement, victims left
        self._member_of: dict[str, str] = {}  # pod key of a held gang's member -> the gang
        self.ready: list[GangPlacement] = []  # held placements whose victims are all gone
        self._tasks: set[asyncio.Task[None]] = set()

    def hold(self, nomination: Nomination, *, tenant: str | None) -> None:
        """Carry out `nomination` (its placement already assumed): evict the victims, whose
        tenant tells a reclaim from a priority preemption."""
        placement = nomination.placement
        gang = placement.gang.key
        victims = set(nomination.victim_pods)
        for key in victims:
            self._evicting[key] = gang
        self._held[gang] = (placement, victims)
        self._member_of.update((p.pod.key, gang) for p in placement.pods)
        log.bind(gang=gang).info(
            "gang_preempting", victims=", ".join(v.key for v in nomination.victims), pods=len(victims)
        )
        for victim in nomination.victims:
            self._metrics.preemption("priority" if victim.tenant == tenant else "reclaim")
            task = asyncio.get_running_loop().create_task(self._evict(victim, gang))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def pod_gone(self, pod_key: str) -> list[str]:
        """A pod is gone (or ended). A victim's release its gang's room once all are; a member of
        a held gang ends the hold: the keys of its other members, whose assumed places to drop
        (the victims, already told to go, still go)."""
        gang = self._evicting.pop(pod_key, None)
        if gang is not None:
            held = self._held.get(gang)
            if held is not None:
                held[1].discard(pod_key)
                if not held[1]:
                    self.ready.append(self._release(gang))
            return []
        gang = self._member_of.get(pod_key)
        if gang is None:
            return []
        members = [p.pod.key for p in self._release(gang).pods]
        log.bind(gang=gang).info("preemption_hold_dropped", pod=pod_key)
        return [k for k in members if k != pod_key]

    def _release(self, gang: str) -> GangPlacement:
        """End the hold of `gang`; its placement."""
        placement, _ = self._held.pop(gang)
        for member in placement.pods:
            self._member_of.pop(member.pod.key, None)
        return placement

    async def _evict(self, victim: Workload, gang: str) -> None:
        """Tell the victim's pods to save their state as their job asked, then delete them.

        `Annotation`: set `aisched.io/checkpoint-requested` on the pods, wait the grace period,
        then delete. `Signal`: delete with the grace period, so the kubelet sends the containers
        their stop signal (SIGTERM, or the image's STOPSIGNAL) and waits that long before killing
        them (another signal cannot be sent through the API). `None`: delete at once.
        """
        namespace, _, name = victim.pods[0].key.partition("/") if victim.pods else ("", "", "")
        found = self._pods.index.get((namespace, name))
        annotations = PodView(found).annotations if found is not None else {}
        method = annotations.get(keys.ANNOTATION_CHECKPOINT_METHOD, "None")
        raw_grace = annotations.get(keys.ANNOTATION_CHECKPOINT_GRACE, "")
        grace = decimal(raw_grace)
        marks = {keys.ANNOTATION_PREEMPTED_BY: gang, keys.ANNOTATION_PREEMPTED_AT: str(int(self._wall()))}
        if method == "Annotation":
            marks[keys.ANNOTATION_CHECKPOINT_REQUESTED] = "true"
        paths = [_pod_path(usage.key) for usage in victim.pods]
        body: JsonObject = {"metadata": {"annotations": marks}}
        for path in paths:
            await self._call(functools.partial(self._client.patch, path, body), path)
        if method == "Annotation" and grace:
            await asyncio.sleep(grace)  # the job saves its state and may exit by itself meanwhile
        params = {"gracePeriodSeconds": grace} if method == "Signal" and grace is not None else None
        for path in paths:
            await self._call(functools.partial(self._client.delete, path, params=params), path)

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


def _pod_path(key: str) -> str:
    namespace, _, name = key.partition("/")
    return resource_path(group="", version="v1", plural="pods", namespace=namespace, name=name)
