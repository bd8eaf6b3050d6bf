"""The queue benchmark's result: a row per run, JSON, a table, and the correctness rows that failed.

Two kinds of rows: `burst` (one per queueing strategy, `BurstRow`) and `trace` (a replayed
workload, to come). Any row kind that is a `QueueRow` fits in `QueueBenchmark`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aisched.bench.queue.figures import BurstFigures

__all__ = ["MAKESPAN_RATIO_TARGET", "BurstRow", "QueueBenchmark", "QueueRow"]

#: Makespan within 5 % of the waves back to back, for every strategy.
MAKESPAN_RATIO_TARGET: Final = 1.05
#: The strategies that promise submission order: no job may pass a blocked head.
_NO_OVERTAKES: Final = frozenset({"StrictFIFO"})


class QueueRow(Protocol):
    """One run of the queue benchmark, as the report shows it."""

    @property
    def label(self) -> str: ...
    def to_json(self) -> dict[str, Any]: ...
    def cells(self) -> list[tuple[str, str]]:
        """(figure, value) for the table, which gives each row a column under its label."""
        ...

    def failures(self) -> list[str]:
        """The correctness rows that failed (targets missed never appear here)."""
        ...


def _or_na(value: float, text: str) -> str:
    return "n/a" if math.isnan(value) else text


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    return value


@dataclass(frozen=True)
class BurstRow:
    """The burst under one queueing strategy (see `bench.queue.figures`)."""

    strategy: str  #: AISCHED_QUEUEING__STRATEGY
    reservation: bool  #: AISCHED_QUEUEING__RESERVATION
    nodes: int
    gangs: int
    waves: int
    run_seconds: float
    seed: int
    figures: BurstFigures
    operator_warnings: int  #: log lines at WARNING or above

    @property
    def label(self) -> str:
        return f"{self.strategy}{'+reservation' if self.reservation else ''}"

    def targets_missed(self) -> list[str]:
        missed = []
        ratio = self.figures.makespan_ratio
        if math.isnan(ratio) or ratio > MAKESPAN_RATIO_TARGET:
            missed.append(f"makespan_ratio <= {MAKESPAN_RATIO_TARGET}")
        if self.strategy in _NO_OVERTAKES and self.figures.max_overtakes_of_blocked_head > 0:
            missed.append("max_overtakes_of_blocked_head == 0")
        return missed

    def to_json(self) -> dict[str, Any]:
        """The row, flat; figures rounded, a makespan never measured as null."""
        head = {
            "strategy": self.strategy,
            "reservation": self.reservation,
            "nodes": self.nodes,
            "gangs": self.gangs,
            "waves": self.waves,
            "run_seconds": self.run_seconds,
            "seed": self.seed,
        }
        figures = {k: _rounded(v) for k, v in dataclasses.asdict(self.figures).items()}
        missed = self.targets_missed()
        return {
            **head,
            **figures,
            "operator_warnings": self.operator_warnings,
            "meets_target": not missed,
            "targets_missed": missed,
        }

    def cells(self) -> list[tuple[str, str]]:
        f = self.figures
        ratio = f"makespan / ideal (target <= {MAKESPAN_RATIO_TARGET})"
        return [
            ("nodes, gangs", f"{self.nodes}, {self.gangs}"),
            ("waves x run time", f"{self.waves} x {self.run_seconds:g} s"),
            ("makespan", _or_na(f.makespan_s, f"{f.makespan_s:.1f} s")),
            (ratio, _or_na(f.makespan_ratio, f"{f.makespan_ratio:.2f}")),
            ("max overtakes of a blocked head (StrictFIFO: 0)", f"{f.max_overtakes_of_blocked_head}"),
            ("overtakes (of heads not yet made)", f"{f.overtakes} ({f.overtakes_before_head_created})"),
            ("half-bound gangs (must be 0)", f"{f.half_bound_gangs}"),
            ("gangs never bound (must be 0)", f"{f.gangs_never_bound}"),
            ("gangs unfinished (must be 0)", f"{f.gangs_unfinished}"),
            ("GPUs given twice (must be 0)", f"{f.gpu_conflicts}"),
            ("longest gang binding", _or_na(f.max_gang_bind_spread_s, f"{f.max_gang_bind_spread_s:.2f} s")),
            ("first to last job POST", f"{f.submit_s:.2f} s"),
            ("operator warnings logged", f"{self.operator_warnings}"),
            ("targets", "met" if not self.targets_missed() else "missed"),
        ]

    def failures(self) -> list[str]:
        f = self.figures
        checks = [
            (f.gpu_conflicts == 0, f"GPUs given twice: {f.gpu_conflicts} (must be 0)"),
            (f.half_bound_gangs == 0, f"half-bound gangs: {f.half_bound_gangs} (must be 0)"),
            (f.gangs_never_bound == 0, f"gangs never bound: {f.gangs_never_bound} of {self.gangs}"),
            (
                f.gangs_unfinished == 0,
                f"gangs whose pods did not all succeed: {f.gangs_unfinished} of {self.gangs}",
            ),
        ]
        return [row for ok, row in checks if not ok]


def _section(title: str, rows: Sequence[QueueRow]) -> list[str]:
    """A column per row, a line per figure (its heading from the first row)."""
    if not rows:
        return []
    columns = [[row.label, *(value for _, value in row.cells())] for row in rows]
    headings = [title, *(heading for heading, _ in rows[0].cells())]
    lines = [headings, *columns]
    widths = [max(len(cell) for cell in column) for column in lines]
    return [
        "  ".join(column[i].ljust(width) for column, width in zip(lines, widths, strict=True)).rstrip()
        for i in range(len(headings))
    ]


@dataclass(frozen=True)
class QueueBenchmark:
    """`aisched bench queue`: the burst rows and the trace rows."""

    burst: tuple[QueueRow, ...] = ()
    trace: tuple[QueueRow, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "burst": [row.to_json() for row in self.burst],
            "trace": [row.to_json() for row in self.trace],
        }

    def table(self) -> str:
        sections = [_section("burst", self.burst), _section("trace", self.trace)]
        return "\n\n".join("\n".join(lines) for lines in sections if lines)

    def failures(self) -> list[str]:
        return [
            f"{kind} {row.label}: {failure}"
            for kind, rows in (("burst", self.burst), ("trace", self.trace))
            for row in rows
            for failure in row.failures()
        ]
