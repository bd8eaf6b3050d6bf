"""Exactly the Kubernetes API access aisched's code makes, as data.

Each component has two tables: a cluster-wide one (`SCHEDULER_PERMISSIONS`, `AGENT_PERMISSIONS`),
granted by a ClusterRole, and one confined to a namespace, granted by a Role there: the
scheduler's (`SCHEDULER_NAMESPACED_PERMISSIONS`) to `aisched-system`, the agent's
(`AGENT_NAMESPACED_PERMISSIONS`) to `aisched-agents`. Leases live only in those tables, each
component's in a namespace of its own: a cluster-wide grant would let them rewrite any Lease
(kube-system leader leases, kube-node-lease heartbeats), and a shared namespace would let any
node's agent rewrite the scheduler's leader-election Lease. The agent's service account stays in
`aisched-system`. `manifests/base/20-rbac.yaml` carries `rules(<table>)` verbatim for each of the four, and
tests/test_manifests.py pins that equality, so a new API call starts here: add the permission with
a line saying why, to the narrowest table that serves it, then regenerate the rules.

No wildcards: every (group, resource, verb) the code uses is named. Pure data: imports nothing
beyond typing, dataclasses and the API group name from `aisched.api.meta`.

Kopf runs with peering disabled (standalone; our own Lease does leader election), so it needs no
`kopf.dev` (Cluster)KopfPeering access. What Kopf needs on its own, per its deployment guide
(https://kopf.readthedocs.io/en/stable/deployment/, "RBAC"): list/watch on
`apiextensions.k8s.io` customresourcedefinitions and core namespaces ("runtime observation of
namespaces & CRDs"), `create` on core events (handler progress/errors), and list/watch/patch on
each handled custom resource (patch writes its finalizers and last-handled-state annotations).
"""

from dataclasses import dataclass
from typing import Final

from aisched.api.meta import GROUP

__all__ = [
    "AGENT_LEASE_NAMESPACE",
    "AGENT_NAMESPACED_PERMISSIONS",
    "AGENT_PERMISSIONS",
    "AISCHED_NAMESPACE",
    "KNOWN_VERBS",
    "SCHEDULER_NAMESPACED_PERMISSIONS",
    "SCHEDULER_PERMISSIONS",
    "Permission",
    "rules",
]

#: The namespace the scheduler and the agent run in; the scheduler's namespaced table applies here.
AISCHED_NAMESPACE: Final = "aisched-system"

#: The namespace of the agents' liveness Leases (`aisched-agent-<node>`), and of nothing else: the
#: agent's namespaced table applies only here.
AGENT_LEASE_NAMESPACE: Final = "aisched-agents"

#: The resource verbs Kubernetes RBAC knows (besides "*", which we never grant).
KNOWN_VERBS: Final = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)


@dataclass(frozen=True, slots=True)
class Permission:
    """One resource (or subresource, `pods/binding`) of one API group and the verbs used on it."""

    group: str
    resource: str
    verbs: frozenset[str]

    def __post_init__(self) -> None:
        if "*" in self.group or "*" in self.resource or not self.resource:
            raise ValueError(f"permission must name its group and resource, got {self!r}")
        if not self.verbs:
            raise ValueError(f"permission {self.group}/{self.resource} grants no verb")
        unknown = self.verbs - KNOWN_VERBS
        if unknown:
            raise ValueError(f"permission {self.group}/{self.resource}: unknown verbs {sorted(unknown)}")


def _p(group: str, resource: str, *verbs: str) -> Permission:
    return Permission(group, resource, frozenset(verbs))


#: The scheduler Deployment (`aisched run`), cluster-wide: Kopf controllers, informer, binder, events.
SCHEDULER_PERMISSIONS: Final[tuple[Permission, ...]] = (
    # pods: informer list+watch; AIJob controller creates/deletes members; patch for labels/annotations.
    _p("", "pods", "get", "list", "watch", "create", "delete", "patch"),
    # pods/binding: the binder POSTs a Binding per placed pod (we are the pod's scheduler).
    _p("", "pods/binding", "create"),
    # pods/status: the PodScheduled=False condition with the "0/N nodes are available" summary;
    # the DisruptionTarget condition (and Failed) of a running pod a node or GPU fault ended.
    _p("", "pods/status", "patch"),
    # nodes: the informer's list+watch feeds the cache; get for a single node on demand.
    _p("", "nodes", "get", "list", "watch"),
    # services: the operator creates a headless Service per AIJob master, in the job's namespace, so
    # PyTorch DDP members get MASTER_ADDR; get to find it again, delete when the job goes away.
    _p("", "services", "get", "create", "delete"),
    # events (core): scheduling failures and decisions, and Kopf's own handler events; patch to aggregate.
    # Cluster-wide: an event goes to the namespace of the pod or AIJob it is about.
    _p("", "events", "create", "patch"),
    # events (events.k8s.io): the same events through the newer API where the client uses it.
    _p("events.k8s.io", "events", "create", "patch"),
    # aijobs: Kopf watches them and patches finalizers/annotations; update for resourceVersion-checked writes.
    _p(GROUP, "aijobs", "get", "list", "watch", "patch", "update"),
    # aijobs/status: phase, conditions, placement and restarts.
    _p(GROUP, "aijobs/status", "get", "patch", "update"),
    # tenantquotas: Kopf watches them and patches finalizers/annotations.
    _p(GROUP, "tenantquotas", "get", "list", "watch", "patch"),
    # tenantquotas/status: used, borrowed, dominant share, admitted and pending jobs.
    _p(GROUP, "tenantquotas/status", "get", "patch", "update"),
    # gpunodetopologies: read-only; the informer's list+watch feeds the topology cache.
    _p(GROUP, "gpunodetopologies", "get", "list", "watch"),
    # customresourcedefinitions: Kopf observes CRDs appearing/disappearing at run time.
    _p("apiextensions.k8s.io", "customresourcedefinitions", "list", "watch"),
    # namespaces: Kopf observes namespaces appearing/disappearing at run time.
    _p("", "namespaces", "list", "watch"),
    # The job frameworks' objects that say how many pods their gangs need (aisched.queue.frameworks):
    # read-only list+watch; a kind not installed reads as none.
    # podgroups (scheduler-plugins' coscheduling).
    _p("scheduling.x-k8s.io", "podgroups", "list", "watch"),
    # podgroups (Volcano).
    _p("scheduling.volcano.sh", "podgroups", "list", "watch"),
    # podgroups and workloads (Kubernetes' own, GenericWorkload).
    _p("scheduling.k8s.io", "podgroups", "list", "watch"),
    _p("scheduling.k8s.io", "workloads", "list", "watch"),
    # leaderworkersets (LeaderWorkerSet).
    _p("leaderworkerset.x-k8s.io", "leaderworkersets", "list", "watch"),
    # jobsets (JobSet).
    _p("jobset.x-k8s.io", "jobsets", "list", "watch"),
    # rayclusters (KubeRay).
    _p("ray.io", "rayclusters", "list", "watch"),
    # jobs: an Indexed Job's parallelism.
    _p("batch", "jobs", "list", "watch"),
)

#: The scheduler Deployment, in `AISCHED_NAMESPACE` only (a Role, not a ClusterRole).
SCHEDULER_NAMESPACED_PERMISSIONS: Final[tuple[Permission, ...]] = (
    # leases: leader election between the two scheduler replicas (one Lease in aisched-system).
    _p("coordination.k8s.io", "leases", "get", "create", "update"),
)

#: The node agent DaemonSet (`aisched agent`), cluster-wide: publishes its node's GPU topology
#: (aisched.agent.publisher makes exactly these calls).
AGENT_PERMISSIONS: Final[tuple[Permission, ...]] = (
    # gpunodetopologies: read this node's object (fingerprint check), create it when it is missing.
    _p(GROUP, "gpunodetopologies", "get", "create"),
    # gpunodetopologies/status: PUT the GPUs, their health and the last-published time.
    _p(GROUP, "gpunodetopologies/status", "update"),
    # nodes: read the Node's uid for the owner reference and its labels; merge-patch GPU labels onto it.
    _p("", "nodes", "get", "patch"),
    # pods: the device plugin (`--device-plugin`) lists and watches the pods bound to its node
    # (fieldSelector spec.nodeName) to find the devices aisched chose for the pod being admitted.
    _p("", "pods", "list", "watch"),
)

#: The node agent DaemonSet, in `AGENT_LEASE_NAMESPACE` only (a Role, not a ClusterRole).
AGENT_NAMESPACED_PERMISSIONS: Final[tuple[Permission, ...]] = (
    # leases: one liveness Lease per node (`aisched-agent-<node>` in aisched-agents), renewed while
    # NVML answers.
    _p("coordination.k8s.io", "leases", "get", "create", "update"),
)


def rules(perms: tuple[Permission, ...] | list[Permission]) -> list[dict[str, list[str]]]:
    """(Cluster)Role `rules` for `perms`: one rule per (apiGroup, verb set), deterministic.

    Duplicate (group, resource) entries merge their verbs. Rules come ordered by apiGroup (core ""
    first), then by their sorted resource lists; every list inside a rule is sorted.
    """
    verbs_of: dict[tuple[str, str], set[str]] = {}
    for perm in perms:
        verbs_of.setdefault((perm.group, perm.resource), set()).update(perm.verbs)

    by_group_verbs: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), verbs in verbs_of.items():
        by_group_verbs.setdefault((group, tuple(sorted(verbs))), []).append(resource)

    out = [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, verbs), resources in by_group_verbs.items()
    ]
    out.sort(key=lambda rule: (rule["apiGroups"], rule["resources"], rule["verbs"]))
    return out
