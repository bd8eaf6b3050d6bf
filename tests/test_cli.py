"""`aisched crds` and `aisched validate`, driven through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aisched.api.crd import KINDS
from aisched.cli import main
from aisched.crds import crd_filename
from tests.support import objects

ROOT = Path(__file__).parents[1]


def test_crds_writes_every_crd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds", "--output-dir", str(tmp_path)]) == 0
    for kind in KINDS:
        assert (tmp_path / crd_filename(kind)).read_text() == (ROOT / "crds" / crd_filename(kind)).read_text()
    assert len(capsys.readouterr().out.splitlines()) == len(KINDS)


def test_crds_check_fails_on_a_stale_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds", "--output-dir", str(tmp_path)]) == 0
    assert main(["crds", "--check", "--output-dir", str(tmp_path)]) == 0
    stale = tmp_path / crd_filename(KINDS[0])
    stale.write_text(stale.read_text().replace("maximum: 10000", "maximum: 10"))
    assert main(["crds", "--check", "--output-dir", str(tmp_path)]) == 1
    assert crd_filename(KINDS[0]) in capsys.readouterr().err


def test_validate_is_clean_on_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", str(ROOT / "examples")]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert ", 0 error(s)" in captured.err


def test_validate_prints_one_line_per_error_with_file_object_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = objects.aijob()
    job["spec"]["gang"] = {"minMember": 20}
    quota = objects.tenantquota()
    quota["spec"]["weight"] = 0
    quota["spec"]["resources"]["nvidia.com/gpu"] = {"guaranteed": 64, "max": 32}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all([job, {"apiVersion": "v1", "kind": "ConfigMap"}, quota]))
    assert main(["validate", "-f", str(path)]) == 1
    job_line = f"{path}:1: AIJob ml-research/llama-pretrain: "
    quota_line = f"{path}:3: TenantQuota research: "
    assert capsys.readouterr().out.splitlines() == [
        job_line + "spec.gang.minMember: must not exceed the total number of replicas (20 > 2)",
        quota_line + "spec.weight: input should be greater than 0",
        quota_line + "spec.resources[nvidia.com/gpu].guaranteed: must not exceed max (64 > 32)",
    ]


def test_validate_reports_unreadable_and_malformed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed")
    assert main(["validate", "-f", str(bad), "-f", str(tmp_path / "missing.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: not valid YAML" in out
    assert "missing.yaml: cannot read" in out


def test_the_console_script_runs_as_a_process(tmp_path: Path) -> None:
    job = objects.aijob()
    job["spec"]["topology"] = {"policy": "Required"}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    result = subprocess.run(
        [sys.executable, "-m", "aisched.cli", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "spec.topology.level: is required when policy is Required" in result.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["run", "--emulator", "--kubeconfig", "k"], "exclude each other"),
        (["run", "--cluster", "examples/clusters/demo.yaml"], "add --emulator"),
    ],
)
def test_run_refuses_options_that_contradict_each_other(
    args: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert complaint in capsys.readouterr().err


def test_run_without_a_cluster_to_talk_to_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--kubeconfig", str(tmp_path / "missing")]) == 1
    assert "no cluster to schedule onto" in capsys.readouterr().err
