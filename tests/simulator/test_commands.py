"""`aisched simulate` and `aisched bench sim` on a small trace folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

from aisched.cli import _POLICIES, _parser, main
from aisched.simulator.cluster import POLICIES
from tests.simulator._traces import small_trace, write_trace


def run(*argv: str) -> tuple[int, str, str]:
    """The command's exit code, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    args = _parser().parse_args(list(argv))
    code: int = args.handler(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_command_line_knows_every_policy() -> None:
    assert list(_POLICIES) == list(POLICIES)


def test_simulate_writes_the_outputs_per_workload(tmp_path: Path) -> None:
    traces = write_trace(tmp_path / "traces", small_trace(pods=100))

    code, out, err = run("simulate", "--traces", str(traces), "--workload", "small", "--policy", "fgd",
                         "--seeds", "1..2", "--output-dir", str(tmp_path / "out"))  # fmt: skip

    assert code == 0, err
    assert "fgd" in out
    assert "seed 2" in err
    written = sorted(p.name for p in (tmp_path / "out" / "openb_pod_list_small").iterdir())
    assert written == ["curves.csv", "curves.png", "summary.json"]


def test_simulate_trace_events_writes_pods_and_timeline(tmp_path: Path) -> None:
    traces = write_trace(tmp_path / "traces", small_trace(pods=60))

    code, _, err = run("simulate", "--traces", str(traces), "--workload", "small", "--policy", "bestfit",
                       "--trace-events", "--output-dir", str(tmp_path / "out"))  # fmt: skip

    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "out" / "openb_pod_list_small").iterdir())
    assert written == ["pods.csv", "summary.json", "timeline.csv"]


def test_simulate_names_an_unknown_workload(tmp_path: Path) -> None:
    traces = write_trace(tmp_path / "traces", small_trace(pods=5))

    assert main(["simulate", "--traces", str(traces), "--workload", "nope"]) == 1


def test_bench_sim_prints_each_policys_means_as_json(tmp_path: Path) -> None:
    traces = write_trace(tmp_path / "traces", small_trace(pods=100))

    code, out, err = run("bench", "sim", "--traces", str(traces), "--workload", "small", "--seeds", "1,2",
                         "--policies", "bestfit,fgd", "--json")  # fmt: skip

    assert code == 0, err
    document = json.loads(out)
    assert set(document["policies"]) == {"bestfit", "fgd"}
    assert document["failed_checks"] == []
    for entry in document["policies"].values():
        assert set(entry) >= {"unallocated_at_130", "unallocated_at_100", "seconds_per_replay"}
        assert 0 <= entry["unallocated_at_130"] <= 100
    assert "unalloc@130" in err
