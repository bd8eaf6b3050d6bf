"""What an AIJob's pods say about it: which belong to its current attempt, what they are doing,
where they were placed and why one failed. Pure: no I/O.

A job's pods carry the attempt they belong to (`aisched.io/attempt`). `JobPods.of` keeps the pods
of the current attempt of this very job (its uid as their controller) and calls the others stale:
an older attempt's, those being deleted, those an earlier job of the same name left behind. A
stale pod that a preemption evicted stays the scheduler's to delete until its checkpoint grace
period and `VICTIM_MARGIN` have passed (`victim_until`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aisched.api import keys
from aisched.api.aijob import PodPlacement
from aisched.api.objects import PodView, decimal
from aisched.controllers.aijob.pods import ANNOTATION_ATTEMPT

__all__ = ["VICTIM_MARGIN", "JobPods", "attempt_of", "live", "victim_until"]

#: How long past its checkpoint grace period a preemption victim is left to the scheduler to delete
#: before the job's controller deletes it itself (the scheduler's term may have ended meanwhile).
VICTIM_MARGIN: Final = 60.0


def attempt_of(pod: PodView) -> int:
    """The attempt of its job that `pod` belongs to (0 when it says none)."""
    raw = pod.annotations.get(ANNOTATION_ATTEMPT, "0")
    return decimal(raw) or 0


def live(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the pods still holding resources (not ended, not being deleted)."""
    views = (PodView(p) for p in pods)
    return sorted(v.name for v in views if not v.terminal and not v.deleting)


def victim_until(pod: PodView, now: float) -> float | None:
    """Until when `pod`, a preemption victim, is the scheduler's to delete; None when it is not
    (not a victim, or its time is up)."""
    annotations = pod.annotations
    if keys.ANNOTATION_PREEMPTED_BY not in annotations:
        return None
    at = annotations.get(keys.ANNOTATION_PREEMPTED_AT, "")
    grace = annotations.get(keys.ANNOTATION_CHECKPOINT_GRACE, "0")
    started = decimal(at)
    if started is None:
        return None
    until = started + (decimal(grace) or 0) + VICTIM_MARGIN
    return until if now < until else None


@dataclass(frozen=True)
class JobPods:
    """The job's pods of the current attempt by name, sorted out by what they are doing; and the
    stale ones, by name in order."""

    current: dict[str, PodView]
    stale: dict[str, PodView]

    @classmethod
    def of(cls, pods: Sequence[Mapping[str, Any]], *, attempt: int, uid: str) -> JobPods:
        """Sort `pods` out: of `attempt` of the job with `uid`, or stale (an older attempt, being
        deleted, or left by an earlier job of the same name)."""
        current: dict[str, PodView] = {}
        stale: dict[str, PodView] = {}
        for pod in map(PodView, pods):
            if pod.deleting or attempt_of(pod) < attempt or not pod.owned_by(uid, controller=True):
                stale[pod.name] = pod
            else:
                current[pod.name] = pod
        return cls(current=current, stale=dict(sorted(stale.items())))

    def with_phase(self, *phases: str) -> list[str]:
        return sorted(n for n, pod in self.current.items() if pod.phase in phases)

    def failed(self) -> list[str]:
        """The current pods that failed, or that a fault under them ended (whatever their kubelet
        still says: its node may not answer any more)."""
        return sorted(n for n, pod in self.current.items() if pod.phase == "Failed" or pod.fault is not None)

    def bound(self) -> list[str]:
        return sorted(n for n, pod in self.current.items() if pod.node_name)

    def node_count(self) -> int:
        return len({self.current[n].node_name for n in self.bound()})

    def unschedulable_message(self) -> str | None:
        """The scheduler's verdict on the pending pods (their PodScheduled=False), if it gave one."""
        for name in sorted(self.current):
            pod = self.current[name]
            condition = None if pod.node_name else pod.condition("PodScheduled")
            if condition is not None and condition.get("status") == "False":
                return str(condition.get("message") or condition.get("reason") or "unschedulable")
        return None

    def failure(self, name: str) -> str:
        """Why pod `name` failed, as `kubectl describe` would put it."""
        pod = self.current.get(name) or self.stale.get(name)
        fault = None if pod is None else pod.fault
        if fault is not None:  # ended for a fault under it: that says more than its exit code
            return f"pod {name} failed: {fault.get('reason')} ({fault.get('message') or 'no detail'})"
        if name not in self.current:
            return f"pod {name} disappeared"
        status = self.current[name].status
        for container in status.get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated and terminated.get("exitCode", 0) != 0:
                detail = status.get("message") or terminated.get("reason") or "Error"
                return (
                    f"pod {name} failed: container {container.get('name')} exited with code"
                    f" {terminated.get('exitCode')} ({detail})"
                )
        reason = status.get("reason") or "Failed"
        message = status.get("message")
        return f"pod {name} failed: {reason}" + (f" ({message})" if message else "")

    def placement(self) -> list[PodPlacement]:
        """Where each bound pod runs, on which devices."""
        out = []
        for name in self.bound():
            pod = self.current[name]
            labels, annotations = pod.labels, pod.annotations
            index = labels.get(keys.LABEL_INDEX, "0")
            milli = annotations.get(keys.ANNOTATION_GPU_MILLI, "")
            out.append(
                PodPlacement(
                    pod=name,
                    role=labels.get(keys.LABEL_ROLE, ""),
                    index=decimal(index) or 0,
                    node=pod.node_name or "",
                    gpus=[g for g in annotations.get(keys.ANNOTATION_GPUS, "").split(",") if g],
                    gpu_milli=decimal(milli),
                    mig=annotations.get(keys.ANNOTATION_MIG),
                )
            )
        return out
