"""The scheduling queue of gangs: active, backoff and unschedulable, ordered by the profile's QueueSort.

Pure: no I/O, time from an injected clock. Gangs parked as unschedulable come back when a
cluster event that could make them fit happens (a node added or healed, a pod deleted, a quota
changed), never by polling.
"""

from aisched.queue.gang_queue import ClusterEvent, GangQueue, QueueState

__all__ = ["ClusterEvent", "GangQueue", "QueueState"]
