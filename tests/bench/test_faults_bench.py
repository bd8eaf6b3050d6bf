"""`aisched bench faults`: what it counts from the pods it watches, its JSON, and one small run
against the real processes (its correctness rows, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from aisched.bench.elastic import ElasticRow, ElasticScenario, elastic_missed, run_elastic
from aisched.bench.faults import FaultRecord, FaultsBenchmark, PolicyRow
from aisched.bench.pods import Cluster


def _pod(
    name: str, uid: str, *, node: str | None = None, gpus: str = "", phase: str = "Pending"
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "bench-faults",
        "uid": uid,
        "labels": {"aisched.io/job": "job-0"},
    }
    if gpus:
        meta["annotations"] = {"aisched.io/gpus": gpus}
    spec: dict[str, Any] = {"nodeName": node} if node else {}
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def test_a_gpu_bound_again_before_its_holder_ended_is_a_conflict() -> None:
    cluster = Cluster()
    cluster.seen(_pod("a", "u1", node="n1", gpus="GPU-1,GPU-2", phase="Running"))
    cluster.seen(_pod("b", "u2", node="n1", gpus="GPU-3", phase="Running"))
    assert cluster.gpu_conflicts() == 0
    cluster.seen(_pod("c", "u3", node="n1", gpus="GPU-2", phase="Running"))
    assert cluster.gpu_conflicts() == 1


def test_a_gpu_freed_by_its_holders_end_may_be_bound_again() -> None:
    cluster = Cluster()
    cluster.seen(_pod("a", "u1", node="n1", gpus="GPU-1", phase="Running"))
    cluster.seen(_pod("a", "u1", node="n1", gpus="GPU-1", phase="Failed"))
    cluster.seen(_pod("a", "u1", node="n1", gpus="GPU-1", phase="Failed"), deleted=True)
    cluster.seen(_pod("a", "u2", node="n1", gpus="GPU-1", phase="Running"))
    assert cluster.gpu_conflicts() == 0
    assert cluster.live == {"a": "u2"}
    assert cluster.pods["u1"].disrupted_at is not None


def _row(policy: str, *, recover: float, conflicts: int = 0) -> PolicyRow:
    record = FaultRecord("not-ready", "b0-001", "job-0", 10.5, recover, 1, 0.02)
    return PolicyRow(
        policy, 10.0, 32, 8, (record,), gpu_conflicts=conflicts, half_bound_gangs=0, operator_warnings=0
    )


def test_targets_are_judged_per_policy_and_only_correctness_rows_fail() -> None:
    slow = FaultsBenchmark((_row("OnFailure", recover=40.0), _row("Replace", recover=16.0)))
    assert slow.rows[0].missed() == []
    assert slow.rows[1].missed() == ["Replace recover_s p99 <= 15"]
    assert slow.failures() == []
    broken = FaultsBenchmark((_row("Replace", recover=11.0, conflicts=1),))
    assert broken.failures() == ["Replace: 1 GPU(s) held by two running pods"]


def test_a_small_run_recovers_every_job_under_both_policies() -> None:
    command = ["bench", "faults", "--nodes", "8", "--jobs", "2", "--faults", "2", "--detection", "0.5"]
    command += ["--elastic-jobs", "0"]
    result = subprocess.run(
        [sys.executable, "-m", "aisched.cli", *command, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["faults"]
    assert [r["policy"] for r in rows] == ["OnFailure", "Replace"]
    for row in rows:
        assert (row["gpu_conflicts"], row["half_bound_gangs"]) == (0, 0)
        assert [f["kind"] for f in row["faults"]] == ["not-ready", "xid"]
        assert all(f["recover_s"] is not None for f in row["faults"]), "every job ran whole again"
    assert [f["pods_ended"] for f in rows[0]["faults"]] == [3, 3], "the whole gang restarted"
    assert [f["pods_ended"] for f in rows[1]["faults"]] == [1, 1], "only the lost pod"


def _mix(mode: str, utilisation: float, completion: float, *, completed: int = 4) -> ElasticRow:
    return ElasticRow(mode, 4, completed, utilisation, completion, gpu_conflicts=0)


def test_elastic_is_judged_against_both_fixed_sizes() -> None:
    good = (_mix("elastic", 0.8, 30.0), _mix("fixed-min", 0.5, 60.0), _mix("fixed-max", 0.7, 35.0))
    assert elastic_missed(good) == []
    idle = (_mix("elastic", 0.55, 30.0), _mix("fixed-min", 0.5, 60.0), _mix("fixed-max", 0.7, 25.0))
    assert elastic_missed(idle) == [
        "elastic utilisation >= fixed-min's + 10 points",
        "elastic mean completion <= fixed-max's",
    ]
    stuck = FaultsBenchmark((), (_mix("elastic", 0.8, 30.0, completed=3),))
    assert stuck.failures() == ["elastic: 1 job(s) never finished"]


def test_a_small_elastic_mix_finishes_every_job_in_every_mode() -> None:
    scenario = ElasticScenario(nodes=4, jobs=2, interval_s=1.0, work_pod_s=6.0, min_workers=1, max_workers=2)
    rows = run_elastic(scenario)
    assert [r.mode for r in rows] == ["elastic", "fixed-min", "fixed-max"]
    for row in rows:
        assert (row.completed, row.gpu_conflicts) == (2, 0)
        assert 0 < row.utilisation <= 1
