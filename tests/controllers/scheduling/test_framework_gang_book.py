"""How a framework's gang is kept as its pods and its sizing object change, driven through the
runtime's own informer handlers with no API server behind them (nothing here is scheduled)."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import pytest

from aisched.controllers.scheduling import SchedulerRuntime
from aisched.controllers.scheduling.frameworks import GangSizes
from aisched.framework.types import Gang
from aisched.kube.client import JsonObject
from aisched.kube.informer import index_key
from aisched.queue import GangBook
from aisched.queue.frameworks import COSCHEDULING, JOB

NS: Final = "team-a"
STARTED: Final = "2026-12-01T00:00:00Z"


class Inert:
    """A client the runtime is built with but never uses here."""

    async def get(self, path: str, **_: Any) -> JsonObject:
        raise AssertionError(f"GET {path}")

    def watch(self, path: str, **_: Any) -> AsyncIterator[JsonObject]:
        raise AssertionError(f"WATCH {path}")

    async def post(self, path: str, body: JsonObject) -> JsonObject:
        return body

    async def delete(self, path: str, **_: Any) -> JsonObject:
        return {}

    async def patch(self, path: str, body: JsonObject, **_: Any) -> JsonObject:
        return body


class CountingBook(GangBook):
    """The gang book, counting how often a gang is built from its pods."""

    def __init__(self) -> None:
        super().__init__()
        self.built = 0

    def gang(self, key: str) -> Gang | None:
        self.built += 1
        return super().gang(key)


@pytest.fixture
def runtime() -> SchedulerRuntime:
    return SchedulerRuntime(Inert(), clock=time.monotonic)


def deliver(runtime: SchedulerRuntime, *pods: JsonObject) -> None:
    """The pods informer delivers `pods` (kept in its index, as the informer keeps them)."""
    for obj in pods:
        runtime.pods._index[index_key(obj)] = obj
        runtime.watch.pods.on_add(obj)


def member(name: str, *, labels: dict[str, str] | None = None, **meta: Any) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "resourceVersion": "5",
            "creationTimestamp": STARTED,
            "labels": labels or {},
            **meta,
        },
        "spec": {
            "schedulerName": "aisched",
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 8}}}],
        },
        "status": {"phase": "Pending"},
    }


def podgroup(min_member: int, version: int) -> JsonObject:
    return {
        "apiVersion": "scheduling.x-k8s.io/v1alpha1",
        "kind": "PodGroup",
        "metadata": {"name": "pg", "namespace": NS, "uid": "pg-uid", "resourceVersion": str(version)},
        "spec": {"minMember": min_member},
    }


def gang_of(runtime: SchedulerRuntime, *, pods: int, min_member: int) -> CountingBook:
    """`pods` members of PodGroup `pg` (of `min_member`) delivered; the runtime's book, counting
    from now."""
    book = CountingBook()
    runtime.gangs = book
    runtime.gang_sizes.handler(COSCHEDULING).on_add(podgroup(min_member, 1))
    deliver(runtime, *(member(f"p{i}", labels={"scheduling.x-k8s.io/pod-group": "pg"}) for i in range(pods)))
    book.built = 0
    return book


def test_a_changed_podgroup_builds_its_gang_once_not_once_per_pod(runtime: SchedulerRuntime) -> None:
    book = gang_of(runtime, pods=200, min_member=300)
    runtime.gang_sizes.handler(COSCHEDULING).on_update(podgroup(300, 1), podgroup(200, 2))
    assert book.built == 1
    popped = runtime.queue.pop()
    assert popped is not None
    assert popped.key == f"{NS}/gang:{COSCHEDULING.kind}:pg"
    assert popped.min_member == 200
    assert popped.size == 200


def test_a_podgroup_status_update_files_nothing_again(runtime: SchedulerRuntime) -> None:
    book = gang_of(runtime, pods=3, min_member=3)
    running = {**podgroup(3, 2), "status": {"phase": "Running", "running": 3}}
    runtime.gang_sizes.handler(COSCHEDULING).on_update(podgroup(3, 1), running)
    assert book.built == 0


def job(uid: str, version: int) -> JsonObject:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": NS, "uid": uid, "resourceVersion": str(version)},
        "spec": {"completionMode": "Indexed", "completions": 3, "parallelism": 3},
    }


def job_pod(name: str, job_uid: str, index: int, *, node: str | None = None) -> JsonObject:
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": job_uid, "controller": True}
    obj = member(
        name,
        annotations={"batch.kubernetes.io/job-completion-index": str(index)},
        ownerReferences=[owner],
    )
    if node is not None:
        obj["spec"]["nodeName"] = node
        obj["status"] = {"phase": "Running", "startTime": STARTED}
    return obj


def test_pods_being_deleted_do_not_count_towards_a_job_made_again_under_their_name(
    runtime: SchedulerRuntime,
) -> None:
    sizes = runtime.gang_sizes.handler(JOB)
    sizes.on_add(job("old", 1))
    old = [job_pod(f"train-{i}-old", "old", i, node=f"node-{i}") for i in range(3)]
    deliver(runtime, *old)
    for obj in old:  # the Job is deleted: its pods are given their grace period
        going = copy.deepcopy(obj)
        going["metadata"].update(deletionTimestamp="2026-12-01T00:10:00Z", resourceVersion="6")
        runtime.watch.pods.on_update(obj, going)
    sizes.on_delete(job("old", 1))
    sizes.on_add(job("new", 2))  # applied again: the same name, another uid

    deliver(runtime, job_pod("train-0-new", "new", 0))
    key = f"{NS}/gang:{JOB.kind}:train"
    assert runtime.gangs.short(key), "one new pod of three: the dying ones are no members"
    gang = runtime.gangs.gang(key)
    assert gang is not None
    assert gang.min_member == 3


def test_a_succeeded_member_still_counts_after_a_restart_sees_it_ended(runtime: SchedulerRuntime) -> None:
    sizes = runtime.gang_sizes.handler(JOB)
    sizes.on_add(job("j", 1))
    done = [job_pod(f"train-{i}", "j", i, node=f"node-{i}") for i in range(2)]
    for obj in done:
        obj["status"]["phase"] = "Succeeded"
    deliver(runtime, *done)  # first seen ended, as after a scheduler restart
    deliver(runtime, job_pod("train-2-retry", "j", 2))
    gang = runtime.gangs.gang(f"{NS}/gang:{JOB.kind}:train")
    assert gang is not None
    assert gang.min_member == 1, "two of three have finished"

    sizes.on_delete(job("j", 1))  # the Job is gone: what it finished counts no more
    sizes.on_add(job("j2", 2))
    deliver(runtime, job_pod("train-0-next", "j2", 0))
    again = runtime.gangs.gang(f"{NS}/gang:{JOB.kind}:train")
    assert again is not None
    assert again.min_member == 3


def test_a_failure_while_filing_a_frameworks_pods_again_stays_in_its_handler() -> None:
    def broken(_: object) -> None:
        raise RuntimeError("a bug in filing")

    sizes = GangSizes([COSCHEDULING], on_change=broken)
    handler = sizes.handler(COSCHEDULING)
    handler.on_add(podgroup(3, 1))  # raises inside: logged, not raised into the informer
    handler.on_delete(podgroup(3, 1))
    assert not sizes.has((COSCHEDULING.kind, NS, "pg"))
