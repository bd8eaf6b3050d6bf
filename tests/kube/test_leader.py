"""Leader election against the API emulator, each candidate on its own fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aisched.api.objects import rfc3339
from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiUnavailable, JsonObject, KubeClient, Params, resource_path
from aisched.kube.leader import LeaderElector, LeaseClient

NAMESPACE: Final = "default"
NAME: Final = "aisched-leader"
LEASE: Final = resource_path(
    group="coordination.k8s.io", version="v1", plural="leases", namespace=NAMESPACE, name=NAME
)
LEASE_DURATION: Final = 15.0
RENEW_DEADLINE: Final = 10.0
RETRY_PERIOD: Final = 2.0
START: Final = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class FakeClock:
    """Time that passes only when its owner sleeps; `freeze()` makes every later sleep hang."""

    def __init__(self) -> None:
        self.current = START
        self.frozen = False
        self.hung = asyncio.Event()

    def now(self) -> datetime:
        return self.current

    def seconds(self) -> float:
        return (self.current - START).total_seconds()

    async def sleep(self, seconds: float) -> None:
        if self.frozen:
            self.hung.set()
            await asyncio.Event().wait()
        self.current += timedelta(seconds=seconds)
        await asyncio.sleep(0)


@dataclass
class Candidate:
    """One replica: its elector, clock, stop event and what its callbacks saw."""

    elector: LeaderElector
    clock: FakeClock
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float | None = None  # seconds on its own clock
    stopped_at: float | None = None
    work_cancelled: bool = False
    on_lead: Callable[[], None] = lambda: None  # runs as the leader's work starts
    task: asyncio.Task[None] | None = None

    async def _lead(self) -> None:
        self.started_at = self.clock.seconds()
        self.started.set()
        self.on_lead()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.work_cancelled = True
            raise

    def _stopped_leading(self) -> None:
        self.stopped_at = self.clock.seconds()
        self.stopped.set()

    def start(self) -> None:
        self.task = asyncio.create_task(
            self.elector.run(
                self.stop, on_started_leading=self._lead, on_stopped_leading=self._stopped_leading
            )
        )

    async def finish(self) -> None:
        """Stop it (releasing the Lease if it leads) and wait for `run` to return."""
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


def candidate(client: LeaseClient, identity: str) -> Candidate:
    clock = FakeClock()
    elector = LeaderElector(
        client,
        namespace=NAMESPACE,
        name=NAME,
        identity=identity,
        lease_duration=LEASE_DURATION,
        renew_deadline=RENEW_DEADLINE,
        retry_period=RETRY_PERIOD,
        clock=clock.now,
        sleep=clock.sleep,
    )
    return Candidate(elector=elector, clock=clock)


@asynccontextmanager
async def running(*candidates: Candidate) -> AsyncIterator[None]:
    for each in candidates:
        each.start()
    try:
        yield
    finally:
        for each in candidates:
            if each.task is not None:
                each.task.cancel()
        await asyncio.gather(*(c.task for c in candidates if c.task), return_exceptions=True)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (in real time, bounded) until `condition` holds; the fake clocks run meanwhile."""
    async with asyncio.timeout(10):
        # Polled: the state lives on the API server and in fake clocks, not behind an Event.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0)


async def lease_spec(kube: KubeClient) -> JsonObject:
    spec: JsonObject = (await kube.get(LEASE))["spec"]
    return spec


class RacingClient(KubeClient):
    """Holds back the first PUT until `barrier` fills, so rivals write from the same resourceVersion."""

    def __init__(self, *, barrier: asyncio.Barrier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.barrier = barrier
        self.raced = False

    async def put(self, path: str, body: JsonObject, *, params: Params | None = None) -> JsonObject:
        if not self.raced:
            self.raced = True
            await self.barrier.wait()
        return await super().put(path, body, params=params)


class FlakyClient(KubeClient):
    """A client whose API server disappears while `down` is set."""

    down = False

    async def get(self, path: str, *, params: Params | None = None) -> JsonObject:
        self._check()
        return await super().get(path, params=params)

    async def put(self, path: str, body: JsonObject, *, params: Params | None = None) -> JsonObject:
        self._check()
        return await super().put(path, body, params=params)

    def _check(self) -> None:
        if self.down:
            raise ApiUnavailable("connection refused (the test took the API server down)")


async def test_a_lone_candidate_creates_the_lease_and_renews_it(kube: KubeClient) -> None:
    a = candidate(kube, "a")
    async with running(a):
        await asyncio.wait_for(a.started.wait(), 10)
        assert a.elector.is_leader
        first = await lease_spec(kube)
        assert first["holderIdentity"] == "a"
        assert first["leaseDurationSeconds"] == 15
        assert first["leaseTransitions"] == 0
        assert first["acquireTime"] == first["renewTime"] == "2026-11-28T12:00:00.000000Z"

        await eventually(lambda: a.clock.seconds() >= 5 * RETRY_PERIOD)
        renewed = await lease_spec(kube)
        assert renewed["holderIdentity"] == "a"
        assert renewed["renewTime"] > first["renewTime"]
        assert renewed["acquireTime"] == first["acquireTime"]
        assert renewed["leaseTransitions"] == 0
        await a.finish()
    assert a.stopped.is_set()
    assert a.work_cancelled
    assert not a.elector.is_leader


async def test_a_standby_stays_standby_while_the_leader_renews(kube: KubeClient) -> None:
    a, b = candidate(kube, "a"), candidate(kube, "b")
    async with running(a):
        await asyncio.wait_for(a.started.wait(), 10)
        async with running(b):
            await eventually(lambda: b.clock.seconds() >= 3 * LEASE_DURATION)
            assert not b.elector.is_leader
            assert not b.started.is_set()
            assert a.elector.is_leader
            assert (await lease_spec(kube))["holderIdentity"] == "a"


async def test_a_stopped_leader_releases_and_the_standby_takes_over_at_its_next_try(
    kube: KubeClient,
) -> None:
    a, b = candidate(kube, "a"), candidate(kube, "b")
    async with running(a, b):
        await asyncio.wait_for(a.started.wait(), 10)
        await eventually(lambda: b.clock.seconds() >= 2 * RETRY_PERIOD)  # b has seen a's lease
        await a.finish()
        assert a.stopped.is_set()
        assert a.work_cancelled
        released_at = b.clock.seconds()

        await asyncio.wait_for(b.started.wait(), 10)
        assert b.started_at is not None
        assert b.started_at - released_at <= RETRY_PERIOD * 1.2 * 2  # not a lease duration
        spec = await lease_spec(kube)
        assert spec["holderIdentity"] == "b"
        assert spec["leaseTransitions"] == 1


async def test_a_hung_leader_is_replaced_only_after_the_lease_duration(kube: KubeClient) -> None:
    a, b = candidate(kube, "a"), candidate(kube, "b")
    async with running(a):
        await asyncio.wait_for(a.started.wait(), 10)
        a.clock.frozen = True  # a stops renewing but believes it leads
        await asyncio.wait_for(a.clock.hung.wait(), 10)
        async with running(b):
            await asyncio.wait_for(b.started.wait(), 10)
            assert b.started_at is not None
            assert LEASE_DURATION <= b.started_at <= LEASE_DURATION + 2 * RETRY_PERIOD * 1.2
            spec = await lease_spec(kube)
            assert spec["holderIdentity"] == "b"
            assert spec["leaseTransitions"] == 1
            assert spec["acquireTime"] == spec["renewTime"]


async def test_candidates_racing_for_an_expired_lease_elect_exactly_one(
    emulator: Emulator, kube: KubeClient
) -> None:
    stale = rfc3339(START - timedelta(hours=1), micro=True)
    await kube.post(
        resource_path(group="coordination.k8s.io", version="v1", plural="leases", namespace=NAMESPACE),
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NAME},
            "spec": {
                "holderIdentity": "ghost",
                "leaseDurationSeconds": 15,
                "acquireTime": stale,
                "renewTime": stale,
                "leaseTransitions": 4,
            },
        },
    )
    barrier = asyncio.Barrier(2)
    async with (
        RacingClient(base_url=emulator.url, barrier=barrier) as b_client,
        RacingClient(base_url=emulator.url, barrier=barrier) as c_client,
    ):
        b, c = candidate(b_client, "b"), candidate(c_client, "c")
        async with running(b, c):
            done, _ = await asyncio.wait(
                {asyncio.ensure_future(b.started.wait()), asyncio.ensure_future(c.started.wait())},
                timeout=10,
                return_when=asyncio.FIRST_COMPLETED,
            )
            assert done
            winner, loser = (b, c) if b.started.is_set() else (c, b)
            start = loser.clock.seconds()
            await eventually(lambda: loser.clock.seconds() >= start + 2 * LEASE_DURATION)

            assert winner.elector.is_leader
            assert not loser.elector.is_leader
            assert not loser.started.is_set()
            spec = await lease_spec(kube)
            assert spec["holderIdentity"] == winner.elector.identity
            assert spec["leaseTransitions"] == 5  # one takeover, not two


async def test_a_leader_that_cannot_renew_steps_down_after_the_renew_deadline(emulator: Emulator) -> None:
    async with FlakyClient(base_url=emulator.url) as client:
        a = candidate(client, "a")
        # Down right after the acquiring write, before the first renewal: every renewal fails.
        a.on_lead = lambda: setattr(client, "down", True)
        async with running(a):
            await asyncio.wait_for(a.stopped.wait(), 10)
            assert a.started_at is not None
            assert a.stopped_at is not None
            assert a.stopped_at - a.started_at == RENEW_DEADLINE
            assert a.work_cancelled
            assert not a.elector.is_leader

            # Back to candidate: it neither leads nor hangs, and stops cleanly with the API gone.
            stopped_at = a.stopped_at
            await eventually(lambda: a.clock.seconds() >= stopped_at + LEASE_DURATION)
            assert not a.elector.is_leader
            await a.finish()


async def test_defaults_lead_then_release_by_clearing_the_holder(kube: KubeClient) -> None:
    events: list[str] = []

    async def lead() -> None:
        events.append("started")
        await asyncio.Event().wait()

    clock = FakeClock()
    elector = LeaderElector(
        kube, namespace=NAMESPACE, name=NAME, identity="a", clock=clock.now, sleep=clock.sleep
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        elector.run(stop, on_started_leading=lead, on_stopped_leading=lambda: events.append("stopped"))
    )
    await eventually(lambda: events == ["started"])
    stop.set()
    await asyncio.wait_for(task, 10)
    assert events == ["started", "stopped"]
    spec = await lease_spec(kube)
    assert spec["holderIdentity"] == ""
