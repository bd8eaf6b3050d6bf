"""What every aisched resource shares: the group, object metadata, conditions, cross-field rules.

A cross-field rule is written once, as a `Rule`: a Python predicate that the pydantic model runs
and a CEL expression that the generated CRD carries in `x-kubernetes-validations`. So the API
server and `aisched validate` refuse the same objects with the same message and field path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

__all__ = [
    "API_VERSION",
    "GROUP",
    "LIST_MAP",
    "LIST_SET",
    "VERSION",
    "Condition",
    "DNSLabel",
    "K8sModel",
    "ObjectMeta",
    "QualifiedName",
    "Resource",
    "Rule",
    "SpecModel",
    "StatusModel",
]

GROUP: Final = "aisched.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

#: RFC 1123 label, as Kubernetes names of roles, namespaces and cohorts use.
DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: RFC 1123 subdomain: object names.
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A qualified resource name such as `cpu`, `memory` or `nvidia.com/gpu`.
QUALIFIED_NAME_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def LIST_MAP(*keys: str) -> Any:  # noqa: N802 - reads as a schema marker in annotations
    """Marks a list of objects as a Kubernetes list-map: entries are unique by `keys`."""
    return Field(
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}
    )


#: Marks a list of scalars as a Kubernetes set: no value twice.
LIST_SET: Final[Any] = Field(json_schema_extra={"x-kubernetes-list-type": "set"})


DNSLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
QualifiedName = Annotated[str, Field(pattern=QUALIFIED_NAME_PATTERN, min_length=1, max_length=253)]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A cross-field rule, checked by pydantic and, as CEL, by the Kubernetes API server.

    `path` names the offending field relative to the model the rule sits on (`gang.minMember`);
    `cel` evaluates with `self` bound to that model's object and must be true for valid input;
    `check` is the same predicate in Python; `detail` may add the offending values to the message.

    `cel` is None where the CRD states the rule structurally (a list-map's unique keys, a
    list-set), and where CEL could not be priced within the API server's cost budget (a regex
    over map keys, whose length no structural schema can bound); aisched's controllers refuse
    such objects themselves, with the same message.

    CEL rules compare map keys only by membership (`'k' in map`) or with literals, and iterate
    only lists and maps with a maximum size, so every rule has a bounded estimated cost.
    """

    path: str
    message: str
    cel: str | None
    check: Callable[[Any], bool]
    detail: Callable[[Any], str] | None = None

    def field_path(self) -> str:
        """The rule's path in the form CRD `fieldPath` wants: `.gang.minMember`."""
        return "." + self.path if self.path else ""


class K8sModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, rules enforced."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )
    __rules__: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        # The API server prunes null values of non-nullable fields before validating; do the same,
        # so `gang: null` means "not set" here as it does there.
        if isinstance(data, dict) and any(v is None for v in data.values()):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        broken = [rule for rule in type(self).__rules__ if not rule.check(self)]
        if broken:
            violations = [
                (rule.path, rule.message + (f" ({rule.detail(self)})" if rule.detail else ""))
                for rule in broken
            ]
            raise PydanticCustomError(
                "rule",
                "{summary}",
                {"summary": "; ".join(f"{p}: {m}" for p, m in violations), "violations": violations},
            )
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        target = handler.resolve_ref_schema(json_schema)
        validations = [
            {
                "rule": rule.cel,
                "message": rule.message,
                "fieldPath": rule.field_path(),
                "reason": "FieldValueInvalid",
            }
            if rule.path
            else {"rule": rule.cel, "message": rule.message}
            for rule in cls.__dict__.get("__rules__", ())
            if rule.cel is not None
        ]
        if validations:
            target["x-kubernetes-validations"] = validations
        return json_schema

    def to_dict(self) -> dict[str, Any]:
        """The object as Kubernetes JSON (camelCase, unset fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(K8sModel):
    """A part of a `spec`: unknown fields are refused, as the API server's strict field validation does,
    and types are strict (`count: "4"` is a string, not a number), as its schema validation is."""

    model_config = ConfigDict(strict=True)


class StatusModel(K8sModel):
    """A part of a `status`: written by aisched; fields from a newer aisched are ignored, not fatal."""

    model_config = ConfigDict(extra="ignore")


class ObjectMeta(K8sModel):
    """The subset of `metadata` aisched reads; everything else the API server keeps is carried along."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)] | None = None
    generate_name: str | None = None
    namespace: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=63)] | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)


class Condition(StatusModel):
    """A `metav1.Condition`: the latest observation of one aspect of an object's state."""

    type: Annotated[str, Field(max_length=316)]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(max_length=1024)] = ""
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: datetime | None = None
    observed_generation: Annotated[int, Field(ge=0)] | None = None


class Resource(K8sModel):
    """A top-level object: apiVersion, kind, metadata, and the kind's spec/status."""

    #: Set by each kind: the CRD's names and scope.
    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]]
    NAMESPACED: ClassVar[bool]
    #: `additionalPrinterColumns` of the CRD (without Age, which is always added last).
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str | int], ...]] = ()

    api_version: Literal["aisched.io/v1alpha1"] = "aisched.io/v1alpha1"
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace
