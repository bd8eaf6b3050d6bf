"""The long-lived cluster state, fed by watches: nodes, bound and assumed pods. It makes snapshots.

Pure: imports topology and framework types, no I/O, no clock. `update_snapshot` copies only the
nodes that changed since the previous call (kube-scheduler's generation scheme), so refreshing
the snapshot after one pod event costs one row.
"""

from aisched.cache.cache import Cache, PodUsage

__all__ = ["Cache", "PodUsage"]
