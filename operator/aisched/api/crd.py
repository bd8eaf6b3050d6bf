"""CustomResourceDefinitions generated from the API models.

pydantic emits JSON Schema (draft 2020-12, with `$ref`s, `anyOf` for optionals, `title`s);
the API server wants a *structural* OpenAPI v3 schema: every node typed, no references, no
`additionalProperties: false`, draft-4 style exclusive bounds. `structural()` translates one into
the other, so the CRD enforces exactly what the models enforce.
"""

from __future__ import annotations

from typing import Any, Final

from aisched.api.meta import GROUP, VERSION, Resource
from aisched.api.validation import KIND_MODELS

__all__ = ["KINDS", "crd_for", "structural"]

#: Every kind aisched defines, in the order their CRDs are written.
KINDS: Final[tuple[type[Resource], ...]] = tuple(KIND_MODELS.values())

_DROP: Final = frozenset({"title", "$defs", "examples", "discriminator", "propertyNames", "uniqueItems"})
_SCALARS: Final = frozenset({"string", "integer", "number", "boolean"})


def structural(
    schema: dict[str, Any], *, defs: dict[str, Any] | None = None, defaults: bool = True
) -> dict[str, Any]:
    """Turn a pydantic JSON Schema node into a structural OpenAPI v3 schema node."""
    defs = schema.get("$defs", {}) if defs is None else defs
    node = _resolve(schema, defs)

    variants = node.get("anyOf")
    if variants is not None and not node.get("x-kubernetes-int-or-string"):
        non_null = [v for v in variants if v.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express a union of {len(non_null)} types structurally: {node}")
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        merged.update(
            {k: v for k, v in _resolve(non_null[0], defs).items() if k not in merged or k == "type"}
        )
        # The wrapper's description, default and k8s markers win over the variant's.
        merged.update({k: v for k, v in node.items() if k != "anyOf"})
        node = merged

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$ref":
            continue
        if key == "default":
            if defaults and value is not None and node.get("type") in _SCALARS:
                out["default"] = value
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {
                name: structural(sub, defs=defs, defaults=defaults) for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = structural(value, defs=defs, defaults=defaults)
        elif key == "patternProperties":
            # Structural schemas cannot constrain keys; a rule on the owning model checks them.
            (value_schema,) = value.values()
            out["additionalProperties"] = structural(value_schema, defs=defs, defaults=defaults)
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out["additionalProperties"] = structural(value, defs=defs, defaults=defaults)
            # `False` (refuse unknown fields) is the structural default: unknown fields are pruned.
        elif key in {"exclusiveMinimum", "exclusiveMaximum"}:
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if node.get("type") == "integer":
                out[bound] = value + 1 if bound == "minimum" else value - 1
            else:
                out[bound] = value
                out[key] = True
        elif key == "anyOf":  # int-or-string keeps its two branches, as Kubernetes' own quantities do
            out["anyOf"] = value
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = _enum_type(out["enum"])
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise ValueError(f"schema node has no type, which a structural schema requires: {node}")
    return dict(sorted(out.items(), key=_key_order))


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.rsplit("/", 1)[-1]
    resolved = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
    return _resolve(resolved, defs)


def _enum_type(values: list[Any]) -> str:
    kinds = {type(v) for v in values}
    if kinds <= {str}:
        return "string"
    if kinds <= {int}:
        return "integer"
    raise ValueError(f"enum of mixed types: {values}")


_ORDER: Final = ("description", "type", "format", "enum", "default", "required", "properties")


def _key_order(item: tuple[str, Any]) -> tuple[int, str]:
    key = item[0]
    return (_ORDER.index(key) if key in _ORDER else len(_ORDER), key)


def crd_for(kind: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = kind.model_fields["spec"].annotation
    status_field = kind.model_fields["status"]
    status_type = next(t for t in status_field.annotation.__args__ if t is not type(None))  # type: ignore[union-attr]
    spec = structural(spec_schema.model_json_schema(by_alias=True, mode="validation"))  # type: ignore[union-attr]
    status = structural(status_type.model_json_schema(by_alias=True, mode="validation"), defaults=False)
    singular = kind.KIND.lower()
    columns: list[dict[str, Any]] = [dict(c) for c in kind.PRINTER_COLUMNS]
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "aisched", "app.kubernetes.io/part-of": "aisched"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.KIND,
                "listKind": f"{kind.KIND}List",
                "plural": kind.PLURAL,
                "singular": singular,
                "shortNames": list(kind.SHORT_NAMES),
                "categories": ["aisched"],
            },
            "scope": "Namespaced" if kind.NAMESPACED else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": (kind.__doc__ or "").strip().splitlines()[0],
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }
