"""A pod whose aisched annotations do not parse: told why on itself when it waits for us, and still
accounted, by its resource requests, when it is bound."""

from __future__ import annotations

from aisched.controllers.scheduling.reporting import REASON_INVALID, pod_scheduled_condition
from aisched.kube.client import KubeClient
from tests.controllers.scheduling.test_runtime import (
    PODS,
    create,
    failed_scheduling_events,
    harness,
    pod,
    started,
    unbound,
    unschedulable,
    wait_bound,
    wait_pods,
)

BAD_MILLI = {"aisched.io/gpu-milli": "1500"}


async def test_a_pending_pod_with_an_unreadable_annotation_gets_the_reason_once_until_fixed(
    kube: KubeClient,
) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, pod("bad", gpus=0, annotations=BAD_MILLI))
        marked = (await wait_pods(kube, ["bad"], unschedulable(REASON_INVALID)))["bad"]
        condition = pod_scheduled_condition(marked)
        assert condition is not None
        assert "aisched.io/gpu-milli='1500'" in condition["message"]
        assert "from 1 to 999" in condition["message"]

        # Other changes to the pod that leave the annotation as it is: nothing written again.
        await kube.patch(f"{PODS}/bad", {"metadata": {"labels": {"team": "nlp"}}})
        await h.client.until_handled(
            "MODIFIED", "/api/v1/pods", "bad", where=lambda o: "team" in o["metadata"].get("labels", {})
        )
        await h.runtime.reporter.wait_idle()
        assert h.client.status_patches == ["bad"]
        (event,) = await failed_scheduling_events(kube, "bad")
        assert event["type"] == "Warning"
        assert "aisched.io/gpu-milli='1500'" in event["message"]
        assert len(h.runtime.queue) == 0, "never queued with a request it cannot read"

        # Fixed, it is scheduled like any other pod, and the reporter forgets it.
        await kube.patch(f"{PODS}/bad", {"metadata": {"annotations": {"aisched.io/gpu-milli": "500"}}})
        (bound,) = (await wait_bound(kube, ["bad"])).values()
        assert bound["metadata"]["annotations"]["aisched.io/gpu-milli"] == "500"
        await h.client.until_handled(
            "MODIFIED", "/api/v1/pods", "bad", where=lambda o: bool(o["spec"].get("nodeName"))
        )
        assert "default/bad" not in h.runtime.reporter


async def test_a_bound_pod_with_an_unreadable_annotation_keeps_its_gpus(kube: KubeClient) -> None:
    # Bound before this scheduler started (another replica, or by hand), then annotated badly.
    await create(kube, pod("holder", gpus=8, annotations=BAD_MILLI))
    binding = {"metadata": {"name": "holder"}, "target": {"kind": "Node", "name": "h100-000"}}
    await kube.post(f"{PODS}/holder/binding", binding)
    h = harness(kube)
    async with started(h.runtime):
        held = h.runtime.cache.pod("default/holder")
        assert held is not None, "accounted, by its requests"
        assert (held.node, held.gpus) == ("h100-000", 8)

        await create(kube, pod("pinned", gpus=1, node="h100-000"), pod("elsewhere", gpus=8))
        (placed,) = (await wait_bound(kube, ["elsewhere"])).values()
        assert placed["spec"]["nodeName"] != "h100-000"
        await h.metrics.until(lambda: h.metrics.cycles["unschedulable"] >= 1)
        assert await unbound(kube, "pinned"), "h100-000's GPUs are the holder's: never given twice"


async def test_a_pod_naming_its_own_devices_is_not_placed_and_a_bound_pod_names_only_ours(
    kube: KubeClient,
) -> None:
    h = harness(kube)
    async with started(h.runtime):
        forged = {"aisched.io/gpus": "GPU-of-another-tenant"}
        await create(kube, pod("forger", gpus=0, annotations=forged), pod("honest", gpus=0))
        marked = (await wait_pods(kube, ["forger"], unschedulable(REASON_INVALID)))["forger"]
        condition = pod_scheduled_condition(marked)
        assert condition is not None
        assert "aisched.io/gpus: aisched names the devices when it binds a pod" in condition["message"]
        assert await unbound(kube, "forger")
        (honest,) = (await wait_bound(kube, ["honest"])).values()
        assert honest["metadata"]["annotations"]["aisched.io/gpus"] == "", "the binding's word is the last"
