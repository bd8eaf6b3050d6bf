"""The pure core imports no Kubernetes client, no Kopf and no NVML (DESIGN.md §1).

Checked twice: statically, over every import statement in the core's source (including imports
inside functions), and at run time, by importing the core in a fresh interpreter and looking at
what it loaded (catches imports that arrive through a third package).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "operator" / "aisched"
PURE_CORE = ("api", "topology", "framework", "plugins", "queue", "cache", "scheduler", "quota")
FORBIDDEN = ("kopf", "kubernetes_asyncio", "kubernetes", "pynvml", "aiohttp")


def forbidden_imports(root: Path) -> list[str]:
    """`file:line module` for each import of a forbidden top-level module under `root`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def _existing_core() -> list[str]:
    return [name for name in PURE_CORE if (PACKAGE / name / "__init__.py").is_file()]


def test_the_api_package_exists_so_the_boundary_is_checked_at_all() -> None:
    assert "api" in _existing_core()


@pytest.mark.parametrize("package", _existing_core())
def test_core_source_imports_no_client_kopf_or_nvml(package: str) -> None:
    assert forbidden_imports(PACKAGE / package) == []


def test_core_modules_load_no_client_kopf_or_nvml_at_run_time() -> None:
    modules = [
        ".".join(("aisched", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for package in _existing_core()
        for path in sorted((PACKAGE / package).rglob("*.py"))
    ]
    script = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_the_static_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def f():\n    from kopf import on\n    import pynvml.nvml\n")
    assert forbidden_imports(tmp_path) == ["bad.py:2 kopf", "bad.py:3 pynvml.nvml"]


def test_operator_is_not_a_package_so_the_standard_library_module_wins() -> None:
    assert not (PACKAGE.parent / "__init__.py").exists()
    result = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parents[1],
    )
    assert "operator/aisched" not in result.stdout
    assert result.stdout.strip().endswith("operator.py")


#: DESIGN.md §1: which aisched packages each core package may import.
ALLOWED_INTERNAL = {
    "api": {"api"},
    "topology": {"api", "topology"},
    "framework": {"api", "topology", "framework"},
    "plugins": {"api", "topology", "framework", "plugins", "quota"},
    "queue": {"api", "topology", "framework", "queue"},
    "cache": {"api", "topology", "cache"},
    "quota": {"api", "topology", "framework", "quota"},
    "scheduler": {"api", "topology", "framework", "plugins", "queue", "cache", "scheduler", "quota"},
}


def internal_imports(root: Path) -> set[str]:
    """The aisched sub-packages imported anywhere under `root`."""
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {n.split(".")[1] for n in names if n.startswith("aisched.") and n.count(".") >= 1}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED_INTERNAL))
def test_core_packages_import_only_the_layers_below_them(package: str) -> None:
    assert internal_imports(PACKAGE / package) <= ALLOWED_INTERNAL[package]
