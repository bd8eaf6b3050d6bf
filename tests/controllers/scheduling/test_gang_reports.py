"""Events in proportion to jobs, not pods: a gang that cannot be placed gets one FailedScheduling
Event (on its AIJob, else on its first pod), while each of its pods still gets its PodScheduled
condition, written a bounded batch per gang at a time so that no gang waits for a huge one."""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from aisched.controllers.scheduling.reporting import FailureReporter, pod_scheduled_condition
from aisched.kube.client import JsonObject, KubeClient
from tests.binder.fakes import FakeClock
from tests.controllers.scheduling.test_reporting import VERDICT, MemoryClient, idle, pending, writing
from tests.controllers.scheduling.test_runtime import (
    EVENTS,
    create,
    harness,
    pod,
    started,
    unschedulable,
    wait_pods,
)

GANG: Final = "default/gang:big"


def members(count: int, *, prefix: str = "big", job: dict[str, Any] | None = None) -> list[JsonObject]:
    """`count` pending pods of one gang, listed in no particular order; owned by `job` if given."""
    pods = [pending(f"{prefix}-{i:03d}", uid=f"uid-{prefix}-{i}") for i in reversed(range(count))]
    if job is not None:
        for obj in pods:
            obj["metadata"]["ownerReferences"] = [job]
    return pods


def patched_pods(client: MemoryClient) -> list[str]:
    """The pods whose status `client` was asked to patch, in order."""
    return [path.split("/")[-2] for _, path, _ in client.calls if path.endswith("/status")]


async def test_a_gang_that_cannot_be_placed_gets_one_event_and_every_pod_its_condition() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock())
    async with writing(reporter):
        reporter.report_gang(GANG, members(500), message=VERDICT)
        await idle(reporter)
        reporter.report_gang(GANG, members(500), message=VERDICT)  # the next cycle: nothing new

    (event,) = client.writes("POST", "events")
    assert event["message"] == f"500 pods of gang big: {VERDICT}"
    assert event["involvedObject"]["name"] == "big-000", "the first pod by name"
    assert event["involvedObject"]["kind"] == "Pod"
    patched = patched_pods(client)
    assert sorted(patched) == [f"big-{i:03d}" for i in range(500)], "each pod once"


async def test_the_gangs_one_event_follows_its_verdict_at_once_and_its_counts_later() -> None:
    clock = FakeClock()
    client = MemoryClient()
    reporter = FailureReporter(client, clock=clock, event_interval=600.0, refresh=60.0)
    async with writing(reporter):
        for arrived in (3, 4):  # the gang assembling: only a number moves
            reporter.report_gang(GANG, members(arrived), message=f"has {arrived} of its 8 members")
            await idle(reporter)
        assert len(client.writes("PATCH", "events")) == 0
        assert len(client.writes("PATCH", "status")) == 3 + 1, "then the fourth pod's first one only"
        reporter.report_gang(GANG, members(8), message=VERDICT)  # says something new: at once
        await idle(reporter)

    (created,) = client.writes("POST", "events")
    assert created["message"] == "3 pods of gang big: has 3 of its 8 members"
    (update,) = client.writes("PATCH", "events")
    assert update["message"] == f"8 pods of gang big: {VERDICT}"
    assert update["count"] == 3
    assert len(client.writes("PATCH", "status")) == 4 + 8


async def test_the_event_of_an_aijobs_gang_is_on_the_aijob() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock())
    job = {"apiVersion": "aisched.io/v1alpha1", "kind": "AIJob", "name": "llama", "uid": "job-uid"}
    async with writing(reporter):
        reporter.report_gang("default/gang:llama", members(16, prefix="llama", job=job), message=VERDICT)

    (event,) = client.writes("POST", "events")
    assert event["involvedObject"] == {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "name": "llama",
        "namespace": "default",
        "uid": "job-uid",
    }
    assert event["message"] == f"16 pods of gang llama: {VERDICT}"
    assert len(client.writes("PATCH", "status")) == 16


async def test_a_small_gang_is_not_kept_waiting_behind_a_huge_ones_conditions() -> None:
    client = MemoryClient()
    reporter = FailureReporter(client, clock=FakeClock(), writers=1, batch=16)
    reporter.report_gang(GANG, members(500), message=VERDICT)  # noted before the writers run
    reporter.report(pending("small", uid="uid-small"), message=VERDICT)
    async with writing(reporter):
        pass

    patched = patched_pods(client)
    assert len(patched) == 501
    assert patched.index("small") == 16, "after one turn of the big gang, not after all of it"


async def test_a_500_pod_gang_the_cluster_cannot_hold_yields_one_event_and_500_conditions(
    kube: KubeClient,
) -> None:
    h = harness(kube)
    async with started(h.runtime):
        await create(kube, *(pod(f"wide-{i:03d}", gpus=8, gang="wide", min_member=500) for i in range(500)))
        marked = await wait_pods(kube, [f"wide-{i:03d}" for i in range(500)], unschedulable())
        await h.runtime.reporter.wait_idle()

    conditions = [pod_scheduled_condition(obj) or {} for obj in marked.values()]
    (verdict,) = {condition["message"] for condition in conditions}  # every pod told, the same
    events = [e for e in (await kube.get(EVENTS))["items"] if e.get("reason") == "FailedScheduling"]
    (event,) = events
    assert event["involvedObject"]["name"] == "wide-000"
    assert event["message"] == f"500 pods of gang wide: {verdict}"
    assert event["count"] > 1, "the cycles while the gang assembled are counted in it"
    writes = Counter(h.client.status_patches)
    assert writes.keys() == marked.keys()
    assert max(writes.values()) <= 2, "waiting for the rest, then why it does not fit: no write per arrival"
