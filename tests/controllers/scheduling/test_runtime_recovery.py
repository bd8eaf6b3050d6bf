"""The runtime when things go wrong, end to end against the emulator: a cycle that raises, Bindings
answered 409 or refused, a restart, nodes and topologies that disappear. Nothing is ever bound
twice or left half-bound, and scheduling goes on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from aisched.framework.cycle_state import CycleState
from aisched.framework.handle import Handle
from aisched.framework.interface import FilterResult
from aisched.framework.profile import Profile
from aisched.framework.status import Status
from aisched.framework.types import Gang, PodInfo
from aisched.kube.client import ApiError, JsonObject, KubeClient
from aisched.plugins import default_registry
from aisched.queue import QueueState
from aisched.topology.snapshot import Snapshot
from tests.binder.fakes import exists
from tests.controllers.scheduling.test_runtime import (
    PODS,
    TOPOLOGIES,
    advance,
    create,
    gpu_uuids,
    harness,
    is_bound,
    pod,
    started,
    unschedulable,
    wait_bound,
    wait_pods,
)

POD_EVENTS: Final = "/api/v1/pods"
NODE_EVENTS: Final = "/api/v1/nodes"
H100: Final = ("h100-000", "h100-001", "h100-002", "h100-003")


def conflict(message: str) -> ApiError:
    return ApiError(status=409, reason="Conflict", message=message, body={})


# -- a cycle that raises ---------------------------------------------------------------------------

EXPLODE: Final = "test.aisched.io/explode"


class Exploding:
    """A filter with a bug that only some pods trigger (those labelled `EXPLODE`)."""

    name = "Exploding"
    static = False

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> FilterResult | None:
        if EXPLODE in pod.labels:
            raise KeyError("a plugin bug")
        return FilterResult.single_reason(np.ones(snapshot.size, dtype=np.bool_), "never")


def exploding(args: Mapping[str, Any], handle: Handle) -> Exploding:
    return Exploding()


async def test_a_cycle_that_raises_backs_its_gang_off_and_the_next_pod_is_still_bound(
    kube: KubeClient,
) -> None:
    registry = default_registry()
    registry.register("Exploding", exploding)
    profile = Profile(filter=(*Profile().filter, "Exploding"))
    h = harness(kube, profile=profile, registry=registry)
    async with started(h.runtime):
        await create(kube, pod("bad", gpus=1, labels={EXPLODE: "yes"}), pod("good", gpus=1))
        await wait_bound(kube, ["good"])
        failed = (await wait_pods(kube, ["bad"], unschedulable("SchedulerError")))["bad"]

        assert not is_bound(failed)
        assert "KeyError" in failed["status"]["conditions"][0]["message"]
        assert h.metrics.cycles["error"] == 1
        assert h.metrics.cycles["scheduled"] == 1
        assert h.runtime.queue.state("default/bad") is QueueState.BACKOFF
        assert "a plugin bug" in h.runtime.queue.reason("default/bad")
        assert h.runtime.cache.assumed() == []

        # The loop lives on: the bad gang is tried again after its backoff, and fails again alone.
        await create(kube, pod("later", gpus=1))
        advance(h, 2.0)
        await wait_bound(kube, ["later"])
        await h.metrics.until(lambda: h.metrics.cycles["error"] == 2)


FAIL: Final = "test.aisched.io/fail"


class Failing:
    """A PreFilter that reports an error (an outage of something it needs) for pods labelled `FAIL`."""

    name = "Failing"

    def pre_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot) -> Status:
        if any(FAIL in member.labels for member in gang.members):
            return Status.error("quota service unavailable", plugin=self.name)
        return Status.success()


async def test_a_plugin_error_counts_as_an_error_and_backs_the_gang_off(kube: KubeClient) -> None:
    registry = default_registry()
    registry.register("Failing", lambda args, handle: Failing())
    h = harness(kube, profile=Profile(pre_filter=("Gang", "Failing")), registry=registry)
    async with started(h.runtime):
        await create(kube, pod("failing", gpus=1, labels={FAIL: "yes"}), pod("fine", gpus=1))
        await wait_bound(kube, ["fine"])
        failed = (await wait_pods(kube, ["failing"], unschedulable("SchedulerError")))["failing"]

        assert failed["status"]["conditions"][0]["message"] == "quota service unavailable"
        assert (h.metrics.cycles["error"], h.metrics.cycles["unschedulable"]) == (1, 0)
        assert h.runtime.queue.state("default/failing") is QueueState.BACKOFF


async def test_a_pod_listener_that_raises_stops_neither_the_informer_nor_scheduling(kube: KubeClient) -> None:
    told: list[str] = []

    def choke_on_poison(obj: JsonObject, deleted: bool) -> None:
        told.append(obj["metadata"]["name"])
        if obj["metadata"]["name"] == "poison":
            raise ValueError("a listener bug")

    h = harness(kube, pod_listeners=[choke_on_poison])
    async with started(h.runtime):
        await create(kube, pod("poison", gpus=1))
        await create(kube, pod("after", gpus=1))
        await wait_bound(kube, ["poison", "after"])
        await h.client.until_handled("MODIFIED", POD_EVENTS, "after", where=is_bound)
        assert "after" in told


# -- Bindings answered 409 ------------------------------------------------------------------------


async def test_a_pod_another_scheduler_bound_first_ends_bound_once_and_accounted_once(
    kube: KubeClient,
) -> None:
    h = harness(kube)
    elsewhere: dict[str, str] = {}

    async def bind_it_elsewhere(binding: JsonObject) -> None:
        planned = binding["target"]["name"]
        elsewhere["node"] = next(n for n in H100 if n != planned)
        await kube.post(
            f"{PODS}/contested/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": "contested"},
                "target": {"name": elsewhere["node"]},
            },
        )
        raise conflict('pod contested is already assigned to node "' + elsewhere["node"] + '"')

    h.client.fault_binding("contested", bind_it_elsewhere)
    async with started(h.runtime):
        await create(kube, pod("contested", gpus=2))
        bound = (await wait_bound(kube, ["contested"]))["contested"]
        await h.metrics.until(lambda: h.metrics.binding_errors["conflict"] == 1)
        await h.client.until_handled("MODIFIED", POD_EVENTS, "contested", where=is_bound)

        assert bound["spec"]["nodeName"] == elsewhere["node"]
        assert h.client.binding_posts == ["contested"]  # no second attempt of ours
        usage = h.runtime.cache.pod("default/contested")
        assert usage is not None
        assert (usage.node, usage.assumed) == (elsewhere["node"], False)
        assert h.runtime.cache.assumed() == []
        assert h.metrics.gpus == 2
        assert "default/contested" not in h.runtime.queue
        assert h.client.deletes == []


async def test_a_409_on_a_still_unbound_member_is_retried_and_the_gang_binds_whole(kube: KubeClient) -> None:
    h = harness(kube)

    async def stale_conflict(binding: JsonObject) -> None:
        raise conflict("the object has been modified; please apply your changes to the latest version")

    h.client.fault_binding("pair-1", stale_conflict)
    async with started(h.runtime):
        await create(kube, *(pod(f"pair-{i}", gpus=4, gang="pair", min_member=2) for i in range(2)))
        bound = await wait_bound(kube, ["pair-0", "pair-1"])
        await h.metrics.until(lambda: h.metrics.gpus == 8 and h.metrics.binding_errors["conflict"] == 1)

        assert sorted(h.client.binding_posts) == ["pair-0", "pair-1", "pair-1"]
        assert sorted(h.client.bound) == ["pair-0", "pair-1"]
        assert h.client.deletes == []  # nothing rolled back
        assert all(is_bound(p) for p in bound.values())
        for name in ("pair-0", "pair-1"):
            await h.client.until_handled("MODIFIED", POD_EVENTS, name, where=is_bound)
        assert h.runtime.cache.assumed() == []
        assert all(h.runtime.cache.pod(f"default/pair-{i}") is not None for i in range(2))
        assert h.metrics.cycles["scheduled"] == 1


async def test_failed_binding_calls_are_counted_by_kind(kube: KubeClient) -> None:
    h = harness(kube)

    async def overloaded(binding: JsonObject) -> None:
        raise ApiError(status=503, reason="ServiceUnavailable", message="etcd is sad", body={})

    async def deleted_meanwhile(binding: JsonObject) -> None:
        await kube.delete(f"{PODS}/vanishing")
        raise ApiError(status=404, reason="NotFound", message='pods "vanishing" not found', body={})

    h.client.fault_binding("flaky", overloaded)
    h.client.fault_binding("vanishing", deleted_meanwhile)
    async with started(h.runtime):
        await create(kube, pod("flaky", gpus=1), pod("vanishing", gpus=1))
        await wait_bound(kube, ["flaky"])
        await h.metrics.until(
            lambda: (
                h.metrics.binding_errors["unavailable"] == 1 and h.metrics.binding_errors["not_found"] == 1
            )
        )
        await h.client.until_handled("DELETED", POD_EVENTS, "vanishing")

        assert h.metrics.binding_errors == {"unavailable": 1, "not_found": 1}
        assert h.runtime.cache.pod("default/vanishing") is None
        assert "default/vanishing" not in h.runtime.queue


# -- a member refused for good --------------------------------------------------------------------


async def test_a_member_refused_for_good_rolls_the_gang_back_and_it_binds_whole_once_the_fault_clears(
    kube: KubeClient,
) -> None:
    h = harness(kube)

    async def refuse_after_the_first_is_bound(binding: JsonObject) -> None:
        await h.client.signal.until(lambda: "roll-0" in h.client.bound)
        raise ApiError(
            status=403, reason="Forbidden", message="admission webhook denied the binding", body={}
        )

    h.client.fault_binding("roll-1", refuse_after_the_first_is_bound)
    members = [pod(f"roll-{i}", gpus=8, gang="roll", min_member=2) for i in range(2)]
    async with started(h.runtime):
        await create(kube, *members)
        await h.metrics.until(lambda: h.metrics.binding_errors["other"] == 1)
        await h.client.until_handled("DELETED", POD_EVENTS, "roll-0")

        # Rolled back whole: the member bound first was evicted, the other never bound.
        assert not await exists(kube, "roll-0")
        assert not is_bound(await kube.get(f"{PODS}/roll-1"))
        assert h.client.deletes == [f"{PODS}/roll-0"]
        assert h.runtime.cache.pod("default/roll-0") is None
        assert h.runtime.cache.pod("default/roll-1") is None
        assert h.metrics.gpus == 0
        assert "default/gang:roll" in h.runtime.queue

        # The fault was one-shot. Its controller recreates the evicted member; the backoff ends.
        await create(kube, members[0])
        advance(h, 61.0)
        bound = await wait_bound(kube, ["roll-0", "roll-1"])
        await h.metrics.until(lambda: h.metrics.gpus == 16)

    assert len({p["spec"]["nodeName"] for p in bound.values()}) == 2
    assert sorted(h.client.bound) == ["roll-0", "roll-0", "roll-1"]  # roll-0 twice: two pods
    assert h.metrics.binding_errors == {"other": 1}


# -- a restart --------------------------------------------------------------------------------------


async def test_a_fresh_runtime_accounts_what_is_bound_and_binds_only_what_is_pending(
    kube: KubeClient,
) -> None:
    first = harness(kube)
    async with started(first.runtime):
        await create(kube, pod("first", gpus=6, node="h100-000"))
        await wait_bound(kube, ["first"])

    # While no scheduler runs: one pod that fits beside it, one that does not, one on another node
    # (pinned, or bin-packing would put it on the fuller node first).
    await create(
        kube,
        pod("beside", gpus=2, node="h100-000"),
        pod("too-big", gpus=4, node="h100-000"),
        pod("other", gpus=1, node="h100-001"),
    )
    second = harness(kube)
    async with started(second.runtime):
        bound = await wait_bound(kube, ["beside", "other"])
        waiting = (await wait_pods(kube, ["too-big"], unschedulable()))["too-big"]
        await second.metrics.until(lambda: second.metrics.gpus == 6 + 2 + 1)

        assert sorted(second.client.binding_posts) == ["beside", "other"]
        assert sum(second.metrics.binding_errors.values()) == 0
        usage = second.runtime.cache.pod("default/first")
        assert usage is not None
        assert (usage.node, usage.assumed) == ("h100-000", False)
        first_pod = await kube.get(f"{PODS}/first")
        taken = set(first_pod["metadata"]["annotations"]["aisched.io/gpus"].split(","))
        beside = set(bound["beside"]["metadata"]["annotations"]["aisched.io/gpus"].split(","))
        assert len(taken) == 6
        assert len(beside) == 2
        assert not taken & beside
        assert taken | beside <= await gpu_uuids(kube, "h100-000")
        message = waiting["status"]["conditions"][0]["message"]
        assert message.startswith("0/8 nodes are available: ")
        assert "1 Insufficient nvidia.com/gpu" in message


# -- nodes and topologies that disappear -----------------------------------------------------------


async def test_a_deleted_node_leaves_the_cache_and_nothing_is_placed_there(kube: KubeClient) -> None:
    h = harness(kube)
    async with started(h.runtime):
        for name in H100[1:]:
            await kube.delete(f"/api/v1/nodes/{name}")
            await h.client.until_handled("DELETED", NODE_EVENTS, name)
        assert all(h.runtime.cache.node(name) is None for name in H100[1:])
        assert h.runtime.cache.node_count == 5

        only_h100 = {"aisched.io/gpu-models": "H100-80GB"}
        await create(
            kube,
            pod("pinned", gpus=1, node="h100-003"),
            *(pod(f"wide-{i}", gpus=8, gang="wide", min_member=2, annotations=only_h100) for i in range(2)),
            pod("fence", gpus=1),
        )
        await wait_bound(kube, ["fence"])
        waiting = await wait_pods(kube, ["pinned", "wide-0", "wide-1"], unschedulable())

        assert not any(is_bound(p) for p in waiting.values())
        pinned = waiting["pinned"]["status"]["conditions"][0]["message"]
        assert pinned.startswith("0/5 nodes are available: ")
        assert h.runtime.queue.state("default/gang:wide") is QueueState.UNSCHEDULABLE
        assert h.client.binding_posts == ["fence"]


async def test_a_node_whose_topology_is_deleted_falls_back_to_its_node_object(kube: KubeClient) -> None:
    h = harness(kube)
    async with started(h.runtime):
        info = h.runtime.cache.node("h100-000")
        assert info is not None
        assert info.gpus is not None
        topologies = (await kube.get(TOPOLOGIES))["items"]
        (topology,) = [t for t in topologies if t["spec"]["nodeName"] == "h100-000"]
        await kube.delete(f"{TOPOLOGIES}/{topology['metadata']['name']}")
        await h.client.until_handled("DELETED", TOPOLOGIES, topology["metadata"]["name"])

        fallback = h.runtime.cache.node("h100-000")
        assert fallback is not None
        assert fallback.gpus is None
        assert fallback.gpu_topology().count == 8  # from the Node's allocatable
        assert fallback.gpu_model == info.gpu_model  # from the Node's labels

        await create(kube, pod("no-topology", gpus=2, node="h100-000"))
        bound = (await wait_bound(kube, ["no-topology"]))["no-topology"]
        devices = bound["metadata"]["annotations"]["aisched.io/gpus"].split(",")
        assert len(devices) == 2
        assert all(d.isdigit() for d in devices)  # indices: the Node publishes no UUIDs
