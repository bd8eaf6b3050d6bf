"""The scheduler's Prometheus metrics, all in one place, with fixed label sets.

Every label value comes from a closed set declared here; anything else is refused with a
ValueError, so a pod, job or node name can never become a time series. Each `Metrics` owns its
own registry: there is no process-wide one, and tests build as many as they like.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Mapping
from itertools import accumulate
from typing import Final, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from aisched.api import keys
from aisched.framework.observe import EXTENSION_POINTS, PLUGIN_STATUSES, ExtensionPoint, PluginStatus

__all__ = [
    "BINDING_ERROR_REASONS",
    "CONTENT_TYPE",
    "DEFAULT_PROFILE",
    "EXTENSION_POINTS",
    "EXTENSION_POINT_BUCKETS",
    "FAULT_REASONS",
    "INFORMER_RESOURCES",
    "LATENCY_BUCKETS",
    "MAX_PLUGINS",
    "MAX_PROFILES",
    "MAX_TENANTS",
    "PLUGIN_BUCKETS",
    "PLUGIN_STATUSES",
    "PREEMPTION_REASONS",
    "QUEUE_STATES",
    "SCHEDULING_RESULTS",
    "BindingErrorReason",
    "ExtensionPoint",
    "FaultReason",
    "InformerResource",
    "Metrics",
    "PluginStatus",
    "PreemptionReason",
    "QueueState",
    "SchedulingResult",
]

SchedulingResult = Literal["scheduled", "unschedulable", "error"]
QueueState = Literal["active", "backoff", "unschedulable", "blocked"]
BindingErrorReason = Literal["conflict", "not_found", "unavailable", "other"]
InformerResource = Literal["pods", "nodes", "gpunodetopologies"]
PreemptionReason = Literal["reclaim", "priority"]
FaultReason = Literal["NodeNotReady", "NodeLost", "GPUUnhealthy"]

SCHEDULING_RESULTS: Final[tuple[str, ...]] = get_args(SchedulingResult)
QUEUE_STATES: Final[tuple[str, ...]] = get_args(QueueState)
BINDING_ERROR_REASONS: Final[tuple[str, ...]] = get_args(BindingErrorReason)
INFORMER_RESOURCES: Final[tuple[str, ...]] = get_args(InformerResource)
PREEMPTION_REASONS: Final[tuple[str, ...]] = get_args(PreemptionReason)
FAULT_REASONS: Final[tuple[str, ...]] = get_args(FaultReason)

#: 100 µs to 30 s: a scheduling cycle takes well under a millisecond on a small cluster, while a
#: gang waiting for capacity can take seconds from pod creation to binding.
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

#: 10 µs to 1 s, as kube-scheduler's plugin_execution_duration_seconds: one plugin's run is
#: usually a few microseconds, which the cycle's buckets would lump into their first.
PLUGIN_BUCKETS: Final[tuple[float, ...]] = (
    0.00001,
    0.000025,
    0.00005,
    *(bound for bound in LATENCY_BUCKETS if bound <= 1.0),
)
#: 10 µs to 10 s: an extension point runs its plugins over every candidate node, so Filter or
#: Score on a large cluster can pass a second where one plugin on one node never would.
EXTENSION_POINT_BUCKETS: Final[tuple[float, ...]] = (*PLUGIN_BUCKETS, 2.5, 5.0, 10.0)

#: Plugins and profiles come from the operator's own configuration, not from users; the bounds
#: only make sure a mistake there cannot grow a label without end.
MAX_PLUGINS: Final = 64
MAX_PROFILES: Final = 16
#: The profile that existing callers, and the pre-created series, speak for.
DEFAULT_PROFILE: Final = keys.SCHEDULER_NAME
#: A plugin's `NAME`: "GPUTopology", "NodeAffinity".
_PLUGIN_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
#: A profile is a scheduler name, which Kubernetes checks as a DNS-1123 subdomain
#: (`spec.schedulerName`), so "gpu-scheduler" must be accepted as well as "aisched".
_DNS_LABEL: Final = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_PROFILE_NAME: Final = re.compile(rf"(?=.{{1,253}}\Z){_DNS_LABEL}(?:\.{_DNS_LABEL})*")

#: Tenants given their own series (TenantQuota objects; far fewer in any real cluster).
MAX_TENANTS: Final = 256
#: 1 s to a day: how long gangs wait in their queues.
WAIT_BUCKETS: Final[tuple[float, ...]] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)

#: The exposition format the Deployment's scrape config and `/metrics` speak.
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4


def _checked(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def _non_negative(value: float, what: str) -> float:
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{what} must be a non-negative number, got {value!r}")
    return value


class _Names:
    """The values one label may take: names of a given shape, at most `limit` different ones."""

    def __init__(self, what: str, shape: re.Pattern[str], described: str, limit: int) -> None:
        self._what = what
        self._shape = shape
        self._described = described
        self._limit = limit
        self._seen: set[str] = set()

    def admit(self, name: str) -> str:
        """`name`, now known; a ValueError, and nothing remembered, if its shape is wrong or it
        would be one name too many."""
        if name in self._seen:
            return name
        if not self._shape.fullmatch(name):
            raise ValueError(f"{self._what} {name!r} must be {self._described}")
        if len(self._seen) >= self._limit:
            raise ValueError(f"{self._what} {name!r} refused: already {self._limit} of them")
        self._seen.add(name)
        return name


class _Series:
    """One label set of a `_PlainHistogram`: counts per bucket (the last one +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class _PlainHistogram(Collector):
    """A labelled histogram kept in plain Python, for what is observed many times a cycle (a sampled
    cycle times every plugin call): an observation is a bisect and two additions, about a quarter of
    prometheus-client's, which takes a lock per counter. Observations and scrapes both run on the
    event loop's thread (`/metrics` is served there), so none is needed."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...],
        buckets: tuple[float, ...],
        *,
        registry: CollectorRegistry,
    ) -> None:
        self._name, self._documentation, self._labelnames = name, documentation, labelnames
        self._bounds = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], _Series] = {}
        registry.register(self)

    def known(self, *values: str) -> _Series | None:
        """The series of label values already seen, else None (nothing is made)."""
        return self._series.get(values)

    def labels(self, *values: str) -> _Series:
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = _Series(self._bounds)
        return series

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, series in self._series.items():
            cumulative = list(accumulate(series.counts))
            buckets = [(repr(float(b)), float(n)) for b, n in zip(self._bounds, cumulative, strict=False)]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric(list(values), buckets, sum_value=series.total)
        return [family]


class Metrics:
    """The scheduler's metrics and the registry that holds them."""

    def __init__(self) -> None:
        self.registry: Final = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._attempts = Counter(
            "aisched_scheduling_attempts",
            "Scheduling cycles run for a gang, by result and profile (the scheduler name).",
            ["result", "profile"],
            registry=r,
        )
        self._profiles = _Names("profile", _PROFILE_NAME, "a DNS-1123 subdomain", MAX_PROFILES)
        self._plugins = _Names(
            "plugin name", _PLUGIN_NAME, "a letter then up to 63 letters or digits", MAX_PLUGINS
        )
        self._plugin_seconds = _PlainHistogram(
            "aisched_plugin_execution_duration_seconds",
            "Time one plugin took at one extension point, by status; only sampled cycles are measured.",
            ("extension_point", "plugin", "status"),
            PLUGIN_BUCKETS,
            registry=r,
        )
        self._extension_point_seconds = _PlainHistogram(
            "aisched_framework_extension_point_duration_seconds",
            "Time all plugins of one extension point took, by status and profile.",
            ("extension_point", "status", "profile"),
            EXTENSION_POINT_BUCKETS,
            registry=r,
        )
        self._cycle_seconds = Histogram(
            "aisched_scheduling_cycle_duration_seconds",
            "Time one scheduling cycle took, from popping a gang to handing it to the binder.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._e2e_seconds = Histogram(
            "aisched_pod_scheduling_e2e_duration_seconds",
            "Time from a pod's creation to its binding.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._queue = Gauge(
            "aisched_queue_gangs",
            "Gangs waiting in the scheduling queue, by state.",
            ["state"],
            registry=r,
        )
        self._binding_errors = Counter(
            "aisched_binding_errors",
            "Failed Binding calls, by reason.",
            ["reason"],
            registry=r,
        )
        self._gpus = Gauge("aisched_gpus_allocated", "GPUs held by bound or assumed pods.", registry=r)
        self._informer_events = Counter(
            "aisched_informer_events",
            "Watch events received by the informer, by resource.",
            ["resource"],
            registry=r,
        )
        self._informer_relists = Counter(
            "aisched_informer_relists",
            "Full relists done by the informer (start and 410 Gone), by resource.",
            ["resource"],
            registry=r,
        )
        self._tenant_gpus = Gauge(
            "aisched_tenant_gpus",
            "GPUs of each tenant (TenantQuota), by kind: used, guaranteed, borrowed.",
            ["tenant", "kind"],
            registry=r,
        )
        self._tenant_pending = Gauge(
            "aisched_tenant_pending_jobs", "AIJobs of each tenant waiting to run.", ["tenant"], registry=r
        )
        self._tenants: set[str] = set()
        self._preemptions = Counter(
            "aisched_preemptions",
            "Gangs evicted to make room for another, by reason: reclaim (a tenant's guarantee) or priority.",
            ["reason"],
            registry=r,
        )
        self._queue_wait = Histogram(
            "aisched_queue_wait_seconds",
            "Time a gang waited in its queue (a tenant, or a namespace without one) before it was placed.",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self._overtakes = Counter(
            "aisched_queue_overtakes",
            "Gangs placed while an earlier gang of their queue (its head) still waited: backfill.",
            ["queue"],
            registry=r,
        )
        self._reserved_gpus = Gauge(
            "aisched_reserved_gpus", "GPUs on nodes held for gangs at the head of their queues.", registry=r
        )
        self._reservations = Gauge(
            "aisched_reservations", "Gangs holding nodes they will start on.", registry=r
        )
        self._queues: set[str] = set()
        self._faults = Counter(
            "aisched_node_faults",
            "Hardware faults that ended running pods, by reason: NodeNotReady, NodeLost, GPUUnhealthy.",
            ["reason"],
            registry=r,
        )
        self._faulted_pods = Counter(
            "aisched_fault_ended_pods", "Running pods ended because of a fault under them.", registry=r
        )
        self._cooling = Gauge(
            "aisched_nodes_cooling", "Nodes nothing is placed on for a while after a fault.", registry=r
        )
        # Create every series up front so dashboards see zeros rather than gaps.
        self._profiles.admit(DEFAULT_PROFILE)
        for result in SCHEDULING_RESULTS:
            self._attempts.labels(result, DEFAULT_PROFILE)
        for state in QUEUE_STATES:
            self._queue.labels(state)
        for reason in BINDING_ERROR_REASONS:
            self._binding_errors.labels(reason)
        for reason in PREEMPTION_REASONS:
            self._preemptions.labels(reason)
        for reason in FAULT_REASONS:
            self._faults.labels(reason)
        for resource in INFORMER_RESOURCES:
            self._informer_events.labels(resource)
            self._informer_relists.labels(resource)

    def observe_cycle(self, result: SchedulingResult, seconds: float, profile: str = DEFAULT_PROFILE) -> None:
        """Record one scheduling cycle of `profile`: its result and how long it took."""
        label = _checked(result, SCHEDULING_RESULTS, "scheduling result")
        seconds = _non_negative(seconds, "cycle duration")
        profile = self._profiles.admit(profile)
        self._cycle_seconds.observe(seconds)
        self._attempts.labels(label, profile).inc()

    def observe_plugin(
        self, extension_point: ExtensionPoint, plugin: str, status: PluginStatus, seconds: float
    ) -> None:
        """Record one plugin's run at one extension point. Reading the clock around every plugin
        on every node would add to the cycle it measures, so the caller samples: it calls this for
        some cycles only (kube-scheduler measures one in ten; the operator one in 32)."""
        series = self._plugin_seconds.known(extension_point, plugin, status)
        if series is None:  # a label set not seen yet: checked once, its series kept from then on
            point = _checked(extension_point, EXTENSION_POINTS, "extension point")
            code = _checked(status, PLUGIN_STATUSES, "plugin status")
            series = self._plugin_seconds.labels(point, self._plugins.admit(plugin), code)
        series.observe(_non_negative(seconds, "plugin duration"))

    def observe_extension_point(
        self,
        extension_point: ExtensionPoint,
        status: PluginStatus,
        seconds: float,
        profile: str = DEFAULT_PROFILE,
    ) -> None:
        """Record one run of an extension point (all its plugins) in `profile`, and its status."""
        series = self._extension_point_seconds.known(extension_point, status, profile)
        if series is None:
            point = _checked(extension_point, EXTENSION_POINTS, "extension point")
            code = _checked(status, PLUGIN_STATUSES, "extension point status")
            series = self._extension_point_seconds.labels(point, code, self._profiles.admit(profile))
        series.observe(_non_negative(seconds, "extension point duration"))

    def observe_e2e(self, seconds: float) -> None:
        """Record the time from one pod's creation to its binding."""
        self._e2e_seconds.observe(_non_negative(seconds, "end-to-end latency"))

    def set_queue_depth(self, depth: Mapping[QueueState, int]) -> None:
        """Set the queue's gang counts; states left out of `depth` are empty."""
        counts = {_checked(state, QUEUE_STATES, "queue state"): n for state, n in depth.items()}
        for state in QUEUE_STATES:
            count = counts.get(state, 0)
            self._queue.labels(state).set(_non_negative(count, f"{state} queue depth"))

    def binding_error(self, reason: BindingErrorReason) -> None:
        """Count one failed Binding call."""
        self._binding_errors.labels(_checked(reason, BINDING_ERROR_REASONS, "binding error reason")).inc()

    def set_gpus_allocated(self, count: int) -> None:
        """Set how many GPUs bound or assumed pods hold."""
        self._gpus.set(_non_negative(count, "allocated GPU count"))

    def informer_event(self, resource: InformerResource) -> None:
        """Count one watch event received for `resource`."""
        self._informer_events.labels(_checked(resource, INFORMER_RESOURCES, "informer resource")).inc()

    def informer_relist(self, resource: InformerResource) -> None:
        """Count one full relist of `resource`."""
        self._informer_relists.labels(_checked(resource, INFORMER_RESOURCES, "informer resource")).inc()

    def preemption(self, reason: PreemptionReason) -> None:
        """One gang evicted for another."""
        self._preemptions.labels(_checked(reason, PREEMPTION_REASONS, "preemption reason")).inc()

    def set_tenant(
        self, tenant: str, *, used: float, guaranteed: float, borrowed: float, pending: int
    ) -> None:
        """One tenant's GPUs and pending jobs. Tenants are TenantQuota objects, which an administrator
        creates; at most MAX_TENANTS of them get series, so a label never grows without bound."""
        if tenant not in self._tenants and len(self._tenants) >= MAX_TENANTS:
            return
        self._tenants.add(tenant)
        for kind, value in (("used", used), ("guaranteed", guaranteed), ("borrowed", borrowed)):
            self._tenant_gpus.labels(tenant, kind).set(_non_negative(value, f"{kind} GPUs"))
        self._tenant_pending.labels(tenant).set(_non_negative(pending, "pending jobs"))

    def forget_tenant(self, tenant: str) -> None:
        """The tenant's TenantQuota is gone: its series go too."""
        if tenant not in self._tenants:
            return
        self._tenants.discard(tenant)
        for kind in ("used", "guaranteed", "borrowed"):
            self._tenant_gpus.remove(tenant, kind)
        self._tenant_pending.remove(tenant)

    def queue_placed(self, queue: str, *, waited: float, overtook: bool) -> None:
        """A gang of `queue` was placed after waiting `waited` seconds, ahead of its queue's head
        if `overtook`. Queues past MAX_TENANTS share the series `other`."""
        if queue not in self._queues:
            if len(self._queues) >= MAX_TENANTS:
                queue = "other"
            self._queues.add(queue)
        self._queue_wait.labels(queue).observe(_non_negative(waited, "queue wait"))
        if overtook:
            self._overtakes.labels(queue).inc()

    def set_reservations(self, count: int, gpus: int) -> None:
        """How many gangs hold reservations, and the GPUs they hold."""
        self._reservations.set(_non_negative(count, "reservations"))
        self._reserved_gpus.set(_non_negative(gpus, "reserved GPUs"))

    def fault(self, reason: FaultReason, *, pods: int) -> None:
        """A fault under a node ended `pods` running pods."""
        self._faults.labels(_checked(reason, FAULT_REASONS, "fault reason")).inc()
        self._faulted_pods.inc(_non_negative(pods, "pods"))

    def set_nodes_cooling(self, count: int) -> None:
        self._cooling.set(_non_negative(count, "cooling nodes"))

    def render(self) -> bytes:
        """The current values in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
