"""The resource types the emulator serves: built-in kinds, and custom ones registered from CRDs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["BUILTIN", "DRA_RESOURCES", "ResourceType", "builtin", "from_crd"]

ALL_VERBS: Final = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, kw_only=True)
class ResourceType:
    """One REST resource: where it lives, what it is called, what it supports."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    #: The CRD's openAPIV3Schema (custom resources only).
    schema: Mapping[str, Any] | None = None
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    custom: bool = False
    verbs: tuple[str, ...] = ALL_VERBS
    #: Plural of the CRD that defined it, e.g. "aijobs.aisched.io".
    crd_name: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> tuple[str, str]:
        """(group, plural): unique across versions."""
        return (self.group, self.plural)

    def discovery(self) -> list[dict[str, Any]]:
        """APIResource entries for this resource and its subresources."""
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        entries = [main]
        for sub in sorted(self.subresources):
            kind = "Binding" if sub == "binding" else self.kind
            verbs = ["create"] if sub == "binding" else ["get", "patch", "update"]
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                }
            )
        return entries


def builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool,
    short: Iterable[str] = (),
    subs: Iterable[str] = (),
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=tuple(short),
        subresources=frozenset(subs),
    )


#: Dynamic Resource Allocation (`emulator.dra`): device classes, the drivers' slices, claims.
DRA_RESOURCES: Final[tuple[ResourceType, ...]] = (
    builtin("resource.k8s.io", "v1", "deviceclasses", "DeviceClass", namespaced=False),
    builtin("resource.k8s.io", "v1", "resourceslices", "ResourceSlice", namespaced=False),
    builtin("resource.k8s.io", "v1", "resourceclaims", "ResourceClaim", namespaced=True, subs=("status",)),
    builtin("resource.k8s.io", "v1", "resourceclaimtemplates", "ResourceClaimTemplate", namespaced=True),
)

BUILTIN: Final[tuple[ResourceType, ...]] = (
    *DRA_RESOURCES,
    builtin("", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",), subs=("status",)),
    builtin("", "v1", "pods", "Pod", namespaced=True, short=("po",), subs=("status", "binding")),
    builtin("", "v1", "nodes", "Node", namespaced=False, short=("no",), subs=("status",)),
    builtin("", "v1", "events", "Event", namespaced=True, short=("ev",)),
    builtin("", "v1", "services", "Service", namespaced=True, short=("svc",), subs=("status",)),
    builtin("", "v1", "configmaps", "ConfigMap", namespaced=True, short=("cm",)),
    builtin("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True, short=("sa",)),
    builtin("events.k8s.io", "v1", "events", "Event", namespaced=True, short=("ev",)),
    builtin("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True),
    # What an install of aisched (manifests/) is made of, stored as given (no controller runs them).
    builtin("apps", "v1", "deployments", "Deployment", namespaced=True, short=("deploy",), subs=("status",)),
    builtin("apps", "v1", "daemonsets", "DaemonSet", namespaced=True, short=("ds",), subs=("status",)),
    # Jobs are stored as given too: no Job controller runs; a test makes the pods a Job would.
    builtin("batch", "v1", "jobs", "Job", namespaced=True, subs=("status",)),
    builtin(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        namespaced=True,
        short=("pdb",),
        subs=("status",),
    ),
    builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", namespaced=True),
    builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", namespaced=True),
    builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        subs=("status",),
    ),
)


def from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition defines (one per served version)."""
    spec = crd["spec"]
    names = spec["names"]
    found = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = set((version.get("subresources") or {}).keys())
        found.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(s for s in subresources if s in {"status", "scale"}),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                custom=True,
                crd_name=crd["metadata"]["name"],
            )
        )
    return found
