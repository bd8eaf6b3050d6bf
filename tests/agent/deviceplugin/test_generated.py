"""The committed device-plugin API modules are what grpcio-tools makes of the committed .proto."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

OPERATOR = Path(__file__).parents[3] / "operator"
API = Path("aisched/agent/deviceplugin/v1beta1")
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def _generated_with() -> str:
    text = (OPERATOR / API / "api_pb2_grpc.py").read_text()
    found = re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", text)
    assert found is not None, "api_pb2_grpc.py does not say which grpcio-tools made it"
    return found.group(1)


def test_the_generated_modules_match_a_regeneration_from_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is not installed (the dev extra has it)")
    installed = importlib.metadata.version("grpcio-tools")
    if installed != _generated_with():
        pytest.skip(f"grpcio-tools {installed} is installed; the modules were made by {_generated_with()}")
    (tmp_path / API).mkdir(parents=True)
    shutil.copy(OPERATOR / API / "api.proto", tmp_path / API / "api.proto")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--pyi_out=.",
            "--grpc_python_out=.",
            str(API / "api.proto"),
        ],
        cwd=tmp_path,
        check=True,
    )
    stale = [
        name
        for name in GENERATED
        if (tmp_path / API / name).read_text() != (OPERATOR / API / name).read_text()
    ]
    assert stale == [], f"regenerate with `make deviceplugin-api`: {stale} differ from api.proto"


def test_the_services_are_the_kubelets() -> None:
    """The method paths the kubelet calls (`/v1beta1.DevicePlugin/Allocate`, ...) and serves."""
    pytest.importorskip("grpc", reason="the deviceplugin extra is not installed")
    from aisched.agent.deviceplugin.v1beta1 import api_pb2  # noqa: PLC0415 - needs the extra

    services = {
        service.full_name: [m.name for m in service.methods]
        for service in api_pb2.DESCRIPTOR.services_by_name.values()
    }
    assert services == {
        "v1beta1.Registration": ["Register"],
        "v1beta1.DevicePlugin": [
            "GetDevicePluginOptions",
            "ListAndWatch",
            "GetPreferredAllocation",
            "Allocate",
            "PreStartContainer",
        ],
    }
