"""`RuntimeViews`: the view of whichever scheduling runtime leads now, as the HTTP server asks.

A view is built in O(nodes + pods) on the event loop the scheduler runs on (about 40 ms for 1,000
nodes and 8,000 pods), so one built is reused for `ttl` seconds, or for `_SHARE` times as long as
it took to build, whichever is longer: however many browsers poll, and however big the cluster,
building views takes at most a tenth of the loop's time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from aisched.view.build import build_view
from aisched.view.model import ClusterView

if TYPE_CHECKING:
    from aisched.controllers.scheduling.runtime import SchedulerRuntime

__all__ = ["DEFAULT_TTL", "RuntimeViews", "ViewSource"]

DEFAULT_TTL: Final = 1.0
#: A view is reused for at least this many times the time it took to build.
_SHARE: Final = 10.0
#: The most views kept at once (one per rack asked for): the rack is the visitor's to choose.
_KEPT: Final = 32


class ViewSource(Protocol):
    """The cluster view zoomed into `rack` (None: the whole cluster), or None while this process
    does not lead (it knows no cluster state then)."""

    def __call__(self, *, rack: str | None) -> ClusterView | None: ...


class RuntimeViews:
    """A `ViewSource` over `runtime()` (None while not leading) and the AIJobs `jobs()` knows;
    `clock` (monotonic) ages the views kept, `wall` dates them."""

    def __init__(
        self,
        runtime: Callable[[], SchedulerRuntime | None],
        *,
        jobs: Callable[[], Iterable[Mapping[str, Any]]],
        clock: Callable[[], float],
        wall: Callable[[], float],
        ttl: float = DEFAULT_TTL,
    ) -> None:
        self._runtime = runtime
        self._jobs = jobs
        self._clock = clock
        self._wall = wall
        self._ttl = ttl
        #: rack -> (the runtime it was built from, until when it is fresh, the view)
        self._kept: dict[str | None, tuple[object, float, ClusterView]] = {}

    def __call__(self, *, rack: str | None) -> ClusterView | None:
        runtime = self._runtime()
        if runtime is None:
            self._kept.clear()
            return None
        now = self._clock()
        kept = self._kept.get(rack)
        if kept is not None and kept[0] is runtime and now < kept[1]:
            return kept[2]
        view = build_view(runtime, now=self._wall(), rack=rack, jobs=self._jobs())
        built = self._clock()
        for key in [k for k, (_, until, _) in self._kept.items() if built >= until]:
            del self._kept[key]
        if len(self._kept) >= _KEPT:
            self._kept.clear()
        self._kept[rack] = (runtime, built + max(self._ttl, _SHARE * (built - now)), view)
        return view
