"""Tracing: a cycle's span and its per-point and per-plugin children, the job's trace joined from
the pods' annotation, sampling, preemption as an event, and the exporter configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

from aisched.framework.observe import ExtensionPoint, PluginStatus
from aisched.framework.types import Gang, PodInfo
from aisched.observability.tracing import HeadSampling, Tracing, configure_tracing, context_of, traceparent
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant
from aisched.scheduler import Scheduler
from tests.support.core import gang, node, pod, scheduler

JOB_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Plugins:
    """Records what the tracing reports of plugin timings, as `Metrics` would receive it."""

    def __init__(self) -> None:
        self.plugins: list[tuple[ExtensionPoint, str, PluginStatus]] = []
        self.points: list[tuple[ExtensionPoint, PluginStatus, str]] = []

    def observe_plugin(
        self, extension_point: ExtensionPoint, plugin: str, status: PluginStatus, seconds: float
    ) -> None:
        assert seconds >= 0
        self.plugins.append((extension_point, plugin, status))

    def observe_extension_point(
        self, extension_point: ExtensionPoint, status: PluginStatus, seconds: float, profile: str
    ) -> None:
        assert seconds >= 0
        self.points.append((extension_point, status, profile))


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def traced(provider: TracerProvider, **kwargs: object) -> Scheduler:
    base = scheduler([node(f"n{i}", rack="r1") for i in range(2)])
    tracing = Tracing(provider.get_tracer("test"), **kwargs)  # type: ignore[arg-type]
    return Scheduler(cache=base.cache, tracing=tracing)


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_placed_gang_has_a_cycle_span_with_a_child_per_extension_point_and_plugin(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    sched = traced(provider)

    result = sched.schedule(gang("g", [pod("a", gpus=8), pod("b", gpus=8)]))

    assert result.placement is not None
    spans = exporter.get_finished_spans()
    [cycle] = named(spans, "schedule_cycle")
    attrs = cycle.attributes or {}
    assert attrs["aisched.gang"] == "ml/g"
    assert attrs["aisched.pods"] == 2
    assert attrs["aisched.result"] == "scheduled"
    assert attrs["aisched.reason"] == "2 pod(s) on 2 node(s)"
    points = {s.name for s in spans if s.parent is not None and s.parent.span_id == cycle.context.span_id}
    assert points == {"PreFilter", "Filter", "PreScore", "Score"}  # the default profile's points
    [filter_point] = named(spans, "Filter")
    plugins = [s for s in spans if s.parent is not None and s.parent.span_id == filter_point.context.span_id]
    assert plugins, "the Filter span has a child per filter plugin"
    assert all(s.name.startswith("Filter/") for s in plugins)
    assert all((s.attributes or {})["aisched.status"] == "Success" for s in plugins)
    for child in plugins:  # the children sit inside their parent's time
        times = (filter_point.start_time, child.start_time, child.end_time, filter_point.end_time)
        assert None not in times
        assert list(times) == sorted(times)  # type: ignore[type-var]


def test_a_cycle_joins_the_trace_its_pods_carry_and_ignores_a_malformed_one(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    sched = traced(provider)

    sched.schedule(gang("job", [pod("a", gpus=1, trace_context=JOB_TRACE)]))
    sched.schedule(gang("forged", [pod("b", gpus=1, trace_context=JOB_TRACE.replace("-01", "-01x"))]))

    joined, forged = named(exporter.get_finished_spans(), "schedule_cycle")
    assert f"{joined.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert joined.parent is not None
    assert f"{joined.parent.span_id:016x}" == "b7ad6b7169203331"
    assert forged.parent is None
    assert forged.context.trace_id != joined.context.trace_id


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        JOB_TRACE.upper(),
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # an unknown version
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # an all-zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        JOB_TRACE + "-" + "0" * 10_000,
    ],
)
def test_a_traceparent_is_parsed_strictly(value: str | None) -> None:
    assert context_of(value) is None


def test_an_unschedulable_cycle_says_why_and_how_many_nodes_fit(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    sched = traced(provider)

    result = sched.schedule(gang("big", [pod("a", gpus=8), pod("b", gpus=8), pod("c", gpus=8)]))

    assert result.placement is None
    [cycle] = named(exporter.get_finished_spans(), "schedule_cycle")
    attrs = cycle.attributes or {}
    assert attrs["aisched.result"] == "unschedulable"
    assert attrs["aisched.reason"] == result.message


def test_a_preemption_is_an_event_of_the_cycle_naming_its_victims(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    ledger = QuotaLedger(
        [
            Tenant(name=name, namespaces=frozenset({name}), cohort="pool", guaranteed={GPU_MILLI: 8000},
                   maximum={GPU_MILLI: 16000}, min_runtime_seconds=60)
            for name in ("a", "b")
        ],
        capacity={GPU_MILLI: 16000},
    )  # fmt: skip
    now = [0.0]
    base = scheduler([node(f"n{i}", rack="r1") for i in range(2)])
    sched = Scheduler(
        cache=base.cache, ledger=ledger, clock=lambda: now[0], tracing=Tracing(provider.get_tracer("t"))
    )
    for name in ("x", "y"):
        placed = sched.schedule(
            Gang(key=f"a/{name}", members=[pod(name, gpus=8, namespace="a")], min_member=1)
        )
        assert placed.placement is not None
        sched.bound(p.pod.key for p in placed.placement.pods)
    now[0] = 100.0

    result = sched.schedule(Gang(key="b/mine", members=[pod("mine", gpus=8, namespace="b")], min_member=1))

    assert result.nomination is not None
    cycle = named(exporter.get_finished_spans(), "schedule_cycle")[-1]
    [event] = [e for e in cycle.events if e.name == "preemption"]
    assert (event.attributes or {})["aisched.victims"] == ("a/x",)
    assert (event.attributes or {})["aisched.victim_count"] == 1


def test_an_unsampled_cycle_times_no_plugin_and_exports_nothing() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = Plugins()
    sched = traced(provider, metrics=metrics, sample_every=1_000_000)

    tracing = sched.tracing
    assert tracing is not None
    probe = tracing.cycle(gang("probe", [pod("p", gpus=1)]))
    assert probe is not None
    assert probe.observer is None  # neither traced nor sampled
    probe.finish(result="scheduled")
    assert sched.schedule(gang("g", [pod("a", gpus=1)])).placement is not None

    assert exporter.get_finished_spans() == ()
    assert metrics.plugins == []


def test_one_cycle_in_sample_every_reports_each_plugin_to_the_metrics() -> None:
    provider = TracerProvider(sampler=TraceIdRatioBased(0.0))
    metrics = Plugins()
    sched = traced(provider, metrics=metrics, sample_every=3, profile="gpu-profile")

    for i in range(6):
        assert sched.schedule(gang(f"g{i}", [pod(f"p{i}", gpus=1)])).placement is not None

    # Cycles 3 and 6 were sampled: the same plugins twice, every point reported for the profile.
    per_cycle = len(metrics.plugins) // 2
    assert per_cycle > 0
    assert metrics.plugins[:per_cycle] == metrics.plugins[per_cycle:]
    assert {p for p, _, _ in metrics.points} == {"PreFilter", "Filter", "PreScore", "Score"}
    assert {profile for _, _, profile in metrics.points} == {"gpu-profile"}
    assert {status for _, _, status in metrics.plugins} == {"Success", "Skip"}  # GPUSharing skips


def test_a_failing_metrics_sink_never_breaks_the_cycle(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported

    class Broken(Plugins):
        def observe_plugin(
            self, extension_point: ExtensionPoint, plugin: str, status: PluginStatus, seconds: float
        ) -> None:
            raise RuntimeError("sink down")

    sched = traced(provider, metrics=Broken(), sample_every=1)

    assert sched.schedule(gang("g", [pod("a", gpus=1)])).placement is not None
    assert len(named(exporter.get_finished_spans(), "schedule_cycle")) == 1  # still ended


def test_a_scheduler_without_tracing_records_nothing() -> None:
    sched = Scheduler(cache=scheduler([node("n0")]).cache)

    assert sched.tracing is None
    assert sched.schedule(gang("g", [pod("a", gpus=1)])).placement is not None


def test_a_traceparent_round_trips_through_a_span(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = exported
    span = provider.get_tracer("t").start_span("aijob")
    value = traceparent(span)
    span.end()

    assert value is not None
    parsed = context_of(value)
    assert parsed is not None
    assert trace.get_current_span(parsed).get_span_context().span_id == span.get_span_context().span_id


@pytest.mark.parametrize(
    ("environ", "error"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown exporter(s) zipkin"),
        ({"OTEL_TRACES_EXPORTER": "console,jaeger"}, "unknown exporter(s) jaeger"),
    ],
)
def test_an_unknown_exporter_is_refused_by_name(environ: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER") as raised:
        configure_tracing(environ)
    assert error in str(raised.value)


@pytest.mark.parametrize("environ", [{}, {"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_TRACES_EXPORTER": " "}])
def test_no_exporter_installs_nothing(environ: dict[str, str]) -> None:
    before = trace.get_tracer_provider()
    shutdown = configure_tracing(environ)
    shutdown()
    assert trace.get_tracer_provider() is before


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, HeadSampling(1.0, follows_parent=True)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
         HeadSampling(0.01, True)),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "7"}, HeadSampling(1.0, False)),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"}, HeadSampling(1.0, False)),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, HeadSampling(0.0, follows_parent=False)),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, None),
    ],
)  # fmt: skip
def test_head_sampling_reads_the_samplers_the_sdk_reads(
    environ: dict[str, str], expected: HeadSampling | None
) -> None:
    assert HeadSampling.from_environ(environ) == expected


def test_head_sampling_follows_the_parents_flag_and_draws_for_roots() -> None:
    never = HeadSampling(0.0, follows_parent=True)
    assert not never.skips(JOB_TRACE)  # a sampled job's spans are kept whatever the root ratio
    assert never.skips(JOB_TRACE[:-2] + "00")
    assert never.skips(None)
    assert never.skips("garbage")  # a malformed parent is a root
    assert not HeadSampling(1.0, follows_parent=True).skips(None)


def test_a_root_left_out_by_head_sampling_makes_no_span_but_a_context_its_children_skip(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    tracing = Tracing(provider.get_tracer("t"), sampling=HeadSampling(0.0, follows_parent=True))

    context = tracing.root("aijob", start_time=None, attributes={"aisched.job": "ml/j"})

    assert context is not None
    assert context_of(context) is not None
    assert context.endswith("-00")
    assert tracing.cycle(gang("g", [pod("a", gpus=1, trace_context=context)])) is None
    with tracing.span("bind", parent=context) as span:
        assert not span.is_recording()
    assert exporter.get_finished_spans() == ()


def test_without_an_sdk_no_root_and_no_cycle_is_made() -> None:
    tracing = Tracing()  # the process's tracer: no SDK is configured in the tests

    assert tracing.root("aijob", start_time=None, attributes={}) is None
    assert tracing.cycle(gang("g", [pod("a")])) is None


def test_a_pod_no_aijob_controls_joins_no_trace() -> None:
    annotations = {"aisched.io/trace-context": JOB_TRACE}
    alone = {"metadata": {"name": "p", "namespace": "ml", "annotations": annotations}, "spec": {}}
    owner = {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "name": "j",
        "uid": "u",
        "controller": True,
    }
    made = {"metadata": {**alone["metadata"], "ownerReferences": [owner]}, "spec": {}}

    assert PodInfo.from_manifest(alone).trace_context is None
    assert PodInfo.from_manifest(made).trace_context == JOB_TRACE
