"""What tracing costs the scheduling core: single-pod decisions per second with no tracing code
run at all, with the OpenTelemetry API and no SDK (how the operator runs unless configured), and
with the SDK sampling 1 % of cycles (BatchSpanProcessor, spans discarded), and that plus the plugin
latency metrics sampled as the operator samples them (`tracing.PLUGIN_SAMPLE_EVERY`).

One scheduler runs the pods, its tracing switched from decision to decision (in a fresh random
order for each block of modes), so every mode sees the same cluster states and machine noise.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aisched.bench.cluster import synthetic_cluster
from aisched.framework.profile import Profile
from aisched.framework.types import Gang, PodInfo
from aisched.observability.metrics import Metrics
from aisched.observability.tracing import HeadSampling, Tracing
from aisched.scheduler import Scheduler

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["SAMPLED_RATIO", "TracingCost", "tracing_cost"]

#: The sampling ratio the bar is set at: 1 % of cycles traced.
SAMPLED_RATIO: Final = 0.01


@dataclass(frozen=True)
class TracingCost:
    #: Decisions per second: no tracing code at all; the API without an SDK; the SDK at 1 %; and
    #: that with the plugin latency metrics sampled, as the operator runs.
    off_per_s: float
    disabled_per_s: float
    sampled_per_s: float | None  # None without the SDK (the `otel` extra)
    with_metrics_per_s: float | None
    spans_exported: int

    @property
    def disabled_overhead_pct(self) -> float:
        return (self.off_per_s / self.disabled_per_s - 1) * 100

    @property
    def sampled_overhead_pct(self) -> float | None:
        return None if self.sampled_per_s is None else (self.off_per_s / self.sampled_per_s - 1) * 100

    @property
    def with_metrics_overhead_pct(self) -> float | None:
        rate = self.with_metrics_per_s
        return None if rate is None else (self.off_per_s / rate - 1) * 100


def _sdk_tracing() -> tuple[TracerProvider, list[int]] | None:
    """The SDK as `configure_tracing` sets it up under a ratio sampler (the roots sampled before,
    by `HeadSampling`), spans batched and counted, then dropped."""
    try:
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: PLC0415 - the otel extra
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased  # noqa: PLC0415
    except ImportError:
        return None
    exported = [0]

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            exported[0] += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))  # as `configure_tracing` makes it
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider, exported


def tracing_cost(nodes: int, pods: Sequence[PodInfo], *, machines: Sequence[str]) -> TracingCost:
    """Time `pods` (one decision each) on one scheduler whose tracing changes from decision to
    decision (off, disabled, sampled, in turn), so every mode sees the same cluster states and the
    same machine noise; each mode's throughput is its decisions over their summed time, the
    slowest 1 % of its decisions (collector pauses) left out."""
    sdk = _sdk_tracing()
    modes: dict[str, Tracing | None] = {"off": None, "disabled": Tracing()}
    if sdk is not None:
        # As the operator runs with OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG=0.01.
        tracer, sampling = (
            sdk[0].get_tracer("aisched-bench"),
            HeadSampling(SAMPLED_RATIO, follows_parent=True),
        )
        modes["sampled"] = Tracing(tracer, sampling=sampling)
        modes["with_metrics"] = Tracing(tracer, sampling=sampling, metrics=Metrics())
    scheduler = Scheduler(profile=Profile(), cache=synthetic_cluster(nodes, machines=machines))
    order = list(modes.items())
    shuffle = random.Random(42)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for pod in pods[:50]:  # warm caches and tables, as a running scheduler has
        scheduler.schedule(Gang.of(pod))
    gc.collect()
    for i, pod in enumerate(pods[50:]):
        if i % len(order) == 0:  # each block of decisions in a new order: no mode always follows another
            shuffle.shuffle(order)
        mode, tracing = order[i % len(order)]
        scheduler.tracing = tracing
        began = time.perf_counter()
        scheduler.schedule(Gang.of(pod))
        times[mode].append(time.perf_counter() - began)
    if sdk is not None:
        sdk[0].shutdown()  # flush, so every sampled span is counted
    rates = {mode: _rate(spent) for mode, spent in times.items()}
    return TracingCost(
        off_per_s=rates["off"],
        disabled_per_s=rates["disabled"],
        sampled_per_s=rates.get("sampled"),
        with_metrics_per_s=rates.get("with_metrics"),
        spans_exported=sdk[1][0] if sdk is not None else 0,
    )


def _rate(times: list[float]) -> float:
    kept = sorted(times)[: max(1, len(times) - len(times) // 100)]
    return len(kept) / sum(kept)
