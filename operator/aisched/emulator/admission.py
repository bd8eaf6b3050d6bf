"""Admission: request bodies checked at the edge, then defaulted and validated like the real server.

Pure: no I/O, no clock, no store. Every check raises `StatusError` (400 BadRequest for what would
not even decode, 422 Invalid naming the field otherwise), so a bad body is refused before anything
is stored and can never break a later request (a garbage collector walking a malformed
ownerReference, a selector reading labels that are not a map, a kubelet reading a nameless
container).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from aisched.emulator.cel import CelEvaluator
from aisched.emulator.dra import DRA_SCHEMAS
from aisched.emulator.dra import GROUP as DRA_GROUP
from aisched.emulator.errors import StatusError
from aisched.emulator.limits import metadata_causes
from aisched.emulator.resources import BUILTIN, ResourceType
from aisched.emulator.schema import validate_custom_resource

__all__ = [
    "MAX_DEPTH",
    "admit",
    "binding_target",
    "check_crd",
    "check_depth",
    "check_metadata",
    "delete_options",
]

Obj = dict[str, Any]
Cause = dict[str, str]

#: How deeply a request body may nest (objects and lists). Real objects stay far below; the
#: emulator's recursive copies, patches and schema checks stay far from Python's recursion limit.
MAX_DEPTH: Final = 100
_BUILTIN_GROUPS: Final = frozenset(r.group for r in BUILTIN)
_SCOPES: Final = ("Namespaced", "Cluster")


def _required(path: str) -> Cause:
    return {"field": path, "reason": "FieldValueRequired", "message": "Required value"}


def _invalid(path: str, why: str) -> Cause:
    return {"field": path, "reason": "FieldValueInvalid", "message": f"Invalid value: {why}"}


def _name_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else ""


def _is_string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# -- the shape of any body ---------------------------------------------------------------------


def check_depth(body: Any) -> None:
    """Refuse (400) a body nested deeper than `MAX_DEPTH`; walked without recursion."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_DEPTH:
            raise StatusError.bad_request(f"the request body nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)


def check_metadata(kind: str, obj: Mapping[str, Any], *, group: str = "") -> None:
    """The types of `obj.metadata` the emulator relies on: 400 if it is not an object, 422 naming
    each field otherwise."""
    meta = obj.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise StatusError.bad_request(f"{kind} in body is invalid: metadata: must be an object")
    causes: list[Cause] = []
    for key in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            causes.append(_invalid(f"metadata.{key}", "must be a string"))
    for key in ("labels", "annotations"):
        if meta.get(key) is not None and not _is_string_map(meta[key]):
            causes.append(_invalid(f"metadata.{key}", "must be a map of strings"))
    if meta.get("finalizers") is not None and not _is_string_list(meta["finalizers"]):
        causes.append(_invalid("metadata.finalizers", "must be a list of strings"))
    references = meta.get("ownerReferences")
    if references is not None:
        if not isinstance(references, list):
            causes.append(_invalid("metadata.ownerReferences", "must be a list of objects"))
        else:
            for i, reference in enumerate(references):
                if not isinstance(reference, dict):
                    causes.append(_invalid(f"metadata.ownerReferences[{i}]", "must be an object"))
                elif not isinstance(reference.get("uid"), str) or not reference["uid"]:
                    causes.append(_required(f"metadata.ownerReferences[{i}].uid"))
    if causes:
        raise StatusError.invalid(kind, _name_of(obj), causes, group=group)


# -- subresources and options --------------------------------------------------------------------


def binding_target(name: str, body: Any) -> tuple[str, dict[str, str]]:
    """A pods/binding body's node name and the annotations it copies onto the pod."""
    if not isinstance(body, dict):
        raise StatusError.bad_request("the request body must be a JSON object")
    check_metadata("Binding", body)
    target = body.get("target")
    if not isinstance(target, dict):
        raise StatusError.invalid("Binding", name, [_required("target")])
    node = target.get("name")
    if not isinstance(node, str) or not node:
        raise StatusError.invalid("Binding", name, [_required("target.name")])
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return node, dict(annotations)


def delete_options(body: Any) -> dict[str, Any]:
    """A DELETE body (DeleteOptions), `{}` when there is none."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise StatusError.bad_request("DeleteOptions in body must be an object")
    preconditions = body.get("preconditions")
    if preconditions is not None and not isinstance(preconditions, dict):
        raise StatusError.bad_request("DeleteOptions in body is invalid: preconditions must be an object")
    grace = body.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise StatusError.bad_request(
            "DeleteOptions in body is invalid: gracePeriodSeconds must be an integer"
        )
    policy = body.get("propagationPolicy")
    if policy is not None and not isinstance(policy, str):
        raise StatusError.bad_request("DeleteOptions in body is invalid: propagationPolicy must be a string")
    return body


# -- CustomResourceDefinitions ---------------------------------------------------------------------


def check_crd(crd: Mapping[str, Any]) -> None:
    """What serving a CRD relies on: group, names, scope, versions and schemas that compile; and
    that it takes over no built-in group. 422 Invalid naming each field."""
    causes: list[Cause] = []
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        causes.append(_required("spec"))
    else:
        causes += _crd_spec_causes(spec)
    if causes:
        raise StatusError.invalid(
            "CustomResourceDefinition", _name_of(crd), causes, group="apiextensions.k8s.io"
        )


def _crd_spec_causes(spec: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    group = spec.get("group")
    if not isinstance(group, str) or not group:
        causes.append(_required("spec.group"))
    elif group in _BUILTIN_GROUPS:
        causes.append(
            {
                "field": "spec.group",
                "reason": "FieldValueForbidden",
                "message": f'Forbidden: "{group}" is served by the API server itself',
            }
        )
    names = spec.get("names")
    if not isinstance(names, dict):
        causes.append(_required("spec.names"))
    else:
        for key in ("plural", "kind"):
            if not isinstance(names.get(key), str) or not names[key]:
                causes.append(_required(f"spec.names.{key}"))
        for key in ("singular", "listKind"):
            if names.get(key) is not None and not isinstance(names[key], str):
                causes.append(_invalid(f"spec.names.{key}", "must be a string"))
        for key in ("shortNames", "categories"):
            if names.get(key) is not None and not _is_string_list(names[key]):
                causes.append(_invalid(f"spec.names.{key}", "must be a list of strings"))
    if spec.get("scope") not in _SCOPES:
        causes.append(
            {
                "field": "spec.scope",
                "reason": "FieldValueNotSupported",
                "message": f"Unsupported value: {json.dumps(spec.get('scope'))}:"
                ' supported values: "Cluster", "Namespaced"',
            }
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(_required("spec.versions"))
    else:
        for i, version in enumerate(versions):
            causes += _version_causes(version, f"spec.versions[{i}]")
    return causes


def _version_causes(version: Any, path: str) -> list[Cause]:
    if not isinstance(version, dict):
        return [_invalid(path, "must be an object")]
    causes: list[Cause] = []
    if not isinstance(version.get("name"), str) or not version["name"]:
        causes.append(_required(f"{path}.name"))
    for key in ("served", "storage"):
        if version.get(key) is not None and not isinstance(version[key], bool):
            causes.append(_invalid(f"{path}.{key}", "must be a boolean"))
    if version.get("subresources") is not None and not isinstance(version["subresources"], dict):
        causes.append(_invalid(f"{path}.subresources", "must be an object"))
    columns = version.get("additionalPrinterColumns")
    if columns is not None:
        if not isinstance(columns, list):
            causes.append(_invalid(f"{path}.additionalPrinterColumns", "must be a list of objects"))
        else:
            for j, column in enumerate(columns):
                where = f"{path}.additionalPrinterColumns[{j}]"
                if not isinstance(column, dict):
                    causes.append(_invalid(where, "must be an object"))
                    continue
                causes += [
                    _required(f"{where}.{key}")
                    for key in ("name", "jsonPath")
                    if not isinstance(column.get(key), str) or not column[key]
                ]
    schema = version.get("schema")
    if schema is not None:
        if not isinstance(schema, dict):
            causes.append(_invalid(f"{path}.schema", "must be an object"))
        elif schema.get("openAPIV3Schema") is not None:
            causes += _schema_causes(schema["openAPIV3Schema"], f"{path}.schema.openAPIV3Schema")
    return causes


def _schema_causes(schema: Any, path: str) -> list[Cause]:
    """Schemas that are objects, with `pattern`s that compile (the validator runs them later)."""
    if not isinstance(schema, dict):
        return [_invalid(path, "must be an object")]
    causes: list[Cause] = []
    pattern = schema.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            causes.append(_invalid(f"{path}.pattern", "must be a string"))
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                causes.append(
                    _invalid(
                        f"{path}.pattern", f"{json.dumps(pattern)}: not a valid regular expression: {exc}"
                    )
                )
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            causes.append(_invalid(f"{path}.properties", "must be an object"))
        else:
            for key, child in properties.items():
                causes += _schema_causes(child, f"{path}.properties[{key}]")
    for key in ("items", "not"):
        if schema.get(key) is not None:
            causes += _schema_causes(schema[key], f"{path}.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        causes += _schema_causes(schema["additionalProperties"], f"{path}.additionalProperties")
    for key in ("allOf", "anyOf", "oneOf"):
        options = schema.get(key)
        if options is None:
            continue
        if not isinstance(options, list):
            causes.append(_invalid(f"{path}.{key}", "must be a list of schemas"))
            continue
        for i, option in enumerate(options):
            causes += _schema_causes(option, f"{path}.{key}[{i}]")
    return causes


# -- defaults and validation of objects ---------------------------------------------------------


def admit(
    resource: ResourceType,
    obj: Obj,
    *,
    old: Obj | None,
    field_validation: str = "Warn",
    cel: CelEvaluator | None = None,
) -> Obj:
    """`obj` defaulted and validated as `resource` (`old` is the stored object on updates); `cel`,
    kept for the server's life, compiles each CEL rule of the CRDs once instead of on every write."""
    causes = metadata_causes(obj.get("metadata") or {})
    if causes:
        raise StatusError.invalid(resource.kind, _name_of(obj), causes, group=resource.group)
    if resource.custom and resource.schema is not None:
        return _admit_custom(
            resource, obj, schema=resource.schema, old=old, field_validation=field_validation, cel=cel
        )
    if resource.group == DRA_GROUP:  # resource.k8s.io: checked against its kinds' schemas
        return _admit_custom(
            resource,
            obj,
            schema=DRA_SCHEMAS[resource.kind],
            old=old,
            field_validation=field_validation,
            cel=cel,
        )
    if resource.key == ("", "pods"):
        _check_pod(obj, old=old)
        if old is None:
            spec = obj["spec"]
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("dnsPolicy", "ClusterFirst")
            # As the real pod strategy does on create: clients cannot set a pod's status.
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    if resource.key == ("", "namespaces"):
        obj.setdefault("status", {}).setdefault("phase", "Active")
    return obj


def _admit_custom(
    resource: ResourceType,
    obj: Obj,
    *,
    schema: Mapping[str, Any],
    old: Obj | None,
    field_validation: str,
    cel: CelEvaluator | None,
) -> Obj:
    checked, errors, unknown = validate_custom_resource(schema, obj, old=old, cel=cel)
    if unknown and field_validation == "Strict":
        listed = ", ".join(f'unknown field "{path}"' for path in unknown)
        raise StatusError.bad_request(f"strict decoding error: {listed}")
    if errors:
        causes = [{"reason": e.reason, "message": e.body, "field": e.path} for e in errors]
        raise StatusError(
            422,
            "Invalid",
            f'{resource.kind}.{resource.group} "{obj["metadata"].get("name", "")}" is invalid: '
            + ", ".join(str(e) for e in errors),
            details={
                "name": obj["metadata"].get("name", ""),
                "group": resource.group,
                "kind": resource.kind,
                "causes": causes,
            },
        )
    return checked


def _check_pod(pod: Obj, *, old: Obj | None) -> None:
    """Containers the kubelet can start; a node that only a binding sets."""
    causes: list[Cause] = []
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise StatusError.invalid("Pod", _name_of(pod), [_invalid("spec", "must be an object")])
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(_required("spec.containers"))
    else:
        for i, container in enumerate(containers):
            if not isinstance(container, dict):
                causes.append(_invalid(f"spec.containers[{i}]", "must be an object"))
            elif not isinstance(container.get("name"), str) or not container["name"]:
                causes.append(_required(f"spec.containers[{i}].name"))
    node = spec.get("nodeName")
    if node is not None and not isinstance(node, str):
        causes.append(_invalid("spec.nodeName", "must be a string"))
    elif old is not None and (node or None) != ((old.get("spec") or {}).get("nodeName") or None):
        causes.append(_invalid("spec.nodeName", f"{json.dumps(node)}: field is immutable"))
    if causes:
        raise StatusError.invalid("Pod", _name_of(pod), causes)
