"""Cluster events: the changes that can make a gang that was turned away schedulable.

A plugin that rejects gangs declares which of these could change its answer
(`EnqueueExtensions.events_to_register`, kube-scheduler's EventsToRegister); a gang parked as
unschedulable wakes only on an event one of the plugins that rejected it registered.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

__all__ = ["ALL_EVENTS", "CAPACITY_FREED", "NODE_EVENTS", "ClusterEvent"]


class ClusterEvent(Enum):
    NODE_ADDED = "NodeAdded"
    NODE_LABELS_CHANGED = "NodeLabelsChanged"  # labels: GPU product, rack, block, selectors
    NODE_TAINTS_CHANGED = "NodeTaintsChanged"
    NODE_CONDITION_CHANGED = "NodeConditionChanged"  # Ready, or cordoned/uncordoned
    NODE_ALLOCATABLE_CHANGED = "NodeAllocatableChanged"
    NODE_GPUS_CHANGED = "NodeGPUsChanged"  # its GPUNodeTopology: health, MIG layout, wiring
    POD_DELETED = "PodDeleted"  # deleted, or an assumed placement undone: what it held is free
    POD_TERMINATED = "PodTerminated"  # reached Succeeded or Failed: what it held is free
    QUOTA_CHANGED = "QuotaChanged"  # a TenantQuota's spec changed
    GANG_GREW = "GangGrew"  # a member of an incomplete gang appeared
    RESERVATION_RELEASED = "ReservationReleased"  # nodes held for a waiting gang are free to all


#: Every change to a node (a plugin reading only node columns registers these, or some).
NODE_EVENTS: Final = frozenset(
    {
        ClusterEvent.NODE_ADDED,
        ClusterEvent.NODE_LABELS_CHANGED,
        ClusterEvent.NODE_TAINTS_CHANGED,
        ClusterEvent.NODE_CONDITION_CHANGED,
        ClusterEvent.NODE_ALLOCATABLE_CHANGED,
        ClusterEvent.NODE_GPUS_CHANGED,
    }
)
#: The events after which there is more room: a pod gone or ended, a node added or grown.
CAPACITY_FREED: Final = frozenset(
    {
        ClusterEvent.POD_DELETED,
        ClusterEvent.POD_TERMINATED,
        ClusterEvent.NODE_ADDED,
        ClusterEvent.NODE_ALLOCATABLE_CHANGED,
        ClusterEvent.NODE_GPUS_CHANGED,
    }
)
ALL_EVENTS: Final = frozenset(ClusterEvent)
