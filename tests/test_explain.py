"""`aisched explain` over a fake API reader: targets, a pod alone, a pod explained by its job, the
text rendering of each section, and answers that always have the four sections."""

from __future__ import annotations

from typing import Any

import pytest

from aisched.explain import explain, parse_target, render
from aisched.kube.client import ApiError, JsonObject

TQ = "/apis/aisched.io/v1alpha1/tenantquotas"


class Reader:
    """Objects by path; anything else is a 404, as the API server answers."""

    def __init__(self, objects: dict[str, JsonObject]) -> None:
        self.objects = objects
        self.asked: list[str] = []

    async def get(self, path: str) -> JsonObject:
        self.asked.append(path)
        if path in self.objects:
            return self.objects[path]
        raise ApiError(status=404, reason="NotFound", message=f"{path} not found", body={})


def quota(name: str, namespaces: list[str], **status: Any) -> JsonObject:
    return {"metadata": {"name": name}, "spec": {"namespaces": namespaces}, "status": status}


@pytest.mark.parametrize(
    ("target", "namespace", "parsed"),
    [
        ("ml/job", None, (None, "ml", "job")),
        ("job", "ml", (None, "ml", "job")),
        ("job", None, (None, "default", "job")),
        ("aijob/ml/job", None, ("AIJob", "ml", "job")),
        ("pod/job-0", "ml", ("Pod", "ml", "job-0")),
        ("po/ml/job-0", "ml", ("Pod", "ml", "job-0")),
    ],
)
def test_targets_are_read_as_kubectl_names_them(
    target: str, namespace: str | None, parsed: tuple[str | None, str, str]
) -> None:
    assert parse_target(target, namespace) == parsed


@pytest.mark.parametrize(
    ("target", "namespace", "error"),
    [
        ("a/b/c", None, "expected NAMESPACE/NAME"),
        ("ml/job", "other", "names namespace ml, but -n says other"),
        ("/job", None, "must not be empty"),
    ],
)
def test_a_malformed_target_is_refused_by_name(target: str, namespace: str | None, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_target(target, namespace)


async def test_a_pod_alone_is_explained_by_its_condition_and_its_tenants_quota() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "team"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
                }
            ],
        },
    }
    reader = Reader(
        {
            "/api/v1/namespaces/team/pods/p": pod,
            TQ: {"items": [quota("team-a", ["team"]), quota("other", ["elsewhere"])]},
            f"{TQ}/team-a": quota("team-a", ["team"], usedGPUs=8.0, guaranteedGPUs=16.0),
        }
    )

    answer = await explain(reader, "team", "p")

    assert {"quota", "placement", "queue", "preemption"} <= set(answer)
    assert answer["object"] == {"kind": "Pod", "namespace": "team", "name": "p", "phase": "Pending"}
    assert answer["placement"]["message"] == "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
    assert answer["quota"] == {"tenant": "team-a", "tenantStatus": {"usedGPUs": 8.0, "guaranteedGPUs": 16.0}}
    text = render(answer)
    assert "Pod team/p: Pending" in text
    assert "tenant team-a" in text
    assert "tenant now: 8 GPUs used of 16 guaranteed" in text


async def test_a_pod_of_a_job_is_explained_by_the_job_that_owns_it() -> None:
    job = {
        "metadata": {"name": "train", "namespace": "ml", "uid": "u1"},
        "status": {
            "phase": "Queued",
            "message": "waiting",
            "tenant": "research",
            "pendingReason": {
                "stage": "Scheduling",
                "quota": {"tenant": "research", "asked": 64.0, "inUse": 16.0, "blocking": False},
                "placement": {
                    "nodes": 32,
                    "feasibleNodes": 0,
                    "reasons": [{"reason": "Insufficient nvidia.com/gpu", "nodes": 31}],
                    "topology": [],
                    "fragmentation": "56 GPUs free, enough for the 32 asked, but scattered",
                    "freeGPUs": 56,
                },
                "queue": {
                    "name": "tenant/research",
                    "strategy": "BestEffortFIFO",
                    "position": 2,
                    "length": 5,
                },
                "preemption": {"wouldPreempt": True, "victims": ["ml/old"]},
            },
        },
    }
    owner = {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "name": "train",
        "uid": "u1",
        "controller": True,
    }
    pod = {"metadata": {"name": "train-worker-0", "namespace": "ml", "ownerReferences": [owner]}}
    reader = Reader(
        {
            "/api/v1/namespaces/ml/pods/train-worker-0": pod,
            "/apis/aisched.io/v1alpha1/namespaces/ml/aijobs/train": job,
        }
    )

    answer = await explain(reader, "ml", "train-worker-0", kind="Pod")

    assert answer["pod"] == {"namespace": "ml", "name": "train-worker-0"}
    assert answer["object"]["kind"] == "AIJob"
    assert answer["placement"]["freeGPUs"] == 56
    text = render(answer)
    assert "    31 Insufficient nvidia.com/gpu" in text
    assert "fragmentation: 56 GPUs free" in text
    assert "position 2 of 5 in tenant/research (BestEffortFIFO)" in text
    assert "yes: evicting 1 gang(s): ml/old" in text
    assert "holds the job back: no" in text


async def test_a_pod_naming_a_job_that_is_not_its_owner_is_explained_alone() -> None:
    owner = {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "name": "train",
        "uid": "forged",
        "controller": True,
    }
    pod = {
        "metadata": {"name": "p", "namespace": "ml", "ownerReferences": [owner]},
        "status": {"phase": "Pending"},
    }
    job = {"metadata": {"name": "train", "namespace": "ml", "uid": "real"}, "status": {"phase": "Running"}}
    reader = Reader(
        {
            "/api/v1/namespaces/ml/pods/p": pod,
            "/apis/aisched.io/v1alpha1/namespaces/ml/aijobs/train": job,
            TQ: {"items": []},
        }
    )

    answer = await explain(reader, "ml", "p", kind="Pod")

    assert answer["object"]["kind"] == "Pod"
    assert answer["quota"]["tenant"] is None


async def test_nothing_by_that_name_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="no AIJob or pod ml/none"):
        await explain(Reader({}), "ml", "none")


async def test_a_job_refused_at_admission_without_a_tenant_still_says_why() -> None:
    job = {
        "metadata": {"name": "big", "namespace": "demo", "uid": "u"},
        "status": {
            "phase": "Pending",
            "pendingReason": {
                "stage": "Admission",
                "quota": {"blocking": True, "message": "a pod asks 9 GPUs; no node has more than 8 GPUs"},
            },
        },
    }
    reader = Reader({"/apis/aisched.io/v1alpha1/namespaces/demo/aijobs/big": job})

    text = render(await explain(reader, "demo", "big"))

    assert "no TenantQuota applies" in text
    assert "holds the job back: a pod asks 9 GPUs; no node has more than 8 GPUs" in text
    assert "Placement:  not looked at: the job is not admitted (see quota), so it has no pods yet" in text


@pytest.mark.parametrize(
    ("queue", "line"),
    [
        ({"reservedNodes": 4, "readyNodes": 3, "spareNodes": 2},
         "holds 4 node(s) to start on, 3 with room now, and 2 more"),
        ({"reservedNodes": 0, "spareNodes": 32},
         "holds the 32 node(s) it could start on, behind gangs ahead"),
    ],
)  # fmt: skip
async def test_the_nodes_a_waiting_job_holds_are_told_apart(queue: dict[str, int], line: str) -> None:
    status = {"name": "namespace/demo", "strategy": "BestEffortFIFO", "position": 2, "length": 3, **queue}
    job = {
        "metadata": {"name": "j", "namespace": "demo", "uid": "u"},
        "status": {"phase": "Queued", "pendingReason": {"stage": "Scheduling", "queue": status}},
    }

    text = render(
        await explain(Reader({"/apis/aisched.io/v1alpha1/namespaces/demo/aijobs/j": job}), "demo", "j")
    )

    assert line in text
