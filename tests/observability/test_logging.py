from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from aisched.observability.logging import configure_logging, get_logger, wants_json
from aisched.settings import LoggingSettings


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_the_event_and_its_bound_context() -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="json"), stream=out)
    get_logger("aisched.test").bind(gang="ml/llama").info("gang_bound", nodes=2)
    record = json.loads(out.getvalue())
    assert record["event"] == "gang_bound"
    assert record["gang"] == "ml/llama"
    assert record["nodes"] == 2
    assert record["level"] == "info"
    assert record["logger"] == "aisched.test"
    assert record["timestamp"].endswith("Z")


def test_standard_library_loggers_share_the_format() -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="json"), stream=out)
    logging.getLogger("kopf.objects").warning("handler %s failed", "on_create")
    record = json.loads(out.getvalue())
    assert record == {
        **record,
        "event": "handler on_create failed",
        "level": "warning",
        "logger": "kopf.objects",
    }


def test_the_level_filters_events() -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="WARNING"), stream=out)
    get_logger("x").info("quiet")
    get_logger("x").error("loud")
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["loud"]


def test_auto_is_json_in_a_pod_or_without_a_terminal_and_console_at_a_terminal() -> None:
    auto = LoggingSettings(format="auto")
    assert wants_json(auto, stream=io.StringIO(), environ={})
    assert not wants_json(auto, stream=_Terminal(), environ={})
    assert wants_json(auto, stream=_Terminal(), environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert not wants_json(LoggingSettings(format="console"), stream=io.StringIO(), environ={})


def test_console_format_is_readable_text() -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="console"), stream=out)
    get_logger("x").info("gang_bound", nodes=2)
    line = out.getvalue()
    assert "gang_bound" in line
    assert "nodes=2" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
