"""The scheduling queue of gangs, and the gangs themselves as their pods come and go.

`GangQueue`: active, backoff and unschedulable gangs, ordered by the profile's QueueSort; a gang
parked as unschedulable comes back only on a cluster event one of the plugins that turned it
away registered (`framework.events`), never by polling. `GangBook`: which pods of each gang are
pending and which are placed, so the queue always holds the gang's freshest view.
Pure: no I/O, time from an injected clock.
"""

from aisched.queue.gang_queue import GangQueue, QueueState
from aisched.queue.gangs import GangBook, assemble, gang_key, group_key, job_of

__all__ = ["GangBook", "GangQueue", "QueueState", "assemble", "gang_key", "group_key", "job_of"]
