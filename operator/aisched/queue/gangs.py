"""Gangs from pending pods: a pod without `aisched.io/gang` is a gang of one; pods sharing
(namespace, gang label) form one gang whose min_member is `aisched.io/gang-min-member`.

Pure: no I/O, no clock. `GangBook` remembers which members are pending and which are already
placed (assumed or bound), so that a late member is not asked to wait for members that already run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aisched.api import keys
from aisched.framework.types import Gang, PodInfo

__all__ = ["GangBook", "assemble", "gang_key", "group_key", "job_of"]


def group_key(namespace: str, gang: str) -> str:
    """The queue key of gang `gang` of `namespace` (`:` cannot occur in a pod name, so no clash)."""
    return f"{namespace}/gang:{gang}"


def gang_key(pod: PodInfo) -> str:
    """The queue key of the gang `pod` belongs to: its own key when it is in none."""
    return group_key(pod.namespace, pod.gang) if pod.gang else pod.key


def job_of(gang: Gang) -> str:
    """What a person calls `gang`'s job: its pods' `aisched.io/job` label (an AIJob's name, on its
    elastic surplus too), else the group its pods name (a gang label, a framework's group), else
    the lone pod's name."""
    for member in gang.members:
        job = member.labels.get(keys.LABEL_JOB)
        if job:
            return job
    first = gang.members[0] if gang.members else None
    if first is None:
        return gang.key.partition("/")[2] or gang.key
    return first.gang if first.gang and not first.surplus else first.name


def assemble(key: str, pending: Sequence[PodInfo], *, placed: int = 0, near: tuple[str, ...] = ()) -> Gang:
    """The gang `key` made of its `pending` members, `placed` others being assumed or bound already
    (those bound run on the nodes `near`, where the pending ones are to join them).

    min_member is the members' annotation (the first member that has one), else every member seen;
    the members already placed count towards it. A member asking for `Required` topology makes the
    whole gang's policy `Required`.
    """
    if not pending:
        raise ValueError(f"gang {key} has no pending member")
    members = sorted(pending, key=lambda p: p.key)
    if len(members) == 1 and members[0].gang is None:
        return Gang.of(members[0])
    declared = next((p.gang_min_member for p in members if p.gang_min_member is not None), None)
    wanted = declared if declared is not None else len(members) + placed
    policies = {p.topology_policy for p in members}
    return Gang(
        key=key,
        members=tuple(members),
        min_member=max(1, wanted - placed),
        topology_policy="Required" if "Required" in policies else members[0].topology_policy,
        topology_level=next((p.topology_level for p in members if p.topology_level), None),
        priority=max(p.priority for p in members),
        created=min(p.created for p in members),
        sequence=min(p.sequence for p in members),
        near=near,
    )


@dataclass
class _Members:
    pending: dict[str, PodInfo] = field(default_factory=dict)
    placed: dict[str, PodInfo] = field(default_factory=dict)


class GangBook:
    """Pods of every gang by state: pending (to schedule) or placed (assumed or bound); and, for
    gangs whose members may end one by one and be followed by others (a job framework's: an
    Indexed Job's later completions, a failed pod's replacement), the members that ended
    successfully, which still count towards the gang's size."""

    def __init__(self) -> None:
        self._gangs: dict[str, _Members] = {}
        self._gang_of: dict[str, str] = {}  # pod key -> gang key
        self._done: dict[str, set[str]] = {}  # gang key -> keys of its members that succeeded

    def pending(self, pod: PodInfo) -> str:
        """`pod` waits to be scheduled; returns its gang key."""
        key = self._file(pod)
        members = self._gangs[key]
        members.placed.pop(pod.key, None)
        members.pending[pod.key] = pod
        return key

    def placed(self, pod: PodInfo) -> str:
        """`pod` is assumed or bound: it counts towards its gang's min_member; returns the gang key."""
        key = self._file(pod)
        members = self._gangs[key]
        members.pending.pop(pod.key, None)
        members.placed[pod.key] = pod
        return key

    def place(self, keys: Iterable[str]) -> None:
        """Pending pods whose placement was just assumed."""
        for pod_key in keys:
            gang = self._gang_of.get(pod_key)
            pod = self._gangs[gang].pending.get(pod_key) if gang is not None else None
            if pod is not None:
                self.placed(pod)

    def restore(self, keys: Iterable[str]) -> set[str]:
        """Placed pods whose placement was undone become pending again; returns their gang keys."""
        gangs = set()
        for pod_key in keys:
            gang = self._gang_of.get(pod_key)
            pod = self._gangs[gang].placed.get(pod_key) if gang is not None else None
            if pod is not None:
                gangs.add(self.pending(pod))
        return gangs

    def remove(self, pod_key: str) -> str | None:
        """`pod_key` is gone (deleted or finished); returns the gang key it belonged to."""
        gang = self._gang_of.pop(pod_key, None)
        if gang is None:
            return None
        members = self._gangs[gang]
        members.pending.pop(pod_key, None)
        members.placed.pop(pod_key, None)
        if not members.pending and not members.placed:
            del self._gangs[gang]
        return gang

    def finished(self, pod_key: str, gang: str) -> str | None:
        """Pod `pod_key` of gang `gang` succeeded: it leaves the gang's pods but counts towards its
        size from now on. Returns the gang's key while it still has pods (to queue it again)."""
        self.remove(pod_key)
        self._done.setdefault(gang, set()).add(pod_key)
        return gang if gang in self._gangs else None

    def forget_finished(self, gang: str) -> None:
        """Gang `gang` and the gangs it is split into (`gang/...`) count no succeeded member any
        more: the object that defined them is gone."""
        for key in [k for k in self._done if k == gang or k.startswith(f"{gang}/")]:
            del self._done[key]

    def gang_of(self, pod_key: str) -> str | None:
        """The key of the gang pod `pod_key` is filed in, or None."""
        return self._gang_of.get(pod_key)

    def pending_pod(self, pod_key: str) -> PodInfo | None:
        """The pending pod `pod_key` as last filed, or None."""
        gang = self._gang_of.get(pod_key)
        return self._gangs[gang].pending.get(pod_key) if gang is not None else None

    def is_pending(self, pod_key: str) -> bool:
        gang = self._gang_of.get(pod_key)
        return gang is not None and pod_key in self._gangs[gang].pending

    def short(self, key: str) -> bool:
        """Whether gang `key` still has fewer members than the size a member declares: no placement
        of it can succeed yet (O(1): a member that arrives needs no whole gang built)."""
        members = self._gangs.get(key)
        if members is None:
            return False
        declared = next((p.gang_min_member for p in members.pending.values() if p.gang_min_member), None)
        present = len(members.pending) + len(members.placed) + len(self._done.get(key, ()))
        return declared is not None and present < declared

    def gang(self, key: str) -> Gang | None:
        """The gang `key` as its pending members make it, or None when none is pending."""
        members = self._gangs.get(key)
        if members is None or not members.pending:
            return None
        placed = list(members.placed.values())
        pending = list(members.pending.values())
        if all(p.surplus for p in pending) and (job := pending[0].labels.get(keys.LABEL_JOB)):
            # An elastic job's surplus grows beside the pods of its job (of its own namespace).
            job_members = self._gangs.get(f"{pending[0].namespace}/gang:{job}")
            placed += list(job_members.placed.values()) if job_members is not None else []
        near = tuple(sorted({p.node_name for p in placed if p.node_name}))
        return assemble(key, pending, placed=len(members.placed) + len(self._done.get(key, ())), near=near)

    def _file(self, pod: PodInfo) -> str:
        key = gang_key(pod)
        old = self._gang_of.get(pod.key)
        if old is not None and old != key:  # relabelled: it left its old gang
            self.remove(pod.key)
        self._gang_of[pod.key] = key
        self._gangs.setdefault(key, _Members())
        return key
