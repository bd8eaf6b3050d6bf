"""`RuntimeEstimates`: how long a pod will run, for reservations and backfill.

A pod's runtime limit (`spec.activeDeadlineSeconds`, an AIJob's `spec.runtimeLimitSeconds`) is a
hard bound the kubelet enforces, so it is the estimate when set. Otherwise the estimate is
learned: the 90th percentile of the last runs of the pod's class, a class being its namespace
and its `aisched.io/job-class` label, or, without one, its namespace and GPU shape. Classes are
kept per namespace so no tenant's label can move another's estimates, and only so many are
kept (the least recently seen go first), so cost stays bounded whatever labels users write.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from aisched.cache import PodUsage
from aisched.framework.types import Gang, PodInfo

__all__ = ["RuntimeEstimates"]

_ClassKey = tuple[str, str]


def _class_key(namespace: str, job_class: str | None, gpus: int, gpu_milli: int) -> _ClassKey:
    return (namespace, f"class:{job_class}" if job_class else f"gpus:{gpus}/{gpu_milli}")


class RuntimeEstimates:
    def __init__(
        self,
        clock: Callable[[], float],
        *,
        window: int = 64,
        quantile: float = 0.9,
        min_samples: int = 3,
        max_classes: int = 10_000,
    ) -> None:
        self.clock = clock
        self.window = window
        self.quantile = quantile
        self.min_samples = min_samples
        self.max_classes = max_classes
        self._runs: OrderedDict[_ClassKey, deque[float]] = OrderedDict()
        self._estimates: dict[_ClassKey, float] = {}
        #: Bumped by every run learned, so a reader can tell its view of the estimates is current.
        self.version = 0

    # -- learning ----------------------------------------------------------------------------

    def pod_changed(self, old: PodUsage | None, new: PodUsage | None) -> None:
        """A cache listener: a pod that ran and is gone teaches its class how long it took."""
        if new is None and old is not None and not old.assumed and old.started > 0:
            ran = self.clock() - old.started
            if ran > 0:
                self.learn(_class_key(old.namespace, old.job_class, old.gpus, old.gpu_milli), ran)

    def learn(self, key: _ClassKey, seconds: float) -> None:
        self.version += 1
        runs = self._runs.get(key)
        if runs is None:
            runs = self._runs[key] = deque(maxlen=self.window)
            while len(self._runs) > self.max_classes:
                dropped, _ = self._runs.popitem(last=False)
                self._estimates.pop(dropped, None)
        else:
            self._runs.move_to_end(key)
        runs.append(seconds)
        if len(runs) >= self.min_samples:
            ordered = sorted(runs)
            self._estimates[key] = ordered[min(len(ordered) - 1, int(self.quantile * len(ordered)))]

    # -- estimating --------------------------------------------------------------------------

    def duration(self, pod: PodInfo) -> float | None:
        """How long `pod` will run once started, or None when nothing says."""
        if pod.runtime_limit is not None:
            return pod.runtime_limit
        return self._estimates.get(_class_key(pod.namespace, pod.job_class, pod.gpus, pod.gpu_milli))

    def gang_duration(self, gang: Gang) -> float | None:
        """How long `gang` will hold its nodes: its longest member, None if any is unknown."""
        longest = 0.0
        for pod in _distinct_templates(gang.members):
            found = self.duration(pod)
            if found is None:
                return None
            longest = max(longest, found)
        return longest

    @staticmethod
    def gang_limit(gang: Gang) -> float | None:
        """The longest runtime limit among `gang`'s members, None if one has none: the bound the
        kubelet enforces, which a learned estimate (steered by what a namespace ran before) is not."""
        longest = 0.0
        for pod in _distinct_templates(gang.members):
            if pod.runtime_limit is None:
                return None
            longest = max(longest, pod.runtime_limit)
        return longest

    def expected_end(self, usage: PodUsage, now: float) -> float | None:
        """When the running pod `usage` should end, or None when unknown (no estimate, or it has
        already run longer than its learned estimate)."""
        if usage.runtime_limit is not None:
            return max(now, usage.started + usage.runtime_limit)
        key = _class_key(usage.namespace, usage.job_class, usage.gpus, usage.gpu_milli)
        estimate = self._estimates.get(key)
        if estimate is None or usage.started + estimate < now:
            return None
        return usage.started + estimate


def _distinct_templates(pods: Iterable[PodInfo]) -> Iterable[PodInfo]:
    seen: set[tuple[object, ...]] = set()
    for pod in pods:
        marker = (pod.runtime_limit, pod.job_class, pod.template_key)
        if marker not in seen:
            seen.add(marker)
            yield pod
