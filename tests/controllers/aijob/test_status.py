"""An AIJob's status built as the `AIJobStatus` model: round trips, no write when unchanged, and
the patch that writes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from aisched.api.aijob import AIJobQueueStatus, AIJobStatus, PodPlacement
from aisched.controllers.aijob.status import StatusDraft, read_status, status_patch

NOW: Final = 1_800_000_000.0
STAMP: Final = "2027-01-15T08:00:00Z"  # NOW as Kubernetes writes it
LATER: Final = "2027-01-15T08:00:10Z"  # NOW + 10


def job(status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "aisched.io/v1alpha1", "kind": "AIJob", "metadata": {"name": "j"}}
    if status is not None:
        obj["status"] = status
    return obj


def running(now: float = NOW) -> AIJobStatus:
    draft = StatusDraft(AIJobStatus(), now=now)
    draft.set(phase="Running", message="2 pod(s) running", tenant="research", gpus=16, restarts=1)
    draft.set(placement=[PodPlacement(pod="j-worker-0", role="worker", index=0, node="n1", gpus=["GPU-a"])])
    draft.stamp("queued_time")
    draft.stamp("start_time")
    draft.condition("Valid", "True", "SpecAccepted")
    draft.condition("Running", "True", "PodsRunning", "2 pod(s) running")
    status = draft.changed()
    assert status is not None
    return status


def test_a_built_status_round_trips_through_its_json() -> None:
    status = running()
    wire = status.to_dict()
    assert wire["phase"] == "Running"
    assert wire["startTime"] == wire["queuedTime"] == STAMP
    assert wire["conditions"][1] == {
        "type": "Running",
        "status": "True",
        "reason": "PodsRunning",
        "message": "2 pod(s) running",
        "lastTransitionTime": STAMP,
    }
    assert wire["placement"] == [
        {"pod": "j-worker-0", "role": "worker", "index": 0, "node": "n1", "gpus": ["GPU-a"]}
    ]
    assert read_status(job(wire)) == status
    assert read_status(job(wire)).to_dict() == wire


def test_an_unchanged_status_is_no_write() -> None:
    old = read_status(job(running().to_dict()))
    draft = StatusDraft(old, now=NOW + 10)
    draft.set(phase="Running", message="2 pod(s) running", gpus=16)
    draft.stamp("start_time")
    draft.condition("Running", "True", "PodsRunning", "2 pod(s) running")
    assert draft.changed() is None


def test_a_status_from_an_older_aisched_without_some_fields_is_unchanged_by_their_defaults() -> None:
    old = read_status(job({"phase": "Queued", "restarts": 0}))
    draft = StatusDraft(old, now=NOW)
    draft.set(phase="Queued", preemptions=0)
    assert draft.changed() is None


def test_a_condition_keeps_its_transition_time_unless_its_status_flips() -> None:
    draft = StatusDraft(running(), now=NOW + 10)
    draft.condition("Running", "True", "PodsRunning", "3 pod(s) running")
    draft.condition("Scheduled", "True", "GangPlaced")
    conditions = {c["type"]: c for c in draft.new.to_dict()["conditions"]}
    assert list(conditions) == ["Valid", "Scheduled", "Running"], "in the order kubectl describe shows"
    assert conditions["Running"]["lastTransitionTime"] == STAMP
    assert conditions["Running"]["message"] == "3 pod(s) running"
    assert conditions["Scheduled"]["lastTransitionTime"] == LATER
    draft.condition("Running", "False", "PodFailed", "pod j-worker-0 failed")
    flipped = next(c for c in draft.new.to_dict()["conditions"] if c["type"] == "Running")
    assert (flipped["status"], flipped["reason"], flipped["lastTransitionTime"]) == (
        "False",
        "PodFailed",
        LATER,
    )


def test_a_timestamp_is_set_once_unless_stamped_again() -> None:
    draft = StatusDraft(running(), now=NOW + 10)
    draft.stamp("start_time")
    draft.stamp("queued_time", again=True)
    wire = draft.new.to_dict()
    assert (wire["startTime"], wire["queuedTime"]) == (STAMP, LATER)


def test_a_restart_writes_the_dropped_timestamps_as_null_and_leaves_unknown_fields_alone() -> None:
    old = {**running().to_dict(), "fromANewerAisched": {"kept": True}}
    draft = StatusDraft(read_status(job(old)), now=NOW + 10)
    draft.set(phase="Restarting", restarts=2, placement=[])
    draft.clear("start_time")
    draft.stamp("queued_time", again=True)
    new = draft.changed()
    assert new is not None
    patch = status_patch(old, new)
    assert patch["startTime"] is None
    assert patch["queuedTime"] == LATER
    assert (patch["phase"], patch["restarts"], patch["placement"]) == ("Restarting", 2, [])
    assert "fromANewerAisched" not in patch
    assert "conditions" not in patch, "unchanged parts are not sent"


def test_a_status_the_model_cannot_read_counts_as_none_and_is_rewritten_whole() -> None:
    unreadable = {"phase": "Exploded", "restarts": -1, "startTime": "yesterday"}
    assert read_status(job(unreadable)) == AIJobStatus()
    assert read_status(job()) == AIJobStatus()
    draft = StatusDraft(read_status(job(unreadable)), now=NOW)
    draft.set(phase="Queued")
    new = draft.changed()
    assert new is not None
    patch = status_patch(unreadable, new)
    assert (patch["phase"], patch["restarts"]) == ("Queued", 0)
    assert patch["startTime"] is None


def test_a_place_in_the_queue_round_trips_and_leaves_as_null() -> None:
    waiting = running().model_copy(
        update={
            "phase": "Queued",
            "queue": AIJobQueueStatus(
                name="namespace/ml",
                strategy="StrictFIFO",
                position=2,
                length=4,
                held_since=datetime(2027, 1, 15, 8, tzinfo=UTC),
            ),
        }
    )
    wire = waiting.to_dict()
    assert wire["queue"] == {
        "name": "namespace/ml",
        "strategy": "StrictFIFO",
        "position": 2,
        "length": 4,
        "heldSince": STAMP,
    }
    assert read_status(job(wire)) == waiting
    draft = StatusDraft(read_status(job(wire)), now=NOW + 10)
    draft.set(phase="Running", queue=None)
    new = draft.changed()
    assert new is not None
    patch = status_patch(wire, new)
    assert patch["queue"] is None
