"""The fairness benchmark's figures: Jain's index, the fair split, and what a run measured.

`aisched.simulator.fairness` runs the workload; this module holds what it reports, as JSON and
as a readable table with the issue's targets, and the correctness rows a run must pass whatever
its figures: with quotas no tenant above its max; in either run no tenant holding more GPUs than
the cluster has, utilisation at most 100 %, and preemption evicting whole gangs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["FairnessBenchmark", "Preemption", "RunFigures", "TenantFigures", "fair_allocation", "jain"]

_HOUR: Final = 3600.0
_NOT_FIGURES: Final = frozenset({"tenants", "preemption_log"})


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index: (Σx)² / (n Σx²), 1 when all are equal, 1/n when one has everything."""
    if not values:
        return 1.0
    squares = sum(v * v for v in values)
    return 1.0 if squares == 0 else sum(values) ** 2 / (len(values) * squares)


def fair_allocation(demands: Sequence[float], weights: Sequence[float], capacity: float) -> list[float]:
    """Weighted max-min fair split of `capacity` (progressive filling): nobody gets more than it
    demands, and what one leaves goes to the others in proportion to their weights."""
    alloc = [0.0] * len(demands)
    active = {i for i, d in enumerate(demands) if d > 0}
    left = float(capacity)
    while active and left > 1e-9:
        level = left / sum(weights[i] for i in active)
        full = {i for i in active if demands[i] - alloc[i] <= level * weights[i]}
        if not full:
            for i in active:
                alloc[i] += level * weights[i]
            break
        for i in full:
            left -= demands[i] - alloc[i]
            alloc[i] = demands[i]
        active -= full
    return alloc


@dataclass(frozen=True)
class Preemption:
    """One victim gang evicted: when, whose, for which gang, its pods taken out and any left running."""

    time: float
    victim: str
    tenant: str
    by: str
    pods_evicted: int
    pods_left: int


@dataclass(frozen=True)
class TenantFigures:
    """One tenant's figures over a run."""

    name: str
    weight: float
    guaranteed_gpus: int
    max_gpus: int
    submitted: int
    finished: int
    mean_gpus: float
    peak_gpus: int
    mean_weighted_share: float  # GPUs used / entitlement, over the samples where it had demand
    violation_gpu_hours: float
    violation_hours: float
    preempted: int  # times one of its gangs was a victim
    mean_wait_h: float  # arrival to first start, gangs that started


@dataclass(frozen=True)
class RunFigures:
    """What one scheduler did with the workload."""

    policy: str
    jain_index: float
    jain_index_guarantee_share: float
    guarantee_violation_gpu_hours: float
    guarantee_violation_tenant_hours: float
    utilisation: float
    preemptions: int
    gpu_hours_lost: float
    submitted: int
    started: int
    finished: int
    mean_wait_h: float
    schedule_calls: int
    tenants: tuple[TenantFigures, ...]
    preemption_log: tuple[Preemption, ...] = field(repr=False, default=())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: _round(v) for k, v in self.__dict__.items() if k not in _NOT_FIGURES}
        out["tenants"] = [{k: _round(v) for k, v in t.__dict__.items()} for t in self.tenants]
        return out


def _round(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value


@dataclass(frozen=True)
class FairnessBenchmark:
    """Ours against the baseline on one workload, with the issue's targets."""

    seed: int
    hours: float
    nodes: int
    gpus: int
    jobs: int
    ours: RunFigures
    baseline: RunFigures

    @property
    def guarantee_violation_ratio(self) -> float | None:
        base = self.baseline.guarantee_violation_gpu_hours
        return self.ours.guarantee_violation_gpu_hours / base if base > 0 else None

    @property
    def utilisation_delta_pts(self) -> float:
        return 100.0 * (self.ours.utilisation - self.baseline.utilisation)

    def targets(self) -> dict[str, bool]:
        ratio = self.guarantee_violation_ratio
        return {
            "utilisation_within_2_pts": self.utilisation_delta_pts >= -2.0,
            "violations_halved": ratio is not None and ratio <= 0.5,
            "jain_at_least_0.9": self.ours.jain_index >= 0.9,
        }

    def failures(self) -> list[str]:
        """The correctness rows that failed (the targets above are reported, never failed)."""
        rows = [  # the baseline has no quota: it may exceed a max; a max of 0 is no max
            f"ours: tenant {t.name} held {t.peak_gpus} GPUs, over its max of {t.max_gpus}"
            for t in self.ours.tenants
            if t.max_gpus and t.peak_gpus > t.max_gpus
        ]
        for run in (self.ours, self.baseline):
            if run.utilisation > 1.0 + 1e-9:
                rows.append(f"{run.policy}: GPU utilisation {100 * run.utilisation:.2f} %, over 100 %")
            rows += [
                f"{run.policy}: tenant {t.name} held {t.peak_gpus} GPUs of the cluster's {self.gpus}"
                for t in run.tenants
                if t.peak_gpus > self.gpus
            ]
            split = [p for p in run.preemption_log if p.pods_left]
            if split:
                rows.append(f"{run.policy}: {len(split)} preemption(s) left part of the victim gang running")
        return rows

    def to_json(self) -> dict[str, Any]:
        ratio = self.guarantee_violation_ratio
        return {
            "jain_index": round(self.ours.jain_index, 4),
            "guarantee_violation_ratio": None if ratio is None else round(ratio, 4),
            "utilisation_delta_pts": round(self.utilisation_delta_pts, 3),
            "preemptions": self.ours.preemptions,
            "gpu_hours_lost": round(self.ours.gpu_hours_lost, 3),
            "targets_met": self.targets(),
            "workload": {
                "seed": self.seed,
                "hours": self.hours,
                "nodes": self.nodes,
                "gpus": self.gpus,
                "jobs": self.jobs,
            },
            "ours": self.ours.to_json(),
            "baseline": self.baseline.to_json(),
        }

    def table(self) -> str:
        figures: list[tuple[str, str, Callable[[RunFigures], object], str]] = [
            ("Jain's index (weighted share)", "{:.3f}", lambda r: r.jain_index, ">= 0.9"),
            ("Jain's index (used / guarantee)", "{:.3f}", lambda r: r.jain_index_guarantee_share, ""),
            ("guarantee violation GPU-h", "{:.1f}", lambda r: r.guarantee_violation_gpu_hours, ""),
            ("guarantee violation tenant-h", "{:.1f}", lambda r: r.guarantee_violation_tenant_hours, ""),
            ("GPU utilisation %", "{:.2f}", lambda r: 100 * r.utilisation, ""),
            ("preemptions", "{}", lambda r: r.preemptions, ""),
            ("GPU-hours lost to preemption", "{:.1f}", lambda r: r.gpu_hours_lost, ""),
            ("gangs started / finished", "{}", lambda r: f"{r.started} / {r.finished}", ""),
            ("mean wait (h)", "{:.2f}", lambda r: r.mean_wait_h, ""),
        ]
        ratio = self.guarantee_violation_ratio
        lines = [
            f"{self.nodes} nodes, {self.gpus} GPUs, {self.jobs} gangs, {self.hours:g} h, seed {self.seed}",
            f"{'':<32} {'ours':>12} {'baseline':>12}  target",
        ]
        for label, form, get, target in figures:
            ours, base = form.format(get(self.ours)), form.format(get(self.baseline))
            lines.append(f"{label:<32} {ours:>12} {base:>12}  {target}")
        shown = "-" if ratio is None else f"{ratio:.3f}"
        lines.append(f"{'violations ours / baseline':<32} {shown:>12} {'':>12}  <= 0.5")
        lines.append(
            f"{'utilisation delta (points)':<32} {self.utilisation_delta_pts:>+12.2f} {'':>12}  >= -2"
        )
        lines.append("")
        lines.append(
            f"{'tenant':<8} {'run':<9} {'w':>3} {'guar':>5} {'max':>5} {'mean GPUs':>10} {'peak':>5}"
            f" {'share':>6} {'viol GPU-h':>11} {'viol h':>7} {'preempted':>9} {'wait h':>7} {'done':>9}"
        )
        for pair in zip(self.ours.tenants, self.baseline.tenants, strict=True):
            for run, t in zip(("ours", "baseline"), pair, strict=True):
                lines.append(
                    f"{t.name:<8} {run:<9} {t.weight:>3g} {t.guaranteed_gpus:>5} {t.max_gpus:>5}"
                    f" {t.mean_gpus:>10.1f} {t.peak_gpus:>5} {t.mean_weighted_share:>6.2f}"
                    f" {t.violation_gpu_hours:>11.1f} {t.violation_hours:>7.1f} {t.preempted:>9}"
                    f" {t.mean_wait_h:>7.2f} {t.finished:>4}/{t.submitted:<4}"
                )
        return "\n".join(lines)
