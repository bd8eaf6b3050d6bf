"""Headless Chromium from its command line: a page's DOM after its scripts ran, or a screenshot.

Each run gets a fresh profile directory and the flags that keep Chromium off the network except
for the page asked for (no component updates, sync or background requests; QUIC off), and runs
without the sandbox (as root in a container, Chromium refuses to start with it). `virtual_ms`
is a virtual-time budget: timers fire as if that much time had passed, without waiting for it,
while network requests still complete, so a page's refresh script runs in a second or two.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["CHROMIUM_ENV", "BrowserError", "dump_dom", "find_chromium", "screenshot"]

#: Names a Chromium (or Chrome) executable to use instead of looking for one.
CHROMIUM_ENV: Final = "AISCHED_CHROMIUM"
_CANDIDATES: Final = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "chromium", "google-chrome")
_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
_TAIL: Final = 2000


class BrowserError(Exception):
    """Chromium could not be started, failed, or took too long."""


def find_chromium() -> str | None:
    """The Chromium to run: `$AISCHED_CHROMIUM`, else the first one installed, else None."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return shutil.which(named)
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found is not None:
            return found
    return None


async def dump_dom(
    url: str, *, virtual_ms: int = 3000, give_up_after: float = 60.0, chromium: str | None = None
) -> str:
    """The DOM of `url` as serialised HTML once `virtual_ms` of virtual time has passed."""
    return await _run(
        url,
        ["--dump-dom", f"--virtual-time-budget={virtual_ms}"],
        give_up_after=give_up_after,
        chromium=chromium,
    )


async def screenshot(
    url: str,
    path: Path,
    *,
    width: int = 1400,
    height: int = 1000,
    virtual_ms: int = 1000,
    give_up_after: float = 60.0,
    chromium: str | None = None,
) -> None:
    """A PNG of `url` in a `width`×`height` window, written to `path`."""
    target = await asyncio.to_thread(_prepared, path)
    flags = [
        f"--screenshot={target}",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={virtual_ms}",
    ]
    await _run(url, flags, give_up_after=give_up_after, chromium=chromium)
    if not await asyncio.to_thread(_written, target):
        raise BrowserError(f"Chromium wrote no screenshot to {path}")


def _prepared(path: Path) -> Path:
    """`path` made absolute (Chromium resolves it from its own directory), its directory made,
    and any earlier file there removed (so a failed run cannot pass for a fresh one)."""
    target = path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    return target


def _written(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


async def _run(url: str, flags: list[str], *, give_up_after: float, chromium: str | None) -> str:
    executable = chromium or find_chromium()
    if executable is None:
        raise BrowserError(f"no Chromium found (install it, or name one in ${CHROMIUM_ENV})")
    with tempfile.TemporaryDirectory(prefix="aisched-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            executable,
            *_FLAGS,
            f"--user-data-dir={profile}",
            *flags,
            url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(give_up_after):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise BrowserError(f"Chromium took longer than {give_up_after:g}s on {url}") from None
    if process.returncode != 0:
        said = stderr.decode(errors="replace")[-_TAIL:]
        raise BrowserError(f"Chromium exited with {process.returncode} on {url}: {said}")
    return stdout.decode(errors="replace")
