"""The AIJob's pods, Service and status, decided without I/O."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime
from typing import Any, Final

from aisched.api.aijob import AIJob, AIJobQueueStatus, AIJobStatus
from aisched.api.validation import parse
from aisched.controllers.aijob.admission import Ask, Verdict
from aisched.controllers.aijob.decide import CREATE_BATCH, SURPLUS_WAITING, reconcile
from aisched.controllers.aijob.pods import ANNOTATION_ATTEMPT, job_pods, job_service
from aisched.framework.reservations import Reservation
from aisched.framework.types import PodInfo
from aisched.kube.client import JsonObject
from aisched.quota import Tenant
from aisched.quota.tenancy import Tenancy
from aisched.scheduler.queueing import QueueStatus, queue_note

NOW: Final = 1_800_000_000.0


def aijob(
    *,
    workers: int = 1,
    gpus: int = 8,
    restart: dict[str, Any] | None = None,
    gang: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> JsonObject:
    def role(name: str, count: int) -> dict[str, Any]:
        return {
            "name": name,
            "count": count,
            "template": {
                "metadata": {"labels": {"team": "research"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": "pytorch",
                            "env": [{"name": "MASTER_PORT", "value": "23456"}],
                            "resources": {"limits": {"nvidia.com/gpu": gpus}},
                        }
                    ],
                },
            },
        }

    spec: dict[str, Any] = {
        # The worker role first: the master must still get RANK 0.
        "replicas": [role("worker", workers), role("master", 1)],
        "gpu": {"models": ["H100-80GB"]},
        "topology": {"policy": "Required", "level": "rack"},
    }
    if restart is not None:
        spec["restart"] = restart
    if gang is not None:
        spec["gang"] = gang
    obj: JsonObject = {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": "ddp", "namespace": "ml", "uid": "u-1", "generation": 1, "resourceVersion": "5"},
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def env_of(pod: JsonObject) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"] if "value" in e}


def with_phase(pod: JsonObject, phase: str, *, node: str | None = "n1", **status: Any) -> JsonObject:
    out = copy.deepcopy(pod)
    if node is not None:
        out["spec"]["nodeName"] = node
        out["metadata"]["annotations"]["aisched.io/gpus"] = "GPU-a,GPU-b"
    out["status"] = {"phase": phase, **status}
    return out


def apply_status(obj: JsonObject, status: AIJobStatus | None) -> JsonObject:
    assert status is not None
    return {**obj, "status": status.to_dict()}


def test_pods_form_one_gang_with_rank_world_size_and_master_address() -> None:
    obj = aijob(workers=3)
    plan = reconcile(obj, [], now=NOW)
    pods = {p["metadata"]["name"]: p for p in plan.create}
    assert sorted(pods) == ["ddp-master-0", "ddp-worker-0", "ddp-worker-1", "ddp-worker-2"]
    master = env_of(pods["ddp-master-0"])
    assert master["RANK"] == "0"
    assert master["WORLD_SIZE"] == "4"
    assert master["MASTER_ADDR"] == "ddp-master-0.ddp.ml.svc"
    assert master["MASTER_PORT"] == "23456", "a variable the user set is kept"
    assert sorted(env_of(pods[f"ddp-worker-{i}"])["RANK"] for i in range(3)) == ["1", "2", "3"]
    infos = [PodInfo.from_manifest(p) for p in plan.create]
    assert {i.gang for i in infos} == {"ddp"}
    assert {i.gang_min_member for i in infos} == {4}
    assert {(i.topology_policy, i.topology_level) for i in infos} == {("Required", "rack")}
    assert {i.gpu_models for i in infos} == {("H100-80GB",)}
    assert {i.scheduler_name for i in infos} == {"aisched"}
    worker = pods["ddp-worker-1"]
    assert worker["metadata"]["labels"] == {
        "team": "research",
        "aisched.io/job": "ddp",
        "aisched.io/role": "worker",
        "aisched.io/index": "1",
    }
    assert worker["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert worker["spec"]["hostname"] == "ddp-worker-1"
    assert worker["spec"]["subdomain"] == "ddp"
    assert plan.status is not None
    assert plan.status.phase == "Queued"
    assert plan.status.gpus == 32


def test_the_headless_service_selects_the_jobs_pods() -> None:
    service = job_service(aijob())
    assert service["metadata"]["name"] == "ddp"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"aisched.io/job": "ddp"}


def test_nothing_is_created_twice_and_an_unchanged_status_is_not_written() -> None:
    obj = aijob()
    first = reconcile(obj, [], now=NOW)
    obj = apply_status(obj, first.status)
    again = reconcile(obj, first.create, now=NOW + 5)
    assert again.create == []
    assert again.delete == []
    assert again.status is None


def test_phase_follows_the_pods_from_queued_to_running_to_succeeded() -> None:
    obj = aijob()
    created = reconcile(obj, [], now=NOW)
    obj = apply_status(obj, created.status)
    pods = created.create
    bound = reconcile(obj, [with_phase(p, "Pending") for p in pods], now=NOW + 1)
    assert bound.status is not None
    assert bound.status.phase == "Scheduling"
    obj = apply_status(obj, bound.status)
    running = reconcile(obj, [with_phase(p, "Running") for p in pods], now=NOW + 2)
    assert running.status is not None
    assert running.status.phase == "Running"
    assert running.event is not None
    assert running.event[0] == "Running"
    assert [p.node for p in running.status.placement] == ["n1", "n1"]
    assert running.status.placement[0].gpus == ["GPU-a", "GPU-b"]
    obj = apply_status(obj, running.status)
    master_done = [
        with_phase(p, "Succeeded" if "master" in p["metadata"]["name"] else "Running") for p in pods
    ]
    done = reconcile(obj, master_done, now=NOW + 3)
    assert done.status is not None
    assert done.status.phase == "Succeeded"
    assert done.delete == ["ddp-worker-0"], "a worker still running after the master finished is stopped"
    complete = {c.type: c.status for c in done.status.conditions}
    assert complete["Complete"] == "True"


def test_an_unschedulable_verdict_reaches_the_jobs_condition_and_one_event() -> None:
    obj = aijob(gpus=9)
    created = reconcile(obj, [], now=NOW)
    obj = apply_status(obj, created.status)
    verdict = "0/32 nodes are available: 32 Insufficient nvidia.com/gpu."
    waiting = [
        {
            **p,
            "status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": verdict}
                ],
            },
        }
        for p in created.create
    ]
    plan = reconcile(obj, waiting, now=NOW + 1)
    assert plan.status is not None
    scheduled = next(c for c in plan.status.conditions if c.type == "Scheduled")
    assert (scheduled.status, scheduled.reason, scheduled.message) == (
        "False",
        "Unschedulable",
        verdict,
    )
    assert plan.event == ("Unschedulable", verdict)
    assert verdict in plan.status.message
    repeat = reconcile(apply_status(obj, plan.status), waiting, now=NOW + 2)
    assert repeat.event is None
    assert repeat.status is None


def test_a_failed_pod_restarts_the_whole_gang_then_the_new_attempt_is_created() -> None:
    obj = aijob(workers=2, restart={"policy": "OnFailure", "backoffLimit": 2})
    created = reconcile(obj, [], now=NOW)
    obj = apply_status(obj, created.status)
    pods = [with_phase(p, "Running") for p in created.create]
    obj = apply_status(obj, reconcile(obj, pods, now=NOW + 1).status)
    assert obj["status"]["phase"] == "Running"
    pods[1] = with_phase(
        pods[1],
        "Failed",
        containerStatuses=[{"name": "pytorch", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}],
    )
    restart = reconcile(obj, pods, now=NOW + 2)
    assert restart.status is not None
    assert restart.status.phase == "Restarting"
    assert restart.status.restarts == 1
    assert "exited with code 3" in restart.status.message
    assert sorted(restart.delete) == sorted(p["metadata"]["name"] for p in pods)
    assert restart.create == []
    obj = apply_status(obj, restart.status)
    # The old attempt's pods are still there (being deleted): nothing new yet.
    waiting = reconcile(obj, pods, now=NOW + 3)
    assert waiting.create == []
    assert waiting.status is None or waiting.status.phase == "Restarting"
    fresh = reconcile(obj, [], now=NOW + 4)
    assert len(fresh.create) == 3
    assert {p["metadata"]["annotations"][ANNOTATION_ATTEMPT] for p in fresh.create} == {"1"}


def test_the_job_fails_when_the_backoff_limit_is_spent() -> None:
    obj = aijob(
        restart={"policy": "OnFailure", "backoffLimit": 1}, status={"phase": "Running", "restarts": 1}
    )
    pods = job_pods(obj, _parsed(obj), attempt=1, sequence=5)
    failed = [with_phase(pods[0], "Failed", reason="Evicted"), with_phase(pods[1], "Running")]
    plan = reconcile(obj, failed, now=NOW)
    assert plan.status is not None
    assert plan.status.phase == "Failed"
    assert "backoffLimit 1 reached" in plan.status.message
    assert plan.delete == [failed[1]["metadata"]["name"]], "only the pod still holding GPUs is deleted"


def test_a_vanished_member_of_a_running_gang_counts_as_a_failure() -> None:
    obj = aijob(restart={"policy": "Never"}, status={"phase": "Running", "restarts": 0})
    pods = job_pods(obj, _parsed(obj), attempt=0, sequence=5)
    plan = reconcile(obj, [with_phase(pods[0], "Running")], now=NOW)
    assert plan.status is not None
    assert plan.status.phase == "Failed"
    assert "disappeared" in plan.status.message


def test_a_gang_that_waits_past_its_timeout_fails_with_the_reason() -> None:
    obj = aijob(gang={"timeoutSeconds": 30})
    created = reconcile(obj, [], now=NOW)
    assert created.recheck_at == NOW + 30
    obj = apply_status(obj, created.status)
    still = reconcile(obj, created.create, now=NOW + 29)
    assert still.recheck_at == NOW + 30
    late = reconcile(obj, created.create, now=NOW + 30)
    assert late.status is not None
    assert late.status.phase == "Failed"
    assert "within 30s" in late.status.message
    assert sorted(late.delete) == sorted(p["metadata"]["name"] for p in created.create)


def test_an_invalid_spec_fails_the_job_naming_the_field_and_creates_nothing() -> None:
    obj = aijob()
    obj["spec"]["gang"] = {"minMember": 99}
    plan = reconcile(obj, [], now=NOW)
    assert plan.create == []
    assert plan.status is not None
    assert plan.status.phase == "Failed"
    assert "spec.gang.minMember" in plan.status.message
    assert plan.event is not None
    assert plan.event[0] == "InvalidSpec"


def test_a_finished_job_lets_remaining_pods_go_and_stays_finished() -> None:
    obj = aijob(status={"phase": "Succeeded", "restarts": 0})
    pods = job_pods(obj, _parsed(obj), attempt=0, sequence=5)
    plan = reconcile(obj, [with_phase(pods[0], "Running"), with_phase(pods[1], "Succeeded")], now=NOW)
    assert plan.create == []
    assert plan.delete == [pods[0]["metadata"]["name"]]
    assert plan.status is None or plan.status.phase == "Succeeded"


def _tenancy(**namespaces: list[str]) -> Tenancy:
    return Tenancy([Tenant(name, namespaces=frozenset(listed)) for name, listed in namespaces.items()])


def test_the_tenant_comes_from_the_namespace_and_a_job_chooses_only_among_its_namespaces() -> None:
    namespace = aijob()["metadata"]["namespace"]
    tenancy = _tenancy(research=[namespace], inference=[namespace], other=["elsewhere"])
    plan = reconcile(aijob(), [], now=NOW, tenancy=tenancy)
    assert plan.status is not None
    assert plan.status.tenant == "inference"  # the first by name of the two listing it
    named = aijob()
    named["spec"]["tenant"] = "research"
    plan = reconcile(named, [], now=NOW, tenancy=tenancy)
    assert plan.status is not None
    assert plan.status.tenant == "research"
    assert plan.create


def test_a_job_naming_a_tenant_its_namespace_is_not_in_makes_nothing_and_says_why() -> None:
    tenancy = _tenancy(research=[aijob()["metadata"]["namespace"]], other=["elsewhere"])
    for named in ("other", "nobody"):
        obj = aijob()
        obj["spec"]["tenant"] = named
        plan = reconcile(obj, [], now=NOW, tenancy=tenancy)
        assert plan.create == []
        assert plan.status is not None
        assert plan.status.phase == "Pending"
        assert plan.status.tenant is None
        valid = next(c for c in plan.status.conditions if c.type == "Valid")
        assert (valid.status, valid.reason) == ("False", "TenantNotAllowed")
        assert valid.message.startswith(f"spec.tenant: '{named}' is not a tenant of namespace")
        assert plan.event == ("TenantNotAllowed", valid.message)


def test_a_denied_namespace_makes_nothing_until_a_quota_lists_it() -> None:
    obj = aijob()
    plan = reconcile(obj, [], now=NOW, tenancy=Tenancy(unlisted="Deny"))
    assert plan.create == []
    assert plan.status is not None
    assert "metadata.namespace: namespace" in plan.status.message
    listed = _tenancy(research=[obj["metadata"]["namespace"]])
    assert reconcile(obj, [], now=NOW, tenancy=listed).create


def _parsed(obj: JsonObject) -> AIJob:
    return parse(AIJob, obj)


def test_pods_never_restart_in_place_and_name_the_configured_scheduler() -> None:
    obj = aijob()
    obj["spec"]["replicas"][0]["template"]["spec"]["restartPolicy"] = "Always"
    plan = reconcile(obj, [], now=NOW, scheduler_name="gpu-scheduler")
    assert {p["spec"]["restartPolicy"] for p in plan.create} == {"Never"}
    assert {p["spec"]["schedulerName"] for p in plan.create} == {"gpu-scheduler"}


def test_pods_of_an_earlier_job_with_the_same_name_are_not_taken_over() -> None:
    old = aijob()
    old["metadata"]["uid"] = "u-old"
    leftovers = [with_phase(p, "Running") for p in job_pods(old, _parsed(old), attempt=0, sequence=5)]
    plan = reconcile(aijob(), leftovers, now=NOW)
    assert sorted(plan.delete) == sorted(p["metadata"]["name"] for p in leftovers)
    assert plan.create == [], "the new job's pods wait until the old ones are gone"
    assert plan.status is not None
    assert plan.status.phase != "Running"


def test_a_refused_pod_creation_is_on_the_jobs_status() -> None:
    plan = reconcile(aijob(), [], now=NOW, create_error="pods ddp-master-0: exceeded quota: gpu-quota")
    assert plan.status is not None
    scheduled = next(c for c in plan.status.conditions if c.type == "Scheduled")
    assert scheduled.reason == "PodCreateFailed"
    assert "exceeded quota" in plan.status.message
    assert len(plan.create) == 2, "and the creation is tried again"
    assert plan.event is not None
    assert plan.event[0] == "PodCreateFailed"


def test_a_jobs_gpu_share_and_mig_profile_reach_the_schedulers_view_of_its_pods() -> None:
    shared = aijob()
    mig = aijob()
    for obj, gpu in ((shared, {"milli": 250, "memory": "20Gi"}), (mig, {"migProfile": "3g.40gb"})):
        obj["spec"]["gpu"] = {"models": ["A100-80GB"], **gpu}
        for role in obj["spec"]["replicas"]:
            role["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2"}}

    shared_pods = [PodInfo.from_manifest(p) for p in reconcile(shared, [], now=NOW).create]
    mig_pods = [PodInfo.from_manifest(p) for p in reconcile(mig, [], now=NOW).create]

    assert {(p.gpu_milli, p.gpu_memory, p.mig_profile, p.gpus) for p in shared_pods} == {
        (250, 20 * 2**30, None, 0)
    }
    assert {(p.gpu_milli, p.gpu_memory, p.mig_profile, p.gpus) for p in mig_pods} == {(0, 0, "3g.40gb", 0)}


def test_the_jobs_priority_and_preemptibility_travel_on_its_pods() -> None:
    obj = aijob()
    obj["spec"]["priority"] = 100
    obj["spec"]["preemptible"] = False
    pods = reconcile(obj, [], now=NOW).create
    assert {PodInfo.from_manifest(p).priority for p in pods} == {100}
    assert {p["metadata"]["annotations"]["aisched.io/preemptible"] for p in pods} == {"false"}


def test_a_priority_class_on_the_pod_wins_over_the_jobs() -> None:
    pod = job_pods(aijob(), _parsed(aijob()), attempt=0, sequence=5)[0]
    pod["metadata"]["annotations"]["aisched.io/priority"] = "100"
    pod["spec"]["priority"] = 7
    assert PodInfo.from_manifest(pod).priority == 7
    pod["spec"].pop("priority")
    pod["metadata"]["annotations"]["aisched.io/priority"] = "not a number"
    assert PodInfo.from_manifest(pod).priority == 0


def test_a_preempted_gang_goes_back_to_the_queue_as_a_new_attempt_not_a_failure() -> None:
    obj = aijob(restart={"policy": "Never"}, status={"phase": "Running", "restarts": 0})
    pods = [with_phase(p, "Running") for p in job_pods(obj, _parsed(obj), attempt=0, sequence=5)]
    for pod in pods:
        pod["metadata"]["annotations"]["aisched.io/preempted-by"] = "serve/gang:owner"
        pod["metadata"]["annotations"]["aisched.io/preempted-at"] = str(int(NOW))
        pod["metadata"]["annotations"]["aisched.io/checkpoint-grace-seconds"] = "30"
    plan = reconcile(obj, pods[:1], now=NOW, preempted="serve/gang:owner")  # one already deleted
    assert plan.status is not None
    assert plan.status.phase == "Preempted"
    assert plan.status.preemptions == 1
    assert plan.status.restarts == 0
    assert "serve/gang:owner" in plan.status.message
    assert plan.delete == [], "the scheduler deletes victims, after their checkpoint grace period"
    obj = apply_status(obj, plan.status)
    waiting = reconcile(obj, pods[:1], now=NOW + 1)
    assert waiting.create == [], "the old attempt's pods go first"
    assert waiting.delete == []
    assert waiting.recheck_at == NOW + 30 + 60
    assert waiting.status is None or waiting.status.phase == "Preempted"
    late = reconcile(obj, pods[:1], now=NOW + 91)
    assert late.delete == [pods[0]["metadata"]["name"]], "left over by the scheduler: deleted here"
    fresh = reconcile(obj, [], now=NOW + 2)
    assert {p["metadata"]["annotations"][ANNOTATION_ATTEMPT] for p in fresh.create} == {"1"}
    assert fresh.status is not None
    assert fresh.status.phase == "Queued"


def _with_revision(obj: JsonObject, version: str) -> JsonObject:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}


def _sequences(pods: list[JsonObject]) -> set[str]:
    return {p["metadata"]["annotations"]["aisched.io/queue-sequence"] for p in pods}


def test_the_first_reconciliation_records_the_creation_revision_and_every_pod_carries_it() -> None:
    plan = reconcile(aijob(), [], now=NOW)  # resourceVersion 5: the job as created
    assert plan.status is not None
    assert plan.status.queue_sequence == 5
    assert plan.status.to_dict()["queueSequence"] == 5
    assert _sequences(plan.create) == {"5"}
    assert {PodInfo.from_manifest(p).sequence for p in plan.create} == {5}


def test_the_sequence_is_read_back_from_the_status_not_from_the_jobs_current_revision() -> None:
    first = reconcile(aijob(), [], now=NOW)
    obj = _with_revision(apply_status(aijob(), first.status), "42")  # the status write, later edits
    again = reconcile(obj, first.create[:1], now=NOW + 1)
    assert again.status is None, "an unchanged sequence costs no write"
    assert _sequences(again.create) == {"5"}, "a pod made later carries the first sequence"


def test_a_restarted_gang_keeps_its_sequence() -> None:
    obj = aijob(workers=2, restart={"policy": "OnFailure", "backoffLimit": 2})
    created = reconcile(obj, [], now=NOW)
    obj = _with_revision(apply_status(obj, created.status), "6")
    pods = [with_phase(p, "Running") for p in created.create]
    obj = _with_revision(apply_status(obj, reconcile(obj, pods, now=NOW + 1).status), "7")
    pods[0] = with_phase(pods[0], "Failed", reason="Evicted")
    restart = reconcile(obj, pods, now=NOW + 2)
    assert restart.status is not None
    assert restart.status.restarts == 1
    obj = _with_revision(apply_status(obj, restart.status), "8")
    fresh = reconcile(obj, [], now=NOW + 3)
    assert {p["metadata"]["annotations"][ANNOTATION_ATTEMPT] for p in fresh.create} == {"1"}
    assert _sequences(fresh.create) == {"5"}


def test_a_server_with_opaque_resource_versions_gives_sequence_zero() -> None:
    plan = reconcile(_with_revision(aijob(), "opaque-7f3a"), [], now=NOW)
    assert plan.status is not None
    assert plan.status.queue_sequence == 0
    assert _sequences(plan.create) == {"0"}


def test_a_pod_template_can_set_no_key_of_aisched() -> None:
    for on_pod, labels in (
        ({"aisched.io/queue-sequence": "1"}, {}),
        ({"aisched.io/tenant": "other", "aisched.io/gpus": "GPU-0"}, {}),
        ({}, {"aisched.io/job-class": "quick"}),
        ({}, {"aisched.io/gang": "someone-elses"}),
    ):
        obj = aijob()
        obj["spec"]["replicas"][0]["template"]["metadata"]["annotations"] = on_pod
        obj["spec"]["replicas"][0]["template"]["metadata"]["labels"].update(labels)
        plan = reconcile(obj, [], now=NOW)
        assert plan.create == []
        assert plan.status is not None
        assert plan.status.phase == "Failed"
        field = "annotations" if on_pod else "labels"
        assert f"spec.replicas[0].template.metadata.{field}: aisched sets these" in plan.status.message
        assert ", ".join(sorted({**on_pod, **labels})) in plan.status.message


def test_the_jobs_class_label_reaches_every_pod() -> None:
    obj = aijob()
    obj["metadata"]["labels"] = {"aisched.io/job-class": "llama-70b-pretrain"}
    pods = reconcile(obj, [], now=NOW).create
    assert {p["metadata"]["labels"]["aisched.io/job-class"] for p in pods} == {"llama-70b-pretrain"}
    assert {PodInfo.from_manifest(p).job_class for p in pods} == {"llama-70b-pretrain"}


def test_every_pod_runs_at_most_the_jobs_runtime_limit_or_its_templates_shorter_deadline() -> None:
    obj = aijob()
    obj["spec"]["runtimeLimitSeconds"] = 3600
    worker, master = obj["spec"]["replicas"]
    worker["template"]["spec"]["activeDeadlineSeconds"] = 600
    master["template"]["spec"]["activeDeadlineSeconds"] = 7200
    pods = {p["metadata"]["name"]: p for p in reconcile(obj, [], now=NOW).create}
    assert pods["ddp-worker-0"]["spec"]["activeDeadlineSeconds"] == 600, "the shorter deadline stays"
    assert pods["ddp-master-0"]["spec"]["activeDeadlineSeconds"] == 3600
    assert PodInfo.from_manifest(pods["ddp-master-0"]).runtime_limit == 3600.0


def test_without_a_runtime_limit_the_templates_deadline_is_left_as_it_is() -> None:
    obj = aijob()
    obj["spec"]["replicas"][0]["template"]["spec"]["activeDeadlineSeconds"] = 600
    pods = {p["metadata"]["name"]: p for p in reconcile(obj, [], now=NOW).create}
    assert pods["ddp-worker-0"]["spec"]["activeDeadlineSeconds"] == 600
    assert "activeDeadlineSeconds" not in pods["ddp-master-0"]["spec"]


# -- the job's place in its queue -------------------------------------------------------------------

VERDICT: Final = "0/32 nodes are available: 32 Insufficient nvidia.com/gpu."


def waiting(pods: list[JsonObject], verdict: str | None = VERDICT) -> list[JsonObject]:
    """`pods` pending, with the scheduler's `verdict` on them (None: not tried yet)."""
    status: dict[str, Any] = {"phase": "Pending"}
    if verdict is not None:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": verdict}
        ]
    return [{**p, "status": status} for p in pods]


def held(*, start: float | None, ready: int = 3, since: float = NOW - 70) -> Reservation:
    nodes = ("n1", "n2", "n3", "n4")
    return Reservation(
        gang="ml/gang:ddp",
        queue="tenant/team-a",
        order=(0, NOW - 100, 5, "ml/gang:ddp"),
        nodes=nodes,
        start=start,
        end=None,
        since=since,
        guess=None if start is not None else NOW + 900,
        wants=(8, 8, 8, 8),
        ready_nodes=ready,
    )


def place(position: int = 3, length: int = 7, reservation: Reservation | None = None) -> QueueStatus:
    return QueueStatus(
        queue="tenant/team-a",
        strategy="BestEffortFIFO",
        position=position,
        length=length,
        reservation=reservation,
    )


def queued_job() -> tuple[JsonObject, list[JsonObject]]:
    """A job whose pods have been made (not yet tried by the scheduler), and those pods."""
    obj = aijob(workers=3, gpus=9)
    created = reconcile(obj, [], now=NOW)
    return apply_status(obj, created.status), created.create


def test_a_waiting_job_shows_its_place_in_its_queue_and_the_promised_start() -> None:
    obj, pods = queued_job()
    plan = reconcile(obj, waiting(pods), now=NOW + 1, queue=place(reservation=held(start=NOW + 840)))
    assert plan.status is not None
    assert plan.status.queue == AIJobQueueStatus(
        name="tenant/team-a",
        strategy="BestEffortFIFO",
        position=3,
        length=7,
        reserved_nodes=4,
        ready_nodes=3,
        held_since=datetime(2027, 1, 15, 7, 58, 50, tzinfo=UTC),
        estimated_start=datetime(2027, 1, 15, 8, 14, tzinfo=UTC),
    )
    assert plan.status.to_dict()["queue"]["estimatedStart"] == "2027-01-15T08:14:00Z"
    assert plan.status.message == (
        "waiting for room for 4 pod(s) together: 0/32 nodes are available: 32 Insufficient"
        " nvidia.com/gpu; position 3 of 7 in tenant/team-a (BestEffortFIFO); reserved: 3 of 4 nodes"
        " held since 07:58:50Z, expected start 08:14:00Z"
    )
    assert plan.waiting


def test_without_a_promised_start_the_job_shows_where_it_is_held_but_no_start() -> None:
    obj, pods = queued_job()
    plan = reconcile(obj, waiting(pods), now=NOW + 1, queue=place(position=1, reservation=held(start=None)))
    assert plan.status is not None
    assert plan.status.queue is not None
    assert plan.status.queue.estimated_start is None, "a guessed start is never shown as expected"
    assert "estimatedStart" not in plan.status.to_dict()["queue"]
    assert (plan.status.queue.reserved_nodes, plan.status.queue.ready_nodes) == (4, 3)
    assert plan.status.queue.held_since is not None
    assert "position 1 of 7 in tenant/team-a (BestEffortFIFO); reserved: 3 of 4 nodes" in plan.status.message
    assert "start unknown" in plan.status.message


def test_a_job_behind_the_front_shows_its_position_without_a_reservation() -> None:
    obj, pods = queued_job()
    plan = reconcile(obj, waiting(pods, verdict=None), now=NOW + 1, queue=place(position=5))
    assert plan.status is not None
    assert plan.status.queue is not None
    queue = plan.status.queue
    assert (queue.position, queue.length) == (5, 7)
    assert (queue.reserved_nodes, queue.ready_nodes, queue.held_since, queue.estimated_start) == (None,) * 4
    assert plan.status.message == (
        "waiting to place 4 pod(s) together; position 5 of 7 in tenant/team-a (BestEffortFIFO)"
    )
    scheduled = next(c for c in plan.status.conditions if c.type == "Scheduled")
    assert scheduled.message == "waiting to place 4 pod(s) together", "the condition keeps still"


def test_the_schedulers_older_note_on_the_pods_gives_way_to_the_fresh_place() -> None:
    obj, pods = queued_job()
    then = held(start=NOW + 840, ready=1, since=NOW - 70)
    now = held(start=NOW + 840, ready=3, since=NOW - 70)
    verdict = VERDICT + queue_note(then)
    plan = reconcile(obj, waiting(pods, verdict), now=NOW + 1, queue=place(reservation=now))
    assert plan.status is not None
    assert "Waiting in queue" not in plan.status.message
    assert plan.status.message.count("reserved:") == 1
    assert "reserved: 3 of 4 nodes" in plan.status.message
    scheduled = next(c for c in plan.status.conditions if c.type == "Scheduled")
    assert scheduled.message == VERDICT
    assert plan.event == ("Unschedulable", VERDICT)
    replanned = VERDICT + queue_note(held(start=NOW + 900, ready=2))
    later = reconcile(
        apply_status(obj, plan.status), waiting(pods, replanned), now=NOW + 2, queue=place(reservation=now)
    )
    assert later.status is None, "a re-planned reservation on the pods is no news when the view is fresh"
    assert later.event is None


def test_without_a_view_the_schedulers_note_stays_in_the_message_but_not_in_the_condition() -> None:
    obj, pods = queued_job()
    verdict = VERDICT + queue_note(held(start=NOW + 840))
    plan = reconcile(obj, waiting(pods, verdict), now=NOW + 1)
    assert plan.status is not None
    assert plan.status.queue is None
    assert plan.status.message == f"waiting for room for 4 pod(s) together: {verdict}"
    scheduled = next(c for c in plan.status.conditions if c.type == "Scheduled")
    assert scheduled.message == VERDICT


def test_an_unchanged_place_is_not_written_and_a_new_position_is() -> None:
    obj, pods = queued_job()
    first = reconcile(obj, waiting(pods), now=NOW + 1, queue=place(position=3))
    obj = apply_status(obj, first.status)
    assert reconcile(obj, waiting(pods), now=NOW + 11, queue=place(position=3)).status is None
    moved = reconcile(obj, waiting(pods), now=NOW + 21, queue=place(position=2))
    assert moved.status is not None
    assert moved.status.queue is not None
    assert moved.status.queue.position == 2
    assert moved.event is None, "moving up the queue is no Event"


def test_the_place_is_cleared_once_the_job_runs_or_leaves_the_queue() -> None:
    obj, pods = queued_job()
    obj = apply_status(obj, reconcile(obj, waiting(pods), now=NOW + 1, queue=place()).status)
    assert obj["status"]["queue"]["position"] == 3
    gone = reconcile(obj, waiting(pods), now=NOW + 2)  # the scheduler no longer has it queued
    assert gone.status is not None
    assert gone.status.queue is None
    running = reconcile(obj, [with_phase(p, "Running") for p in pods], now=NOW + 3, queue=place())
    assert running.status is not None
    assert running.status.phase == "Running"
    assert running.status.queue is None
    assert not running.waiting
    assert "queue" not in running.status.to_dict()


def test_a_job_that_times_out_in_the_queue_leaves_it() -> None:
    obj = aijob(gpus=9, gang={"timeoutSeconds": 60})
    created = reconcile(obj, [], now=NOW)
    obj = apply_status(obj, created.status)
    pods = waiting(created.create, VERDICT + queue_note(held(start=NOW + 840)))
    obj = apply_status(obj, reconcile(obj, pods, now=NOW + 1, queue=place()).status)
    plan = reconcile(obj, pods, now=NOW + 61, queue=place())
    assert plan.status is not None
    assert plan.status.phase == "Failed"
    assert plan.status.queue is None
    assert not plan.waiting
    assert plan.status.message == f"the gang could not be placed within 60s: {VERDICT}"


def test_a_job_not_admitted_makes_no_pod_and_says_why() -> None:
    obj = aijob(workers=9_999, gpus=1)
    asked: list[Ask] = []

    def refuse(ask: Ask) -> Verdict:
        asked.append(ask)
        return Verdict("ExceedsQuota", "the job asks 10000 nvidia.com/gpu, more than tenant a may ever use")

    plan = reconcile(obj, [], now=NOW, admit=refuse)
    assert plan.create == []
    assert asked[0].demand().total == {"nvidia.com/gpu": 10_000_000}, "one pod per role, times its count"
    assert (asked[0].key, asked[0].uid, asked[0].generation) == ("ml/ddp", "u-1", 1)
    assert plan.status is not None
    assert (plan.status.phase, plan.status.message) == (
        "Pending",
        "cannot be admitted: the job asks 10000 nvidia.com/gpu, more than tenant a may ever use",
    )
    admissible = next(c for c in plan.status.conditions if c.type == "Admissible")
    assert (admissible.status, admissible.reason) == ("False", "ExceedsQuota")
    assert plan.event == ("Inadmissible", admissible.message)
    carried = aijob(workers=9_999, gpus=1, status=plan.status.to_dict())
    again = reconcile(carried, [], now=NOW + 1, admit=refuse)
    assert again.status is None, "a standing refusal costs no write when nothing changed"
    assert again.recheck_at is not None


def test_a_job_waiting_for_quota_says_so_once_and_is_admitted_later() -> None:
    def wait(ask: Ask) -> Verdict:
        return Verdict("Waiting", "waiting for quota: tenant a's admitted jobs ask 16 GPUs")

    plan = reconcile(aijob(), [], now=NOW, admit=wait)
    assert plan.create == []
    assert plan.status is not None
    admitted = next(c for c in plan.status.conditions if c.type == "Admitted")
    assert (admitted.status, admitted.reason) == ("False", "WaitingForQuota")
    assert plan.event is not None
    assert plan.event[0] == "WaitingForQuota"
    plan = reconcile(
        aijob(status=plan.status.to_dict()), [], now=NOW + 1, admit=lambda *_: Verdict("Admitted")
    )
    assert len(plan.create) == 2
    assert plan.status is not None
    admitted = next(c for c in plan.status.conditions if c.type == "Admitted")
    assert (admitted.status, admitted.reason) == ("True", "QuotaReserved")


def test_an_admitted_large_job_is_made_in_batches() -> None:
    obj = aijob(workers=249, gpus=1)
    calls: list[int] = []

    def admit(ask: Ask) -> Verdict:
        calls.append(ask.generation)
        return Verdict("Admitted")

    first = reconcile(obj, [], now=NOW, admit=admit)
    assert len(first.create) == CREATE_BATCH
    assert first.more
    made = [with_phase(p, "Pending", node=None) for p in first.create]
    second = reconcile(obj, made, now=NOW, admit=admit)
    assert len(second.create) == CREATE_BATCH
    assert not {p["metadata"]["name"] for p in second.create} & {p["metadata"]["name"] for p in made}
    made += [with_phase(p, "Pending", node=None) for p in second.create]
    third = reconcile(obj, made, now=NOW, admit=admit)
    assert len(third.create) == 50
    assert not third.more
    assert calls == [1, 1, 1], "asked each time, about the same spec (the book answers at once)"


def test_while_its_pods_are_made_a_job_counts_them_itself() -> None:
    obj = aijob(workers=299, gpus=1)
    first = reconcile(obj, [], now=NOW)
    made = [with_phase(p, "Pending", node=None) for p in first.create]
    made[0]["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "has 3 of its 250 members",
        }
    ]
    plan = reconcile(obj, made, now=NOW)
    assert plan.status is not None
    assert plan.status.message == f"making the job's pods: {CREATE_BATCH} of 300 made"


def test_the_schedulers_latest_verdict_wins_over_what_the_pods_were_last_told() -> None:
    obj, pods = queued_job()
    stale = [with_phase(p, "Pending", node=None) for p in pods]
    for pod in stale:
        pod["status"]["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "gang ml/gang:ddp has 1 of its 4 members; waiting for the rest",
            }
        ]
    latest = dataclasses.replace(place(), verdict="0/32 nodes are available: 32 Insufficient nvidia.com/gpu.")
    plan = reconcile(obj, stale, now=NOW + 1, queue=latest)
    assert plan.status is not None
    assert "32 Insufficient nvidia.com/gpu" in plan.status.message
    assert "1 of its 4 members" not in plan.status.message


def test_an_edited_spec_its_quota_does_not_admit_makes_no_more_pods() -> None:
    obj = aijob(workers=1, gpus=1)
    first = reconcile(obj, [], now=NOW, admit=lambda ask: Verdict("Admitted"))
    made = [with_phase(p, "Pending", node=None) for p in first.create]
    grown = apply_status(aijob(workers=249, gpus=1), first.status)
    grown["metadata"]["generation"] = 2
    refuse = Verdict("Waiting", "waiting for quota: tenant a's admitted jobs ask 8 nvidia.com/gpu")
    plan = reconcile(grown, made, now=NOW + 1, admit=lambda ask: refuse)
    assert plan.create == [], "nothing is made for a spec not admitted, pods or no pods"
    assert plan.status is not None
    admitted = next(c for c in plan.status.conditions if c.type == "Admitted")
    assert (admitted.status, admitted.reason) == ("False", "WaitingForQuota")
    assert admitted.message.startswith("the edited spec: waiting for quota")
    assert plan.status.admitted_generation == 1


def test_a_pod_claiming_a_refused_job_as_its_owner_gets_the_job_nothing() -> None:
    obj = aijob()
    forged = {
        "metadata": {
            "name": "sneak",
            "namespace": "ml",
            "labels": {},
            "annotations": {},
            "ownerReferences": [
                {"kind": "AIJob", "apiVersion": "aisched.io/v1alpha1", "uid": "u-1", "controller": True}
            ],
        },
        "spec": {},
        "status": {"phase": "Pending"},
    }
    refuse = Verdict("ExceedsQuota", "the job asks 16 nvidia.com/gpu, more than tenant a may ever use")
    plan = reconcile(obj, [forged], now=NOW, admit=lambda ask: refuse)
    assert plan.create == []


def test_pods_made_by_name_are_the_pods_the_whole_job_would_have() -> None:
    obj = aijob(workers=12)
    job = _parsed(obj)
    whole = {p["metadata"]["name"]: p for p in job_pods(obj, job, attempt=0, sequence=5)}
    some = {
        "ddp-worker-11",
        "ddp-master-0",
        "ddp-worker-3",
        "ddp-worker-12",
        "ddp-worker-03",
        "other-worker-1",
    }
    picked = job_pods(obj, job, attempt=0, sequence=5, only=some)
    assert [p["metadata"]["name"] for p in picked] == ["ddp-master-0", "ddp-worker-3", "ddp-worker-11"]
    assert all(p == whole[p["metadata"]["name"]] for p in picked), "same rank, same everything"


def test_a_signal_checkpoint_is_each_containers_stop_signal_and_its_grace_the_pods() -> None:
    obj = aijob(workers=2)
    obj["spec"]["checkpoint"] = {"method": "Signal", "signal": "SIGUSR1", "gracePeriodSeconds": 120}
    worker = obj["spec"]["replicas"][0]["template"]["spec"]
    worker["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["sync"]}}}
    obj["spec"]["replicas"][1]["template"]["spec"]["terminationGracePeriodSeconds"] = 10
    pods = {p["metadata"]["name"]: p["spec"] for p in job_pods(obj, _parsed(obj), attempt=0, sequence=5)}
    for spec in pods.values():
        assert spec["os"] == {"name": "linux"}, "the API server accepts a stop signal only with os.name"
        assert [c["lifecycle"]["stopSignal"] for c in spec["containers"]] == ["SIGUSR1"]
    assert pods["ddp-worker-0"]["containers"][0]["lifecycle"]["preStop"] == {"exec": {"command": ["sync"]}}
    assert pods["ddp-worker-0"]["terminationGracePeriodSeconds"] == 120
    assert pods["ddp-master-0"]["terminationGracePeriodSeconds"] == 10, "the template's own is kept"


def test_other_checkpoint_methods_leave_the_containers_stop_signal_alone() -> None:
    obj = aijob()
    obj["spec"]["checkpoint"] = {"method": "Annotation", "gracePeriodSeconds": 60}
    for pod in job_pods(obj, _parsed(obj), attempt=0, sequence=5):
        assert "os" not in pod["spec"]
        assert all("lifecycle" not in c for c in pod["spec"]["containers"])


# -- restart.policy Replace: only the lost pods go ------------------------------------------------


def _replacing_job(**status: Any) -> tuple[JsonObject, list[JsonObject]]:
    """A Replace job of 3 pods, running (`status` on top), and its running pods."""
    obj = aijob(workers=2, restart={"policy": "Replace", "backoffLimit": 3})
    obj = {**obj, "status": {"phase": "Running", "queueSequence": 5, **status}}
    attempt = int(status.get("restarts", 0))
    pods = [with_phase(p, "Running") for p in job_pods(obj, _parsed(obj), attempt=attempt, sequence=5)]
    return obj, pods


def test_a_replace_job_loses_one_pod_and_only_that_pod_goes() -> None:
    obj, pods = _replacing_job()
    assert {p["metadata"]["annotations"]["aisched.io/rendezvous-epoch"] for p in pods} == {"0"}
    assert {
        e["name"]: e["valueFrom"] for e in pods[0]["spec"]["containers"][0]["env"] if "valueFrom" in e
    } == {
        "AISCHED_RENDEZVOUS_EPOCH": {
            "fieldRef": {"fieldPath": "metadata.annotations['aisched.io/rendezvous-epoch']"}
        }
    }
    lost = with_phase(pods[2], "Failed", reason="NodeLost", message="node n1 was deleted")

    plan = reconcile(obj, [pods[0], pods[1], lost], now=NOW)

    assert plan.delete == ["ddp-worker-1"]
    assert plan.annotate == {
        n: {"aisched.io/rendezvous-epoch": "1"} for n in ("ddp-master-0", "ddp-worker-0")
    }
    assert plan.create == []
    assert plan.status is not None
    assert (plan.status.replacements, plan.status.restarts, plan.status.replacing) == (1, 0, ["ddp-worker-1"])
    assert plan.event is not None
    assert plan.event[0] == "Replacing"
    assert plan.event[1].startswith(
        "replacing 1 lost pod(s) (1/3), 2 still running: pod ddp-worker-1 failed:"
    )


def test_the_lost_pod_is_made_again_in_the_same_attempt_with_the_next_epoch_and_the_job_runs_on() -> None:
    obj, pods = _replacing_job(
        replacements=1, replacing=["ddp-worker-1"], replacingSince="2027-01-15T08:00:00Z"
    )
    survivors = pods[:2]

    plan = reconcile(obj, survivors, now=NOW)

    [made] = plan.create
    assert made["metadata"]["name"] == "ddp-worker-1"
    assert made["metadata"]["annotations"]["aisched.io/attempt"] == "0", "the survivors' attempt"
    assert made["metadata"]["annotations"]["aisched.io/rendezvous-epoch"] == "1"
    assert plan.delete == []
    assert plan.status is not None
    assert plan.status.phase == "Running"
    assert plan.status.message.startswith("replacing 1 lost pod(s): 0 placed, 2 pod(s) running")

    done = reconcile(apply_status(obj, plan.status), [*survivors, with_phase(made, "Running")], now=NOW + 5)
    assert done.status is not None
    assert (done.status.replacing, done.status.replacing_since, done.status.phase) == ([], None, "Running")
    assert done.event is not None
    assert done.event[0] == "Replaced"


def test_replacements_without_room_in_time_restart_the_whole_gang() -> None:
    since = datetime.fromtimestamp(NOW - 301, UTC).isoformat()
    obj, pods = _replacing_job(replacements=1, replacing=["ddp-worker-1"], replacingSince=since)
    waiting = with_phase(pods[2], "Pending", node=None)

    plan = reconcile(obj, [pods[0], pods[1], waiting], now=NOW)

    assert plan.status is not None
    assert (plan.status.restarts, plan.status.replacing, plan.status.phase) == (1, [], "Restarting")
    assert "found no room beside the others within 300s" in plan.status.message
    assert sorted(plan.delete) == ["ddp-master-0", "ddp-worker-0", "ddp-worker-1"]


def test_with_no_survivor_or_no_recovery_left_a_replace_job_restarts_or_fails() -> None:
    obj, pods = _replacing_job()
    every = [with_phase(p, "Failed", reason="NodeLost") for p in pods]
    plan = reconcile(obj, every, now=NOW)
    assert plan.status is not None
    assert (plan.status.phase, plan.status.restarts, plan.status.replacements) == ("Restarting", 1, 0)

    spent, pods = _replacing_job(restarts=1, replacements=2)
    plan = reconcile(spent, [pods[0], pods[1], with_phase(pods[2], "Failed")], now=NOW)
    assert plan.status is not None
    assert plan.status.phase == "Failed"
    assert plan.status.message.startswith("pod ddp-worker-1 failed")
    assert plan.status.message.endswith("backoffLimit 3 reached")


def test_a_pod_ended_by_a_fault_counts_as_failed_before_its_kubelet_says_so() -> None:
    obj, pods = _replacing_job()
    disrupted = copy.deepcopy(pods[1])
    disrupted["status"]["conditions"] = [
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "GPUUnhealthy",
            "message": "GPU GPU-b ... XID 79",
        }
    ]
    plan = reconcile(obj, [pods[0], disrupted, pods[2]], now=NOW)
    assert plan.delete == ["ddp-worker-0"]
    assert plan.event is not None
    assert "pod ddp-worker-0 failed: GPUUnhealthy (GPU GPU-b ... XID 79)" in plan.event[1]


def test_a_lost_pod_still_seen_while_it_goes_is_not_replaced_twice() -> None:
    obj, pods = _replacing_job()
    lost = with_phase(pods[2], "Failed", reason="NodeLost")
    lost["metadata"]["uid"] = "pod-3"
    first = reconcile(obj, [pods[0], pods[1], lost], now=NOW)
    assert first.status is not None
    assert first.status.replacing_uids == ["pod-3"]

    again = reconcile(apply_status(obj, first.status), [pods[0], pods[1], lost], now=NOW + 1)

    assert again.event is None, "one fault, one replacement"
    assert again.status is None or again.status.replacements == 1


def test_the_replacement_timer_starts_when_the_replacements_are_made() -> None:
    obj, pods = _replacing_job(replacements=1, replacing=["ddp-worker-1"])
    plan = reconcile(obj, pods[:2], now=NOW)
    assert [p["metadata"]["name"] for p in plan.create] == ["ddp-worker-1"]
    assert plan.status is not None
    assert plan.status.replacing_since == datetime.fromtimestamp(NOW, UTC)


def test_a_replacement_that_already_finished_ends_the_replacing() -> None:
    obj, pods = _replacing_job(
        replacements=1, replacing=["ddp-worker-1"], replacingSince="2027-01-15T08:00:00Z"
    )
    plan = reconcile(obj, [pods[0], pods[1], with_phase(pods[2], "Succeeded")], now=NOW + 5)
    assert plan.event is not None
    assert plan.event[0] == "Replaced"


def test_a_replacement_out_of_time_with_no_recovery_left_fails_the_job() -> None:
    since = datetime.fromtimestamp(NOW - 301, UTC).isoformat()
    obj, pods = _replacing_job(restarts=2, replacements=1, replacing=["ddp-worker-1"], replacingSince=since)
    plan = reconcile(obj, [pods[0], pods[1], with_phase(pods[2], "Pending", node=None)], now=NOW)
    assert plan.status is not None
    assert plan.status.phase == "Failed"
    assert plan.status.message.endswith("within 300s; backoffLimit 3 reached")


def test_every_pod_that_stays_gets_the_new_epoch_a_starting_one_too() -> None:
    obj, pods = _replacing_job(replacements=1)
    starting = with_phase(pods[1], "Pending")
    plan = reconcile(obj, [pods[0], starting, with_phase(pods[2], "Failed")], now=NOW)
    assert plan.annotate == {
        n: {"aisched.io/rendezvous-epoch": "2"} for n in ("ddp-master-0", "ddp-worker-0")
    }


# -- elastic jobs: the surplus above minReplicas takes idle room ----------------------------------


def _elastic_job(**status: Any) -> tuple[JsonObject, list[JsonObject]]:
    """A master and 1..3 workers (elastic), and its pods placed together, running."""
    obj = aijob(workers=1)
    obj["spec"]["priority"] = 5
    obj["spec"]["elastic"] = {"role": "worker", "minReplicas": 1, "maxReplicas": 3}
    obj = {**obj, "status": {"queueSequence": 5, **status}}
    pods = [with_phase(p, "Running") for p in job_pods(obj, _parsed(obj), attempt=0, sequence=5)]
    return obj, pods


def test_an_elastic_job_makes_its_pods_placed_together_first_then_its_surplus_once_they_run() -> None:
    obj, _ = _elastic_job()
    first = reconcile(obj, [], now=NOW)
    assert sorted(p["metadata"]["name"] for p in first.create) == ["ddp-master-0", "ddp-worker-0"]

    running, pods = _elastic_job(phase="Running")
    plan = reconcile(running, pods, now=NOW)

    made = {p["metadata"]["name"]: p["metadata"] for p in plan.create}
    assert sorted(made) == ["ddp-worker-1", "ddp-worker-2"]
    gangs = {meta["labels"]["aisched.io/gang"] for meta in made.values()}
    assert len(gangs) == 2, "each a gang of its own"
    assert all(g.startswith("surplus_") for g in gangs), "named as no AIJob can be"
    for meta in made.values():
        assert meta["annotations"]["aisched.io/elastic-surplus"] == "true"
        assert meta["annotations"]["aisched.io/gang-min-member"] == "1"
        assert (
            meta["annotations"]["aisched.io/priority"],
            meta["annotations"]["aisched.io/preemptible"],
        ) == (
            "4",
            "true",
        )
    assert plan.status is not None
    assert plan.status.elastic_replicas == 1


def test_an_evicted_surplus_pod_is_a_shrink_not_a_failure() -> None:
    obj, pods = _elastic_job(phase="Running", elasticReplicas=2)
    surplus = job_pods(obj, _parsed(obj), attempt=0, sequence=5, only={"ddp-worker-1"})[0]
    surplus["metadata"]["annotations"]["aisched.io/preempted-by"] = "ml/urgent"
    ended = with_phase(surplus, "Failed", reason="Error")

    plan = reconcile(obj, [*pods, ended], now=NOW)

    assert plan.delete == ["ddp-worker-1"]
    assert plan.status is not None
    assert (plan.status.phase, plan.status.restarts, plan.status.elastic_replicas, plan.status.resizes) == (
        "Running",
        0,
        1,
        1,
    )
    assert plan.event == (
        "Resized",
        "worker: 2 -> 1 running pod(s): pod ddp-worker-1 evicted to make room for ml/urgent",
    )


def test_an_elastic_job_asking_for_many_more_pods_has_a_few_waiting_at_a_time() -> None:
    obj, pods = _elastic_job(phase="Running")
    obj["spec"]["elastic"]["maxReplicas"] = 5000
    plan = reconcile(obj, pods, now=NOW)
    assert len(plan.create) == SURPLUS_WAITING
    waiting = [with_phase(p, "Pending", node=None) for p in plan.create]
    assert reconcile(obj, [*pods, *waiting], now=NOW).create == [], "none more until one is placed"
    placed = [with_phase(waiting[0], "Running"), *waiting[1:]]
    assert len(reconcile(obj, [*pods, *placed], now=NOW).create) == 1


def test_a_surplus_pod_that_failed_by_itself_stays_ended_and_is_not_made_again() -> None:
    obj, pods = _elastic_job(phase="Running", elasticReplicas=2)
    surplus = job_pods(obj, _parsed(obj), attempt=0, sequence=5, only={"ddp-worker-1"})[0]
    crashed = with_phase(surplus, "Failed", reason="Error")
    plan = reconcile(obj, [*pods, crashed], now=NOW)
    assert plan.delete == []
    assert "ddp-worker-1" not in [p["metadata"]["name"] for p in plan.create]
    assert plan.status is not None
    assert (plan.status.phase, plan.status.restarts) == ("Running", 0), "no failure of the job"
    assert plan.event is not None
    assert plan.event[1].startswith("worker: 2 -> 1 running pod(s): pod ddp-worker-1 failed")


def test_the_job_starting_is_no_resize() -> None:
    obj, pods = _elastic_job(phase="Scheduling")
    plan = reconcile(obj, pods, now=NOW)
    assert plan.status is not None
    assert (plan.status.resizes, plan.status.elastic_replicas) == (0, None)
    assert plan.create == [], "no surplus before the pods placed together run"
