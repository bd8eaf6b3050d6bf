"""`aisched view-screenshot` without a browser to take the picture: a clear error, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisched.cli import main


def test_without_chromium_the_screenshot_command_says_so_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AISCHED_CHROMIUM", str(tmp_path / "no-such-browser"))

    code = main(["view-screenshot", "--output", str(tmp_path / "view.png")])

    assert code == 1
    assert "no Chromium found" in capsys.readouterr().err
    assert not (tmp_path / "view.png").exists()
