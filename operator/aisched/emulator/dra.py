"""Dynamic Resource Allocation in the emulator: resource.k8s.io/v1 served and validated, simulated
nodes publishing ResourceSlices as NVIDIA's GPU DRA driver does, and its DeviceClasses.

The four kinds (DeviceClass, ResourceSlice, ResourceClaim, ResourceClaimTemplate) are validated
against structural schemas of their v1 fields (required fields, enums, bounds, name formats, the
one-of choices), the way the emulator validates custom resources; what the schemas do not know is
pruned, as the real server drops unknown fields. A ResourceClaim's `status` (its allocation and
the pods it is reserved for) is written through its status subresource only.

A node of a cluster file whose `draDriver` is true publishes one ResourceSlice for the driver
`gpu.nvidia.com`, pool = the node's name, a device per GPU (`gpu-<index>`) with the attributes and
capacity NVIDIA's driver gives (type, uuid, index, minor, productName, brand, architecture,
cudaComputeCapability, driverVersion; memory) and, on MIG-enabled GPUs, a device per MIG instance.
The attributes come from the same fake NVML discovery that makes the node's GPUNodeTopology, so
the two always name the same GPUs by the same UUIDs.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aisched.emulator.builtin_schemas import Schema, list_schema
from aisched.emulator.builtin_schemas import object_schema as _obj
from aisched.emulator.builtin_schemas import str_schema as _s
from aisched.emulator.resources import DRA_RESOURCES

__all__ = [
    "DEVICE_CLASSES",
    "DRA_RESOURCES",
    "DRA_SCHEMAS",
    "DRIVER",
    "GROUP",
    "resource_slice",
]


GROUP: Final = "resource.k8s.io"
DRIVER: Final = "gpu.nvidia.com"
#: Limits of resource.k8s.io/v1 (ResourceSliceMaxDevices, DeviceRequestsMax, ReservedForMax, ...).
_MAX_DEVICES: Final = 128
_MAX_REQUESTS: Final = 32
_MAX_SELECTORS: Final = 32
_MAX_RESERVED_FOR: Final = 256
_MAX_RESULTS: Final = 32
_MAX_ATTRIBUTES: Final = 32
_CEL_MAX: Final = 10 * 1024
_DNS_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _name(description: str, *, pattern: str = _DNS_LABEL, max_length: int = 63) -> Schema:
    return _s(description, pattern=pattern, maxLength=max_length)


def _list(description: str, item: Schema, *, max_items: int, keys: tuple[str, ...] = ()) -> Schema:
    return list_schema(description, item, keys=keys, max_items=max_items)


_SELECTOR: Final = _obj(
    "A selector of devices: a CEL expression over `device`.",
    {
        "cel": _obj(
            "A CEL expression that must be true for a device to be selected.",
            {
                "expression": _s(
                    "The expression, over device.driver, .attributes and .capacity.", maxLength=_CEL_MAX
                )
            },
            required=("expression",),
        )
    },
    required=("cel",),
)
_SELECTORS: Final = _list("Selectors a device must all satisfy.", _SELECTOR, max_items=_MAX_SELECTORS)
_ATTRIBUTE: Final = _obj(
    "One attribute value: exactly one of int, bool, string, version.",
    {
        "int": {"type": "integer", "format": "int64"},
        "bool": {"type": "boolean"},
        "string": _s("A string value.", maxLength=64),
        "version": _s("A semantic version.", maxLength=64),
    },
    oneOf=[
        {"required": ["int"]},
        {"required": ["bool"]},
        {"required": ["string"]},
        {"required": ["version"]},
    ],
)
_DEVICE: Final = _obj(
    "One device of the pool.",
    {
        "name": _name("The device's name, unique in its pool."),
        "attributes": {
            "description": "Attributes by qualified name.",
            "type": "object",
            "additionalProperties": _ATTRIBUTE,
            "maxProperties": _MAX_ATTRIBUTES,
        },
        "capacity": {
            "description": "Capacity by qualified name.",
            "type": "object",
            "additionalProperties": _obj("A capacity.", {"value": _s("A quantity.")}, required=("value",)),
            "maxProperties": _MAX_ATTRIBUTES,
        },
    },
    required=("name",),
)
_REQUEST: Final = _obj(
    "One request of the claim: a name and exactly the devices it wants.",
    {
        "name": _name("The request's name, as containers' resources.claims[].request name it."),
        "exactly": _obj(
            "The devices wanted.",
            {
                "deviceClassName": _name("The DeviceClass.", pattern=_DNS_SUBDOMAIN, max_length=253),
                "selectors": _SELECTORS,
                "allocationMode": _s("ExactCount (default) or All.", enum=["ExactCount", "All"]),
                "count": {"type": "integer", "format": "int64", "minimum": 1},
                "adminAccess": {"type": "boolean"},
            },
            required=("deviceClassName",),
        ),
    },
    required=("name", "exactly"),
)
_CLAIM_SPEC: Final = _obj(
    "What the claim asks for.",
    {
        "devices": _obj(
            "The devices asked for.",
            {
                "requests": _list("The requests.", _REQUEST, max_items=_MAX_REQUESTS, keys=("name",)),
                "constraints": _list(
                    "Constraints across requests.",
                    _obj(
                        "Devices of the listed requests must share an attribute.",
                        {
                            "requests": {
                                "type": "array",
                                "items": _name("A request."),
                                "maxItems": _MAX_REQUESTS,
                            },
                            "matchAttribute": _s("A qualified attribute name.", maxLength=_CEL_MAX),
                        },
                    ),
                    max_items=_MAX_REQUESTS,
                ),
            },
        )
    },
)
_RESULT: Final = _obj(
    "One allocated device.",
    {
        "request": _name("The request it was allocated for."),
        "driver": _name("The driver.", pattern=_DNS_SUBDOMAIN, max_length=63),
        "pool": _s("The pool.", maxLength=253),
        "device": _name("The device's name in its pool."),
    },
    required=("request", "driver", "pool", "device"),
)
_CLAIM_STATUS: Final = _obj(
    "What was allocated, and for whom.",
    {
        "allocation": _obj(
            "The allocation.",
            {
                "devices": _obj(
                    "Allocated devices.",
                    {"results": _list("One entry per device.", _RESULT, max_items=_MAX_RESULTS)},
                ),
                "nodeSelector": {"description": "Where the devices are available.", "type": "object"},
                "allocationTimestamp": {"type": "string", "format": "date-time"},
            },
        ),
        "reservedFor": _list(
            "The consumers the claim is reserved for.",
            _obj(
                "One consumer.",
                {
                    "apiGroup": _s("Its API group (empty for pods)."),
                    "resource": _s("Its resource, e.g. pods."),
                    "name": _s("Its name."),
                    "uid": _s("Its UID."),
                },
                required=("resource", "name", "uid"),
            ),
            max_items=_MAX_RESERVED_FOR,
            keys=("uid",),
        ),
    },
)


def _kind(description: str, properties: Schema, *, required: tuple[str, ...] = ()) -> Schema:
    return {
        "openAPIV3Schema": _obj(
            description,
            {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                **properties,
            },
            required=required,
        )
    }


#: Structural schemas of the kinds, by kind.
DRA_SCHEMAS: Final[dict[str, Schema]] = {
    "DeviceClass": _kind(
        "DeviceClass: a vendor's configuration and selectors of a class of devices.",
        {"spec": _obj("The class.", {"selectors": _SELECTORS})},
        required=("spec",),
    ),
    "ResourceSlice": _kind(
        "ResourceSlice: devices of one pool of a driver, on one node.",
        {
            "spec": _obj(
                "The slice.",
                {
                    "driver": _name("The driver.", pattern=_DNS_SUBDOMAIN, max_length=63),
                    "pool": _obj(
                        "The pool and its generation.",
                        {
                            "name": _s("The pool's name.", maxLength=253),
                            "generation": {"type": "integer", "format": "int64", "minimum": 0},
                            "resourceSliceCount": {"type": "integer", "format": "int64", "minimum": 1},
                        },
                        required=("name", "generation", "resourceSliceCount"),
                    ),
                    "nodeName": _name("The node the devices are on.", pattern=_DNS_SUBDOMAIN, max_length=253),
                    "allNodes": {"type": "boolean"},
                    "devices": _list("The devices.", _DEVICE, max_items=_MAX_DEVICES),
                },
                required=("driver", "pool"),
                oneOf=[{"required": ["nodeName"]}, {"required": ["allNodes"]}],
            )
        },
        required=("spec",),
    ),
    "ResourceClaim": _kind(
        "ResourceClaim: a request for devices, and what was allocated.",
        {"spec": _CLAIM_SPEC, "status": _CLAIM_STATUS},
        required=("spec",),
    ),
    "ResourceClaimTemplate": _kind(
        "ResourceClaimTemplate: the claim a pod's own ResourceClaim is made from.",
        {
            "spec": _obj(
                "The template.",
                {"metadata": {"type": "object"}, "spec": _CLAIM_SPEC},
                required=("spec",),
            )
        },
        required=("spec",),
    ),
}


def _device_class(name: str, kind: str) -> dict[str, Any]:
    expression = f'device.driver == "{DRIVER}" && device.attributes["{DRIVER}"].type == "{kind}"'
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": expression}}]},
    }


#: The DeviceClasses NVIDIA's driver installs: whole GPUs and MIG instances.
DEVICE_CLASSES: Final = (_device_class("gpu.nvidia.com", "gpu"), _device_class("mig.nvidia.com", "mig"))

#: Architecture and CUDA compute capability by GPU model family, as NVML reports them.
_FAMILIES: Final = {
    "H200": ("Hopper", "9.0.0"),
    "H100": ("Hopper", "9.0.0"),
    "A100": ("Ampere", "8.0.0"),
    "A10": ("Ampere", "8.6.0"),
    "L40": ("Ada Lovelace", "8.9.0"),
    "V100": ("Volta", "7.0.0"),
}


def resource_slice(node: str, status: dict[str, Any]) -> dict[str, Any]:
    """The ResourceSlice NVIDIA's driver would publish for `node`, from its GPUNodeTopology
    `status` (as discovery reports it): a device per GPU, and one per MIG instance of a
    MIG-enabled GPU (named by its parent, profile and first memory slice)."""
    devices: list[dict[str, Any]] = []
    for gpu in status.get("gpus") or []:
        index = int(gpu.get("index", 0))
        model = str(gpu.get("model") or "")
        family = next((v for k, v in _FAMILIES.items() if model.startswith(k)), None)
        product = {"string": f"NVIDIA {model}"[:64]}
        attributes: dict[str, Any] = {
            "type": {"string": "gpu"},
            "uuid": {"string": str(gpu.get("uuid", ""))},
            "index": {"int": index},
            "minor": {"int": index},
            "productName": product,
            "brand": {"string": "Nvidia"},
            "pcieBusID": {"string": str(gpu.get("pciBusId", ""))},
        }
        if family is not None:
            attributes["architecture"] = {"string": family[0]}
            attributes["cudaComputeCapability"] = {"version": family[1]}
        if status.get("driverVersion"):
            attributes["driverVersion"] = {"version": _semver(str(status["driverVersion"]))}
        capacity = {"memory": {"value": str(gpu["memory"])}} if gpu.get("memory") else {}
        devices.append({"name": f"gpu-{index}", "attributes": attributes, "capacity": capacity})
        if gpu.get("migMode") != "Enabled":
            continue
        for mig in gpu.get("migInstances") or []:
            profile, start = str(mig.get("profile", "")), int(mig.get("start", 0))
            devices.append(
                {
                    "name": f"gpu-{index}-mig-{re.sub(r'[^a-z0-9]+', '-', profile.lower())}-{start}",
                    "attributes": {
                        "type": {"string": "mig"},
                        "parentUUID": {"string": str(gpu.get("uuid", ""))},
                        "parentIndex": {"int": index},
                        "profile": {"string": profile},
                        "placementStart": {"int": start},
                        "placementSize": {"int": int(mig.get("size", 1))},
                        "productName": product,
                    },
                    "capacity": {},
                }
            )
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-{DRIVER}"},
        "spec": {
            "driver": DRIVER,
            "pool": {"name": node, "generation": 0, "resourceSliceCount": 1},
            "nodeName": node,
            "devices": devices[:_MAX_DEVICES],
        },
    }


def _semver(version: str) -> str:
    """A driver version as a semantic version: `550.54.15` as is, `550.54` as `550.54.0`."""
    parts = [p for p in version.split(".") if p.isdigit()][:3]
    return ".".join([*parts, *["0"] * (3 - len(parts))]) if parts else "0.0.0"
