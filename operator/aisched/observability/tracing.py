"""Tracing: OpenTelemetry spans of scheduling cycles, bindings and each AIJob's life.

The code speaks only the OpenTelemetry API, so with nothing configured every span is the API's
no-op one. `configure_tracing` (called by `aisched run`) installs the SDK when the standard
variables ask for an exporter: `OTEL_TRACES_EXPORTER=console` (spans as JSON on stdout) or `otlp`
(OTLP over HTTP, `OTEL_EXPORTER_OTLP_ENDPOINT`), sampled by `OTEL_TRACES_SAMPLER` /
`OTEL_TRACES_SAMPLER_ARG` (default: parent-based, always on), named by `OTEL_SERVICE_NAME`
(default `aisched`). The SDK and exporter are the `otel` extra.

Spans (names are stable; README lists them):

- `aijob`: the root of one AIJob's trace, started at the job's creation. Its context (a W3C
  traceparent) is recorded in the job's status and copied to its `aisched.io/trace-context`
  annotation and onto its pods, so every later span of the job is its child: `aijob.<reason>`
  at each change of phase (Queued, Admitted, Running, Preempted, Restarting, Completed, ...),
  `schedule_cycle` for each cycle of its gang, `bind` for its Bindings.
- `schedule_cycle`: one gang's cycle (attributes `aisched.gang`, `aisched.pods`, `aisched.result`,
  `aisched.reason`, `aisched.feasible_nodes`); events `preemption` (the victims) and `reservation`
  (the nodes held). When the cycle is sampled, a child span per extension point (`PreFilter`,
  `Filter`, `Score`, ...) with a child per plugin call (`Filter/GPUModel`, ...), built after the
  fact from the timings the framework's observer noted.
- `bind`: one gang's Bindings; a child `bind_pod` per Binding POST.

A traceparent on a pod is read only from pods an AIJob controls (the controller wrote it from the
job's status), parsed strictly, a malformed one ignored: a client cannot pick the trace a job's
spans join or force them to be sampled.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags, Tracer
from opentelemetry.util.types import AttributeValue

from aisched.framework.observe import ExtensionPoint, PluginStatus, status_of
from aisched.observability.logging import get_logger

if TYPE_CHECKING:
    from aisched.framework.reservations import Reservation
    from aisched.framework.types import Gang

__all__ = [
    "INSTRUMENTATION",
    "CycleTrace",
    "HeadSampling",
    "PluginMetrics",
    "Tracing",
    "configure_tracing",
    "context_of",
    "get_tracer",
    "reservation_attributes",
    "traceparent",
]

log = get_logger(__name__)

INSTRUMENTATION: Final = "aisched"
#: One cycle in this many is timed plugin by plugin for the latency metrics, as kube-scheduler
#: samples its plugin execution durations (a traced cycle is always timed). kube-scheduler times
#: one in ten; here a timed cycle costs about 45 us more (17 observations into prometheus-client
#: histograms), so one in 32 keeps the cost near 1.5 % of a 5,000-node cycle (`bench core`).
PLUGIN_SAMPLE_EVERY: Final = 32
_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_MAX_VICTIMS: Final = 16

T = TypeVar("T")


def get_tracer() -> Tracer:
    """The process's tracer: a no-op until `configure_tracing` (or a test) sets a provider."""
    return trace.get_tracer(INSTRUMENTATION)


def context_of(value: str | None) -> Context | None:
    """The span context a W3C traceparent names, as a parent; None when absent or malformed."""
    if not value or len(value) != 55:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match[3], 16) & 1))
    return trace.set_span_in_context(NonRecordingSpan(remote))


def traceparent(span: Span) -> str | None:
    """The W3C traceparent of `span`, None for an invalid (no-op) span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 1:02x}"


class PluginMetrics(Protocol):
    """Where sampled plugin timings go (`observability.metrics.Metrics`)."""

    def observe_plugin(
        self, extension_point: ExtensionPoint, plugin: str, status: PluginStatus, seconds: float
    ) -> None: ...

    def observe_extension_point(
        self, extension_point: ExtensionPoint, status: PluginStatus, seconds: float, profile: str
    ) -> None: ...


_Call = tuple[ExtensionPoint, str, PluginStatus, int, int]  # point, plugin, status, start, end (ns)


class CycleTrace:
    """One cycle's span and, when it is traced or sampled, the timings of its plugin calls.

    `observer` is what the framework's `CycleState` gets: this object when plugin calls are to be
    timed, else None (then plugins are called directly and nothing is noted)."""

    __slots__ = ("_calls", "_metrics", "_profile", "_tracer", "observer", "recording", "span")

    def __init__(
        self, tracer: Tracer, span: Span, *, metrics: PluginMetrics | None, sampled: bool, profile: str
    ) -> None:
        self._tracer = tracer
        self.span = span
        self.recording = span.is_recording()
        self._metrics = metrics if sampled else None
        self._profile = profile
        self._calls: list[_Call] = []
        self.observer: CycleTrace | None = self if self.recording or self._metrics is not None else None

    def call(self, point: ExtensionPoint, plugin: str, run: Callable[[], T]) -> T:
        start = time.time_ns()
        result = run()
        self._calls.append((point, plugin, status_of(result), start, time.time_ns()))
        return result

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        """A decision taken in this cycle (preemption, reservation), as a span event."""
        if self.recording:
            self.span.add_event(name, attributes)

    def finish(
        self, *, result: str, reason: str = "", feasible: int | None = None, victims: tuple[str, ...] = ()
    ) -> None:
        """End the cycle's span with its outcome, and emit the plugin spans and metrics noted.
        Never raises: a failure here is logged, and the cycle's verdict stands."""
        try:
            self._finish(result, reason, feasible, victims)
        except Exception:
            log.exception("cycle_trace_failed", span=self.span.get_span_context().span_id)
        finally:
            self.span.end()

    def _finish(self, result: str, reason: str, feasible: int | None, victims: tuple[str, ...]) -> None:
        if self.recording:
            attributes: dict[str, AttributeValue] = {"aisched.result": result}
            if reason:
                attributes["aisched.reason"] = reason[:1024]
            if feasible is not None:
                attributes["aisched.feasible_nodes"] = feasible
            self.span.set_attributes(attributes)
            if victims:
                self.event(
                    "preemption",
                    {"aisched.victims": list(victims[:_MAX_VICTIMS]), "aisched.victim_count": len(victims)},
                )
            if result == "error":
                self.span.set_status(trace.StatusCode.ERROR, reason[:256])
        if self._calls:
            self._emit()

    def _emit(self) -> None:
        tracer = self._tracer if self.recording else None
        parent = trace.set_span_in_context(self.span)
        for point, calls in _by_point(self._calls):
            start, end = calls[0][3], calls[-1][4]
            status: PluginStatus = next((c[2] for c in calls if c[2] not in ("Success", "Skip")), "Success")
            if self._metrics is not None:
                self._metrics.observe_extension_point(point, status, (end - start) / 1e9, self._profile)
                for _, plugin, plugin_status, begun, ended in calls:
                    self._metrics.observe_plugin(point, plugin, plugin_status, (ended - begun) / 1e9)
            if tracer is None:
                continue
            span = tracer.start_span(
                point, context=parent, start_time=start, attributes={"aisched.status": status}
            )
            inner = trace.set_span_in_context(span)
            for _, plugin, plugin_status, begun, ended in calls:
                child = tracer.start_span(
                    f"{point}/{plugin}",
                    context=inner,
                    start_time=begun,
                    attributes={"aisched.plugin": plugin, "aisched.status": plugin_status},
                )
                child.end(end_time=ended)
            span.end(end_time=end)


def _by_point(calls: list[_Call]) -> Iterator[tuple[ExtensionPoint, list[_Call]]]:
    """Consecutive calls of one extension point, grouped (Filter runs once per role)."""
    group: list[_Call] = []
    for call in calls:
        if group and group[0][0] != call[0]:
            yield group[0][0], group
            group = []
        group.append(call)
    if group:
        yield group[0][0], group


@dataclass(frozen=True)
class HeadSampling:
    """The SDK's sampling decision, known before a span is started: the share of root traces it
    samples, and whether a child follows its parent's decision (the `parentbased_*` samplers). A
    cycle that would not be sampled then costs no span at all, only a random draw."""

    root: float
    follows_parent: bool

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> HeadSampling | None:
        """From `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` as the SDK reads them (default
        `parentbased_always_on`); None for a sampler it cannot foresee."""
        env = os.environ if environ is None else environ
        name = (env.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
        follows = name.startswith("parentbased_")
        kind = name.removeprefix("parentbased_")
        if kind == "always_on":
            return cls(1.0, follows)
        if kind == "always_off":
            return cls(0.0, follows)
        if kind != "traceidratio":
            return None
        try:
            ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG") or 1.0)
        except ValueError:
            ratio = 1.0  # as the SDK does with an argument it cannot read
        return cls(min(max(ratio, 0.0), 1.0), follows)

    def skips(self, parent: str | None) -> bool:
        """Whether the SDK would not sample a span whose parent is the traceparent `parent`
        (None or malformed: a root)."""
        if parent is not None and self.follows_parent and context_of(parent) is not None:
            return not int(parent[-2:], 16) & 1
        return self.root < 1.0 and random.random() >= self.root


class Tracing:
    """The operator's spans and plugin timings (a `framework.observe.CycleTracer` for its
    scheduler). `tracer` defaults to the process's (a no-op until `configure_tracing`); `metrics`,
    when set, receives the plugin timings of one cycle in `sample_every`; `sampling`, when given,
    decides which cycles get a span before the SDK is asked (None: every cycle asks it)."""

    def __init__(
        self,
        tracer: Tracer | None = None,
        *,
        metrics: PluginMetrics | None = None,
        profile: str = "aisched",
        sample_every: int = PLUGIN_SAMPLE_EVERY,
        sampling: HeadSampling | None = None,
    ) -> None:
        self.tracer: Tracer = tracer or get_tracer()
        #: Whether spans are made: a tracer given, or the process's SDK configured when this was
        #: built (`configure_tracing` runs first); else a cycle not sampled for metrics gets none.
        self._live = tracer is not None or not isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider
        )
        self.sampling = sampling
        self.metrics = metrics
        self.profile = profile
        self.sample_every = max(1, sample_every)
        self._cycles = 0

    def cycle(self, gang: Gang) -> CycleTrace | None:
        """Start the span of one cycle of `gang`, a child of its job's trace when its pods carry
        one; None when there is nothing to record (no SDK configured, no metrics sample due)."""
        self._cycles += 1
        sampled = self.metrics is not None and self._cycles % self.sample_every == 0
        if not (self._live or sampled):
            return None
        parent = gang.members[0].trace_context if gang.members else None
        if not self._live or (self.sampling is not None and self.sampling.skips(parent)):
            if not sampled:
                return None
            idle: Span = trace.INVALID_SPAN  # the plugin timings alone
            return CycleTrace(self.tracer, idle, metrics=self.metrics, sampled=True, profile=self.profile)
        span = self.tracer.start_span("schedule_cycle", context=context_of(parent))
        if span.is_recording():
            span.set_attributes({"aisched.gang": gang.key, "aisched.pods": len(gang.members)})
        return CycleTrace(self.tracer, span, metrics=self.metrics, sampled=sampled, profile=self.profile)

    @contextmanager
    def span(
        self, name: str, *, parent: str | None = None, attributes: Mapping[str, AttributeValue] | None = None
    ) -> Iterator[Span]:
        """A span named `name`, the child of the traceparent `parent` if it parses, current within
        (a no-op span when head sampling leaves it out)."""
        if self.sampling is not None and self.sampling.skips(parent):
            yield trace.INVALID_SPAN
            return
        with self.tracer.start_as_current_span(
            name, context=context_of(parent), attributes=attributes
        ) as span:
            yield span

    def root(
        self, name: str, *, start_time: int | None, attributes: Mapping[str, AttributeValue]
    ) -> str | None:
        """Start and end the root span of a new trace; its traceparent (None while no SDK is
        configured). A root head sampling leaves out is made no span: its traceparent is fresh
        ids with the sampled flag off, so every span that would join it is left out too."""
        if not self._live:
            return None
        if self.sampling is not None and self.sampling.skips(None):
            trace_id, span_id = random.getrandbits(128) or 1, random.getrandbits(64) or 1
            return f"00-{trace_id:032x}-{span_id:016x}-00"
        span = self.tracer.start_span(name, context=Context(), start_time=start_time, attributes=attributes)
        span.end()
        return traceparent(span)


def reservation_attributes(reservation: Reservation) -> dict[str, AttributeValue]:
    """A reservation decision as a span event's attributes: the nodes held and the expected start."""
    attributes: dict[str, AttributeValue] = {
        "aisched.queue": reservation.queue,
        "aisched.nodes": list(reservation.nodes[:_MAX_VICTIMS]),
        "aisched.node_count": len(reservation.nodes),
        "aisched.ready_nodes": reservation.ready_nodes,
    }
    if reservation.start is not None:
        attributes["aisched.expected_start"] = reservation.start
    return attributes


def configure_tracing(environ: Mapping[str, str] | None = None) -> Callable[[], None]:
    """Install the SDK's provider when `OTEL_TRACES_EXPORTER` names exporters; returns the shutdown
    (flushing what is buffered) to call at exit. Without the variable, or with `none`, nothing is
    installed and spans stay no-ops. An exporter asked for but not installed is an error that says
    which extra to install."""
    env = os.environ if environ is None else environ
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    names = [n for n in names if n != "none"]
    if not names:
        return lambda: None
    unknown = sorted(set(names) - {"console", "otlp"})
    if unknown:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER: unknown exporter(s) {', '.join(unknown)}; use console, otlp or none"
        )
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - the optional `otel` extra
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased  # noqa: PLC0415
    except ImportError as exc:
        raise ValueError(
            "OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not installed: "
            "pip install 'aisched[otel]'"
        ) from exc
    service = env.get("OTEL_SERVICE_NAME") or INSTRUMENTATION
    resource = Resource.create({"service.name": service})
    if HeadSampling.from_environ(env) is not None:
        # The operator samples roots itself (`HeadSampling`, before any span is made); what reaches
        # the SDK is to be kept, and a child follows its parent.
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
    else:
        provider = TracerProvider(resource=resource)  # a sampler only the SDK knows: it decides
    for name in names:
        exporter: SpanExporter
        if name == "console":
            exporter = ConsoleSpanExporter()
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                    OTLPSpanExporter,
                )
            except ImportError as exc:
                raise ValueError(
                    "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: pip install 'aisched[otel]'"
                ) from exc
            exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing_configured", exporters=names, service=service)
    return provider.shutdown
