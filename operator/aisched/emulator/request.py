"""Reading a request: its body (JSON or YAML, within the API server's size limit) and the options
every write takes (fieldManager, fieldValidation, dryRun)."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from aisched.emulator.admission import check_depth
from aisched.emulator.apply import MANAGER_MAX_LENGTH, check_options
from aisched.emulator.errors import StatusError

__all__ = ["MAX_REQUEST_BYTES", "dry_run", "field_validation", "read_body", "request_manager", "wants_table"]

#: The API server reads no request body larger than this (apiserver's MaxRequestBodyBytes).
MAX_REQUEST_BYTES: Final = 3 * 2**20


async def read_body(request: web.Request, *, required: bool = True) -> Any:
    if "protobuf" in request.headers.get("Content-Type", "") or "cbor" in request.headers.get(
        "Content-Type", ""
    ):
        # Only JSON is spoken here; clients that offered protobuf retry with JSON on a 415.
        raise StatusError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include:"
            " application/json, application/yaml",
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise StatusError(
            413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_REQUEST_BYTES}"
        ) from None
    if not raw:
        if required:
            raise StatusError.bad_request("the request body is empty")
        return None
    try:
        body = json.loads(raw)
    except RecursionError:
        raise StatusError.bad_request("the request body is nested too deeply") from None
    except ValueError:
        try:
            import yaml  # noqa: PLC0415 - apply-patch+yaml and YAML bodies are rare

            body = yaml.safe_load(raw)
        except RecursionError:
            raise StatusError.bad_request("the request body is nested too deeply") from None
        except Exception as exc:
            raise StatusError.bad_request(f"the request body is not JSON: {exc}") from None
    check_depth(body)
    return body


def request_manager(request: web.Request) -> str:
    """Who writes: the fieldManager asked for, else the client's User-Agent up to its first "/"."""
    given = request.query.get("fieldManager")
    check_options(is_apply=False, manager=given, force=None)
    return given or request.headers.get("User-Agent", "").split("/")[0][:MANAGER_MAX_LENGTH]


def field_validation(request: web.Request) -> str:
    return request.query.get("fieldValidation", "Warn")


def dry_run(request: web.Request) -> bool:
    return request.query.get("dryRun") == "All"


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")
