"""The operator's controllers: the edge where watched Kubernetes objects become cache and queue updates.

Contract: raw dicts (pods, nodes, GPUNodeTopology objects) stop here; everything past this package
sees `NodeInfo`, `PodInfo`, `Gang` and `PodUsage`. `nodes` and `gangs` are pure (no I/O, no clock);
`runtime` owns the I/O: three informers (their handlers in `handlers`), the serial scheduling loop
and the concurrent binder; `reporting` writes why pods wait (their PodScheduled condition,
FailedScheduling Events) off the loop; `events` is the one deduplicating Event writer, for pods and
AIJobs alike.
Controllers may import every other aisched package; nothing in the pure core imports them.
No Kopf here yet (AIJob handling and the Kopf hooks come later).
"""

from aisched.controllers.events import EventRecorder
from aisched.controllers.gangs import GangBook, assemble, gang_key
from aisched.controllers.nodes import node_info
from aisched.controllers.reporting import FailureReporter, ReportingClient
from aisched.controllers.runtime import PodListener, RuntimeClient, SchedulerRuntime

__all__ = [
    "EventRecorder",
    "FailureReporter",
    "GangBook",
    "PodListener",
    "ReportingClient",
    "RuntimeClient",
    "SchedulerRuntime",
    "assemble",
    "gang_key",
    "node_info",
]
