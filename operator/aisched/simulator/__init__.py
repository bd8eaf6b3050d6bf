"""The simulator: cluster traces replayed through the scheduling core on a virtual clock.

Nodes of a trace become the core's `Cache` and `Snapshot`; every arriving pod is a gang of one
that the core's `Scheduler` places with a profile scoring by one placement policy
(`aisched.plugins.policies`), and the placement is assumed into the cache: the simulator never
re-implements scheduling. Time is virtual (the arrival index, or the trace's own seconds with
`--trace-events`); randomness comes only from the seed.

Reading trace CSVs (`trace`, `expected`) and writing results (`output`, `plot`, `events`) are
the only I/O; `replay` and `events.replay_events` themselves are pure computation. May import
the core (topology, framework, plugins, cache, scheduler), numpy and matplotlib; never kopf,
the Kubernetes client or NVML.
"""

from aisched.simulator.replay import Replay, replay
from aisched.simulator.trace import Trace, load_trace

__all__ = ["Replay", "Trace", "load_trace", "replay"]
