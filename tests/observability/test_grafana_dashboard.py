"""manifests/grafana-dashboard.json: a Grafana dashboard whose every query reads series the scheduler
exports, so renaming a metric without the dashboard fails here rather than on an operator's screen."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from prometheus_client import CollectorRegistry

from aisched.observability.metrics import Metrics
from tests.support.promql import metric_names

DASHBOARD: Final = Path(__file__).parents[2] / "manifests" / "grafana-dashboard.json"
DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}
#: The series prometheus-client writes for a metric family of each type (a counter's family is
#: named without its `_total`).
SERIES_SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}
#: What an operator looks for first.
REQUIRED_PANELS: Final = (
    "Scheduling throughput",
    "Scheduling cycle latency",
    "Pod end-to-end latency",
    "Plugin latency p99 by plugin",
    "Queue depth by state",
    "GPUs allocated and reserved",
    "Tenant GPU usage vs guarantee",
    "Tenant pending jobs",
    "Queue wait p90 by queue",
    "Preemptions by reason",
    "Binding errors by reason",
    "Node faults",
)

Panel = dict[str, Any]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(container: dict[str, Any]) -> Iterator[Panel]:
    """Every panel, those kept inside a collapsed row included."""
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def queried(board: dict[str, Any]) -> Iterator[Panel]:
    """The panels that query Prometheus: all but rows."""
    return (panel for panel in panels(board) if panel["type"] != "row")


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every target."""
    for panel in queried(board):
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def exported_series(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry's metrics can expose. A labelled metric has no samples until
    something is observed, so the names follow from each family's type as well as its samples."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES[family.type])
    return names


def unknown_metrics(board: dict[str, Any], exported: set[str]) -> set[tuple[str, str]]:
    """(panel title, metric name) of every metric a query reads that is not exported."""
    return {
        (title, name) for title, expr in queries(board) for name in metric_names(expr) if name not in exported
    }


def test_the_dashboard_is_identified_and_asks_for_a_prometheus_data_source() -> None:
    board = dashboard()

    assert board["uid"] == "aisched"
    assert board["schemaVersion"] >= 39
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_and_target_queries_through_the_data_source_variable() -> None:
    for panel in queried(dashboard()):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_the_dashboard_has_the_panels_an_operator_looks_for() -> None:
    titles = [panel["title"] for panel in panels(dashboard())]

    assert set(REQUIRED_PANELS) <= set(titles)
    assert len(titles) == len(set(titles))


def test_panel_ids_are_unique_and_refs_unique_within_a_panel() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in queried(board):
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_metric_a_query_reads_is_a_series_the_scheduler_exports() -> None:
    board = dashboard()
    exported = exported_series(Metrics().registry)

    assert all(metric_names(expr) for _, expr in queries(board))
    assert unknown_metrics(board, exported) == set()


def test_the_lexer_finds_every_aisched_metric_named_in_the_queries() -> None:
    for title, expr in queries(dashboard()):
        named = set(re.findall(r"\baisched_[A-Za-z0-9_:]+", expr))
        assert named <= set(metric_names(expr)), title


def test_every_metric_the_scheduler_exports_has_a_panel() -> None:
    read = {name for _, expr in queries(dashboard()) for name in metric_names(expr)}
    families = {family.name: family.type for family in Metrics().registry.collect()}

    unshown = {
        name
        for name, kind in families.items()
        if not any(name + suffix in read for suffix in SERIES_SUFFIXES[kind])
    }
    assert unshown == set()


def test_a_metric_renamed_in_a_query_is_reported_with_its_panel() -> None:
    board = copy.deepcopy(dashboard())
    for panel in queried(board):
        for target in panel["targets"]:
            target["expr"] = target["expr"].replace("aisched_preemptions_total", "aisched_preemption_total")

    assert unknown_metrics(board, exported_series(Metrics().registry)) == {
        ("Preemptions by reason", "aisched_preemption_total")
    }


def test_a_metric_the_code_stops_exporting_is_reported() -> None:
    exported = exported_series(Metrics().registry) - {"aisched_plugin_execution_duration_seconds_bucket"}

    assert unknown_metrics(dashboard(), exported) == {
        ("Plugin latency p99 by plugin", "aisched_plugin_execution_duration_seconds_bucket")
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aisched_scheduling_attempts_total", True),
        ("aisched_scheduling_attempts", False),
        ("aisched_plugin_execution_duration_seconds_bucket", True),
        ("aisched_plugin_execution_duration_seconds", False),
        ("aisched_queue_wait_seconds_count", True),
        ("aisched_gpus_allocated", True),
        ("aisched_gpus_allocated_total", False),
    ],
)
def test_exported_series_are_the_names_prometheus_sees(name: str, expected: bool) -> None:
    assert (name in exported_series(Metrics().registry)) is expected


def test_the_series_a_family_type_implies_include_every_sample_it_writes() -> None:
    metrics = Metrics()
    metrics.observe_plugin(extension_point="Filter", plugin="Gang", status="Success", seconds=0.001)
    metrics.set_tenant("research", used=1.0, guaranteed=1.0, borrowed=0.0, pending=0)
    metrics.queue_placed("research", waited=1.0, overtook=True)

    for family in metrics.registry.collect():
        implied = {family.name + suffix for suffix in SERIES_SUFFIXES[family.type]}
        assert {sample.name for sample in family.samples} <= implied, family.name
