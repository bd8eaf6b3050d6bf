"""The scheduling cycle, a recipe read top to bottom, and gang placement.

Pure: imports framework, topology, cache and plugins; no I/O, no clock (timestamps come in
with the gangs). Both the operator and the simulator run this code.
"""

from aisched.scheduler.scheduler import Scheduler, ScheduleResult

__all__ = ["ScheduleResult", "Scheduler"]
