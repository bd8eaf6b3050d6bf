"""The operator installs lean: the emulator's CEL engine, the simulator's plotting and the device
plugin's gRPC are extras.

`cel-python` (module `celpy`, with its parser `lark`) is imported only under `aisched/emulator/`,
`matplotlib` only under `aisched/simulator/`, `grpcio` and `protobuf` (modules `grpc`, `google`)
only under `aisched/agent/deviceplugin/`; none is a core dependency in pyproject.toml. A command
that needs an extra which is not installed says which in one line, not a traceback.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from aisched import cli
from tests.support.imports import absolute_imports, loaded_by, module_name

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "operator" / "aisched"
#: extra → (the folder allowed to import its modules, the modules, the distributions).
EXTRAS = {
    "emulator": ("emulator", ("celpy", "lark"), ("cel-python",)),
    "sim": ("simulator", ("matplotlib",), ("matplotlib",)),
    "deviceplugin": ("agent/deviceplugin", ("grpc", "google"), ("grpcio", "protobuf")),
}
#: The tracing extra: the SDK and the OTLP exporter, imported only when tracing is configured.
OTEL_DISTRIBUTIONS = ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http")
OTEL_SDK_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter")
#: Modules that exist only to start the emulator (loaded by the commands that check the extra first).
EMULATOR_ONLY = ("demo.py",)
#: The device plugin's modules that speak gRPC (its pure core, `book`, `devices`, `allocation`, is
#: checked with the operator's modules).
DEVICE_PLUGIN_GRPC = ("registration.py", "service.py", "runner.py", "v1beta1")


def _under(path: Path, folder: str) -> bool:
    return path.parts[: len(Path(folder).parts)] == Path(folder).parts


def imports_outside(root: Path, folder: str, modules: tuple[str, ...]) -> list[str]:
    """`path:line module` for each import of `modules` by a file of `root` not under `folder/`."""
    return [
        f"{path.relative_to(root)}:{line} {module}"
        for path in sorted(root.rglob("*.py"))
        if not _under(path.relative_to(root), folder)
        for line, name in absolute_imports(path)
        if (module := name.split(".")[0]) in modules
    ]


def requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match is not None, requirement
        names.add(match.group().lower())
    return names


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_only_its_own_folder_imports_an_extras_modules(extra: str) -> None:
    folder, modules, _ = EXTRAS[extra]
    assert (PACKAGE / folder / "__init__.py").is_file()
    assert imports_outside(PACKAGE, folder, modules) == []


def test_the_static_check_catches_an_import_inside_a_function(tmp_path: Path) -> None:
    (tmp_path / "emulator").mkdir()
    (tmp_path / "emulator" / "cel.py").write_text("import celpy\n")
    (tmp_path / "cli.py").write_text("def f():\n    from celpy.evaluation import Activation\n")
    assert imports_outside(tmp_path, "emulator", ("celpy",)) == ["cli.py:2 celpy"]


def test_the_operator_modules_load_neither_extra_at_run_time() -> None:
    """Through a third module too: every module outside the emulator and the simulator (and the
    demo, which is the emulator's) imported in a fresh interpreter, then what it loaded."""
    device_plugin = PACKAGE / "agent" / "deviceplugin"
    modules = [
        module_name(path, PACKAGE)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in ("emulator", "simulator", *EMULATOR_ONLY)
        and not (
            _under(path, str(device_plugin))
            and path.relative_to(device_plugin).parts[0] in DEVICE_PLUGIN_GRPC
        )
    ]
    assert "aisched.controllers.manager" in modules
    assert "aisched.runner" in modules
    assert "aisched.agent.deviceplugin.allocation" in modules
    assert "aisched.agent.deviceplugin.service" not in modules
    forbidden = [m for _, extra_modules, _ in EXTRAS.values() for m in extra_modules]
    assert loaded_by(modules, forbidden) == []


def test_the_extras_are_not_core_dependencies_and_dev_has_them_all() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = requirement_names(project["dependencies"])
    optional = project["optional-dependencies"]
    for extra, (_, _, distributions) in EXTRAS.items():
        assert core.isdisjoint(distributions)
        assert requirement_names(optional[extra]) == set(distributions)
    # The code speaks the OpenTelemetry API; the SDK and its exporter are the `otel` extra.
    assert "opentelemetry-api" in core
    assert requirement_names(optional["otel"]) == set(OTEL_DISTRIBUTIONS)
    assert core.isdisjoint(OTEL_DISTRIBUTIONS)
    assert f"aisched[{','.join(sorted([*EXTRAS, 'otel']))}]" in optional["dev"]


def test_only_the_tracing_setup_and_its_benchmark_import_the_opentelemetry_sdk() -> None:
    importers = {
        f"{path.relative_to(PACKAGE)} {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for _, name in absolute_imports(path)
        if name.startswith(OTEL_SDK_MODULES)
    }
    assert {entry.split()[0] for entry in importers} == {"observability/tracing.py", "bench/tracing.py"}
    operator = ["aisched.controllers.manager", "aisched.runner", "aisched.observability.tracing"]
    loaded = loaded_by(operator, ["opentelemetry"])
    assert not [m for m in loaded if m.startswith(OTEL_SDK_MODULES)]  # only when tracing is configured


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["emulator"], "emulator"),
        (["run", "--emulator"], "emulator"),
        (["demo", "--cluster", "c.yaml", "--examples", "examples"], "emulator"),
        (["view-screenshot"], "emulator"),
        (["bench", "emulator"], "emulator"),
        (["bench", "e2e"], "emulator"),
        (["simulate"], "sim"),
        (["bench", "sim"], "sim"),
        (["agent", "--device-plugin"], "deviceplugin"),
    ],
)
def test_a_command_without_its_extra_says_which_to_install_in_one_line(
    argv: list[str], extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli._EXTRAS, extra, "aisched_test_not_installed")

    assert cli.main(argv) == 1

    command = (
        " ".join(["aisched", *argv[:2]]) if argv[0] in ("run", "bench", "agent") else f"aisched {argv[0]}"
    )
    captured = capsys.readouterr()
    assert captured.err == f"{command}: needs the {extra} extra: pip install 'aisched[{extra}]'\n"
    assert captured.out == ""


def test_the_cli_checks_for_the_modules_the_extras_install() -> None:
    assert {extra: modules[0] for extra, (_, modules, _) in EXTRAS.items()} == cli._EXTRAS
