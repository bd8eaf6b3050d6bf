"""The HTTP API: discovery, CRUD, patch, watch, status and binding subresources, Tables.

Paths follow the real API server's layout (`/api/v1/...`, `/apis/<group>/<version>/...`),
errors are v1 `Status` objects, and watches are newline-delimited JSON streams.
"""

from __future__ import annotations

import contextvars
import copy
import json
import random
import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from aisched.api.objects import PodView, rfc3339
from aisched.emulator import apply as applies
from aisched.emulator import discovery, managedfields
from aisched.emulator import patch as patches
from aisched.emulator.admission import (
    admit,
    binding_target,
    check_crd,
    check_metadata,
    delete_options,
)
from aisched.emulator.cel import CelEvaluator
from aisched.emulator.discovery import NOT_FOUND
from aisched.emulator.errors import StatusError, status_body
from aisched.emulator.fields import shape_for
from aisched.emulator.limits import check_size
from aisched.emulator.policies import DEFAULT_USER, POLICY_TYPES, AdmissionPolicies, Request
from aisched.emulator.request import (
    MAX_REQUEST_BYTES,
    dry_run,
    field_validation,
    read_body,
    request_manager,
    wants_table,
)
from aisched.emulator.resources import BUILTIN, ResourceType, from_crd
from aisched.emulator.selectors import SelectorError, field_selector, label_selector
from aisched.emulator.store import WATCH_QUEUE_LIMIT, Event, Obj, Store
from aisched.emulator.tables import table
from aisched.emulator.watch import stream_watch
from aisched.observability.logging import get_logger

__all__ = ["ApiServer"]

KUBERNETES_VERSION: Final = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-aisched",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_SYSTEM_NAMESPACES: Final = ("default", "kube-system", "kube-public", "kube-node-lease")
_JSON: Final = "application/json"
_CRDS: Final = ("apiextensions.k8s.io", "customresourcedefinitions")

#: The user of the request being served (`Impersonate-User`), for admission policies.
_USER: contextvars.ContextVar[str] = contextvars.ContextVar("user", default=DEFAULT_USER)
log = get_logger(__name__)


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _response(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=_dumps(body), status=status, content_type=_JSON)


class ApiServer:
    """The API's state and routes; `app` is the aiohttp application to serve."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        bookmark_every: float = 5.0,
        history: int | None = None,
        watch_queue_limit: int = WATCH_QUEUE_LIMIT,
    ) -> None:
        self.clock = clock
        self.store = (
            Store(clock=clock, watch_queue_limit=watch_queue_limit)
            if history is None
            else Store(clock=clock, history=history, watch_queue_limit=watch_queue_limit)
        )
        self.bookmark_every = bookmark_every
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._rng = random.Random(0)
        self._cel = CelEvaluator()  # the compiled CEL rules of every CRD, for the server's life
        for resource in (*BUILTIN, *POLICY_TYPES):
            self.register(resource)
        self._policies = AdmissionPolicies(
            lambda key: list(self.store.objects(self.resource(key[0], "v1", key[1])).values()), self._cel
        )
        namespaces = self.resource("", "v1", "namespaces")
        for name in _SYSTEM_NAMESPACES:
            self.store.create(namespaces, {"metadata": {"name": name}, "status": {"phase": "Active"}})
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # -- resource registry ----------------------------------------------------------------

    def register(self, resource: ResourceType) -> None:
        self._types[(resource.group, resource.version, resource.plural)] = resource

    def unregister(self, group: str, plural: str, *, version: str | None = None) -> None:
        """Stop serving `group`/`plural` (only its `version`, if given)."""
        for key in [k for k in self._types if k[0] == group and k[2] == plural and version in (None, k[1])]:
            del self._types[key]

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        found = self._types.get((group, version, plural))
        if found is None:
            raise StatusError(404, "NotFound", NOT_FOUND)
        return found

    # -- dispatch ---------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route `request`; every failure is answered with a v1 Status, never aiohttp's text."""
        _USER.set(request.headers.get("Impersonate-User") or DEFAULT_USER)
        try:
            return await self._route(request)
        except StatusError as exc:
            return _response(exc.body(), exc.code)
        except SelectorError as exc:
            return _response(StatusError.bad_request(str(exc)).body(), 400)
        except RecursionError:
            return _response(StatusError.bad_request("the request is nested too deeply").body(), 400)
        except web.HTTPException as exc:  # raised by aiohttp itself (a body over client_max_size)
            reason = exc.reason.replace(" ", "")
            return _response(status_body(exc.status, reason, exc.text or exc.reason), exc.status)
        except Exception:
            log.exception("request_failed", method=request.method, path=request.path)
            message = f"an error on the server has prevented the {request.method} request from succeeding"
            return _response(status_body(500, "InternalError", message), 500)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _response({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/readyz", "/version"]})
        head = parts[0]
        if head in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if head == "version":
            return _response(KUBERNETES_VERSION)
        if head == "openapi":
            document = discovery.openapi_document(
                self._types,
                parts[1:],
                accept=request.headers.get("Accept", "*/*"),
                revision=self.store.revision,
                version=KUBERNETES_VERSION["gitVersion"],
            )
            return _response(document)
        if head == "api":
            if len(parts) == 1:
                return _response(
                    {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
                )
            return await self._group_version(request, "", parts[1], parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return _response(discovery.group_list(self._types))
            if len(parts) == 2:
                return _response(discovery.group(self._types, parts[1]))
            return await self._group_version(request, parts[1], parts[2], parts[3:])
        raise StatusError(404, "NotFound", NOT_FOUND)

    # -- resources -------------------------------------------------------------------------

    async def _group_version(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        if not rest:
            return _response(discovery.resource_list(self._types, group, version))
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and (group, version, rest[2]) in self._types:
            namespace, rest = rest[1], rest[2:]
        resource = self.resource(group, version, rest[0])
        if namespace is not None and not resource.namespaced:
            raise StatusError(404, "NotFound", NOT_FOUND)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and sub not in resource.subresources):
            raise StatusError(404, "NotFound", NOT_FOUND)
        method = request.method
        if name is None:
            if method == "GET":
                if request.query.get("watch", "").lower() in ("true", "1"):
                    return await stream_watch(
                        request,
                        store=self.store,
                        resource=resource,
                        namespace=namespace,
                        clock=self.clock,
                        bookmark_every=self.bookmark_every,
                    )
                return self._list(request, resource, namespace)
            if method == "POST":
                body = await read_body(request)
                return _response(
                    self.create(
                        resource,
                        namespace,
                        body,
                        dry_run=dry_run(request),
                        field_validation=field_validation(request),
                        manager=request_manager(request),
                    ),
                    201,
                )
            if method == "DELETE":
                return self._delete_collection(request, resource, namespace)
        else:
            if sub == "binding" and method == "POST":
                return _response(self.bind(resource, namespace, name, await read_body(request)), 201)
            if method == "GET":
                return self._object(request, resource, self.store.get(resource, namespace, name))
            if method == "PUT":
                body = await read_body(request)
                return _response(
                    self.update(
                        resource,
                        namespace,
                        name,
                        body,
                        sub=sub,
                        dry_run=dry_run(request),
                        field_validation=field_validation(request),
                        manager=request_manager(request),
                    )
                )
            if method == "PATCH":
                content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
                is_apply = content_type == patches.APPLY_PATCH
                applies.check_options(
                    is_apply=is_apply,
                    manager=request.query.get("fieldManager"),
                    force=request.query.get("force"),
                )
                body = await read_body(request)
                if is_apply:
                    applied, created = self.apply(
                        resource,
                        namespace,
                        name,
                        body,
                        sub=sub,
                        manager=request.query["fieldManager"],
                        force=request.query.get("force", "").lower() == "true",
                        dry_run=dry_run(request),
                        field_validation=field_validation(request),
                    )
                    return _response(applied, 201 if created else 200)
                return _response(
                    self.patch(
                        resource,
                        namespace,
                        name,
                        body,
                        content_type=content_type,
                        sub=sub,
                        dry_run=dry_run(request),
                        field_validation=field_validation(request),
                        manager=request_manager(request),
                    )
                )
            if method == "DELETE" and sub is None:
                options = delete_options(await read_body(request, required=False))
                grace = request.query.get("gracePeriodSeconds")
                if grace is not None and "gracePeriodSeconds" not in options:
                    if not grace.lstrip("-").isdigit():
                        raise StatusError.bad_request(f"gracePeriodSeconds: invalid value {grace!r}")
                    options["gracePeriodSeconds"] = int(grace)
                return _response(self.delete(resource, namespace, name, options))
        raise StatusError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    def _object(self, request: web.Request, resource: ResourceType, obj: Obj) -> web.Response:
        if wants_table(request):
            return _response(table(resource, [obj], revision=self.store.revision, now=self.clock()))
        return _response(obj)

    def _list(self, request: web.Request, resource: ResourceType, namespace: str | None) -> web.Response:
        items, revision = self.store.list(
            resource,
            namespace,
            label_selector(request.query.get("labelSelector")),
            field_selector(request.query.get("fieldSelector")),
        )
        if wants_table(request):
            return _response(table(resource, items, revision=revision, now=self.clock()))
        return _response(
            {
                "kind": resource.list_kind,
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(revision)},
                "items": items,
            }
        )

    # -- verbs -----------------------------------------------------------------------------

    def create(
        self,
        resource: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        manager: str = "",
        applied: bool = False,
    ) -> Obj:
        """POST: `body` admitted and stored; `manager` owns its fields (`applied`: an apply
        already recorded who owns what)."""
        if not isinstance(body, dict):
            raise StatusError.bad_request("the request body must be a JSON object")
        check_metadata(resource.kind, body, group=resource.group)
        obj = copy.deepcopy(body)
        meta = obj.get("metadata") or {}
        obj["metadata"] = meta
        if resource.namespaced:
            if namespace is None:
                namespace = meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, namespace):
                raise StatusError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
            namespaces = self.resource("", "v1", "namespaces")
            if self.store.find(namespaces, None, namespace) is None:
                raise StatusError.not_found("namespaces", namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                self._rng.choices(string.ascii_lowercase + string.digits, k=5)
            )
        if "status" in resource.subresources and resource.custom:
            obj.pop("status", None)
        obj = self._admit(
            resource, obj, None, sub=None, manager=manager, applied=applied, fv=field_validation
        )
        if dry_run:
            return obj
        check_size(obj)
        created = self.store.create(resource, obj)
        if resource.key == _CRDS:
            self._crd_changed(created, old=None)
        return created

    def _admit(
        self,
        resource: ResourceType,
        obj: Obj,
        old: Obj | None,
        *,
        sub: str | None,
        manager: str,
        applied: bool,
        fv: str,
    ) -> Obj:
        """What a create (`old` None) or an update does before storing: defaults and schema
        (`admit`), admission policies, the writer's managed fields (unless an apply recorded them),
        and a CRD's own checks. `fv` is the request's fieldValidation."""
        obj = admit(resource, obj, old=old, field_validation=fv, cel=self._cel)
        operation = "CREATE" if old is None else "UPDATE"
        self._policies.validate(Request(resource, operation, obj, old, sub=sub, user=_USER.get()))
        if not applied:
            self._record(resource, old=old, new=obj, manager=manager, sub=sub)
        if resource.key == _CRDS:
            check_crd(obj)
        return obj

    def update(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        sub: str | None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        manager: str = "",
        applied: bool = False,
    ) -> Obj:
        """PUT: `body` in place of the stored object (its status only, through `sub` "status")."""
        if not isinstance(body, dict):
            raise StatusError.bad_request("the request body must be a JSON object")
        check_metadata(resource.kind, body, group=resource.group)
        current = self.store.get(resource, namespace, name)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise StatusError.conflict(
                resource.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
                group=resource.group,
            )
        uid = (body.get("metadata") or {}).get("uid")
        if uid and uid != current["metadata"].get("uid"):
            raise StatusError.conflict(
                resource.plural,
                name,
                f"Precondition failed: UID in precondition: {uid},"
                f" UID in object meta: {current['metadata'].get('uid')}",
                group=resource.group,
            )
        new = copy.deepcopy(body)
        if (new.get("metadata") or {}).get("name", name) != name:
            raise StatusError.bad_request("the name of the object does not match the name on the URL")
        new["metadata"] = new.get("metadata") or {}
        if resource.namespaced:
            if new["metadata"].get("namespace") not in (None, "", namespace):
                raise StatusError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            new["metadata"]["namespace"] = namespace
        if sub == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status")
            if merged["status"] is None:
                merged.pop("status")
            if "managedFields" in new["metadata"]:
                merged["metadata"]["managedFields"] = new["metadata"]["managedFields"]
            new = merged
        elif "status" in resource.subresources:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        new = self._admit(
            resource, new, current, sub=sub, manager=manager, applied=applied, fv=field_validation
        )
        if dry_run:
            return new
        check_size(new)
        stored = self.store.replace(resource, current, new)
        # Removing the last finalizer of a terminating object deletes it (the store has done so).
        gone = bool(stored["metadata"].get("deletionTimestamp")) and not stored["metadata"].get("finalizers")
        if resource.key == _CRDS:
            if gone:
                self._crd_deleted(stored)
            else:
                self._crd_changed(stored, old=current)
        if gone:
            self._collect_garbage(stored)
        return stored

    def patch(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        content_type: str,
        sub: str | None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        manager: str = "",
    ) -> Obj:
        """PATCH (JSON, merge or strategic merge): the patched object stored as by `update`."""
        current = self.store.get(resource, namespace, name)
        try:
            patched = patches.apply_patch(
                current, body, content_type=content_type, kind=resource.kind, is_custom=resource.custom
            )
        except patches.UnsupportedPatch as exc:
            raise StatusError(415, "UnsupportedMediaType", str(exc)) from None
        except patches.PatchTestFailed as exc:
            raise StatusError(422, "Invalid", str(exc)) from None
        except patches.PatchError as exc:
            raise StatusError(422, "Invalid", str(exc)) from None
        if not isinstance(patched, dict):
            raise StatusError(422, "Invalid", "the patch did not produce an object")
        check_metadata(resource.kind, patched, group=resource.group)
        # A patch applies to the current object: it conflicts only if it names a resourceVersion.
        patched.setdefault("metadata", {}).setdefault(
            "resourceVersion", current["metadata"]["resourceVersion"]
        )
        return self.update(
            resource,
            namespace,
            name,
            patched,
            sub=sub,
            dry_run=dry_run,
            field_validation=field_validation,
            manager=manager,
        )

    def apply(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        sub: str | None,
        manager: str,
        force: bool,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> tuple[Obj, bool]:
        """PATCH application/apply-patch+yaml: (the object, whether the apply created it)."""
        config = applies.check_config(body, kind=resource.kind, api_version=resource.api_version, name=name)
        check_metadata(resource.kind, config, group=resource.group)
        current = self.store.find(resource, namespace, name)
        if current is None and sub is not None:
            raise StatusError.not_found(resource.plural, name, group=resource.group)
        merged = applies.apply(
            live=current,
            config=config,
            shape=shape_for(kind=resource.kind, schema=resource.schema, custom=resource.custom),
            manager=manager,
            force=force,
            subresource=sub or "",
            has_status="status" in resource.subresources,
            api_version=resource.api_version,
            now=rfc3339(self.clock()),
        )
        if current is None:
            merged["metadata"].pop("resourceVersion", None)
            created = self.create(
                resource, namespace, merged, dry_run=dry_run, field_validation=field_validation, applied=True
            )
            return created, True
        updated = self.update(
            resource,
            namespace,
            name,
            merged,
            sub=sub,
            dry_run=dry_run,
            field_validation=field_validation,
            applied=True,
        )
        return updated, False

    def _record(
        self, resource: ResourceType, *, old: Obj | None, new: Obj, manager: str, sub: str | None
    ) -> None:
        """Note in `new`'s managedFields what `manager`'s ordinary write changed."""
        new["metadata"]["managedFields"] = managedfields.record_update(
            old=old,
            new=new,
            shape=shape_for(kind=resource.kind, schema=resource.schema, custom=resource.custom),
            manager=manager,
            subresource=sub or "",
            has_status="status" in resource.subresources,
            api_version=resource.api_version,
            now=rfc3339(self.clock()),
        )
        if not new["metadata"]["managedFields"]:
            del new["metadata"]["managedFields"]

    def delete(
        self, resource: ResourceType, namespace: str | None, name: str, options: dict[str, Any]
    ) -> Obj:
        current = self.store.get(resource, namespace, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise StatusError.conflict(
                resource.plural,
                name,
                "Precondition failed: UID in precondition does not match",
                group=resource.group,
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != current["metadata"]["resourceVersion"]
        ):
            raise StatusError.conflict(
                resource.plural,
                name,
                "Precondition failed: ResourceVersion in precondition does not match",
                group=resource.group,
            )
        if resource.key == ("", "pods"):
            grace = _pod_grace(current, options.get("gracePeriodSeconds"))
            meta = current["metadata"]
            if grace > 0 or (meta.get("deletionTimestamp") and meta.get("finalizers")):
                # Graceful, or a pod going already that a finalizer holds: a shorter grace period
                # (0 included) is kept, so that it goes once its finalizers do.
                return self.store.terminate(resource, current, grace)
        result = self.store.delete(resource, namespace, name)
        if self.store.find(resource, namespace, name) is None:
            if resource.key == _CRDS:
                self._crd_deleted(result)
            if options.get("propagationPolicy") != "Orphan":
                self._collect_garbage(result)
        return result

    def _delete_collection(
        self, request: web.Request, resource: ResourceType, namespace: str | None
    ) -> web.Response:
        items, _ = self.store.list(
            resource,
            namespace,
            label_selector(request.query.get("labelSelector")),
            field_selector(request.query.get("fieldSelector")),
        )
        deleted = [
            self.delete(
                resource, namespace or item["metadata"].get("namespace"), item["metadata"]["name"], {}
            )
            for item in items
        ]
        return _response(
            {"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": {}, "items": deleted}
        )

    def _collect_garbage(self, owner: Obj) -> None:
        """Delete the objects `owner` owned, as the garbage collector does in the background."""
        uid = owner["metadata"].get("uid")
        if not uid:
            return
        for (group, plural), obj in self.store.dependents(uid):
            refs = (obj.get("metadata") or {}).get("ownerReferences") or []
            # A dependent goes only with its last owner, as the real collector decides.
            if not any(self.store.exists(ref.get("uid")) for ref in refs if isinstance(ref, dict)):
                dependent = next(
                    (r for (g, _, p), r in self._types.items() if g == group and p == plural), None
                )
                if dependent is not None and self.store.find(
                    dependent, obj["metadata"].get("namespace"), obj["metadata"]["name"]
                ):
                    self.delete(dependent, obj["metadata"].get("namespace"), obj["metadata"]["name"], {})

    def bind(self, resource: ResourceType, namespace: str | None, name: str, body: Any) -> dict[str, Any]:
        """POST pods/<name>/binding: assign the pod to a node, once."""
        if resource.key != ("", "pods"):
            raise StatusError(405, "MethodNotAllowed", "binding is a pods subresource")
        node, annotations = binding_target(name, body)
        pod = self.store.get(resource, namespace, name)
        if (pod.get("spec") or {}).get("nodeName"):
            raise StatusError.conflict(
                "pods/binding", name, f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"'
            )
        if pod["metadata"].get("deletionTimestamp"):
            raise StatusError.conflict("pods/binding", name, "pod is being deleted")
        bound = copy.deepcopy(pod)
        bound.setdefault("spec", {})["nodeName"] = node
        if annotations:
            bound["metadata"].setdefault("annotations", {}).update(annotations)
        status = bound.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        now = rfc3339(self.clock())
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        )
        status["conditions"] = conditions
        self.store.replace(resource, pod, bound)
        return status_body(201, "", "")

    # -- CustomResourceDefinitions ----------------------------------------------------------

    def _crd_changed(self, crd: Obj, *, old: Obj | None) -> None:
        """Serve what `crd` defines; stop serving what `old` (the CRD before) defined and it does not
        (a version removed or no longer served, a plural changed), as on deletion."""
        spec = crd.get("spec") or {}
        served = from_crd(crd)
        for resource in served:
            self.register(resource)
        if old is not None:
            self._retire(from_crd(old), keep=served)
        accepted = copy.deepcopy(spec.get("names") or {})
        now = rfc3339(self.clock())
        wanted_status = {
            "acceptedNames": accepted,
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                },
            ],
        }
        if crd.get("status") != wanted_status:
            crds = self.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            updated = copy.deepcopy(crd)
            updated["status"] = wanted_status
            self.store.replace(crds, crd, updated)

    def _crd_deleted(self, crd: Obj) -> None:
        self._retire(from_crd(crd), keep=[])

    def _retire(self, resources: list[ResourceType], *, keep: list[ResourceType]) -> None:
        """Unregister `resources` not in `keep`; a resource none of whose versions is kept loses its
        objects (each watcher told) too, and a version's watchers end with it."""
        kept_versions = {(r.group, r.version, r.plural) for r in keep}
        kept_storage = {r.key for r in keep}
        for resource in resources:
            if (resource.group, resource.version, resource.plural) in kept_versions:
                continue
            known = self._types.get((resource.group, resource.version, resource.plural))
            if known is None:
                continue
            if known.key not in kept_storage:
                self.store.drop_resource(known)  # its watchers hear the deletions, then end
            else:
                self.store.close_watchers(known)
            self.unregister(known.group, known.plural, version=known.version)

    # -- for the simulated kubelet and tests -------------------------------------------------

    def on_change(self, listener: Callable[[Event], None]) -> None:
        self.store.listeners.append(listener)


def _pod_grace(pod: Obj, requested: object) -> int:
    """The grace period a pod deletion gets, as the pod strategy decides it: none for a pod on no
    node or one already ended (no kubelet has anything to stop), else the request's, else the
    pod's `terminationGracePeriodSeconds`."""
    if not (pod.get("spec") or {}).get("nodeName") or PodView(pod).terminal:
        return 0
    if isinstance(requested, int) and not isinstance(requested, bool):
        return 1 if requested < 0 else requested  # as the pod strategy turns a negative one
    own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return own if isinstance(own, int) and not isinstance(own, bool) and own > 0 else 0
