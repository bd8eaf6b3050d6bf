"""The scheduler's metrics: values follow what is observed, label values come from fixed sets."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aisched.observability.metrics import (
    EXTENSION_POINT_BUCKETS,
    LATENCY_BUCKETS,
    MAX_PLUGINS,
    MAX_PROFILES,
    MAX_TENANTS,
    PLUGIN_BUCKETS,
    Metrics,
)


def rendered(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of `render()`, parsed back: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return rendered(metrics)[(name, frozenset(labels.items()))]


def test_a_cycle_counts_an_attempt_by_result_and_observes_its_latency() -> None:
    metrics = Metrics()
    metrics.observe_cycle("scheduled", 0.0003)
    metrics.observe_cycle("scheduled", 0.002)
    metrics.observe_cycle("unschedulable", 0.004)

    assert value(metrics, "aisched_scheduling_attempts_total", result="scheduled", profile="aisched") == 2
    assert value(metrics, "aisched_scheduling_attempts_total", result="unschedulable", profile="aisched") == 1
    assert value(metrics, "aisched_scheduling_attempts_total", result="error", profile="aisched") == 0
    cycle = "aisched_scheduling_cycle_duration_seconds"
    assert value(metrics, f"{cycle}_count") == 3
    assert value(metrics, f"{cycle}_sum") == pytest.approx(0.0063)
    assert value(metrics, f"{cycle}_bucket", le="0.0005") == 1
    assert value(metrics, f"{cycle}_bucket", le="0.0025") == 2


def test_latency_buckets_run_from_100_microseconds_to_30_seconds() -> None:
    metrics = Metrics()
    metrics.observe_e2e(12.0)
    e2e = "aisched_pod_scheduling_e2e_duration_seconds_bucket"
    buckets = sorted(float(dict(labels)["le"]) for name, labels in rendered(metrics) if name == e2e)

    assert (buckets[0], buckets[-2], buckets[-1]) == (0.0001, 30.0, float("inf"))
    assert tuple(buckets[:-1]) == LATENCY_BUCKETS
    assert value(metrics, e2e, le="10.0") == 0
    assert value(metrics, e2e, le="30.0") == 1


def test_queue_depth_is_set_per_state_and_states_left_out_are_empty() -> None:
    metrics = Metrics()
    metrics.set_queue_depth({"active": 3, "backoff": 2, "unschedulable": 7})
    metrics.set_queue_depth({"active": 1, "unschedulable": 4})

    assert value(metrics, "aisched_queue_gangs", state="active") == 1
    assert value(metrics, "aisched_queue_gangs", state="backoff") == 0
    assert value(metrics, "aisched_queue_gangs", state="unschedulable") == 4


def test_binding_errors_gpus_and_informer_activity_are_counted() -> None:
    metrics = Metrics()
    metrics.binding_error("conflict")
    metrics.binding_error("conflict")
    metrics.binding_error("unavailable")
    metrics.set_gpus_allocated(24)
    metrics.informer_event("pods")
    metrics.informer_event("pods")
    metrics.informer_event("gpunodetopologies")
    metrics.informer_relist("nodes")

    assert value(metrics, "aisched_binding_errors_total", reason="conflict") == 2
    assert value(metrics, "aisched_binding_errors_total", reason="unavailable") == 1
    assert value(metrics, "aisched_binding_errors_total", reason="not_found") == 0
    assert value(metrics, "aisched_gpus_allocated") == 24
    assert value(metrics, "aisched_informer_events_total", resource="pods") == 2
    assert value(metrics, "aisched_informer_events_total", resource="gpunodetopologies") == 1
    assert value(metrics, "aisched_informer_relists_total", resource="nodes") == 1
    assert value(metrics, "aisched_informer_relists_total", resource="pods") == 0


def test_every_metric_is_prefixed_and_every_labelled_series_exists_before_any_observation() -> None:
    samples = rendered(Metrics())

    assert all(name.startswith("aisched_") for name, _ in samples)
    assert {dict(labels)["reason"] for name, labels in samples if name == "aisched_binding_errors_total"} == {
        "conflict",
        "not_found",
        "unavailable",
        "other",
    }


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda m, v: m.observe_cycle(v, 0.001), "team-a/llama-7b-worker-0"),
        (lambda m, v: m.binding_error(v), "Conflict"),
        (lambda m, v: m.informer_event(v), "configmaps"),
        (lambda m, v: m.informer_relist(v), "aijobs"),
        (lambda m, v: m.set_queue_depth({v: 1}), "gated"),
        (
            lambda m, v: m.observe_plugin(extension_point=v, plugin="Gang", status="Success", seconds=0.0),
            "QueueSort",
        ),
        (
            lambda m, v: m.observe_plugin(extension_point="Filter", plugin="Gang", status=v, seconds=0.0),
            "Wait",
        ),
        (lambda m, v: m.observe_extension_point(extension_point=v, status="Success", seconds=0.0), "PreBind"),
        (lambda m, v: m.observe_extension_point(extension_point="Score", status=v, seconds=0.0), "success"),
    ],
)
def test_label_values_outside_their_fixed_set_are_refused(call: Any, argument: str) -> None:
    metrics = Metrics()
    before = metrics.render()

    with pytest.raises(ValueError, match="expected one of"):
        call(metrics, argument)
    assert argument.encode() not in metrics.render()
    assert metrics.render() == before


def test_a_bad_queue_state_leaves_the_queue_gauge_unchanged() -> None:
    metrics = Metrics()
    metrics.set_queue_depth({"active": 5})

    with pytest.raises(ValueError, match="queue state"):
        metrics.set_queue_depth({"active": 1, "pending": 2})  # type: ignore[dict-item]
    assert value(metrics, "aisched_queue_gangs", state="active") == 5


@pytest.mark.parametrize("seconds", [-0.001, float("nan")])
def test_negative_or_nan_durations_are_refused(seconds: float) -> None:
    metrics = Metrics()

    with pytest.raises(ValueError, match="non-negative"):
        metrics.observe_cycle("scheduled", seconds)
    with pytest.raises(ValueError, match="non-negative"):
        metrics.observe_e2e(seconds)
    with pytest.raises(ValueError, match="non-negative"):
        metrics.observe_plugin(extension_point="Filter", plugin="Gang", status="Success", seconds=seconds)
    with pytest.raises(ValueError, match="non-negative"):
        metrics.observe_extension_point(extension_point="Filter", status="Success", seconds=seconds)
    assert value(metrics, "aisched_scheduling_attempts_total", result="scheduled", profile="aisched") == 0


def test_two_instances_do_not_share_state() -> None:
    first, second = Metrics(), Metrics()
    first.observe_cycle("error", 0.01)
    first.set_gpus_allocated(8)

    assert first.registry is not second.registry
    assert value(first, "aisched_scheduling_attempts_total", result="error", profile="aisched") == 1
    assert value(second, "aisched_scheduling_attempts_total", result="error", profile="aisched") == 0
    assert value(second, "aisched_gpus_allocated") == 0


def test_tenants_get_gpu_and_pending_series_up_to_a_bound_and_lose_them_when_gone() -> None:
    metrics = Metrics()
    metrics.set_tenant("research", used=16.0, guaranteed=8.0, borrowed=8.0, pending=2)
    assert value(metrics, "aisched_tenant_gpus", tenant="research", kind="borrowed") == 8.0
    assert value(metrics, "aisched_tenant_pending_jobs", tenant="research") == 2
    for i in range(MAX_TENANTS + 10):
        metrics.set_tenant(f"t{i}", used=1.0, guaranteed=1.0, borrowed=0.0, pending=0)
    tenants = {
        dict(labels)["tenant"] for name, labels in rendered(metrics) if name == "aisched_tenant_pending_jobs"
    }
    assert len(tenants) == MAX_TENANTS
    metrics.forget_tenant("research")
    assert ("aisched_tenant_pending_jobs", frozenset({("tenant", "research")})) not in rendered(metrics)


def test_preemptions_are_counted_by_reason() -> None:
    metrics = Metrics()
    metrics.preemption("reclaim")
    metrics.preemption("reclaim")
    metrics.preemption("priority")
    assert value(metrics, "aisched_preemptions_total", reason="reclaim") == 2
    assert value(metrics, "aisched_preemptions_total", reason="priority") == 1


def test_queue_waits_overtakes_and_reservations_are_recorded_with_queues_bounded() -> None:
    m = Metrics()
    m.queue_placed("tenant/a", waited=42.0, overtook=False)
    m.queue_placed("tenant/a", waited=3.0, overtook=True)
    assert value(m, "aisched_queue_wait_seconds_count", queue="tenant/a") == 2
    assert value(m, "aisched_queue_wait_seconds_sum", queue="tenant/a") == 45.0
    assert value(m, "aisched_queue_overtakes_total", queue="tenant/a") == 1
    m.set_reservations(2, 24)
    assert value(m, "aisched_reservations") == 2
    assert value(m, "aisched_reserved_gpus") == 24
    for i in range(MAX_TENANTS + 5):
        m.queue_placed(f"namespace/n{i}", waited=1.0, overtook=False)
    assert value(m, "aisched_queue_wait_seconds_count", queue="other") == 6


def buckets_of(metrics: Metrics, name: str) -> tuple[float, ...]:
    """The finite upper bounds of histogram `name`'s buckets, in order."""
    bounds = {float(dict(labels)["le"]) for sample, labels in rendered(metrics) if sample == f"{name}_bucket"}
    return tuple(sorted(bound for bound in bounds if bound != float("inf")))


def test_plugin_runs_are_timed_by_extension_point_plugin_and_status_in_microsecond_buckets() -> None:
    m = Metrics()
    m.observe_plugin(extension_point="Filter", plugin="GPUTopology", status="Success", seconds=0.00002)
    m.observe_plugin(extension_point="Filter", plugin="GPUTopology", status="Success", seconds=0.0004)
    m.observe_plugin(extension_point="Filter", plugin="GPUTopology", status="Unschedulable", seconds=0.00001)
    m.observe_plugin(extension_point="Score", plugin="GPUTopology", status="Success", seconds=0.003)
    name = "aisched_plugin_execution_duration_seconds"
    filtered = {"extension_point": "Filter", "plugin": "GPUTopology", "status": "Success"}

    assert value(m, f"{name}_count", **filtered) == 2
    assert value(m, f"{name}_bucket", **filtered, le="2.5e-05") == 1
    assert value(m, f"{name}_bucket", **filtered, le="0.0005") == 2
    assert (
        value(m, f"{name}_count", extension_point="Filter", plugin="GPUTopology", status="Unschedulable") == 1
    )
    assert value(m, f"{name}_sum", extension_point="Score", plugin="GPUTopology", status="Success") == 0.003
    assert buckets_of(m, name) == PLUGIN_BUCKETS
    assert (PLUGIN_BUCKETS[0], PLUGIN_BUCKETS[-1]) == (0.00001, 1.0)


@pytest.mark.parametrize("plugin", ["", "gpu-topology", "9Lives", "Gang/v2", "A" * 65, "Gang\n"])
def test_a_plugin_name_of_the_wrong_shape_is_refused_and_leaves_no_series(plugin: str) -> None:
    m = Metrics()
    before = m.render()

    with pytest.raises(ValueError, match="plugin name"):
        m.observe_plugin(extension_point="Filter", plugin=plugin, status="Success", seconds=0.001)
    assert m.render() == before


def test_plugin_names_are_bounded_and_a_refused_call_does_not_use_up_a_place() -> None:
    m = Metrics()
    for i in range(MAX_PLUGINS - 1):
        m.observe_plugin(extension_point="Score", plugin=f"Plugin{i}", status="Success", seconds=0.001)
    with pytest.raises(ValueError, match="plugin status"):
        m.observe_plugin(extension_point="Score", plugin="Late", status="Fine", seconds=0.001)  # type: ignore[arg-type]
    m.observe_plugin(extension_point="Score", plugin="Last", status="Success", seconds=0.001)
    before = m.render()

    with pytest.raises(ValueError, match=f"already {MAX_PLUGINS}"):
        m.observe_plugin(extension_point="Score", plugin="OneTooMany", status="Success", seconds=0.001)
    assert m.render() == before
    # Plugins already known keep being timed.
    m.observe_plugin(extension_point="Filter", plugin="Plugin0", status="Error", seconds=0.001)
    name = "aisched_plugin_execution_duration_seconds_count"
    assert value(m, name, extension_point="Filter", plugin="Plugin0", status="Error") == 1
    plugins = {dict(labels)["plugin"] for sample, labels in rendered(m) if sample == name}
    assert len(plugins) == MAX_PLUGINS


def test_attempts_are_counted_per_profile_with_the_default_profile_created_up_front() -> None:
    m = Metrics()
    attempts = "aisched_scheduling_attempts_total"
    profiles = {dict(labels)["profile"] for sample, labels in rendered(m) if sample == attempts}
    assert profiles == {"aisched"}

    m.observe_cycle("scheduled", 0.001)
    m.observe_cycle("scheduled", 0.001, profile="gpu-batch")
    m.observe_cycle("error", 0.001, profile="gpu-batch")

    assert value(m, attempts, result="scheduled", profile="aisched") == 1
    assert value(m, attempts, result="scheduled", profile="gpu-batch") == 1
    assert value(m, attempts, result="error", profile="gpu-batch") == 1
    assert value(m, "aisched_scheduling_cycle_duration_seconds_count") == 3


@pytest.mark.parametrize("profile", ["", "AISched", "gpu_batch", "-aisched", "a" * 254])
def test_a_profile_that_is_not_a_scheduler_name_is_refused_and_leaves_no_series(profile: str) -> None:
    m = Metrics()
    before = m.render()

    with pytest.raises(ValueError, match="profile"):
        m.observe_cycle("scheduled", 0.001, profile=profile)
    with pytest.raises(ValueError, match="profile"):
        m.observe_extension_point(extension_point="Filter", status="Success", seconds=0.001, profile=profile)
    assert m.render() == before


def test_profiles_are_bounded_with_the_default_one_counted() -> None:
    m = Metrics()
    for i in range(MAX_PROFILES - 1):
        m.observe_extension_point(extension_point="Permit", status="Success", seconds=0.0, profile=f"p{i}")
    before = m.render()

    with pytest.raises(ValueError, match=f"already {MAX_PROFILES}"):
        m.observe_cycle("scheduled", 0.001, profile="one-too-many")
    assert m.render() == before
    m.observe_cycle("scheduled", 0.001, profile="p0")
    assert value(m, "aisched_scheduling_attempts_total", result="scheduled", profile="p0") == 1


def test_extension_points_are_timed_by_status_and_profile_in_buckets_up_to_10_seconds() -> None:
    m = Metrics()
    m.observe_extension_point(extension_point="Filter", status="Success", seconds=0.002)
    m.observe_extension_point(extension_point="Filter", status="Unschedulable", seconds=4.0)
    m.observe_extension_point(extension_point="PostFilter", status="Error", seconds=0.5, profile="gpu-batch")
    name = "aisched_framework_extension_point_duration_seconds"

    assert value(m, f"{name}_count", extension_point="Filter", status="Success", profile="aisched") == 1
    unschedulable = {"extension_point": "Filter", "status": "Unschedulable", "profile": "aisched"}
    assert value(m, f"{name}_bucket", **unschedulable, le="2.5") == 0
    assert value(m, f"{name}_bucket", **unschedulable, le="5.0") == 1
    assert value(m, f"{name}_sum", extension_point="PostFilter", status="Error", profile="gpu-batch") == 0.5
    assert buckets_of(m, name) == EXTENSION_POINT_BUCKETS
    assert (EXTENSION_POINT_BUCKETS[0], EXTENSION_POINT_BUCKETS[-1]) == (0.00001, 10.0)


def test_the_framework_may_pass_its_observations_positionally() -> None:
    m = Metrics()
    m.observe_plugin("Reserve", "Quota", "Success", 0.0001)
    m.observe_extension_point("Reserve", "Success", 0.0002, "gpu-batch")
    m.observe_cycle("scheduled", 0.001, "gpu-batch")

    plugin = {"extension_point": "Reserve", "plugin": "Quota", "status": "Success"}
    assert value(m, "aisched_plugin_execution_duration_seconds_count", **plugin) == 1
    point = {"extension_point": "Reserve", "status": "Success", "profile": "gpu-batch"}
    assert value(m, "aisched_framework_extension_point_duration_seconds_count", **point) == 1
    assert value(m, "aisched_scheduling_attempts_total", result="scheduled", profile="gpu-batch") == 1
