"""Explanations of failed cycles, worded like kube-scheduler's, and kept as structure too.

"0/40 nodes are available: 31 Insufficient nvidia.com/gpu, 9 GPU model not allowed." names, for
every node, the first filter that turned the pod away; gang-level reasons follow
("needs 64 GPUs in one rack; largest rack has 40 free"). `PlacementVerdict` keeps the same facts
as fields (per-reason node counts, the topology deficits, fragmentation), and `PreemptionVerdict`
what preemption did about it, for `aisched explain` and the AIJob's `status.pendingReason`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from aisched.framework.interface import Bools
from aisched.framework.types import Gang, PodInfo
from aisched.quota import GPU_MILLI, QuotaLedger, gang_usage
from aisched.topology.snapshot import Snapshot

__all__ = [
    "MAX_REASONS",
    "PlacementVerdict",
    "PreemptionVerdict",
    "QuotaVerdict",
    "fragmentation",
    "quota_verdict",
    "summary",
]

#: At most this many reasons, topology deficits or victims are kept per verdict (the most common).
MAX_REASONS: Final = 16
_MILLI: Final = 1000


def summary(*, nodes: int, feasible: int, reasons: Counter[str], gang_reasons: Sequence[str] = ()) -> str:
    """One line: how many nodes are available, why the others are not, why the gang still did not fit."""
    parts = [f"{feasible}/{nodes} nodes are available"]
    if reasons:
        ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        parts[0] += ": " + ", ".join(f"{count} {reason}" for reason, count in ordered)
    text = parts[0] + "."
    if gang_reasons:
        text += " " + "; ".join(gang_reasons) + "."
    return text


@dataclass(frozen=True)
class PlacementVerdict:
    """Why a gang found no place, as fields: how many nodes there are and how many passed every
    filter, the nodes each reason turned away (first filter per node), what the gang's topology
    asked that no domain had, and whether the free GPUs are there but too scattered."""

    nodes: int
    feasible: int
    reasons: tuple[tuple[str, int], ...] = ()
    topology: tuple[str, ...] = ()
    fragmentation: str = ""
    #: Whole GPUs free on the nodes the gang's pods may use (static filters passed).
    free_gpus: int | None = None

    @classmethod
    def of(
        cls,
        *,
        nodes: int,
        feasible: int,
        reasons: Counter[str],
        topology: Sequence[str] = (),
        fragmentation: str = "",
        free_gpus: int | None = None,
    ) -> PlacementVerdict:
        ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:MAX_REASONS]
        return cls(
            nodes=nodes,
            feasible=feasible,
            reasons=tuple(ordered),
            topology=tuple(topology[:MAX_REASONS]),
            fragmentation=fragmentation,
            free_gpus=free_gpus,
        )


@dataclass(frozen=True)
class PreemptionVerdict:
    """Whether the cycle preempts to make room: the gangs it evicts, or why it evicts no one."""

    nominated: bool
    victims: tuple[str, ...] = ()
    reason: str = ""


def fragmentation(snapshot: Snapshot, pods: Sequence[PodInfo], allowed: Bools) -> tuple[str, int | None]:
    """For pods of whole GPUs (all alike): the free GPUs on the `allowed` nodes, and, when they
    would suffice by count but not by node, a sentence saying how scattered they are."""
    per_pod = pods[0].gpus if pods else 0
    if per_pod <= 0:
        return "", None
    free = snapshot.gpus_free_count()[: len(allowed)][allowed]
    total = int(free.sum())
    needed = per_pod * len(pods)
    fits = int((free // per_pod).sum())
    if total < needed or fits >= len(pods):
        return "", total
    scattered = int(np.count_nonzero((free > 0) & (free < per_pod)))
    return (
        f"{total} GPUs free, enough for the {needed} asked, but {scattered} node(s) have fewer than "
        f"{per_pod} free each: room for {fits} of {len(pods)} pod(s) of {per_pod} GPUs",
        total,
    )


@dataclass(frozen=True)
class QuotaVerdict:
    """A gang against its tenant's quota, in GPUs: what it asks, what the tenant uses and may
    use, whether the quota holds it back now, and what would let it through."""

    tenant: str | None
    asked: float
    in_use: float = 0.0
    guaranteed: float | None = None
    maximum: float | None = None
    borrowed: float = 0.0
    cohort: str | None = None
    blocked: bool = False
    message: str = ""
    would_free: str = ""


def quota_verdict(ledger: QuotaLedger, gang: Gang, *, blocked: str = "") -> QuotaVerdict:
    """Where `gang` stands with its tenant's GPU quota; `blocked` is the Quota plugin's refusal, if
    it refused the gang this cycle."""
    asked = gang_usage(gang.members).get(GPU_MILLI, 0)
    tenant = ledger.charged_to(gang.tenant, gang.namespace)
    found = ledger.tenant(tenant) if tenant is not None else None
    if found is None:
        return QuotaVerdict(tenant=tenant, asked=asked / _MILLI, blocked=bool(blocked), message=blocked)
    used = ledger.used(found.name).get(GPU_MILLI, 0)
    guaranteed = found.guaranteed.get(GPU_MILLI)
    limit = found.limit(GPU_MILLI)
    would_free = ""
    if blocked:
        admission = ledger.admit(found.name, {GPU_MILLI: asked})
        if admission.reclaim:
            would_free = (
                f"reclaiming what tenant {found.name} lent within cohort {found.cohort}: "
                "preemption of the borrowers' gangs does this"
            )
        elif limit is not None and used + asked > limit:
            would_free = (
                f"{(used + asked - limit) / _MILLI:g} GPU(s) of tenant {found.name}'s running jobs ending, "
                "or a higher limit in its TenantQuota"
            )
        elif found.cohort is not None:
            guaranteed_left = max((guaranteed or 0) - used, 0)
            short = asked - guaranteed_left - ledger.borrowable(found.name, GPU_MILLI)
            would_free = (
                f"{max(short, 0) / _MILLI:g} more GPU(s) left unused in cohort {found.cohort}: jobs of its "
                f"tenants ending (tenant {found.name}'s own hold {used / _MILLI:g})"
            )
    return QuotaVerdict(
        tenant=found.name,
        asked=asked / _MILLI,
        in_use=used / _MILLI,
        guaranteed=guaranteed / _MILLI if guaranteed is not None else None,
        maximum=limit / _MILLI if limit is not None else None,
        borrowed=ledger.borrowed(found.name).get(GPU_MILLI, 0) / _MILLI,
        cohort=found.cohort,
        blocked=bool(blocked),
        message=blocked,
        would_free=would_free,
    )
