"""The Binder against the real in-process API emulator: gangs bind whole or roll back whole."""

from __future__ import annotations

import asyncio
import random

from aisched.api import keys as api_keys
from aisched.binder import Binder, BindingClient
from aisched.kube.client import ApiError, ApiUnavailable, KubeClient
from aisched.kube.retry import Backoff
from tests.binder.fakes import (
    PODS,
    CountingClient,
    FakeClock,
    FlakyClient,
    bind_directly,
    create_pods,
    exists,
    keys,
    names,
    node_of,
    placement,
)


def binder(
    client: BindingClient,
    clock: FakeClock,
    *,
    concurrency: int = 32,
    retries: int = 3,
    qps: float = 200.0,
    burst: int = 400,
    backoff: Backoff | None = None,
) -> Binder:
    return Binder(
        client,
        clock=clock,
        sleep=clock.sleep,
        concurrency=concurrency,
        retries=retries,
        qps=qps,
        burst=burst,
        backoff=backoff,
    )


async def test_a_gang_of_eight_binds_every_pod_to_its_node_with_its_gpus(kube: KubeClient) -> None:
    pods = names(8)
    uids = await create_pods(kube, pods)
    plan = placement(pods, nodes=("node-a", "node-b"), uids=uids)

    outcome = await Binder(kube, clock=FakeClock(), sleep=FakeClock().sleep).bind(plan)

    assert outcome.bound == keys(pods)
    assert (outcome.rolled_back, outcome.dropped, outcome.forget) == (False, [], [])
    for member in plan.pods:
        pod = await kube.get(f"{PODS}/{member.pod.name}")
        assert pod["spec"]["nodeName"] == member.node
        assert pod["metadata"]["annotations"][api_keys.ANNOTATION_GPUS] == ",".join(member.gpu_ids)


async def test_a_pod_deleted_before_binding_is_dropped_and_the_rest_bind_above_min_member(
    kube: KubeClient,
) -> None:
    pods = names(4)
    await create_pods(kube, pods)
    await kube.delete(f"{PODS}/train-2")
    clock = FakeClock()

    outcome = await binder(kube, clock).bind(placement(pods, min_member=3))

    assert not outcome.rolled_back
    assert outcome.dropped == outcome.forget == ["default/train-2"]
    assert outcome.bound == keys(["train-0", "train-1", "train-3"])
    assert [await node_of(kube, name) for name in ("train-0", "train-1", "train-3")] == ["node-a"] * 3


async def test_a_pod_deleted_below_min_member_rolls_back_and_deletes_the_bound_pods(
    kube: KubeClient,
) -> None:
    pods = names(4)
    await create_pods(kube, pods)
    await kube.delete(f"{PODS}/train-3")
    clock = FakeClock()

    # One at a time, so the three live pods are bound before the gone one is found.
    outcome = await binder(kube, clock, concurrency=1).bind(placement(pods, min_member=4))

    assert outcome.rolled_back
    assert outcome.evicted == keys(pods[:3])
    assert outcome.bound == []
    assert outcome.dropped == ["default/train-3"]
    assert outcome.forget == keys(pods)
    assert "train-3 is gone" in outcome.reason
    assert [await exists(kube, name) for name in pods] == [False] * 4


async def test_a_pod_bound_elsewhere_rolls_the_gang_back_and_that_pod_stays_where_it_is(
    kube: KubeClient,
) -> None:
    pods = names(4)
    await create_pods(kube, pods)
    await bind_directly(kube, "train-3", "node-z")
    clock = FakeClock()

    outcome = await binder(kube, clock, concurrency=1).bind(placement(pods))

    assert outcome.rolled_back
    assert outcome.evicted == keys(pods[:3])
    assert outcome.forget == keys(pods)
    assert "node-z" in outcome.reason
    assert [await exists(kube, name) for name in pods[:3]] == [False] * 3
    assert await node_of(kube, "train-3") == "node-z"


async def test_a_lost_gang_does_not_bind_the_members_it_has_not_started(kube: KubeClient) -> None:
    pods = names(4)
    await create_pods(kube, pods)
    await bind_directly(kube, "train-0", "node-z")
    clock = FakeClock()

    outcome = await binder(kube, clock, concurrency=1).bind(placement(pods))

    assert outcome.rolled_back
    assert outcome.evicted == outcome.bound == []
    assert [await node_of(kube, name) for name in pods[1:]] == [None] * 3


async def test_a_pod_already_bound_to_its_planned_node_counts_as_bound(kube: KubeClient) -> None:
    # What a retry sees when the answer to a successful POST was lost on the way back.
    pods = names(3)
    await create_pods(kube, pods)
    await bind_directly(kube, "train-1", "node-a")
    clock = FakeClock()

    outcome = await binder(kube, clock).bind(placement(pods))

    assert not outcome.rolled_back
    assert outcome.bound == keys(pods)
    assert [await node_of(kube, name) for name in pods] == ["node-a"] * 3


async def test_transient_503s_are_retried_on_the_same_node_with_backoff_until_bound(
    kube: KubeClient,
) -> None:
    pods = names(2)
    await create_pods(kube, pods)
    flaky = FlakyClient(kube, failures=2, only=["train-1"])
    clock = FakeClock()

    outcome = await binder(flaky, clock, retries=3).bind(placement(pods))

    assert not outcome.rolled_back
    assert outcome.bound == keys(pods)
    assert flaky.posts.count(f"{PODS}/train-1/binding") == 3
    assert len(clock.slept) == 2
    assert 0.08 <= clock.slept[0] <= 0.12  # 0.1 s, then doubling, each ± 20 %
    assert 0.16 <= clock.slept[1] <= 0.24
    assert await node_of(kube, "train-1") == "node-a"


async def test_members_failing_together_retry_at_jittered_not_identical_times(kube: KubeClient) -> None:
    pods = names(4)
    await create_pods(kube, pods)
    flaky = FlakyClient(kube, failures=4)  # every member's first POST
    clock = FakeClock()

    outcome = await binder(flaky, clock).bind(placement(pods))

    assert outcome.bound == keys(pods)
    assert len(clock.slept) == 4
    assert len(set(clock.slept)) == 4, "members would retry in lockstep"


async def test_an_injected_backoff_paces_the_retries(kube: KubeClient) -> None:
    pods = names(1)
    await create_pods(kube, pods)
    flaky = FlakyClient(kube, failures=3)
    clock = FakeClock()
    backoff = Backoff(initial=0.5, cap=1.0, jitter=0.0, rng=random.Random(0))

    outcome = await binder(flaky, clock, backoff=backoff).bind(placement(pods))

    assert outcome.bound == keys(pods)
    assert clock.slept == [0.5, 1.0, 1.0]


async def test_an_unreachable_server_is_retried_like_a_5xx(kube: KubeClient) -> None:
    pods = names(1)
    await create_pods(kube, pods)
    flaky = FlakyClient(kube, failures=1, error=lambda: ApiUnavailable("connection reset"))
    clock = FakeClock()

    outcome = await binder(flaky, clock).bind(placement(pods))

    assert outcome.bound == keys(pods)
    assert len(flaky.posts) == 2


async def test_a_member_failing_past_its_retries_rolls_the_gang_back(kube: KubeClient) -> None:
    pods = names(3)
    await create_pods(kube, pods)
    flaky = FlakyClient(kube, failures=100, only=["train-2"])
    clock = FakeClock()

    outcome = await binder(flaky, clock, retries=2).bind(placement(pods))

    assert outcome.rolled_back
    assert flaky.posts.count(f"{PODS}/train-2/binding") == 3
    assert "503" in outcome.reason
    assert outcome.evicted == keys(pods[:2])
    assert outcome.forget == keys(pods)
    assert [await exists(kube, name) for name in pods] == [False, False, True]
    assert await node_of(kube, "train-2") is None


async def test_a_rollback_retries_an_eviction_that_failed_transiently(kube: KubeClient) -> None:
    pods = names(2)
    await create_pods(kube, pods)
    flaky = FlakyClient(kube, failures=100, only=["train-1"], delete_failures=1)
    clock = FakeClock()

    outcome = await binder(flaky, clock, concurrency=1, retries=1).bind(placement(pods))

    assert outcome.evicted == ["default/train-0"]
    assert flaky.deletes == [f"{PODS}/train-0"] * 2
    assert not await exists(kube, "train-0")


async def test_an_eviction_that_keeps_failing_is_reported_as_left_bound(kube: KubeClient) -> None:
    pods = names(2)
    await create_pods(kube, pods)
    flaky = FlakyClient(kube, failures=100, only=["train-1"], delete_failures=100)
    clock = FakeClock()

    outcome = await binder(flaky, clock, concurrency=1, retries=1).bind(placement(pods))

    assert outcome.rolled_back
    assert (outcome.evicted, outcome.bound) == ([], ["default/train-0"])
    assert "could not evict default/train-0" in outcome.reason
    assert outcome.forget == keys(pods)


async def test_a_refused_binding_is_not_retried(kube: KubeClient) -> None:
    pods = names(1)
    await create_pods(kube, pods)

    def forbidden() -> ApiError:
        return ApiError(status=403, reason="Forbidden", message="no", body={})

    flaky = FlakyClient(kube, failures=1, error=forbidden)
    clock = FakeClock()

    outcome = await binder(flaky, clock).bind(placement(pods))

    assert outcome.rolled_back
    assert "403 Forbidden" in outcome.reason
    assert len(flaky.posts) == 1
    assert clock.slept == []


async def test_no_more_than_concurrency_requests_are_in_flight_across_gangs() -> None:
    client = CountingClient()
    clock = FakeClock()
    shared = binder(client, clock, concurrency=4)

    first, second = await asyncio.gather(
        shared.bind(placement(names(12), gang="default/a")),
        shared.bind(placement([f"other-{i}" for i in range(12)], gang="default/b")),
    )

    assert client.most_in_flight == 4
    assert len(first.bound) == len(second.bound) == 12


async def test_binding_posts_stay_within_burst_plus_qps_times_elapsed_time() -> None:
    clock = FakeClock(now=100.0)
    client = CountingClient(clock)
    qps, burst = 10.0, 5

    outcome = await binder(client, clock, qps=qps, burst=burst).bind(placement(names(40)))

    assert len(outcome.bound) == 40
    for count, at in enumerate(sorted(client.post_times), start=1):
        assert count <= burst + qps * (at - 100.0) + 1e-6
    # And the limiter lets them through as fast as the bound allows, not slower.
    assert max(client.post_times) - 100.0 <= (40 - burst) / qps + 1e-6
