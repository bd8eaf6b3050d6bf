"""`aisched agent --print`: the matrix reads like `nvidia-smi topo -m`."""

from __future__ import annotations

import io

import pynvml
import pytest

from aisched.agent.cli import run
from aisched.cli import _parser, main
from aisched.topology.machines import MACHINES


def _printed(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["agent", "--print", "--fake", name, "--node", "gpu-1"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_print_shows_the_known_topo_matrix(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = _printed(name, capsys)
    machine = MACHINES[name]
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["GPU0"] and "NUMA" in line)
    assert lines[header].split() == [*(f"GPU{i}" for i in range(machine.gpu_count)), "NUMA", "Affinity"]
    rows = [line.split() for line in lines[header + 1 : header + 1 + machine.gpu_count]]
    for index, row in enumerate(rows):
        assert row[0] == f"GPU{index}"
        assert tuple(row[1:-1]) == machine.matrix[index]
        assert row[-1] == str(machine.numa[index])
    assert "NV#  = Connection traversing a bonded set of # NVLinks" in out


def test_print_lists_mig_instances_and_where_profiles_may_start(capsys: pytest.CaptureFixture[str]) -> None:
    out = _printed("a100-mig", capsys)
    assert "GPU0  instances: 3g.40gb @0-3, 2g.20gb @4-5, 1g.10gb @6-6" in out
    assert "GPU3  instances: none" in out
    assert "1g.10gb     may start at 0, 1, 2, 3, 4, 5, 6" in out
    assert "GPU4  instances" not in out


def test_print_names_the_node_and_driver(capsys: pytest.CaptureFixture[str]) -> None:
    out = _printed("dgx1-v100", capsys)
    assert out.startswith("Node gpu-1: 8 GPU(s), driver ")
    assert "V100-32GB" in out


def test_without_a_driver_the_agent_says_so_and_fails() -> None:
    # The real binding: on a machine without the NVIDIA driver, nvmlInit fails.
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # pragma: no cover - a machine with a GPU driver
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    err = io.StringIO()
    args = _parser().parse_args(["agent", "--print"])
    assert run(args, out=io.StringIO(), err=err) == 1
    assert "NVML is not available" in err.getvalue()
    assert "is the NVIDIA driver installed" in err.getvalue()
