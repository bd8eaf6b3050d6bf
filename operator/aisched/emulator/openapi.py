"""The OpenAPI documents `kubectl explain` and client-side tooling read: v3 (an index, then one
document per group-version) and v2 (one document), with the schemas of every kind served.

Pure: no I/O. Schemas are named as the real server names them (`io.aisched.v1alpha1.AIJob`,
`io.k8s.api.core.v1.Pod`) and carry `x-kubernetes-group-version-kind`, by which kubectl finds a
kind's schema. A custom resource's schema is its CRD's openAPIV3Schema with `metadata` pointing at
ObjectMeta; built-in kinds get the short schemas of `builtin_schemas`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from aisched.emulator.builtin_schemas import (
    API_VERSION,
    BUILTIN_SCHEMAS,
    KIND,
    LIST_META,
    OBJECT_META,
    builtin_name,
)
from aisched.emulator.dra import DRA_SCHEMAS
from aisched.emulator.dra import GROUP as DRA_GROUP
from aisched.emulator.resources import ResourceType

__all__ = ["group_version_document", "index", "swagger"]

_V3_REF: Final = "#/components/schemas/"
_V2_REF: Final = "#/definitions/"
_OBJECT_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_LIST_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
_META_DESCRIPTION: Final = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


def _schema_name(resource: ResourceType, *, list_kind: bool = False) -> str:
    kind = resource.list_kind if list_kind else resource.kind
    if resource.custom:
        reversed_group = ".".join(reversed(resource.group.split(".")))
        return f"{reversed_group}.{resource.version}.{kind}"
    return builtin_name(resource.group, resource.version, kind)


def _gvk(resource: ResourceType, kind: str) -> list[dict[str, str]]:
    return [{"group": resource.group, "kind": kind, "version": resource.version}]


def _ref(name: str, description: str) -> dict[str, Any]:
    return {"allOf": [{"$ref": _V3_REF + name}], "description": description, "default": {}}


def _kind_schema(resource: ResourceType) -> dict[str, Any]:
    if resource.custom:
        schema = copy.deepcopy(dict(resource.schema or {"type": "object"}))
        schema.setdefault("type", "object")
    else:
        dra = DRA_SCHEMAS.get(resource.kind) if resource.group == DRA_GROUP else None
        known = (
            dra["openAPIV3Schema"]
            if dra is not None
            else BUILTIN_SCHEMAS.get((resource.group, resource.kind))
        )
        schema = copy.deepcopy(known or {"type": "object"})
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {**API_VERSION, **properties.get("apiVersion", {})}
    properties["kind"] = {**KIND, **properties.get("kind", {})}
    properties["metadata"] = _ref(_OBJECT_META, _META_DESCRIPTION)
    schema["x-kubernetes-group-version-kind"] = _gvk(resource, resource.kind)
    return schema


def _list_schema(resource: ResourceType) -> dict[str, Any]:
    return {
        "description": f"{resource.list_kind} is a list of {resource.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": API_VERSION,
            "items": {
                "description": f"List of {resource.plural}.",
                "type": "array",
                "items": _ref(_schema_name(resource), ""),
            },
            "kind": KIND,
            "metadata": _ref(_LIST_META, "Standard list metadata."),
        },
        "x-kubernetes-group-version-kind": _gvk(resource, resource.list_kind),
    }


def _schemas(resources: Iterable[ResourceType]) -> dict[str, Any]:
    schemas: dict[str, Any] = {
        _OBJECT_META: OBJECT_META,
        _LIST_META: LIST_META,
    }
    for resource in resources:
        schemas[_schema_name(resource)] = _kind_schema(resource)
        schemas[_schema_name(resource, list_kind=True)] = _list_schema(resource)
    return dict(sorted(schemas.items()))


def _operations(resource: ResourceType) -> dict[str, Any]:
    """The object path's operations: what kubectl reads to leave field validation to the server."""
    prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    scope = "/namespaces/{namespace}" if resource.namespaced else ""
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    field_validation = {
        "name": "fieldValidation",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
    }
    answer = {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": _V3_REF + _schema_name(resource)}}},
        }
    }
    operations = {
        verb: {
            "operationId": f"{verb}{resource.kind}",
            "parameters": [field_validation] if verb in ("put", "patch") else [],
            "responses": answer,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
        for verb, action in (("get", "get"), ("put", "put"), ("patch", "patch"), ("delete", "delete"))
    }
    return {f"{prefix}{scope}/{resource.plural}/{{name}}": operations}


def index(group_versions: Mapping[str, Iterable[str]], *, revision: int) -> dict[str, Any]:
    """`/openapi/v3`: where each group-version's document is."""
    paths: dict[str, dict[str, str]] = {}
    for group, versions in group_versions.items():
        for version in versions:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={revision}"}
    return {"paths": paths}


def group_version_document(resources: list[ResourceType], *, version: str) -> dict[str, Any]:
    """`/openapi/v3/apis/<group>/<version>`: its kinds' paths and schemas."""
    paths: dict[str, Any] = {}
    for resource in resources:
        paths.update(_operations(resource))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": paths,
        "components": {"schemas": _schemas(resources)},
    }


def swagger(resources: list[ResourceType], *, version: str) -> dict[str, Any]:
    """`/openapi/v2`: every kind's schema in one Swagger 2.0 document."""
    definitions = json.loads(json.dumps(_schemas(resources)).replace(json.dumps(_V3_REF)[1:-1], _V2_REF))
    paths = {
        path: {verb: _v2_operation(operation) for verb, operation in operations.items()}
        for resource in resources
        for path, operations in _operations(resource).items()
    }
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": paths,
        "definitions": definitions,
    }


def _v2_operation(operation: Mapping[str, Any]) -> dict[str, Any]:
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return {
        **operation,
        "parameters": [
            {"name": p["name"], "in": p["in"], "type": "string", "uniqueItems": True}
            for p in operation["parameters"]
        ],
        "responses": {
            "200": {"description": "OK", "schema": {"$ref": schema["$ref"].replace(_V3_REF, _V2_REF)}}
        },
    }
