"""Views over API objects as they come off the wire: absent and null fields, keys, phases, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, cast

import pytest

from aisched.api.objects import (
    TERMINAL_PHASES,
    ObjectView,
    PodView,
    decimal,
    object_key,
    parse_datetime,
    parse_time,
    pod_key,
    rfc3339,
    utc,
)

NOON: Final = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def pod(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **meta}}


@pytest.mark.parametrize("obj", [{}, {"metadata": None, "spec": None, "status": None}, {"metadata": "junk"}])
def test_absent_or_null_parts_read_as_empty(obj: dict[str, Any]) -> None:
    view = ObjectView(obj)
    assert (view.name, view.namespace, view.key, view.uid, view.resource_version) == ("", "", "", "", "")
    assert view.generation is None
    assert dict(view.labels) == dict(view.annotations) == dict(view.spec) == dict(view.status) == {}
    assert view.owner_references == []
    assert not view.deleting
    assert view.created is None


def test_the_empty_mapping_every_view_shares_cannot_be_written() -> None:
    labels = cast("dict[str, str]", ObjectView({}).labels)
    with pytest.raises(TypeError):
        labels["team"] = "research"
    assert dict(ObjectView({}).labels) == {}


def test_null_labels_annotations_and_owner_references_read_as_empty() -> None:
    view = ObjectView(pod(labels=None, annotations=None, ownerReferences=None, generation="3"))
    assert dict(view.labels) == dict(view.annotations) == {}
    assert view.owner_references == []
    assert view.generation is None, "a generation that is not a number is none"


def test_a_cluster_scoped_objects_key_is_its_name_and_a_namespaced_ones_carries_the_namespace() -> None:
    assert ObjectView({"metadata": {"name": "gpu-1"}}).key == "gpu-1"
    assert ObjectView({"metadata": {"name": "job", "namespace": "ml"}}).key == "ml/job"
    assert object_key(None, "gpu-1") == "gpu-1"


def test_a_pod_that_names_no_namespace_is_in_default_wherever_its_key_is_built() -> None:
    for meta in ({}, {"namespace": None}, {"namespace": ""}):
        view = PodView(pod(**meta))
        assert view.namespace == "default"
        assert view.key == "default/p"
    assert pod_key(None, "p") == pod_key("", "p") == pod_key("default", "p") == "default/p"
    assert PodView(pod(namespace="ml")).key == pod_key("ml", "p") == "ml/p"


def test_a_pod_with_nothing_but_a_name_is_pending_on_no_node_for_the_default_scheduler() -> None:
    view = PodView(pod())
    assert (view.phase, view.node_name, view.scheduler_name) == ("Pending", None, "default-scheduler")
    assert not view.terminal
    assert view.started is None
    assert view.condition("PodScheduled") is None


@pytest.mark.parametrize("phase", ["Pending", "Running", "Succeeded", "Failed", "Unknown"])
def test_only_succeeded_and_failed_pods_are_terminal(phase: str) -> None:
    view = PodView({**pod(), "status": {"phase": phase}})
    assert view.terminal == (phase in ("Succeeded", "Failed"))
    assert frozenset({"Succeeded", "Failed"}) == TERMINAL_PHASES


def test_a_pods_condition_node_and_start_are_read_from_its_spec_and_status() -> None:
    scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    view = PodView(
        {
            **pod(),
            "spec": {"nodeName": "gpu-1", "schedulerName": "aisched"},
            "status": {
                "phase": "Running",
                "startTime": "2026-11-28T12:00:00Z",
                "conditions": ["junk", scheduled],
            },
        }
    )
    assert (view.node_name, view.scheduler_name, view.phase) == ("gpu-1", "aisched", "Running")
    assert view.started == NOON.timestamp()
    assert view.condition("PodScheduled") == scheduled
    assert view.condition("Ready") is None


def test_owner_references_tell_who_owns_and_who_controls() -> None:
    refs = [
        {"kind": "AIJob", "name": "job", "uid": "u-job", "controller": True},
        {"kind": "ConfigMap", "name": "cm", "uid": "u-cm"},
        "junk",
    ]
    view = ObjectView(pod(ownerReferences=refs))
    assert [r["uid"] for r in view.owner_references] == ["u-job", "u-cm"]
    assert view.owned_by("u-job")
    assert view.owned_by("u-job", controller=True)
    assert view.owned_by("u-cm")
    assert not view.owned_by("u-cm", controller=True), "an owner, not the controller"
    assert not view.owned_by("u-other")


def test_deletion_and_creation_come_from_the_metadata() -> None:
    view = ObjectView(pod(deletionTimestamp="2026-11-28T12:00:00Z", creationTimestamp="2026-11-28T11:00:00Z"))
    assert view.deleting
    assert view.created == NOON.timestamp() - 3600


@pytest.mark.parametrize(
    "moment",
    [NOON, NOON.timestamp(), NOON.replace(tzinfo=None), NOON.astimezone(timezone(timedelta(hours=2)))],
)
def test_every_moment_is_written_as_kubernetes_writes_it(moment: datetime | float) -> None:
    assert rfc3339(moment) == "2026-11-28T12:00:00Z"
    assert rfc3339(moment, micro=True) == "2026-11-28T12:00:00.000000Z"


def test_whole_seconds_drop_the_fraction_and_micro_time_keeps_it() -> None:
    moment = NOON + timedelta(microseconds=250_000)
    assert rfc3339(moment) == "2026-11-28T12:00:00Z"
    assert rfc3339(moment, micro=True) == "2026-11-28T12:00:00.250000Z"
    assert utc(moment) == utc(moment.timestamp()) == NOON


@pytest.mark.parametrize("moment", [NOON, NOON + timedelta(days=400, seconds=7)])
def test_a_timestamp_round_trips(moment: datetime) -> None:
    assert parse_datetime(rfc3339(moment)) == moment
    assert parse_time(rfc3339(moment)) == moment.timestamp()
    assert parse_datetime(rfc3339(moment, micro=True)) == moment


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T12:00:00Z",
        "2026-11-28T12:00:00+00:00",
        "2026-11-28T14:00:00+02:00",
        "2026-11-28t12:00:00z",
        "2026-11-28T12:00:00",  # no offset: taken as UTC
        "2026-11-28T12:00:00.000000001Z",  # Go's RFC3339Nano
    ],
)
def test_timestamps_are_read_in_every_form_clients_write(text: str) -> None:
    assert parse_time(text) == NOON.timestamp()


@pytest.mark.parametrize("text", [None, "", "yesterday", 1_800_000_000])
def test_an_absent_or_unreadable_timestamp_is_none(text: object) -> None:
    assert parse_time(text) is None
    assert parse_datetime(text) is None


_DIGITS: Final = [("0", 0), ("42", 42), ("007", 7), ("-1", None), (" 4", None), ("", None), (4, None)]
#: Digits of other scripts and superscripts pass str.isdigit; int() refuses some of them.
_NOT_ASCII: Final = [("\u00b2", None), ("\u0663", None), ("\uff14", None)]


@pytest.mark.parametrize(("text", "value"), [*_DIGITS, *_NOT_ASCII])
def test_decimal_reads_ascii_digits_only(text: object, value: int | None) -> None:
    assert decimal(text) == value
