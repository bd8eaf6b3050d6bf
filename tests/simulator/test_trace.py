"""Reading the trace's CSV files: columns, clamping, models, the multigpu files' short rows, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisched.simulator import trace as trace_module
from aisched.simulator.trace import DEFAULT_TRACES, load_pods, load_trace, resolve, workload_file, workloads
from tests.simulator._traces import real_traces, small_trace, write_trace


def test_pod_list_rows_become_pods_with_clamped_milli_models_and_times(tmp_path: Path) -> None:
    path = tmp_path / "openb_pod_list_x.csv"
    path.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
        "p0,6000,12288,1,460,,LS,Running,427061,12902960,427061\n"
        "p1,8000,1024,1,1200,V100M16|V100M32,BE,Running,5,,\n"
        "p2,4000,2048,0,300,,BE,Running,7,9,8\n"
        "p3,88000,1024,8,1000,,LS,Running,,,\n"
    )

    p0, p1, p2, p3 = load_pods(path)

    assert (p0.shares_gpu, p0.total_gpu_milli, p0.deletion_time) == (True, 460, 12902960)
    assert (p1.gpu_milli, p1.gpu_spec, p1.shares_gpu, p1.deletion_time) == (
        1000,
        ("V100M16", "V100M32"),
        False,
        None,
    )
    assert (p2.gpu_milli, p2.total_gpu_milli) == (0, 0)  # CPU-only: milli without GPUs means nothing
    assert (p3.total_gpu_milli, p3.creation_time) == (8000, None)


def test_multigpu_lists_have_only_five_columns(tmp_path: Path) -> None:
    path = tmp_path / "openb_pod_list_multigpu20.csv"
    path.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,10,2,1000\n")

    (pod,) = load_pods(path)

    assert (pod.num_gpu, pod.gpu_spec, pod.creation_time) == (2, (), None)


def test_a_bad_row_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "openb_pod_list_bad.csv"
    path.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,10,2,1000\np1,lots,10,0,0\n")

    with pytest.raises(ValueError, match=r"openb_pod_list_bad.csv:3"):
        load_pods(path)


def test_workloads_are_named_short_or_long(tmp_path: Path) -> None:
    folder = write_trace(tmp_path / "t", small_trace(pods=3))

    assert workloads(folder) == ["openb_pod_list_small"]
    assert workload_file(folder, "small") == workload_file(folder, "openb_pod_list_small.csv")
    loaded = load_trace(folder, "small")
    assert (len(loaded.nodes), len(loaded.pods), loaded.workload) == (48, 3, "openb_pod_list_small")
    with pytest.raises(FileNotFoundError, match=r"workloads in .*: small"):
        load_trace(folder, "nothere")


def test_relative_paths_fall_back_to_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tmp_path / "checkout"
    traces = tmp_path / "shared" / "traces" / "alibaba-gpu-v2023"
    traces.mkdir(parents=True)
    repository.mkdir()
    monkeypatch.setattr(trace_module, "_REPOSITORY", repository)
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # the default `../shared/...` does not exist from here

    found = resolve(DEFAULT_TRACES)

    assert found == repository / DEFAULT_TRACES
    assert found.resolve() == traces.resolve()
    assert resolve(Path("no/such/dir")) == Path("no/such/dir")


def test_the_default_trace_is_the_papers_cluster_and_pod_list() -> None:
    default = load_trace(real_traces(), "default")

    assert len(default.nodes) == 1213
    assert default.capacity_milli == 6212 * 1000
    assert len(default.pods) == 8152
    assert sum(p.total_gpu_milli for p in default.pods) == pytest.approx(6086.8 * 1000, abs=500)
