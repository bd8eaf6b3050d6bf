"""What tracing costs the scheduling core: single-pod decisions per second with no tracing code
run at all, with the OpenTelemetry API and no SDK (how the operator runs unless configured), and
with the SDK sampling 1 % of cycles (BatchSpanProcessor, spans discarded) plus the plugin latency
metrics sampled as the operator samples them.

The three schedulers run on identical synthetic clusters with the same pods, in alternating
batches, so they see the same cluster states and the same machine noise.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aisched.bench.cluster import synthetic_cluster
from aisched.framework.profile import Profile
from aisched.framework.types import Gang, PodInfo
from aisched.observability.metrics import Metrics
from aisched.observability.tracing import Tracing
from aisched.scheduler import Scheduler

__all__ = ["SAMPLED_RATIO", "TracingCost", "tracing_cost"]

#: The sampling ratio the bar is set at: 1 % of cycles traced.
SAMPLED_RATIO: Final = 0.01
_BATCH: Final = 100


@dataclass(frozen=True)
class TracingCost:
    #: Decisions per second: no tracing code at all; the API without an SDK; the SDK at 1 %.
    off_per_s: float
    disabled_per_s: float
    sampled_per_s: float | None  # None without the SDK (the `otel` extra)
    spans_exported: int

    @property
    def disabled_overhead_pct(self) -> float:
        return (self.off_per_s / self.disabled_per_s - 1) * 100

    @property
    def sampled_overhead_pct(self) -> float | None:
        return None if self.sampled_per_s is None else (self.off_per_s / self.sampled_per_s - 1) * 100


def _sdk_tracing(metrics: Metrics) -> tuple[Tracing, list[int]] | None:
    """Tracing through the SDK at `SAMPLED_RATIO`, spans batched and counted, then dropped."""
    try:
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: PLC0415 - the otel extra
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: PLC0415
    except ImportError:
        return None
    exported = [0]

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            exported[0] += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(SAMPLED_RATIO)))
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return Tracing(provider.get_tracer("aisched-bench"), metrics=metrics), exported


def tracing_cost(nodes: int, pods: Sequence[PodInfo], *, machines: Sequence[str]) -> TracingCost:
    """Time `pods` (one decision each) on three schedulers that differ only in their tracing."""
    metrics = Metrics()
    sdk = _sdk_tracing(metrics)
    modes: dict[str, Tracing | None] = {"off": None, "disabled": Tracing()}
    if sdk is not None:
        modes["sampled"] = sdk[0]
    schedulers = {
        mode: Scheduler(profile=Profile(), cache=synthetic_cluster(nodes, machines=machines), tracing=tracing)
        for mode, tracing in modes.items()
    }
    for scheduler in schedulers.values():
        scheduler.cache.update_snapshot(scheduler.snapshot)
    spent = dict.fromkeys(schedulers, 0.0)
    for start in range(0, len(pods), _BATCH):
        batch = pods[start : start + _BATCH]
        for mode, scheduler in schedulers.items():
            gc.collect()
            began = time.perf_counter()
            for pod in batch:
                scheduler.schedule(Gang.of(pod))
            spent[mode] += time.perf_counter() - began
    if sdk is not None:
        provider = sdk[0].tracer
        shutdown = getattr(getattr(provider, "_tracer_provider", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
    count = len(pods)
    return TracingCost(
        off_per_s=count / spent["off"],
        disabled_per_s=count / spent["disabled"],
        sampled_per_s=count / spent["sampled"] if "sampled" in spent else None,
        spans_exported=sdk[1][0] if sdk is not None else 0,
    )
