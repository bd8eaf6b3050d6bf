"""Deleting a pod that runs on a node: the API server marks it Terminating, its kubelet sends each
container its stop signal (recorded as an Event), and removes the pod once the containers exit or
the grace period ends; with no kubelet answering (a node not ready) it stays Terminating."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final, cast

import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient

PODS: Final = "/api/v1/namespaces/default/pods"
EVENTS: Final = "/api/v1/namespaces/default/events"
NODE: Final = "h100-000"


@pytest.fixture
async def kube(emulator_cluster: Emulator) -> AsyncIterator[KubeClient]:
    async with KubeClient(base_url=emulator_cluster.url, timeout=10.0) as client:
        yield client


def _pod(name: str, *, signal: str | None = None, grace: int = 30, **annotations: str) -> JsonObject:
    container: dict[str, Any] = {"name": "train", "image": "pytorch"}
    if signal is not None:
        container["lifecycle"] = {"stopSignal": signal}
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "schedulerName": "aisched",
            "os": {"name": "linux"},
            "terminationGracePeriodSeconds": grace,
            "containers": [container],
        },
    }


async def _running(kube: KubeClient, pod: JsonObject, node: str = NODE) -> str:
    """Create and bind `pod`, wait until it runs; returns the revision it was running at."""
    name = pod["metadata"]["name"]
    created = await kube.post(PODS, pod)
    await kube.post(
        f"{PODS}/{name}/binding", {"metadata": {"name": name}, "target": {"kind": "Node", "name": node}}
    )
    since = str(created["metadata"]["resourceVersion"])
    async for kind, obj in _events(kube, name, since):
        if kind != "DELETED" and obj["status"].get("phase") == "Running":
            return str(obj["metadata"]["resourceVersion"])
    raise AssertionError("the pod never ran")


async def _events(kube: KubeClient, name: str, since: str) -> AsyncIterator[tuple[str, JsonObject]]:
    params = {"resourceVersion": since, "fieldSelector": f"metadata.name={name}"}
    stream = cast(AsyncGenerator[JsonObject, None], kube.watch(PODS, params=params))
    async with contextlib.aclosing(stream), asyncio.timeout(10):
        async for event in stream:
            yield event["type"], event["object"]


async def _until_gone(kube: KubeClient, name: str, since: str) -> list[tuple[str, JsonObject]]:
    seen = []
    async for kind, obj in _events(kube, name, since):
        seen.append((kind, obj))
        if kind == "DELETED":
            return seen
    raise AssertionError("the watch ended before the pod was gone")


async def _killing(kube: KubeClient, pod: str) -> list[str]:
    events = (await kube.get(EVENTS))["items"]
    return [e["message"] for e in events if e["involvedObject"]["name"] == pod and e["reason"] == "Killing"]


async def test_a_running_pod_gets_its_stop_signal_then_goes(kube: KubeClient) -> None:
    since = await _running(kube, _pod("ckpt", signal="SIGUSR1", grace=120))

    terminating = await kube.delete(f"{PODS}/ckpt")

    meta = terminating["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 120
    assert meta["deletionTimestamp"]
    seen = await _until_gone(kube, "ckpt", since)
    assert [kind for kind, _ in seen] == ["MODIFIED", "MODIFIED", "DELETED"]
    ended = seen[1][1]["status"]
    assert ended["phase"] == "Failed"
    assert ended["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 128 + 10, (
        "it exited on SIGUSR1"
    )
    assert await _killing(kube, "ckpt") == ["Stopping container train with signal SIGUSR1"]


async def test_a_request_grace_period_overrides_the_pods_and_sigterm_is_the_default(kube: KubeClient) -> None:
    await _running(kube, _pod("plain"))
    terminating = await kube.delete(f"{PODS}/plain", params={"gracePeriodSeconds": 5})
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 5
    assert await _killing(kube, "plain") == ["Stopping container train with signal SIGTERM"]


async def test_a_container_that_outlives_its_grace_period_is_killed(kube: KubeClient) -> None:
    since = await _running(kube, _pod("slow", grace=1, **{"aisched.io/sim-stop-seconds": "600"}))
    await kube.delete(f"{PODS}/slow")
    seen = await _until_gone(kube, "slow", since)
    ended = seen[-2][1]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert ended["exitCode"] == 137, "SIGKILL once the grace period was over"


async def test_a_pod_on_a_node_not_ready_stays_terminating_until_forced(
    emulator_cluster: Emulator, kube: KubeClient
) -> None:
    since = await _running(kube, _pod("stranded"))
    emulator_cluster.kubelet.fail_node(NODE)
    await kube.delete(f"{PODS}/stranded")
    # Another pod on a ready node goes all the way meanwhile: the kubelets have had their turn.
    other = await _running(kube, _pod("elsewhere"), node="h100-001")
    await kube.delete(f"{PODS}/elsewhere")
    await _until_gone(kube, "elsewhere", other)
    stranded = await kube.get(f"{PODS}/stranded")
    assert stranded["metadata"]["deletionTimestamp"]
    assert stranded["status"]["phase"] == "Running"
    assert await _killing(kube, "stranded") == [], "no kubelet answered"

    await kube.delete(f"{PODS}/stranded", params={"gracePeriodSeconds": 0})

    with pytest.raises(ApiError) as gone:
        await kube.get(f"{PODS}/stranded")
    assert gone.value.status == 404
    assert [kind for kind, _ in await _until_gone(kube, "stranded", since)][-1] == "DELETED"


async def test_a_terminating_pod_on_a_healed_node_is_stopped(
    emulator_cluster: Emulator, kube: KubeClient
) -> None:
    since = await _running(kube, _pod("later"))
    emulator_cluster.kubelet.fail_node(NODE)
    await kube.delete(f"{PODS}/later")
    emulator_cluster.kubelet.heal_node(NODE)
    assert [kind for kind, _ in await _until_gone(kube, "later", since)][-1] == "DELETED"


async def test_pods_on_no_node_or_already_ended_go_at_once(kube: KubeClient) -> None:
    await kube.post(PODS, _pod("unbound"))
    deleted = await kube.delete(f"{PODS}/unbound")
    assert "deletionTimestamp" not in deleted["metadata"]
    with pytest.raises(ApiError):
        await kube.get(f"{PODS}/unbound")


async def test_a_grace_period_that_is_not_a_number_is_refused(kube: KubeClient) -> None:
    await _running(kube, _pod("odd"))
    with pytest.raises(ApiError) as refused:
        await kube.delete(f"{PODS}/odd", params={"gracePeriodSeconds": "soon"})
    assert refused.value.status == 400


async def test_a_negative_grace_period_is_one_second(kube: KubeClient) -> None:
    await _running(kube, _pod("hasty"))
    terminating = await kube.delete(f"{PODS}/hasty", params={"gracePeriodSeconds": -5})
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 1


async def test_a_write_naming_another_uid_is_refused_and_a_delete_pinned_to_one_too(kube: KubeClient) -> None:
    await _running(kube, _pod("pinned"))
    with pytest.raises(ApiError) as patched:
        await kube.patch(
            f"{PODS}/pinned/status", {"metadata": {"uid": "someone-else"}, "status": {}}, patch="strategic"
        )
    assert patched.value.status == 409
    assert "Precondition failed: UID in precondition: someone-else" in patched.value.message
    with pytest.raises(ApiError) as deleted:
        await kube.delete(f"{PODS}/pinned", body={"preconditions": {"uid": "someone-else"}})
    assert deleted.value.status == 409
    assert (await kube.get(f"{PODS}/pinned"))["metadata"].get("deletionTimestamp") is None


async def test_a_second_delete_with_a_shorter_grace_period_kills_sooner(kube: KubeClient) -> None:
    since = await _running(kube, _pod("stubborn", grace=600, **{"aisched.io/sim-stop-seconds": "600"}))
    await kube.delete(f"{PODS}/stubborn")
    shortened = await kube.delete(f"{PODS}/stubborn", params={"gracePeriodSeconds": 1})
    assert shortened["metadata"]["deletionGracePeriodSeconds"] == 1
    seen = await _until_gone(kube, "stubborn", since)
    ended = seen[-2][1]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert ended["exitCode"] == 137, "killed when the shorter grace period ended"


async def test_a_stopped_pod_held_by_a_finalizer_goes_when_the_finalizer_does(kube: KubeClient) -> None:
    held = _pod("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    since = await _running(kube, held)
    await kube.delete(f"{PODS}/held")
    async for kind, obj in _events(kube, "held", since):
        if kind == "MODIFIED" and obj["metadata"].get("deletionGracePeriodSeconds") == 0:
            break  # stopped by its kubelet; the finalizer keeps the object
    await kube.patch(f"{PODS}/held", {"metadata": {"finalizers": []}})
    with pytest.raises(ApiError) as gone:
        await kube.get(f"{PODS}/held")
    assert gone.value.status == 404
