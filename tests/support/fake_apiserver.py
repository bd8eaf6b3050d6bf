"""An in-process fake Kubernetes API server over real HTTP, for tests of `aisched.kube`.

Not the emulator (DESIGN.md §1, `emulator/`): no schemas, no selectors, no live watches. It keeps
objects in memory keyed by their path, stamps them with one global resourceVersion counter and
answers errors as v1 Status objects, which is what a REST client has to get right. Test hooks
make the next requests fail, take the server down, stall requests, and record every request.

    async with FakeApiServer(status_subresources={"gpunodetopologies"}) as server:
        async with KubeClient(base_url=server.url) as client: ...
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

__all__ = ["FakeApiServer", "RecordedRequest", "json_patch", "merge_patch"]

JsonObject = dict[str, Any]

_REASONS: Final[Mapping[int, str]] = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
# Fields a write cannot change; the server keeps its own values.
_IMMUTABLE_METADATA: Final = ("name", "namespace", "uid", "creationTimestamp")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; `body` is the decoded JSON (None when empty)."""

    method: str
    path: str
    query: Mapping[str, str]
    content_type: str | None
    body: Any
    headers: Mapping[str, str]


class PatchError(ValueError):
    """A patch that cannot be applied (the API server answers 422 Invalid)."""


class _StatusError(Exception):
    """Abort the request with a Status error."""

    def __init__(self, code: int, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.message = message


@dataclass(frozen=True)
class _Target:
    """What an API path names: a collection, an object, or an object's subresource."""

    prefix: str  # "/api/v1" or "/apis/<group>/<version>"
    namespace: str | None
    plural: str
    name: str | None = None
    subresource: str | None = None

    @property
    def collection_path(self) -> str:
        ns = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{self.prefix}{ns}/{self.plural}"

    @property
    def object_path(self) -> str:
        return f"{self.collection_path}/{self.name}"

    @property
    def api_version(self) -> str:
        return self.prefix.removeprefix("/api/").removeprefix("/apis/")


def _parse(path: str) -> _Target | None:
    segments = path.strip("/").split("/")
    if segments[0] == "api" and len(segments) >= 3:
        prefix, rest = "/".join(segments[:2]), segments[2:]
    elif segments[0] == "apis" and len(segments) >= 4:
        prefix, rest = "/".join(segments[:3]), segments[3:]
    else:
        return None
    namespace = None
    # /namespaces/<ns>/<plural>/..., except a Namespace's own subresources.
    own_subresource = len(rest) == 3 and rest[2] in ("status", "finalize")
    if len(rest) >= 3 and rest[0] == "namespaces" and not own_subresource:
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 3 or not all(rest):
        return None
    return _Target("/" + prefix, namespace, *rest)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: list[Any]) -> Any:
    """RFC 6902 JSON patch with add, replace, remove and test; all or nothing."""
    result = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(f"malformed operation {op!r}")
        kind, tokens = op.get("op"), _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{kind} at {op['path']} needs a value")
        if kind == "test":
            if not _json_equal(_resolve(result, tokens), op["value"]):
                raise PatchError(f"test failed at {op['path']}")
            continue
        if kind not in ("add", "replace", "remove"):
            raise PatchError(f"unsupported operation {kind!r}")
        if not tokens:
            if kind == "remove":
                raise PatchError("cannot remove the whole document")
            result = copy.deepcopy(op["value"])
            continue
        parent, last = _resolve(result, tokens[:-1]), tokens[-1]
        if isinstance(parent, dict):
            if kind != "add" and last not in parent:
                raise PatchError(f"{kind}: no member at {op['path']}")
            if kind == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif isinstance(parent, list):
            if kind == "add" and last == "-":
                parent.append(copy.deepcopy(op["value"]))
                continue
            index = _index(last, len(parent) + (1 if kind == "add" else 0))
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "remove":
                del parent[index]
            else:
                parent[index] = copy.deepcopy(op["value"])
        else:
            raise PatchError(f"{kind}: {op['path']} is inside a scalar")
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"a JSON pointer starts with '/': {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(token: str, bound: int) -> int:
    if not token.isdigit() or (token != "0" and token.startswith("0")) or int(token) >= bound:
        raise PatchError(f"bad array index {token!r}")
    return int(token)


def _resolve(document: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(document, dict) and token in document:
            document = document[token]
        elif isinstance(document, list):
            document = document[_index(token, len(document))]
        else:
            raise PatchError(f"no member {token!r}")
    return document


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ==, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _status(code: int, message: str, *, reason: str | None = None) -> web.Response:
    return web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason or _REASONS.get(code, "Unknown"),
            "code": code,
        },
        status=code,
    )


class FakeApiServer:
    """A Kubernetes API server in memory, on 127.0.0.1 and a free port, for one test.

    `status_subresources` lists the plurals whose objects have a `/status` subresource: writes
    to the object leave `.status` alone and writes to `/status` change only `.status`.
    """

    def __init__(
        self,
        *,
        status_subresources: Collection[str] = (),
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`token`: answer 401 to requests without `Authorization: Bearer <token>`."""
        self.status_subresources = frozenset(status_subresources)
        self.requests: list[RecordedRequest] = []
        self._token = token
        self._ssl_context = ssl_context
        self._clock = clock
        self._objects: dict[str, JsonObject] = {}
        self._revision = 0
        self._compacted = 0
        self._failures: list[tuple[int, bytes | None]] = []
        self._stalls = 0
        self._released = asyncio.Event()
        self._down = False
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- test hooks ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, once started."""
        if self._url is None:
            raise RuntimeError("FakeApiServer is not running")
        return self._url

    @property
    def objects(self) -> dict[str, JsonObject]:
        """The store, by object path (live: tests may read it, or seed it)."""
        return self._objects

    @property
    def revision(self) -> int:
        """The last resourceVersion handed out."""
        return self._revision

    def fail_next(self, count: int, status: int = 503, *, body: bytes | None = None) -> None:
        """Answer the next `count` requests with a Status error `status`, or with the raw
        `body` (as a proxy in front of the API server might)."""
        self._failures += [(status, body)] * count

    def stall_next(self, count: int = 1) -> None:
        """Hold the next `count` requests unanswered until the server stops."""
        self._stalls += count

    def down(self) -> None:
        """Answer every request with 503 ServiceUnavailable until `up()`."""
        self._down = True

    def up(self) -> None:
        self._down = False

    def compact(self) -> None:
        """Forget history, as etcd compaction does: watches from an older resourceVersion get
        an ERROR event with 410 Expired."""
        self._compacted = self._revision

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=3 * 2**20)  # the API server's request limit
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context).start()
        port = self._runner.addresses[0][1]
        self._url = f"{'https' if self._ssl_context else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
        self._url = None

    # -- request handling ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
            malformed = False
        except ValueError:
            body, malformed = raw.decode("utf-8", errors="replace"), True
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                content_type=request.headers.get("Content-Type"),
                body=body,
                headers=dict(request.headers),
            )
        )
        if self._down:
            return _status(503, "the fake API server is down")
        if self._failures:
            code, payload = self._failures.pop(0)
            if payload is not None:
                return web.Response(status=code, body=payload, content_type="text/html")
            return _status(code, "injected failure")
        if self._stalls:
            self._stalls -= 1
            await self._released.wait()
            return _status(503, "the fake API server stopped")
        if self._token is not None and request.headers.get("Authorization") != f"Bearer {self._token}":
            return _status(401, "Unauthorized")
        if malformed:
            return _status(400, "the request body is not JSON")
        target = _parse(request.path)
        if target is None:
            return _status(404, "the server could not find the requested resource")
        try:
            return await self._dispatch(request, target, body)
        except _StatusError as error:
            return _status(error.code, error.message, reason=error.reason)

    async def _dispatch(self, request: web.Request, target: _Target, body: Any) -> web.StreamResponse:
        if target.subresource is not None and (
            target.subresource != "status" or target.plural not in self.status_subresources
        ):
            raise _StatusError(404, f"{target.plural} has no subresource {target.subresource!r}")
        if target.name is None:
            if request.method == "GET":
                if request.query.get("watch") in ("1", "true"):
                    return await self._watch(request, target)
                return web.json_response(self._list(target))
            if request.method == "POST":
                return web.json_response(self._create(target, body), status=201)
            raise _StatusError(405, f"{request.method} is not supported on a collection")
        if request.method == "GET":
            return web.json_response(self._current(target))
        if request.method == "PUT":
            return web.json_response(self._put(target, body))
        if request.method == "PATCH":
            return web.json_response(self._patch(target, request.content_type, body))
        if request.method == "DELETE" and target.subresource is None:
            return web.json_response(self._delete(target))
        raise _StatusError(405, f"{request.method} is not supported on {request.path}")

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _current(self, target: _Target) -> JsonObject:
        found = self._objects.get(target.object_path)
        if found is None:
            raise _StatusError(404, f'{target.plural} "{target.name}" not found')
        return found

    def _members(self, target: _Target) -> list[JsonObject]:
        members = []
        for path, obj in sorted(self._objects.items()):
            other = _parse(path)
            if (
                other is not None
                and (other.prefix, other.plural) == (target.prefix, target.plural)
                and other.name is not None
                and target.namespace in (None, other.namespace)
            ):
                members.append(obj)
        return members

    def _list(self, target: _Target) -> JsonObject:
        return {
            "apiVersion": target.api_version,
            "kind": "List",
            "metadata": {"resourceVersion": str(self._revision)},
            "items": self._members(target),
        }

    async def _watch(self, request: web.Request, target: _Target) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        since = request.query.get("resourceVersion")
        if since and since.isdigit() and int(since) < self._compacted:
            expired = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": f"too old resource version: {since} ({self._compacted})",
                "reason": "Expired",
                "code": 410,
            }
            events = [{"type": "ERROR", "object": expired}]
        else:
            events = [{"type": "ADDED", "object": obj} for obj in self._members(target)]
        for event in events:
            await response.write(json.dumps(event).encode() + b"\n")
        await response.write_eof()
        return response

    def _create(self, target: _Target, body: Any) -> JsonObject:
        if not isinstance(body, dict):
            raise _StatusError(400, "the body must be a JSON object")
        obj = copy.deepcopy(body)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                raise _StatusError(422, "metadata.name or metadata.generateName is required")
            metadata["name"] = f"{metadata['generateName']}{self._revision + 1:05x}"
        if target.namespace:
            if metadata.get("namespace", target.namespace) != target.namespace:
                raise _StatusError(400, "the namespace of the object does not match the request's")
            metadata["namespace"] = target.namespace
        path = f"{target.collection_path}/{metadata['name']}"
        if path in self._objects:
            raise _StatusError(
                409, f'{target.plural} "{metadata["name"]}" already exists', reason="AlreadyExists"
            )
        if target.plural in self.status_subresources:
            obj.pop("status", None)
        metadata["resourceVersion"] = self._next_revision()
        metadata["uid"] = str(uuid.UUID(int=self._revision))
        metadata["creationTimestamp"] = self._clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        metadata["generation"] = 1
        self._objects[path] = obj
        return obj

    def _put(self, target: _Target, body: Any) -> JsonObject:
        current = self._current(target)
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise _StatusError(400, "the body must be a JSON object with object metadata")
        if body.get("metadata", {}).get("name", target.name) != target.name:
            raise _StatusError(400, "the name of the object does not match the request's")
        return self._update(target, current, copy.deepcopy(body))

    def _patch(self, target: _Target, content_type: str, body: Any) -> JsonObject:
        current = self._current(target)
        try:
            if content_type == "application/merge-patch+json":
                if not isinstance(body, dict):
                    raise _StatusError(400, "a merge patch must be a JSON object")
                candidate = merge_patch(copy.deepcopy(current), body)
            elif content_type == "application/json-patch+json":
                if not isinstance(body, list):
                    raise _StatusError(400, "a JSON patch must be a list of operations")
                candidate = json_patch(current, body)
            else:
                raise _StatusError(415, f"the fake supports merge and JSON patches, not {content_type}")
        except PatchError as exc:
            raise _StatusError(422, str(exc)) from exc
        if not isinstance(candidate, dict) or not isinstance(candidate.get("metadata"), dict):
            raise _StatusError(422, "the patched object has no metadata")
        return self._update(target, current, candidate)

    def _update(self, target: _Target, current: JsonObject, candidate: JsonObject) -> JsonObject:
        """Store `candidate` as the new state of `current`, by the rules of the subresource."""
        expected = candidate.get("metadata", {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise _StatusError(
                409,
                f'Operation cannot be fulfilled on {target.plural} "{target.name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        with_status = target.plural in self.status_subresources
        if target.subresource == "status":
            new = copy.deepcopy(current)
            new.pop("status", None)
            if "status" in candidate:
                new["status"] = candidate["status"]
        else:
            new = candidate
            metadata = new.setdefault("metadata", {})
            for field in _IMMUTABLE_METADATA:
                if field in current["metadata"]:
                    metadata[field] = current["metadata"][field]
            if with_status:
                new.pop("status", None)
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
            ignored = ("metadata", "status") if with_status else ("metadata",)

            def content(obj: JsonObject) -> JsonObject:
                return {k: v for k, v in obj.items() if k not in ignored}

            generation = current["metadata"].get("generation", 1)
            metadata["generation"] = generation + (content(new) != content(current))
        new["metadata"]["resourceVersion"] = self._next_revision()
        self._objects[target.object_path] = new
        return new

    def _delete(self, target: _Target) -> JsonObject:
        self._current(target)
        deleted = self._objects.pop(target.object_path)
        deleted["metadata"]["resourceVersion"] = self._next_revision()
        return deleted
