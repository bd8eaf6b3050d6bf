"""The scheduling shell: the I/O and time around the core's `scheduler.Scheduler`.

`runtime` owns the serial scheduling loop, its one failure path and the binding of placements;
`watch` turns informer events (pods, nodes, GPUNodeTopology objects) into cache, gang-book and
queue updates; `nodes` reads Node objects (pure); `preemptor` carries out the core's preemption
nominations (annotate, delete, hold, release). Raw API objects stop here: the core sees
`NodeInfo`, `PodInfo`, `Gang` and `PodUsage` only.
"""

from aisched.controllers.scheduling.runtime import RuntimeClient, SchedulerRuntime
from aisched.controllers.scheduling.watch import PodListener

__all__ = ["PodListener", "RuntimeClient", "SchedulerRuntime"]
