"""The operator's shell: watched Kubernetes objects in, API writes out, around the pure core.

- `scheduling/`: the scheduling loop and its one failure path, the informers' handlers, the
  preemption I/O, why-pending reports;
- `aijob/`: the AIJob controller (pure decisions, the pods of an attempt, the writes);
- `tenantquota`: the TenantQuota controller (reports each tenant's usage in its status);
- `manager`: one process's leadership terms, each a fresh scheduling runtime and controllers;
- `kopf_handlers`: the thin Kopf handlers and the process's lifecycle.
Raw API objects stop here: the core sees `NodeInfo`, `PodInfo`, `Gang` and `PodUsage` only.
Controllers may import every other aisched package; nothing in the pure core imports them.
"""
