"""The pure core imports no Kubernetes client, no Kopf and no NVML (DESIGN.md §1).

Checked twice: statically, over every import statement in the core's source (including imports
inside functions), and at run time, by importing the core in a fresh interpreter and looking at
what it loaded (catches imports that arrive through a third package).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.imports import absolute_imports, loaded_by, module_name

PACKAGE = Path(__file__).parents[1] / "operator" / "aisched"
PURE_CORE = ("api", "topology", "framework", "plugins", "queue", "cache", "scheduler", "quota")

FORBIDDEN = ("kopf", "kubernetes_asyncio", "kubernetes", "pynvml", "aiohttp")


def forbidden_imports(root: Path) -> list[str]:
    """`file:line module` for each import of a forbidden top-level module under `root`."""
    return [
        f"{path.name}:{line} {name}"
        for path in sorted(root.rglob("*.py"))
        for line, name in absolute_imports(path)
        if name.split(".")[0] in FORBIDDEN
    ]


def _existing_core() -> list[str]:
    return [name for name in PURE_CORE if (PACKAGE / name / "__init__.py").is_file()]


def test_the_api_package_exists_so_the_boundary_is_checked_at_all() -> None:
    assert "api" in _existing_core()


@pytest.mark.parametrize("package", _existing_core())
def test_core_source_imports_no_client_kopf_or_nvml(package: str) -> None:
    assert forbidden_imports(PACKAGE / package) == []


def test_core_modules_load_no_client_kopf_or_nvml_at_run_time() -> None:
    modules = [
        module_name(path, PACKAGE)
        for package in _existing_core()
        for path in sorted((PACKAGE / package).rglob("*.py"))
    ]
    assert loaded_by(modules, FORBIDDEN) == []


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


#: DESIGN.md §1: which aisched packages each core package may import. The layers, lowest first:
#: api < topology < cache < quota < framework < plugins, queue < scheduler.
ALLOWED_INTERNAL = {
    "api": {"api"},
    "topology": {"api", "topology"},
    "cache": {"api", "topology", "cache"},
    "quota": {"api", "topology", "cache", "quota"},
    "framework": {"api", "topology", "cache", "quota", "framework"},
    "plugins": {"api", "topology", "cache", "quota", "framework", "plugins"},
    "queue": {"api", "topology", "cache", "quota", "framework", "queue"},
    "scheduler": {"api", "topology", "cache", "quota", "framework", "plugins", "queue", "scheduler"},
}


def internal_imports(root: Path) -> set[str]:
    """The aisched sub-packages imported anywhere under `root`."""
    return {
        name.split(".")[1]
        for path in root.rglob("*.py")
        for _, name in absolute_imports(path)
        if name.startswith("aisched.")
    }


@pytest.mark.parametrize("package", sorted(ALLOWED_INTERNAL))
def test_core_packages_import_only_the_layers_below_them(package: str) -> None:
    assert internal_imports(PACKAGE / package) <= ALLOWED_INTERNAL[package]


def _imports_at_load(path: Path, root: Path) -> set[str]:
    """The aisched modules `path` imports when it is loaded: module-level imports, and those of
    its classes, but not those under `if TYPE_CHECKING:` nor inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("aisched"))
            elif (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("aisched")
            ):
                module = node.module or ""
                for alias in node.names:  # `from aisched.x import y` may name a submodule y
                    sub = f"{module}.{alias.name}"
                    found.add(
                        sub
                        if (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                        else module
                    )
            elif isinstance(node, ast.ClassDef | ast.If | ast.Try | ast.With):
                visit([n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)])

    visit(tree.body)
    return found


def import_cycles(root: Path) -> list[list[str]]:
    """Every cycle of load-time imports between the modules under `root` (one per strongly
    connected component)."""
    graph = {module_name(p, root): _imports_at_load(p, root) for p in sorted(root.rglob("*.py"))}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in graph:
                continue
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1 or module in graph.get(module, ()):
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            connect(module)
    return cycles


def test_no_module_imports_itself_back_through_others() -> None:
    assert import_cycles(PACKAGE) == []


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "aisched"
    package.mkdir()
    (package / "a.py").write_text("from aisched.b import x\n")
    (package / "b.py").write_text("import aisched.a\nx = 1\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aisched.a\n"
    )
    (package / "d.py").write_text("def later():\n    import aisched.c\n")
    assert import_cycles(package) == [["aisched.a", "aisched.b"]]


#: The one preemption what-if: the victim search runs only inside the core's Evaluator.
WHAT_IF_OWNER = PACKAGE / "scheduler" / "evaluator.py"
WHAT_IF_PIECES = ("choose_victims", "candidates")


def _uses_victim_search(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.name}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").endswith("scheduler.preemption")
        and any(alias.name in WHAT_IF_PIECES for alias in node.names)
    ]


def test_only_the_evaluator_searches_for_victims() -> None:
    """The simulator, the benchmarks, the shell and the property tests go through the Evaluator;
    only the unit tests of the two pure search functions call them directly."""
    unit_tests = Path(__file__).parent / "scheduler" / "test_preemption.py"
    roots = [PACKAGE, Path(__file__).parent]
    found = [
        hit
        for root in roots
        for path in sorted(root.rglob("*.py"))
        if path not in (WHAT_IF_OWNER, unit_tests)
        for hit in _uses_victim_search(path)
    ]
    assert found == []
    assert _uses_victim_search(WHAT_IF_OWNER), "the Evaluator is where the victim search runs"
