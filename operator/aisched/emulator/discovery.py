"""Discovery: the API groups, versions and resources served, and their OpenAPI documents.

Pure: no I/O. Each function reads the served resource types, keyed (group, version, plural).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from aisched.emulator import openapi
from aisched.emulator.errors import StatusError
from aisched.emulator.resources import ResourceType

__all__ = ["NOT_FOUND", "group", "group_list", "group_versions", "openapi_document", "resource_list"]

NOT_FOUND: Final = "the server could not find the requested resource"
Types: TypeAlias = Mapping[tuple[str, str, str], ResourceType]


def _missing() -> StatusError:
    return StatusError(404, "NotFound", NOT_FOUND)


def group_versions(types: Types) -> dict[str, list[str]]:
    versions: dict[str, list[str]] = {}
    for group_name, version, _ in types:
        if version not in versions.setdefault(group_name, []):
            versions[group_name].append(version)
    return versions


def _served(types: Types, group_name: str, version: str) -> list[ResourceType]:
    resources = [r for (g, v, _), r in sorted(types.items()) if g == group_name and v == version]
    if not resources:
        raise _missing()
    return resources


def _group_entry(group_name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group_name}/{v}", "version": v} for v in versions]
    return {"name": group_name, "versions": entries, "preferredVersion": entries[0]}


def group_list(types: Types) -> dict[str, Any]:
    groups = [_group_entry(g, vs) for g, vs in sorted(group_versions(types).items()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(types: Types, name: str) -> dict[str, Any]:
    versions = group_versions(types).get(name)
    if not versions:
        raise _missing()
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, versions)}


def resource_list(types: Types, group_name: str, version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group_name}/{version}" if group_name else version,
        "resources": [entry for r in _served(types, group_name, version) for entry in r.discovery()],
    }


def openapi_document(
    types: Types, parts: list[str], *, accept: str, revision: int, version: str
) -> dict[str, Any]:
    """`/openapi/<parts>`: the v3 index, a group-version's v3 document, or the v2 document. v2 is
    JSON only: a client that accepts nothing else (kubectl asks for protobuf) is told 406."""
    if parts == ["v3"]:
        return openapi.index(group_versions(types), revision=revision)
    if parts == ["v2"]:
        if not any(media in accept for media in ("application/json", "*/*", "application/*")):
            raise StatusError(
                406, "NotAcceptable", "only the following media types are accepted: application/json"
            )
        return openapi.swagger([r for _, r in sorted(types.items())], version=version)
    if len(parts) == 3 and parts[:2] == ["v3", "api"]:
        group_name, group_version = "", parts[2]
    elif len(parts) == 4 and parts[:2] == ["v3", "apis"]:
        group_name, group_version = parts[2], parts[3]
    else:
        raise _missing()
    return openapi.group_version_document(_served(types, group_name, group_version), version=version)
