"""Running the real kubectl against an emulator from async tests."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def require_kubectl() -> str:
    """The kubectl binary; tests skip without it locally, but fail on CI, where it must exist."""
    if Path(KUBECTL).exists():
        return KUBECTL
    if os.environ.get("CI") == "true":
        pytest.fail("kubectl is missing on CI; these tests must run there")
    pytest.skip("kubectl is not installed")


@dataclass
class Result:
    code: int
    out: str
    err: str


class Kubectl:
    """kubectl bound to one kubeconfig and a private discovery cache."""

    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.binary = require_kubectl()
        self.kubeconfig = kubeconfig
        self.cache = cache

    def _args(self, args: tuple[str, ...]) -> list[str]:
        return [self.binary, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache}", *args]

    async def __call__(self, *args: str, stdin: str | None = None, deadline: float = 60) -> Result:
        process = await asyncio.create_subprocess_exec(
            *self._args(args),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin else None), timeout=deadline
        )
        return Result(process.returncode or 0, out.decode(), err.decode())

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        result = await self(*args, stdin=stdin)
        assert result.code == 0, f"kubectl {' '.join(args)} failed: {result.err}"
        return result.out

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """A long-running kubectl (`get -w`); read its stdout, then terminate it."""
        return await asyncio.create_subprocess_exec(
            *self._args(args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
