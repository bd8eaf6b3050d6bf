"""The long-lived cluster state, fed by watches: nodes, bound and assumed pods. It makes snapshots.

The one book of what pods hold: every change to a pod's usage is one delta to the cache's
listeners (the quota ledger, the gauges, plugins that count placements). Pure: imports api and
topology only; no I/O, no clock. `update_snapshot` copies only the nodes that changed since the
previous call (kube-scheduler's generation scheme), so refreshing the snapshot after one pod event
costs one row; `write_without` writes a clone's rows as if some pods were gone (a what-if).
"""

from aisched.cache.cache import Cache, PodDelta, PodUsage

__all__ = ["Cache", "PodDelta", "PodUsage"]
