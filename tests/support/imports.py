"""What Python source imports, read statically, and what importing it loads, read in a fresh
interpreter: the tools of the import-boundary and packaging tests."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["absolute_imports", "loaded_by", "module_name"]


def absolute_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every absolute import in `path`, those inside functions too."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at `path` in the `aisched` package rooted at `root`."""
    return ".".join(("aisched", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")


def loaded_by(modules: Iterable[str], tops: Iterable[str]) -> list[str]:
    """The modules under the top-level names `tops` that importing `modules`, in a fresh
    interpreter, loads (through a third package too)."""
    script = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(tops)!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    found: list[str] = json.loads(result.stdout)
    return found
