"""What a simulation writes (curves CSV, JSON summary beside the paper's, PNG), and the paper's curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from aisched.simulator.expected import paper_curves
from aisched.simulator.experiment import parse_seeds, run_experiment, write_outputs
from tests.simulator._traces import real_expected, small_trace, write_expected

FLAT = [min(float(x), 100.0) for x in range(131)]  # allocation = arrived, capped at 100


def test_the_papers_headline_numbers_come_out_of_its_files() -> None:
    paper = paper_curves(real_expected(), "openb_pod_list_default")

    at_130 = {policy: round(curves.unallocated_at(130), 2) for policy, curves in paper.items()}
    assert at_130 == {"random": 12.53, "dotprod": 9.15, "clustering": 8.12, "packing": 8.0,
                      "bestfit": 6.92, "fgd": 4.61}  # fmt: skip
    assert round(paper["fgd"].unallocated_at(100), 2) == 4.77
    assert paper_curves(real_expected(), "openb_pod_list_default", seeds=[42])["fgd"].unallocated_at(130) != (
        paper["fgd"].unallocated_at(130)
    )


def test_a_missing_results_folder_means_no_comparison(tmp_path: Path) -> None:
    assert paper_curves(tmp_path / "absent", "openb_pod_list_default") == {}


def test_seeds_are_a_number_a_range_or_a_list() -> None:
    assert parse_seeds("42") == [42]
    assert parse_seeds("42..45") == [42, 43, 44, 45]
    assert parse_seeds("1,5..6") == [1, 5, 6]
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds("x")


def test_an_experiment_writes_curves_summary_and_plot(tmp_path: Path) -> None:
    trace = small_trace(pods=120)
    expected = write_expected(tmp_path / "expected", trace.workload, {"06-FGD": FLAT, "05-BestFit": FLAT})
    experiment = run_experiment(trace, policies=["fgd", "bestfit"], seeds=[1, 2], tune=1.3)

    data = write_outputs(experiment, tmp_path / "out", expected=expected)

    fgd = data["policies"]["fgd"]
    assert fgd["seeds"] == [1, 2]
    assert fgd["paper_unallocated_at_130"] == 0.0
    assert fgd["unallocated_at_130"] == pytest.approx(experiment.mean("fgd").unallocated_at(130), abs=1e-4)
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == data
    with (tmp_path / "out" / "curves.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    sources = {(r["source"], r["policy"], r["seed"]) for r in rows}
    assert ("ours", "fgd", "1") in sources
    assert ("ours", "fgd", "mean") in sources
    assert ("paper", "bestfit", "mean") in sources
    assert len(rows) == 131 * (2 * 3 + 2)
    png = (tmp_path / "out" / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000
