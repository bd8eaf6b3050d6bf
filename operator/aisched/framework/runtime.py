"""The framework runtime: a profile's plugins, run at each extension point over a snapshot.

Static filters (those reading only node columns that pods do not change) are run once per pod
template and node-set generation and their combined mask is cached, so a stream of similar pods
pays only for the usage-dependent filters. Explanations are computed only when asked for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

import numpy as np

from aisched.framework.cycle_state import CycleState
from aisched.framework.events import ALL_EVENTS, ClusterEvent
from aisched.framework.handle import Handle
from aisched.framework.interface import (
    Bools,
    EnqueueExtensions,
    FilterPlugin,
    FilterResult,
    Floats,
    GPUPicker,
    NormalizeScorePlugin,
    PermitPlugin,
    Plugin,
    PostFilterPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    QueueSortPlugin,
    ReservePlugin,
    ScorePlugin,
)
from aisched.framework.nomination import NO_ROOM_MADE
from aisched.framework.observe import ExtensionPoint
from aisched.framework.profile import Profile
from aisched.framework.registry import Registry
from aisched.framework.status import Code, Status
from aisched.framework.tie_break import TieBreak
from aisched.framework.types import Gang, GangPlacement, PodInfo
from aisched.topology.snapshot import Int64s, Snapshot

__all__ = ["Feasibility", "Framework"]

_STATIC_CACHE_LIMIT: Final = 4096
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Feasibility:
    """The outcome of the filters for one pod: the nodes it may use, and each filter's result."""

    mask: Bools
    #: Each filter's result, in profile order.
    results: tuple[tuple[str, FilterResult], ...]
    #: The slots that hold a node (a removed node's slot is neither feasible nor rejected).
    valid: Bools
    #: The nodes the static filters pass (their answer changes only when nodes do).
    static: Bools

    def reasons(self) -> Counter[str]:
        """Rejected nodes counted by reason, each node by the first filter that rejected it."""
        counts: Counter[str] = Counter()
        if not self.results:
            return counts
        unexplained = self.valid & ~self.mask
        for _, result in self.results:
            if not unexplained.any():
                break
            rejected_here = unexplained & ~result.mask
            if not rejected_here.any():
                continue
            for reason, nodes in result.explain():
                hits = int(np.count_nonzero(nodes & rejected_here))
                if hits:
                    counts[reason] += hits
            unexplained &= ~rejected_here
        return counts

    def rejectors(self) -> set[str]:
        """The filters that turned away a node first (in profile order), as kube-scheduler
        records a pod's unschedulable plugins: a later filter never ran on that node."""
        found: set[str] = set()
        unexplained = self.valid & ~self.mask
        for name, result in self.results:
            if not unexplained.any():
                break
            rejected_here = unexplained & ~result.mask
            if rejected_here.any():
                found.add(name)
                unexplained &= ~rejected_here
        return found


class Framework:
    """Runs one profile. Built once per scheduler name; plugins are shared between cycles."""

    def __init__(self, profile: Profile, registry: Registry, handle: Handle) -> None:
        self.profile = profile
        self.handle = handle
        plugins = {
            name: registry.build(name, profile.plugin_args.get(name, {}), handle)
            for name in profile.plugin_names()
        }
        self.plugins: dict[str, Plugin] = plugins
        self.queue_sort: QueueSortPlugin = _as(plugins[profile.queue_sort], QueueSortPlugin, "queueSort")
        self.pre_filters: list[PreFilterPlugin] = [
            _as(plugins[n], PreFilterPlugin, "preFilter") for n in profile.pre_filter
        ]
        self.filters: list[FilterPlugin] = [_as(plugins[n], FilterPlugin, "filter") for n in profile.filter]
        self.post_filters: list[PostFilterPlugin] = [
            _as(plugins[n], PostFilterPlugin, "postFilter") for n in profile.post_filter
        ]
        self.scores: list[tuple[ScorePlugin, float]] = [
            (_as(plugins[s.name], ScorePlugin, "score"), float(s.weight)) for s in profile.score
        ]
        # Resolved once: a runtime Protocol check per pod would cost more than the score itself.
        self._pre_scores = [p if isinstance(p, PreScorePlugin) else None for p, _ in self.scores]
        self._normalizers = [p if isinstance(p, NormalizeScorePlugin) else None for p, _ in self.scores]
        #: Chooses the GPU a sharing pod gets: the first score plugin that can (None: best fit).
        self.gpu_picker: GPUPicker | None = next(
            (p for p, _ in self.scores if isinstance(p, GPUPicker)), None
        )
        self._tie_break = TieBreak(profile.tie_break_seed) if profile.tie_break_seed is not None else None
        self.reserves: list[ReservePlugin] = [
            _as(plugins[n], ReservePlugin, "reserve") for n in profile.reserve
        ]
        self.permits: list[PermitPlugin] = [_as(plugins[n], PermitPlugin, "permit") for n in profile.permit]
        self._static = [f for f in self.filters if f.static]
        self._static_cache: dict[tuple[object, ...], tuple[Bools, dict[str, FilterResult]]] = {}
        self._static_generation: tuple[object, int] = (None, -1)
        self._events = {
            name: plugin.events_to_register() if isinstance(plugin, EnqueueExtensions) else ALL_EVENTS
            for name, plugin in plugins.items()
        }

    # -- queueing hints ------------------------------------------------------------------

    def events_for(self, rejectors: set[str] | frozenset[str]) -> frozenset[ClusterEvent]:
        """The cluster events that may make a gang these plugins turned away schedulable.

        A name that is not a plugin of this profile (the gang placement itself, say) stands for
        every event; so does an empty set (nothing to go by).
        """
        if not rejectors or any(name not in self._events for name in rejectors):
            return ALL_EVENTS
        return frozenset().union(*(self._events[name] for name in rejectors))

    # -- queue sort ---------------------------------------------------------------------

    def less(self, a: Gang, b: Gang) -> bool:
        return self.queue_sort.less(a, b)

    # -- pre-filter ----------------------------------------------------------------------

    def pre_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot) -> Status:
        observer = state.observer
        for plugin in self.pre_filters:
            status = (
                plugin.pre_filter(state, gang, snapshot)
                if observer is None
                else observer.call(
                    "PreFilter", plugin.name, partial(plugin.pre_filter, state, gang, snapshot)
                )
            )
            if not status.ok and status.code is not Code.SKIP:
                return status if status.plugin else Status(status.code, status.reasons, plugin.name)
        return Status.success()

    # -- filter --------------------------------------------------------------------------

    def filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Feasibility:
        """The nodes `pod` may run on (a mask over `snapshot.size` slots)."""
        static_mask, static_results = self._static_filter(state, pod, snapshot)
        mask = static_mask.copy()
        results: list[tuple[str, FilterResult]] = []
        observer = state.observer
        for plugin in self.filters:  # profile order, so explanations name the first filter that said no
            if plugin.static:
                result = static_results.get(plugin.name)
            else:
                result = (
                    plugin.filter(state, pod, snapshot)
                    if observer is None
                    else observer.call("Filter", plugin.name, partial(plugin.filter, state, pod, snapshot))
                )
                if result is not None:
                    mask &= result.mask
            if result is not None:
                results.append((plugin.name, result))
        return Feasibility(mask, tuple(results), snapshot.valid[: snapshot.size], static_mask)

    def static_mask(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Bools:
        """The nodes `pod` could run on by the static filters alone (selectors, taints, models:
        what no pod coming or going changes), cached per pod template; do not write to it."""
        return self._static_filter(state, pod, snapshot)[0]

    def _static_filter(
        self, state: CycleState, pod: PodInfo, snapshot: Snapshot
    ) -> tuple[Bools, dict[str, FilterResult]]:
        generation = (snapshot.lineage, snapshot.static_generation)
        if generation != self._static_generation or len(self._static_cache) > _STATIC_CACHE_LIMIT:
            self._static_cache.clear()
            self._static_generation = generation
        key = pod.template_key
        cached = self._static_cache.get(key)
        if cached is not None and cached[0].shape[0] == snapshot.size:
            return cached
        mask = snapshot.valid[: snapshot.size].copy()
        results: dict[str, FilterResult] = {}
        for plugin in self._static:
            result = _call(state, "Filter", plugin.name, plugin.filter, state, pod, snapshot)
            if result is not None:
                mask &= result.mask
                results[plugin.name] = result
        entry = (mask, results)
        self._static_cache[key] = entry
        return entry

    # -- score ---------------------------------------------------------------------------

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, feasible: Bools) -> Floats:
        """The weighted sum of every applicable score plugin, for every node slot.

        Plugins that normalise see the raw scores and which nodes are feasible.
        """
        total: Floats | None = None
        observer = state.observer
        for (plugin, weight), pre, normalizer in zip(
            self.scores, self._pre_scores, self._normalizers, strict=True
        ):
            if pre is not None:
                pre_status = (
                    pre.pre_score(state, pod, snapshot)
                    if observer is None
                    else observer.call("PreScore", pre.name, partial(pre.pre_score, state, pod, snapshot))
                )
                if pre_status.code is Code.SKIP:
                    continue
            # A fresh array: the runtime may scale it in place.
            part = (
                plugin.score(state, pod, snapshot)
                if observer is None
                else observer.call("Score", plugin.name, partial(plugin.score, state, pod, snapshot))
            )
            if normalizer is not None:
                part = normalizer.normalize(part, feasible)
            if weight != 1.0:
                part *= weight
            total = part if total is None else np.add(total, part, out=total)
        return total if total is not None else np.zeros(snapshot.size)

    def tie_break(self, snapshot: Snapshot) -> Int64s | None:
        """Per slot, the rank that decides between equal scores (lower wins); None: the lowest slot."""
        return self._tie_break.ranks(snapshot) if self._tie_break is not None else None

    # -- post-filter, reserve, permit --------------------------------------------------------

    def post_filter(self, state: CycleState, gang: Gang, snapshot: Snapshot, failure: Status) -> Status:
        """Give the PostFilter plugins a chance to make room; the gang fails this cycle either way.

        A plugin that succeeds (e.g. nominated victims for preemption) adds its reasons to the
        failure, so the user sees both why the gang did not fit and what is being done about it.
        """
        refusals = []
        for plugin in self.post_filters:
            status = _call(
                state, "PostFilter", plugin.name, plugin.post_filter, state, gang, snapshot, failure
            )
            if status.ok:
                return Status(failure.code, (*failure.reasons, *status.reasons), failure.plugin)
            refusals.append(status.message())
        state.write(NO_ROOM_MADE, "; ".join(r for r in refusals if r))
        return failure

    def reserve(self, state: CycleState, placement: GangPlacement, snapshot: Snapshot) -> Status:
        for i, plugin in enumerate(self.reserves):
            status = _call(state, "Reserve", plugin.name, plugin.reserve, state, placement, snapshot)
            if not status.ok:
                for done in reversed(self.reserves[: i + 1]):
                    done.unreserve(state, placement, snapshot)
                return status if status.plugin else Status(status.code, status.reasons, plugin.name)
        return Status.success()

    def unreserve(self, state: CycleState, placement: GangPlacement, snapshot: Snapshot) -> None:
        for plugin in reversed(self.reserves):
            plugin.unreserve(state, placement, snapshot)

    def permit(self, state: CycleState, placement: GangPlacement) -> Status:
        for plugin in self.permits:
            status = _call(state, "Permit", plugin.name, plugin.permit, state, placement)
            if not status.ok:
                return status if status.plugin else Status(status.code, status.reasons, plugin.name)
        return Status.success()


def _call(state: CycleState, point: ExtensionPoint, plugin: str, run: Callable[..., R], *args: Any) -> R:
    """`run(*args)`: one plugin at one extension point, timed by the cycle's observer if it has one."""
    observer = state.observer
    if observer is None:
        return run(*args)
    return observer.call(point, plugin, lambda: run(*args))


def _as(plugin: Plugin, protocol: Any, point: str) -> Any:
    """`plugin`, checked to implement the extension point's (runtime-checkable) Protocol."""
    if not isinstance(plugin, protocol):
        raise ValueError(
            f"plugin {plugin.name!r} cannot run at {point}: it does not implement {protocol.__name__}"
        )
    return plugin
