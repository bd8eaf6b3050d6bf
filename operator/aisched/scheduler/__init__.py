"""The scheduling core as both the operator and the simulator build and run it: `Scheduler` (the
cycle, a recipe read top to bottom), gang placement, and preemption's one `Evaluator`.

Pure: imports api, topology, cache, quota, framework and plugins; no I/O; time only from the
clock it is given (pods' start times, for preemption's minimum runtime).
"""

from aisched.scheduler.scheduler import Scheduler, ScheduleResult

__all__ = ["ScheduleResult", "Scheduler"]
