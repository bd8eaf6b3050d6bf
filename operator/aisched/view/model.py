"""The cluster view as plain, frozen values: what the page draws and `/api/view` serves.

Every name in it (nodes, pods, namespaces, tenants, labels, messages) is data from the cluster,
untrusted: whoever renders it escapes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from aisched.controllers.scheduling.decisions import Decision

__all__ = [
    "MILLI",
    "NO_DOMAIN",
    "Block",
    "ClusterView",
    "Decision",
    "Gpu",
    "Holder",
    "Node",
    "Owner",
    "Queue",
    "Rack",
    "Summary",
    "TenantUsage",
    "Waiting",
]

#: Thousandths of a GPU in one GPU: the unit of every GPU amount here.
MILLI: Final = 1000
#: The rack or block of a node without that label (not a valid label value, so never a real one).
NO_DOMAIN: Final = "(none)"


@dataclass(frozen=True, slots=True)
class Holder:
    """One pod's hold on one GPU: all of it, a share, or a MIG instance.

    `owner` is whom it is coloured by: its tenant, else `namespace <ns>`. `exact` is False when
    the pod's devices are not known (bound by someone else, or its MIG slots unknown): it is drawn
    where it is counted, not necessarily where it runs.
    """

    pod: str
    gang: str
    job: str
    owner: str
    tenant: str | None
    milli: int
    memory: int = 0
    mig: str | None = None
    #: The MIG memory slots it holds (bit i: slot i); 0 when not MIG or not known.
    slots: int = 0
    #: Placed, its binding not yet confirmed.
    assumed: bool = False
    exact: bool = True


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    uuid: str
    model: str
    memory: int
    healthy: bool
    holders: tuple[Holder, ...] = ()
    #: Thousandths of the GPU its holders take (at most `MILLI`).
    used: int = 0
    mig: bool = False
    #: MIG memory slots taken by instances not made for aisched's pods.
    foreign_slots: int = 0


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    rack: str
    block: str
    model: str
    ready: bool = True
    schedulable: bool = True
    #: A fault ended pods here lately; nothing new is placed until it cools down.
    cooling: bool = False
    #: Whether the GPUs' wiring was published (False: counted from allocatable only).
    wired: bool = True
    gpus: tuple[Gpu, ...] = ()
    #: Pods accounted on it, GPU or not.
    pods: int = 0
    #: Gangs whose reservation plans to start on this node, and gangs that hold it as a spare
    #: (they need nodes to drain and start on whichever frees first).
    reserved_for: tuple[str, ...] = ()
    spare_for: tuple[str, ...] = ()
    #: What could not be drawn as the data says (a GPU index it has not, a pod over its GPUs, ...).
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rack:
    """A rack's totals; its `nodes` when drawn one by one (None: only the totals are shown)."""

    name: str
    block: str
    nodes_total: int
    nodes_ready: int
    gpus: int
    #: GPUs with a holder, GPUs free (healthy, nothing on them), GPUs unhealthy.
    gpus_used: int
    gpus_free: int
    gpus_unhealthy: int
    #: Thousandths of a GPU held, in all and per owner (largest first).
    used: int
    owners: tuple[tuple[str, int], ...] = ()
    nodes: tuple[Node, ...] | None = None
    #: Nodes of the rack left out of `nodes` (a zoomed rack beyond the drawing limit).
    hidden: int = 0


@dataclass(frozen=True, slots=True)
class Block:
    name: str
    racks: tuple[Rack, ...]


@dataclass(frozen=True, slots=True)
class Waiting:
    """A gang in the queue."""

    gang: str
    job: str
    namespace: str
    owner: str
    tenant: str | None
    queue: str
    strategy: str
    #: 1-based place in its queue, and the queue's length.
    position: int
    length: int
    #: active, backoff, unschedulable or blocked (behind a StrictFIFO head).
    state: str
    pods: int
    min_member: int
    gpus: int
    priority: int
    #: Seconds since it was queued, None when unknown.
    waited: float | None
    #: Why its last attempt failed ("" before one).
    reason: str
    #: Its reservation, said in words, and the nodes it holds.
    reservation: str | None = None
    reserved_nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Queue:
    """The first `len(waiting)` of `total` waiting gangs (heads of every queue first), and how
    many are in each state."""

    waiting: tuple[Waiting, ...]
    total: int
    states: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """A tenant's GPUs: used, against its guarantee and max (None: not limited), and borrowed.
    A namespace no TenantQuota lists shows as its own row (`listed` False)."""

    name: str
    owner: str
    listed: bool
    used: int
    guaranteed: int | None = None
    maximum: int | None = None
    borrowed: int = 0
    cohort: str | None = None
    weight: float = 1.0
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Owner:
    """An entry of the colour legend: whom GPUs are coloured by, and how much it holds."""

    name: str
    used: int


@dataclass(frozen=True, slots=True)
class Summary:
    nodes: int
    nodes_ready: int
    nodes_cooling: int
    gpus: int
    #: Thousandths of a GPU held.
    used: int
    gpus_unhealthy: int
    pods: int
    #: Pods placed whose binding is not confirmed yet.
    binding: int
    reservations: int
    #: AIJobs by phase.
    jobs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The whole view at `generated_at` (epoch seconds).

    `detailed`: the cluster is small enough to draw every node (else racks are shown by their
    totals); `rack` the rack zoomed into, the only one whose nodes are drawn then (None: the whole
    cluster); `rack_found` False when no rack has that name.
    """

    generated_at: float
    summary: Summary
    blocks: tuple[Block, ...]
    queue: Queue
    tenants: tuple[TenantUsage, ...]
    owners: tuple[Owner, ...]
    decisions: tuple[Decision, ...]
    detailed: bool
    rack: str | None = None
    rack_found: bool = True
    #: The node labels blocks and racks are read from.
    block_label: str = ""
    rack_label: str = ""
    #: What could not be read at all (a whole section), said in words.
    problems: tuple[str, ...] = ()
