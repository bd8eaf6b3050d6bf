"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Every replica runs a `LeaderElector` with its own identity. A candidate takes the Lease when it
is absent, released (no holder) or expired; the leader renews it every `retry_period` and steps
down when it has not managed to for `renew_deadline`, which is shorter than `lease_duration`, so
it stops working before anyone else may start. Every write carries the resourceVersion it read,
so of two candidates writing at once exactly one wins (the other gets 409 Conflict).

Expiry is judged as client-go judges it: by how long the Lease has gone unchanged on this
replica's own clock (`observed_at + leaseDurationSeconds`), not by comparing the holder's
`renewTime` with our clock, so clock skew between replicas cannot cut a lease short.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from aisched.api.objects import ObjectView, object_key, rfc3339
from aisched.kube.client import ApiError, ApiUnavailable, JsonObject, resource_path
from aisched.kube.retry import Backoff, until_stopped
from aisched.observability.logging import get_logger

__all__ = ["LeaderElector", "LeaseClient"]

log = get_logger(__name__)

_NOT_FOUND: Final = 404
_CONFLICT: Final = 409
# client-go's JitterFactor for candidates' retries (retryPeriod × [1, 1.2] there; ±20% here).
_CANDIDATE_JITTER: Final = 0.2


class LeaseClient(Protocol):
    """The part of `KubeClient` leader election uses."""

    async def get(self, path: str) -> JsonObject: ...
    async def post(self, path: str, body: JsonObject) -> JsonObject: ...
    async def put(self, path: str, body: JsonObject) -> JsonObject: ...


class _Attempt(enum.Enum):
    HELD = "held"  # we hold the Lease now
    HELD_BY_OTHER = "held_by_other"  # another replica holds a Lease that has not expired
    FAILED = "failed"  # no answer, an error, or someone else wrote first (409)


class LeaderElector:
    """One replica's candidacy for the Lease `namespace/name`; `run` it for the replica's lifetime."""

    def __init__(
        self,
        client: LeaseClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        """`clock` returns aware datetimes; `sleep` waits that many seconds (`asyncio.sleep`)."""
        if not identity:
            raise ValueError("identity must not be empty")
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                "need 0 < retry_period < renew_deadline < lease_duration, not "
                f"{retry_period}, {renew_deadline}, {lease_duration}"
            )
        if lease_duration != int(lease_duration):
            raise ValueError(f"lease_duration is whole seconds in a Lease, not {lease_duration}")
        self._client = client
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._sleep = sleep
        self._path = resource_path(
            group="coordination.k8s.io", version="v1", plural="leases", namespace=namespace, name=name
        )
        self._candidate_backoff = Backoff(
            initial=retry_period, cap=retry_period, factor=1.0, jitter=_CANDIDATE_JITTER
        )
        self._is_leader = False
        self._lease: JsonObject | None = None  # the Lease as last read or written
        self._observed_at: datetime | None = None  # when its spec last changed, on our clock
        self._log = log.bind(lease=object_key(namespace, name), identity=identity)

    @property
    def is_leader(self) -> bool:
        """Whether this replica holds the Lease (as of its last successful acquire or renewal)."""
        return self._is_leader

    async def run(
        self,
        stop: asyncio.Event,
        *,
        on_started_leading: Callable[[], Awaitable[None]],
        on_stopped_leading: Callable[[], None],
    ) -> None:
        """Campaign, lead and campaign again until `stop` is set; then release the Lease and return.

        While leading, `on_started_leading()` runs as a task; it is cancelled when leadership ends
        (lost, stopped, or `run` cancelled), and then `on_stopped_leading()` is called. If it
        returns, the Lease is still held and renewed; if it raises, the error propagates from
        `run` without releasing (the Lease expires). Cancelling `run` releases nothing either,
        as a crashed replica would not.
        """
        while await until_stopped(self._acquire(), stop):
            try:
                lost = await until_stopped(self._lead(on_started_leading), stop)
            finally:
                self._is_leader = False
                on_stopped_leading()
            if not lost:
                await self._release()
                return

    # -- the phases ------------------------------------------------------------------------------

    async def _acquire(self) -> None:
        """Try until this replica holds the Lease."""
        attempt = 0
        while await self._try_acquire_or_renew() is not _Attempt.HELD:
            await self._sleep(self._candidate_backoff.delay(attempt))
            attempt += 1
        self._is_leader = True
        self._log.info("leader_acquired", transitions=self._spec().get("leaseTransitions", 0))

    async def _lead(self, on_started_leading: Callable[[], Awaitable[None]]) -> None:
        """Run the leader's work while renewing the Lease; return when leadership is lost."""
        leading = asyncio.ensure_future(on_started_leading())
        renewing = asyncio.ensure_future(self._renew_until_lost())
        try:
            await asyncio.wait({leading, renewing}, return_when=asyncio.FIRST_COMPLETED)
            if not renewing.done():
                leading.result()  # the work failed: surface its error
                await renewing  # the work is done, but we lead until stopped or lost
        finally:
            leading.cancel()
            renewing.cancel()
            await asyncio.gather(leading, renewing, return_exceptions=True)

    async def _renew_until_lost(self) -> None:
        last_renewed = self._clock()
        while True:
            await self._sleep(self.retry_period)
            # A hung request must not keep us leading past the deadline.
            left = self.renew_deadline - self._seconds_since(last_renewed)
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    outcome = await self._try_acquire_or_renew()
            except TimeoutError:
                outcome = _Attempt.FAILED
            if outcome is _Attempt.HELD:
                last_renewed = self._clock()
            elif outcome is _Attempt.HELD_BY_OTHER:
                self._log.warning("leader_lost", holder=self._spec().get("holderIdentity"))
                return
            elif self._seconds_since(last_renewed) >= self.renew_deadline:
                self._log.warning("leader_renew_deadline_passed", deadline_s=self.renew_deadline)
                return

    async def _release(self) -> None:
        """Clear the holder so a standby takes over at once; best effort (else the Lease expires).

        Read afresh first: a renewal cancelled by the stop may have been written without our
        seeing its answer, and the stale resourceVersion would make the release a 409.
        """
        try:
            lease = await self._client.get(self._path)
            spec = ObjectView(lease).spec
            if spec.get("holderIdentity") != self.identity:
                return
            now = rfc3339(self._clock(), micro=True)
            released = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}
            released |= {"acquireTime": now, "renewTime": now}
            self._lease = await self._client.put(self._path, {**lease, "spec": released})
        except (ApiError, ApiUnavailable) as error:
            self._log.warning("leader_release_failed", error=str(error))
            return
        self._log.info("leader_released")

    # -- one attempt -----------------------------------------------------------------------------

    async def _try_acquire_or_renew(self) -> _Attempt:
        now = self._clock()
        try:
            lease = await self._client.get(self._path)
        except ApiError as error:
            if error.status == _NOT_FOUND:
                return await self._create(now)
            return self._failed("lease_get_failed", error)
        except ApiUnavailable as error:
            return self._failed("lease_get_failed", error)

        spec = ObjectView(lease).spec
        if self._lease is None or spec != self._spec():
            self._observed_at = now
        self._lease = lease
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec, now):
            return _Attempt.HELD_BY_OTHER

        ours = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        new_spec = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "acquireTime": spec.get("acquireTime") if ours else rfc3339(now, micro=True),
            "renewTime": rfc3339(now, micro=True),
            "leaseTransitions": transitions if ours else transitions + 1,
        }
        # `lease` carries the resourceVersion we read: if anyone wrote since, this is a 409.
        return await self._write(self._client.put(self._path, {**lease, "spec": new_spec}), now)

    async def _create(self, now: datetime) -> _Attempt:
        stamp = rfc3339(now, micro=True)
        body: JsonObject = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        collection = resource_path(
            group="coordination.k8s.io", version="v1", plural="leases", namespace=self._namespace
        )
        return await self._write(self._client.post(collection, body), now)

    async def _write(self, request: Awaitable[JsonObject], now: datetime) -> _Attempt:
        try:
            self._lease = await request
        except ApiError as error:
            if error.status == _CONFLICT:
                self._log.debug("lease_conflict")  # another candidate wrote first
                return _Attempt.FAILED
            return self._failed("lease_write_failed", error)
        except ApiUnavailable as error:
            return self._failed("lease_write_failed", error)
        self._observed_at = now
        return _Attempt.HELD

    # -- helpers ---------------------------------------------------------------------------------

    def _spec(self) -> Mapping[str, Any]:
        return ObjectView(self._lease or {}).spec

    def _expired(self, spec: Mapping[str, Any], now: datetime) -> bool:
        if self._observed_at is None:
            return True
        duration = timedelta(seconds=float(spec.get("leaseDurationSeconds") or 0))
        return self._observed_at + duration <= now

    def _seconds_since(self, then: datetime) -> float:
        return (self._clock() - then).total_seconds()

    def _failed(self, event: str, error: Exception) -> _Attempt:
        self._log.warning(event, error=str(error))
        return _Attempt.FAILED
