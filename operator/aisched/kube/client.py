"""A small async REST client for the Kubernetes API that speaks plain dicts.

The hot paths (node agent publishing, informer watches, binding POSTs) send and receive JSON
objects as `dict`s; nothing here builds generated models. kubernetes-asyncio is used only to
resolve a kubeconfig into a host, a CA, client certificates and a token.

Failure comes in two kinds, so that callers can retry without catching broad exceptions:
`ApiError` means the server answered with an error (a v1 Status), `ApiUnavailable` means it did
not answer at all (connection refused or reset, TLS failure, timeout).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl as ssl_lib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

import aiohttp
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration

__all__ = [
    "PATCH_CONTENT_TYPES",
    "SERVICE_ACCOUNT_DIR",
    "ApiError",
    "ApiUnavailable",
    "ConfigError",
    "JsonObject",
    "KubeClient",
    "Params",
    "PatchType",
    "resource_path",
]

JsonObject = dict[str, Any]
Params = Mapping[str, str | int | bool]
PatchType = Literal["merge", "json", "strategic", "apply"]

PATCH_CONTENT_TYPES: Final[Mapping[PatchType, str]] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
USER_AGENT: Final = "aisched"

# What client-go reports when an error response carries no Status (a proxy or load balancer
# answered instead of the API server), so that callers can still match on `reason`.
_REASONS: Final[Mapping[int, str]] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Gone",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
# Timeouts, "too early" (a replayed early-data request), throttling, overload and restarts. Not
# 409: a conflict is fixed by reading the object again, which only the caller can decide to do.
_TRANSIENT: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
_TRANSPORT_ERRORS: Final = (aiohttp.ClientError, OSError, TimeoutError)


class ApiError(Exception):
    """The API server answered with an error; `reason` is the Status reason ("NotFound", ...)."""

    def __init__(self, *, status: int, reason: str, message: str, body: JsonObject) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body

    @classmethod
    def from_response(cls, *, status: int, http_reason: str | None, payload: bytes) -> ApiError:
        """Build the error from a response body, a v1 Status if the API server wrote it."""
        try:
            decoded = json.loads(payload) if payload else None
        except ValueError:
            decoded = None
        fallback = _REASONS.get(status) or http_reason or f"HTTP{status}"
        if isinstance(decoded, dict) and decoded.get("kind") == "Status":
            return cls(
                status=status,
                reason=str(decoded.get("reason") or fallback),
                message=str(decoded.get("message") or http_reason or ""),
                body=decoded,
            )
        text = payload[:200].decode("utf-8", errors="replace").strip()
        return cls(status=status, reason=fallback, message=text or http_reason or "", body={})

    @property
    def transient(self) -> bool:
        """Whether retrying the same request later may succeed (throttling, overload, restarts).

        The one answer to "is this worth retrying" for every caller; `ApiUnavailable` (no answer
        at all) is always worth retrying.
        """
        return self.status in _TRANSIENT


class ApiUnavailable(Exception):  # noqa: N818 (the name callers know it by)
    """The API server could not be reached, or did not answer in time."""


class ConfigError(Exception):
    """No usable connection settings: a broken kubeconfig, or not running in a cluster."""


def resource_path(
    *,
    group: str,
    version: str,
    plural: str,
    name: str | None = None,
    namespace: str | None = None,
    subresource: str | None = None,
) -> str:
    """The API path of a collection, an object or an object's subresource.

    `group=""` is the core group (`/api/v1/...`); `namespace=None` (or "") means cluster-scoped,
    or all namespaces for a collection.
    """
    if subresource and not name:
        raise ValueError(f"subresource {subresource!r} needs an object name")
    parts = ["/api", version] if group == "" else ["/apis", group, version]
    if namespace:
        parts += ["namespaces", namespace]
    parts.append(plural)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class KubeClient:
    """An async connection to one API server; use as `async with client: ...`."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str | None = None,
        ssl: ssl_lib.SSLContext | bool | None = None,
        timeout: float = 30.0,
        token_file: Path | None = None,
    ) -> None:
        """`ssl=None` verifies against the system trust store; `token_file` is re-read on a 401,
        because kubelet rotates projected service-account tokens in place."""
        self.base_url = base_url.rstrip("/")
        self.ssl: ssl_lib.SSLContext | bool = True if ssl is None else ssl
        self.timeout = timeout
        self.token_file = token_file
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    @property
    def token(self) -> str | None:
        """The bearer token sent with each request, if any."""
        return self._token

    # -- construction from the environment -----------------------------------------------------

    @classmethod
    async def from_kubeconfig(
        cls,
        path: str | None = None,
        *,
        context: str | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 (the client's request timeout, not this call's)
    ) -> KubeClient:
        """A client for a kubeconfig context (default: $KUBECONFIG or ~/.kube/config, current
        context). Supports bearer tokens (also from exec plugins), client certificates, a custom
        CA, `insecure-skip-tls-verify` and plain-http servers."""
        configuration = Configuration()
        try:
            await kube_config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except kube_config.ConfigException as exc:
            raise ConfigError(f"kubeconfig {path or '(default)'}: {exc}") from exc
        host = configuration.host
        if not host:
            raise ConfigError(f"kubeconfig {path or '(default)'}: the cluster has no server")
        ssl: ssl_lib.SSLContext | None = None
        if host.startswith("https:"):
            ssl = await asyncio.to_thread(
                _ssl_context,
                ca_file=configuration.ssl_ca_cert,
                cert_file=configuration.cert_file,
                key_file=configuration.key_file,
                verify=bool(configuration.verify_ssl),
            )
        token = _bearer_token(configuration.api_key.get("BearerToken"))
        return cls(base_url=host, token=token, ssl=ssl, timeout=timeout)

    @classmethod
    def in_cluster(
        cls,
        *,
        directory: Path = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> KubeClient:
        """A client for the API server of the cluster this pod runs in, as its service account.

        Without a `ca.crt` (unusual) the system trust store is used, as client-go does.
        """
        env = os.environ if environ is None else environ
        host = env.get("KUBERNETES_SERVICE_HOST")
        port = env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
        token_file = directory / "token"
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"no service-account token: {exc}") from exc
        ca_file = directory / "ca.crt"
        ssl = _ssl_context(ca_file=str(ca_file) if ca_file.is_file() else None)
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        return cls(
            base_url=f"https://{host}:{port}",
            token=token,
            ssl=ssl,
            timeout=timeout,
            token_file=token_file,
        )

    @classmethod
    async def auto(
        cls,
        kubeconfig: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
        timeout: float = 30.0,  # noqa: ASYNC109 (the client's request timeout, not this call's)
    ) -> KubeClient:
        """The client a command-line user expects: the explicit kubeconfig, else $KUBECONFIG,
        else the in-cluster service account, else ~/.kube/config."""
        env = os.environ if environ is None else environ
        explicit = kubeconfig or env.get("KUBECONFIG")
        if explicit:
            return await cls.from_kubeconfig(explicit, timeout=timeout)
        if env.get("KUBERNETES_SERVICE_HOST") and (service_account_dir / "token").is_file():
            return cls.in_cluster(directory=service_account_dir, environ=env, timeout=timeout)
        home = Path(env["HOME"]) if env.get("HOME") else Path.home()
        return await cls.from_kubeconfig(str(home / ".kube" / "config"), timeout=timeout)

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("a KubeClient can be opened only once")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool; the client cannot be reopened."""
        if self._session is not None:
            await self._session.close()

    # -- verbs -----------------------------------------------------------------------------------

    async def get(self, path: str, *, params: Params | None = None) -> JsonObject:
        """GET an object or a list."""
        return await self._request("GET", path, params=params)

    async def post(self, path: str, body: JsonObject, *, params: Params | None = None) -> JsonObject:
        """Create `body` in the collection at `path`."""
        return await self._request("POST", path, params=params, body=body)

    async def put(self, path: str, body: JsonObject, *, params: Params | None = None) -> JsonObject:
        """Replace the object at `path`; a stale metadata.resourceVersion gives ApiError Conflict."""
        return await self._request("PUT", path, params=params, body=body)

    async def patch(
        self,
        path: str,
        body: JsonObject | Sequence[JsonObject],
        *,
        patch: PatchType = "merge",
        field_manager: str | None = None,
        force: bool = False,
        params: Params | None = None,
    ) -> JsonObject:
        """Patch the object at `path`: a merge patch (RFC 7386), a JSON patch (RFC 6902, `body`
        is a list of operations), a strategic merge patch, or a server-side apply, which needs
        `field_manager` and may `force` ownership of conflicting fields."""
        if patch not in PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch type {patch!r}")
        if patch == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        if force and patch != "apply":
            raise ValueError("force applies only to server-side apply")
        query: dict[str, str | int | bool] = dict(params or {})
        if field_manager:
            query["fieldManager"] = field_manager
        if force:
            query["force"] = True
        return await self._request(
            "PATCH", path, params=query, body=body, content_type=PATCH_CONTENT_TYPES[patch]
        )

    async def delete(
        self, path: str, *, params: Params | None = None, body: JsonObject | None = None
    ) -> JsonObject:
        """Delete the object at `path` (`body`: DeleteOptions, e.g. a uid precondition); returns
        what the server returns (the object or a Status)."""
        return await self._request("DELETE", path, params=params, body=body)

    async def watch(self, path: str, *, params: Params | None = None) -> AsyncIterator[JsonObject]:
        """Stream the watch events (`{"type": ..., "object": ...}`) of the collection at `path`
        until the server closes the stream.

        An ERROR event raises ApiError (typically 410 Expired: list again, then watch from the
        new resourceVersion). Pass `timeoutSeconds` in `params` to bound the stream; without it
        only connecting is bounded by the client's timeout. A consumer that stops early should
        wrap the iterator in `contextlib.aclosing` so the connection is released at once.
        """
        query: dict[str, str | int | bool] = {**(params or {}), "watch": True}
        seconds = query.get("timeoutSeconds")
        timeout = aiohttp.ClientTimeout(
            total=None if seconds is None else float(seconds) + self.timeout,
            connect=self.timeout,
        )
        session = self._open_session()
        for attempt in range(2):
            try:
                async with session.get(
                    self._url(path),
                    params=_query(query),
                    headers=self._headers(None),
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    if response.status == 401 and attempt == 0 and await self._reload_token():
                        continue
                    if not 200 <= response.status < 300:
                        raise ApiError.from_response(
                            status=response.status,
                            http_reason=response.reason,
                            payload=await response.read(),
                        )
                    async for line in _lines(response.content):
                        yield _watch_event(line)
                    return
            except _TRANSPORT_ERRORS as exc:
                raise ApiUnavailable(f"WATCH {path}: {exc!r}") from exc

    # -- plumbing --------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: JsonObject | Sequence[JsonObject] | None = None,
        content_type: str = "application/json",
    ) -> JsonObject:
        data = None if body is None else json.dumps(body).encode()
        status, reason, payload = await self._send(method, path, params, data, content_type)
        if status == 401 and await self._reload_token():
            status, reason, payload = await self._send(method, path, params, data, content_type)
        if not 200 <= status < 300:
            raise ApiError.from_response(status=status, http_reason=reason, payload=payload)
        try:
            decoded = json.loads(payload) if payload else {}
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            # Something other than an API server answered (a web page behind a wrong URL, say):
            # a configuration problem, not an outage, so not ApiUnavailable.
            raise ApiError(
                status=status,
                reason="InvalidResponse",
                message=f"{method} {path}: the response is not a JSON object",
                body={},
            )
        return decoded

    async def _send(
        self,
        method: str,
        path: str,
        params: Params | None,
        data: bytes | None,
        content_type: str,
    ) -> tuple[int, str | None, bytes]:
        session = self._open_session()
        try:
            async with session.request(
                method,
                self._url(path),
                params=_query(params),
                data=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as response:
                return response.status, response.reason, await response.read()
        except _TRANSPORT_ERRORS as exc:
            raise ApiUnavailable(f"{method} {path}: {exc!r}") from exc

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("KubeClient is not open: use `async with client:`")
        return self._session

    def _url(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"API paths start with '/': {path!r}")
        return self.base_url + path

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _reload_token(self) -> bool:
        """Re-read the token file; True if it now holds a different token worth a retry."""
        if self.token_file is None:
            return False
        try:
            token = (await asyncio.to_thread(self.token_file.read_text)).strip()
        except OSError:
            return False
        if not token or token == self._token:
            return False
        self._token = token
        return True


def _query(params: Params | None) -> dict[str, str | int] | None:
    """aiohttp rejects bools in a query; the API server wants "true"/"false"."""
    if not params:
        return None
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}


def _bearer_token(api_key: object) -> str | None:
    """The token from kubernetes-asyncio's `api_key["BearerToken"]` ("Bearer <token>")."""
    if api_key is None:
        return None
    if isinstance(api_key, str) and api_key.startswith("Bearer "):
        return api_key.removeprefix("Bearer ")
    raise ConfigError("only bearer-token and client-certificate authentication are supported")


def _ssl_context(
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    verify: bool = True,
) -> ssl_lib.SSLContext:
    """A client TLS context trusting `ca_file` (else the system store), presenting a client
    certificate if given. Blocking: reads files."""
    try:
        context = ssl_lib.create_default_context(cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl_lib.SSLError) as exc:
        raise ConfigError(f"TLS settings: {exc}") from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl_lib.CERT_NONE
    return context


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The non-blank lines of a stream, of any length.

    Not `StreamReader.readline`: it refuses lines over 128 KiB, and one watch event carries one
    whole object (a Node with many images, a large topology) on a single line.
    """
    parts: list[bytes] = []
    async for chunk in stream.iter_any():
        *complete, tail = chunk.split(b"\n")
        for piece in complete:
            parts.append(piece)
            line = b"".join(parts)
            parts.clear()
            if line.strip():
                yield line
        if tail:
            parts.append(tail)
    line = b"".join(parts)
    if line.strip():
        yield line


def _watch_event(line: bytes) -> JsonObject:
    try:
        event = json.loads(line)
    except ValueError as exc:
        raise ApiUnavailable(f"undecodable watch event (stream cut short?): {line[:100]!r}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        raise ApiUnavailable(f"malformed watch event: {line[:100]!r}")
    if event.get("type") == "ERROR":
        status: JsonObject = event["object"]
        code = status.get("code")
        raise ApiError(
            status=code if isinstance(code, int) else 500,
            reason=str(status.get("reason") or "InternalError"),
            message=str(status.get("message") or ""),
            body=status,
        )
    return event
