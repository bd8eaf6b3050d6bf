"""What the binder decides, apart from how it talks: the verdict on each API answer, and whether
the gang can still be completed as placed.

Pure: no I/O, no clock. `Binder` feeds it answers; tests feed it answers directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from aisched.api.objects import PodView

__all__ = [
    "BindErrorKind",
    "BindOutcome",
    "ErrorAnswer",
    "GangLedger",
    "Verdict",
    "error_kind",
    "judge_conflict",
    "judge_error",
]

#: How a failed Binding call is counted (the `reason` label of the binding-errors metric).
BindErrorKind = Literal["conflict", "not_found", "unavailable", "other"]


class ErrorAnswer(Protocol):
    """What the ledger reads of an error answer (`aisched.kube.client.ApiError` has it)."""

    @property
    def status(self) -> int: ...

    @property
    def transient(self) -> bool: ...


class Verdict(StrEnum):
    """What one answer means for one member."""

    BOUND = "bound"  #: the pod is on the planned node
    GONE = "gone"  #: the pod no longer exists (or is a new pod under the same name)
    ELSEWHERE = "elsewhere"  #: another scheduler bound the pod to another node
    FAILED = "failed"  #: a refusal that retrying will not change
    RETRY = "retry"  #: overload or outage: try the same node again after a backoff
    CHECK = "check"  #: 409: read the pod to learn which of BOUND, GONE, ELSEWHERE holds

    @property
    def final(self) -> bool:
        return self not in (Verdict.RETRY, Verdict.CHECK)


def judge_error(error: ErrorAnswer) -> Verdict:
    """The verdict on an error answer to a Binding POST; `error.transient` says what is retried."""
    if error.status == 404:
        return Verdict.GONE
    if error.status == 409:
        return Verdict.CHECK
    if error.transient:
        return Verdict.RETRY
    return Verdict.FAILED


def error_kind(error: ErrorAnswer | None) -> BindErrorKind:
    """The kind of a failed Binding call; `None` is a call that got no answer at all."""
    if error is None:
        return "unavailable"
    if error.status == 409:
        return "conflict"
    if error.status == 404:
        return "not_found"
    if error.transient:
        return "unavailable"
    return "other"


def judge_conflict(pod: Mapping[str, Any] | None, *, node: str, uid: str) -> tuple[Verdict, str]:
    """The verdict on a 409, from the pod as it is now (`None`: not found), with an explanation.

    The same node means an earlier attempt of ours went through although its answer was lost.
    """
    if pod is None:
        return Verdict.GONE, "deleted"
    view = PodView(pod)
    if uid and view.uid and view.uid != uid:
        return Verdict.GONE, "replaced by a new pod of the same name"
    current = view.node_name
    if current == node:
        return Verdict.BOUND, f"already bound to {node}"
    if current:
        return Verdict.ELSEWHERE, f"bound to node {current} by someone else (planned {node})"
    if view.deleting:
        return Verdict.GONE, "being deleted"
    return Verdict.RETRY, "409 Conflict on an unbound pod"


@dataclass(kw_only=True)
class BindOutcome:
    """How binding one gang ended, and what the caller must undo in its cache."""

    #: Pods this call bound that are still bound: the whole gang but the dropped pods on success;
    #: on a rollback only pods whose eviction failed (`reason` says so).
    bound: list[str] = field(default_factory=list)
    #: Pods that were gone before they could be bound.
    dropped: list[str] = field(default_factory=list)
    rolled_back: bool = False
    #: Assumed pods the caller must forget: the dropped ones, or every member after a rollback.
    forget: list[str] = field(default_factory=list)
    reason: str = ""
    #: Pods this call bound and then deleted in the rollback.
    evicted: list[str] = field(default_factory=list)
    #: Every Binding call that failed, retries included, by kind, in the order they failed.
    errors: list[BindErrorKind] = field(default_factory=list)


class GangLedger:
    """The answers so far for one gang placement, and the first reason it cannot be completed."""

    def __init__(self, *, keys: Sequence[str], min_member: int) -> None:
        self.keys = list(keys)
        self.min_member = min_member
        self._order = {key: i for i, key in enumerate(self.keys)}
        self._bound: list[str] = []
        self._dropped: list[str] = []
        #: Why the gang cannot be completed as placed; None while it still can.
        self.lost: str | None = None
        #: Failed Binding calls so far, by kind (`failed_call`).
        self.errors: list[BindErrorKind] = []

    def failed_call(self, kind: BindErrorKind) -> None:
        """A Binding call failed (whatever its verdict): counted, not judged."""
        self.errors.append(kind)

    @property
    def bound(self) -> list[str]:
        """Members bound so far, in placement order."""
        return sorted(self._bound, key=self._order.__getitem__)

    @property
    def dropped(self) -> list[str]:
        return sorted(self._dropped, key=self._order.__getitem__)

    def record(self, key: str, verdict: Verdict, detail: str = "") -> None:
        """Take a member's final verdict; the first one that loses the gang gives the reason."""
        if not verdict.final:
            raise ValueError(f"{verdict} is not a final verdict for {key}")
        if verdict is Verdict.BOUND:
            self._bound.append(key)
            return
        if verdict is Verdict.GONE:
            self._dropped.append(key)
            left = len(self.keys) - len(self._dropped)
            if left < self.min_member:
                self._lose(
                    f"pod {key} is gone ({detail or 'not found'}): {left} of {len(self.keys)} members "
                    f"left, the gang needs {self.min_member}"
                )
            return
        if verdict is Verdict.ELSEWHERE:
            self._lose(f"pod {key} is {detail or 'bound elsewhere'}")
            return
        self._lose(f"binding pod {key} failed: {detail or 'refused'}")

    def _lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason

    def outcome(self, *, evicted: Sequence[str] = (), kept: Sequence[str] = ()) -> BindOutcome:
        """The result: success while nothing lost the gang, else a rollback of what was bound
        (`evicted` deleted again, `kept` could not be)."""
        dropped = self.dropped
        if self.lost is None:
            bound = self.bound
            reason = f"bound {len(bound)} of {len(self.keys)}"
            if dropped:
                reason += f", {len(dropped)} gone"
            return BindOutcome(
                bound=bound, dropped=dropped, forget=dropped, reason=reason, errors=list(self.errors)
            )
        reason = self.lost
        if kept:
            reason += f"; could not evict {', '.join(kept)}, left bound"
        return BindOutcome(
            bound=list(kept),
            dropped=dropped,
            rolled_back=True,
            forget=list(self.keys),
            reason=reason,
            evicted=list(evicted),
            errors=list(self.errors),
        )
