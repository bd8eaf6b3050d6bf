"""API errors as the Kubernetes API server returns them: v1 `Status` objects."""

from __future__ import annotations

from typing import Any

__all__ = ["StatusError", "status_body"]


class StatusError(Exception):
    """An error the API answers with: HTTP `code`, Status `reason`, a message, optional details."""

    def __init__(
        self, code: int, reason: str, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, details=self.details)

    @classmethod
    def not_found(cls, resource: str, name: str, *, group: str = "") -> StatusError:
        qualified = f"{resource}.{group}" if group else resource
        return cls(
            404,
            "NotFound",
            f'{qualified} "{name}" not found',
            details={"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def already_exists(cls, resource: str, name: str, *, group: str = "") -> StatusError:
        qualified = f"{resource}.{group}" if group else resource
        return cls(
            409,
            "AlreadyExists",
            f'{qualified} "{name}" already exists',
            details={"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def conflict(cls, resource: str, name: str, why: str, *, group: str = "") -> StatusError:
        qualified = f"{resource}.{group}" if group else resource
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
            details={"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def invalid(cls, kind: str, name: str, causes: list[dict[str, str]], *, group: str = "") -> StatusError:
        summary = ", ".join(
            f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes
        )
        return cls(
            422,
            "Invalid",
            f'{kind}.{group} "{name}" is invalid: {summary}'
            if group
            else f'{kind} "{name}" is invalid: {summary}',
            details={"name": name, "group": group, "kind": kind, "causes": causes},
        )

    @classmethod
    def bad_request(cls, message: str) -> StatusError:
        return cls(400, "BadRequest", message)


def status_body(
    code: int, reason: str, message: str, *, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body
