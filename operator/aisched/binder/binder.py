"""The Binder: POSTs a gang's Bindings concurrently and rolls the gang back if it cannot complete."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from aisched.binder.ledger import (
    BindOutcome,
    GangLedger,
    Verdict,
    error_kind,
    judge_conflict,
    judge_error,
)
from aisched.binder.manifest import binding_body, binding_path, pod_path
from aisched.binder.ratelimit import TokenBucket
from aisched.framework.types import GangPlacement, PodInfo, PodPlacement
from aisched.kube.client import ApiError, ApiUnavailable, Params
from aisched.kube.retry import Backoff
from aisched.observability.logging import get_logger
from aisched.observability.tracing import Tracing

__all__ = ["Binder", "BindingClient"]

log = get_logger(__name__)


_NOW: Final[Params] = {"gracePeriodSeconds": 0}


class BindingClient(Protocol):
    """The part of `aisched.kube.client.KubeClient` the binder uses."""

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def get(self, path: str) -> dict[str, Any]: ...

    async def delete(self, path: str, *, params: Params | None = None) -> dict[str, Any]: ...


class Binder:
    """Makes gang placements real, one Binding per member, never leaving a gang half-bound.

    One Binder serves every gang of the operator: `concurrency` bounds the requests in flight and
    the token bucket (`qps`, `burst`) paces them across all gangs together. A transient failure
    (`ApiError.transient`, or no answer) is retried on the same node `retries` times after a
    `backoff` (default: 0.1 s doubling to 2 s, jittered so that members do not retry in step).
    """

    def __init__(
        self,
        client: BindingClient,
        *,
        concurrency: int = 32,
        qps: float = 200.0,
        burst: int = 400,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retries: int = 3,
        backoff: Backoff | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if retries < 0:
            raise ValueError(f"retries cannot be negative, not {retries}")
        self.client = client
        self.tracing = tracing if tracing is not None else Tracing()
        self.retries = retries
        self.backoff = backoff or Backoff(initial=0.1, cap=2.0, factor=2.0, jitter=0.2)
        self._sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        self._bucket = TokenBucket(qps=qps, burst=burst, clock=clock, sleep=sleep)

    async def bind(self, placement: GangPlacement) -> BindOutcome:
        """Bind every member of `placement` to its node, or roll the gang back.

        API answers and outages are outcomes, never exceptions: the caller forgets
        `outcome.forget` in its cache and requeues the gang if `outcome.rolled_back`;
        `outcome.errors` lists every Binding call that failed, for metrics.
        """
        members = placement.pods
        parent = members[0].pod.trace_context if members else None
        attributes: dict[str, AttributeValue] = {
            "aisched.gang": placement.gang.key,
            "aisched.pods": len(members),
        }
        with self.tracing.span("bind", parent=parent, attributes=attributes) as span:
            outcome = await self._bind(placement)
            if span.is_recording():
                span.set_attributes(
                    {
                        "aisched.bound": len(outcome.bound),
                        "aisched.rolled_back": outcome.rolled_back,
                        "aisched.reason": outcome.reason[:1024],
                    }
                )
            return outcome

    async def _bind(self, placement: GangPlacement) -> BindOutcome:
        gang_log = log.bind(gang=placement.gang.key)
        ledger = GangLedger(
            keys=[member.pod.key for member in placement.pods], min_member=placement.gang.min_member
        )
        # 1. Bind the members concurrently; the first member that loses the gang stops the rest.
        async with asyncio.TaskGroup() as members:
            for member in placement.pods:
                members.create_task(self._bind_member(member, ledger))
        if ledger.lost is None:
            outcome = ledger.outcome()
            # One line per multi-pod gang; single pods (the bulk of the traffic) only at DEBUG.
            bound_log = gang_log.info if len(placement.pods) > 1 else gang_log.debug
            bound_log("gang_bound", pods=len(outcome.bound), dropped=len(outcome.dropped))
            return outcome
        # 2. Roll back: delete what this call bound, so that the gang is not left half-bound.
        pods = {member.pod.key: member.pod for member in placement.pods}
        evicted, kept = await self._evict([pods[key] for key in ledger.bound])
        outcome = ledger.outcome(evicted=evicted, kept=kept)
        (gang_log.error if kept else gang_log.warning)(
            "gang_rolled_back", reason=outcome.reason, evicted=len(evicted), kept=len(kept)
        )
        return outcome

    # -- one member ------------------------------------------------------------------------------

    async def _bind_member(self, member: PodPlacement, ledger: GangLedger) -> None:
        if not trace.get_current_span().is_recording():
            await self._bind_pod(member, ledger)
            return
        with self.tracing.tracer.start_as_current_span(
            "bind_pod", attributes={"aisched.pod": member.pod.key, "aisched.node": member.node}
        ) as span:
            await self._bind_pod(member, ledger)
            key = member.pod.key
            span.set_attribute(
                "aisched.result",
                "bound" if key in ledger.bound else "dropped" if key in ledger.dropped else "lost",
            )

    async def _bind_pod(self, member: PodPlacement, ledger: GangLedger) -> None:
        path, body = binding_path(member.pod), binding_body(member)
        detail = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await self._sleep(self.backoff.delay(attempt - 1))
            answer = await self._attempt(member, path, body, ledger)
            if answer is None:
                return  # the gang is rolled back anyway; leave this member unbound
            verdict, detail = answer
            if verdict.final:
                ledger.record(member.pod.key, verdict, detail)
                return
        ledger.record(member.pod.key, Verdict.FAILED, f"{detail} (after {self.retries + 1} attempts)")

    async def _attempt(
        self, member: PodPlacement, path: str, body: dict[str, Any], ledger: GangLedger
    ) -> tuple[Verdict, str] | None:
        """One POST; None when the gang was lost while this member waited for its turn."""
        async with self._slots:
            await self._bucket.acquire()
            # Checked after the waits: another member may have lost the gang meanwhile.
            if ledger.lost is not None:
                return None
            try:
                await self.client.post(path, body)
            except ApiError as exc:
                ledger.failed_call(error_kind(exc))
                verdict = judge_error(exc)
                if verdict is Verdict.CHECK:
                    return await self._check(member)
                return verdict, f"{exc.status} {exc.reason}: {exc.message}"
            except ApiUnavailable as exc:
                ledger.failed_call(error_kind(None))
                return Verdict.RETRY, str(exc)
        return Verdict.BOUND, ""

    async def _check(self, member: PodPlacement) -> tuple[Verdict, str]:
        """After a 409: read the pod to see whose binding won."""
        await self._bucket.acquire()
        try:
            pod = await self.client.get(pod_path(member.pod))
        except ApiError as exc:
            if exc.status == 404:
                return judge_conflict(None, node=member.node, uid=member.pod.uid)
            verdict = Verdict.RETRY if exc.transient else Verdict.FAILED
            return verdict, f"409 Conflict, then reading the pod: {exc.status} {exc.reason}"
        except ApiUnavailable as exc:
            return Verdict.RETRY, f"409 Conflict, then reading the pod: {exc}"
        return judge_conflict(pod, node=member.node, uid=member.pod.uid)

    # -- rollback --------------------------------------------------------------------------------

    async def _evict(self, pods: Sequence[PodInfo]) -> tuple[list[str], list[str]]:
        """Delete `pods`; returns (deleted or already gone, still there)."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._evict_one(pod)) for pod in pods]
        evicted = [pod.key for pod, task in zip(pods, tasks, strict=True) if task.result()]
        kept = [pod.key for pod, task in zip(pods, tasks, strict=True) if not task.result()]
        return evicted, kept

    async def _evict_one(self, pod: PodInfo) -> bool:
        for attempt in range(self.retries + 1):
            if attempt:
                await self._sleep(self.backoff.delay(attempt - 1))
            async with self._slots:
                await self._bucket.acquire()
                try:
                    # At once: a pod just bound has nothing to stop, and its GPUs must not stay held.
                    await self.client.delete(pod_path(pod), params=_NOW)
                except ApiError as exc:
                    if exc.status == 404:
                        return True
                    if not exc.transient:
                        log.error("evict_refused", pod=pod.key, status=exc.status, reason=exc.reason)
                        return False
                except ApiUnavailable:
                    continue  # no answer: retry, as for a 5xx
                else:
                    return True
        log.error("evict_failed", pod=pod.key, attempts=self.retries + 1)
        return False
