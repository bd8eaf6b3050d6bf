"""Queueing hints end to end: a gang parked as unschedulable wakes only on the cluster events the
plugins that turned it away registered. A Node heartbeat wakes nobody; a pod reaching a terminal
phase frees its room and wakes the gangs waiting for room; a pod ending does not wake a gang that
waits for a node label."""

from __future__ import annotations

from typing import Final

from aisched.kube.client import KubeClient
from aisched.queue import QueueState
from tests.controllers.scheduling.test_runtime import (
    PODS,
    advance,
    create,
    harness,
    pod,
    started,
    unschedulable,
    wait_bound,
    wait_pods,
)

NODES: Final = "/api/v1/nodes"
POD_EVENTS: Final = "/api/v1/pods"
NODE: Final = "h100-000"


async def test_a_heartbeat_leaves_a_parked_gang_parked_and_a_pod_ending_wakes_it(kube: KubeClient) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, pod("filler", gpus=8, node=NODE))
        await wait_bound(kube, ["filler"])
        await create(kube, pod("waiter", gpus=1, node=NODE))
        await wait_pods(kube, ["waiter"], unschedulable())
        assert h.runtime.queue.state("default/waiter") is QueueState.UNSCHEDULABLE
        attempts = h.metrics.cycles["unschedulable"]

        beat = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                           "lastHeartbeatTime": "2026-12-07T12:00:00Z"}]}}  # fmt: skip
        await kube.patch(f"{NODES}/{NODE}/status", beat, patch="strategic")
        await h.client.until_handled("MODIFIED", NODES, NODE)
        advance(h, 120.0)  # any backoff long over: only an event could move it now
        assert h.runtime.queue.state("default/waiter") is QueueState.UNSCHEDULABLE
        assert h.metrics.cycles["unschedulable"] == attempts

        ended = {"status": {"phase": "Succeeded"}}
        await kube.patch(f"{PODS}/filler/status", ended)
        await h.client.until_handled(
            "MODIFIED", POD_EVENTS, "filler", where=lambda o: o["status"]["phase"] == "Succeeded"
        )
        advance(h, 1.0)
        bound = await wait_bound(kube, ["waiter"])
        assert bound["waiter"]["spec"]["nodeName"] == NODE
        assert h.runtime.cache.pod("default/filler") is None  # ended: it holds nothing


async def test_a_gang_waiting_for_a_node_label_sleeps_through_pods_ending_and_wakes_on_the_label(
    kube: KubeClient,
) -> None:
    h = harness(kube)
    async with started(h.runtime):
        picky = pod("picky", gpus=1)
        picky["spec"]["nodeSelector"] = {"pool": "blue"}
        await create(kube, picky, pod("short", gpus=1))
        await wait_pods(kube, ["picky"], unschedulable())
        await wait_bound(kube, ["short"])
        attempts = h.metrics.cycles["unschedulable"]

        await kube.patch(f"{PODS}/short/status", {"status": {"phase": "Failed"}})
        await h.client.until_handled(
            "MODIFIED", POD_EVENTS, "short", where=lambda o: o["status"]["phase"] == "Failed"
        )
        advance(h, 120.0)
        assert h.runtime.queue.state("default/picky") is QueueState.UNSCHEDULABLE
        assert h.metrics.cycles["unschedulable"] == attempts

        await kube.patch(f"{NODES}/{NODE}", {"metadata": {"labels": {"pool": "blue"}}})
        await h.client.until_handled(
            "MODIFIED", NODES, NODE, where=lambda o: "pool" in o["metadata"]["labels"]
        )
        advance(h, 1.0)
        bound = await wait_bound(kube, ["picky"])
        assert bound["picky"]["spec"]["nodeName"] == NODE
