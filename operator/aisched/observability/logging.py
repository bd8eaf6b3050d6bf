"""Structured logging: structlog events with bound context, JSON in a cluster, console locally.

Standard-library loggers (Kopf, aiohttp, kubernetes-asyncio) are routed through the same
renderer, so one process writes one format.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog

from aisched.settings import LoggingSettings

__all__ = ["configure_logging", "get_logger", "wants_json"]


def wants_json(settings: LoggingSettings, *, stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether to write JSON lines: asked for, or `auto` in a pod or without a terminal."""
    if settings.format != "auto":
        return settings.format == "json"
    env = os.environ if environ is None else environ
    return "KUBERNETES_SERVICE_HOST" in env or not stream.isatty()


def configure_logging(settings: LoggingSettings, *, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library's root logger once, at process start."""
    out = sys.stderr if stream is None else stream
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if wants_json(settings, stream=out):
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for one module: `log = get_logger(__name__)`, then `log.bind(gang=key).info(...)`."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
