"""Short OpenAPI schemas of the built-in kinds the emulator serves, for `kubectl explain`.

Pure data. They cover the fields aisched and its users read and write (a Pod's containers,
resources, scheduling fields and status; a Node's capacity and conditions; ...), not every field
of k8s.io/api; anything else in an object is still stored and served as sent.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final

__all__ = ["API_VERSION", "BUILTIN_SCHEMAS", "KIND", "LIST_META", "OBJECT_META", "builtin_name"]

Schema = dict[str, Any]


def str_schema(description: str, **extra: Any) -> Schema:
    return {"description": description, "type": "string", **extra}


def _int(description: str) -> Schema:
    return {"description": description, "type": "integer", "format": "int32"}


def _bool(description: str) -> Schema:
    return {"description": description, "type": "boolean"}


def _time(description: str) -> Schema:
    return {"description": description, "type": "string", "format": "date-time"}


def _strings(description: str, *, list_type: str = "atomic") -> Schema:
    return {
        "description": description,
        "type": "array",
        "items": {"type": "string", "default": ""},
        "x-kubernetes-list-type": list_type,
    }


def _string_map(description: str) -> Schema:
    return {
        "description": description,
        "type": "object",
        "additionalProperties": {"type": "string", "default": ""},
    }


def _quantities(description: str) -> Schema:
    return {
        "description": description,
        "type": "object",
        "additionalProperties": {"description": "A quantity, e.g. 500m, 4Gi or 8.", "type": "string"},
    }


def object_schema(
    description: str, properties: Schema, *, required: tuple[str, ...] = (), **extra: Any
) -> Schema:
    """An object of `properties`; `extra` adds keywords (oneOf, maxProperties, ...)."""
    schema: Schema = {"description": description, "type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def list_schema(
    description: str, item: Schema, *, keys: tuple[str, ...] = (), max_items: int | None = None
) -> Schema:
    """A list of `item`: a map list keyed by `keys` when given, else atomic; at most `max_items`."""
    schema: Schema = {"description": description, "type": "array", "items": item}
    if max_items is not None:
        schema["maxItems"] = max_items
    if keys:
        schema["x-kubernetes-list-type"] = "map"
        schema["x-kubernetes-list-map-keys"] = list(keys)
    else:
        schema["x-kubernetes-list-type"] = "atomic"
    return schema


API_VERSION: Final = str_schema(
    "APIVersion defines the versioned schema of this representation of an object. Servers should"
    " convert recognized schemas to the latest internal value, and may reject unrecognized values."
)
KIND: Final = str_schema(
    "Kind is a string value representing the REST resource this object represents. Servers may infer"
    " this from the endpoint the client submits requests to. In CamelCase."
)

_OWNER_REFERENCE: Final = object_schema(
    "Identifies an object that owns this one; it is deleted with its last owner.",
    {
        "apiVersion": str_schema("API version of the owner."),
        "kind": str_schema("Kind of the owner."),
        "name": str_schema("Name of the owner."),
        "uid": str_schema("UID of the owner."),
        "controller": _bool("Whether the owner is the managing controller."),
        "blockOwnerDeletion": _bool("Whether the owner cannot be deleted before this object."),
    },
    required=("apiVersion", "kind", "name", "uid"),
)
_MANAGED_FIELDS_ENTRY: Final = object_schema(
    "Which fields a manager owns, recorded by the API server on every write.",
    {
        "manager": str_schema("The name of the workflow that wrote the fields."),
        "operation": str_schema("Apply or Update: the kind of write that last touched these fields."),
        "apiVersion": str_schema("The version the fields were written through."),
        "time": _time("When the manager last changed its fields."),
        "fieldsType": str_schema("The format of fieldsV1: always FieldsV1."),
        "fieldsV1": {"description": "The set of fields owned, as a tree.", "type": "object"},
        "subresource": str_schema("The subresource the write went through, if any."),
    },
)
OBJECT_META: Final = object_schema(
    "ObjectMeta is metadata that all persisted resources must have.",
    {
        "name": str_schema("Name must be unique within a namespace. Cannot be updated."),
        "generateName": str_schema(
            "A prefix the server completes into a unique name when name is not given."
        ),
        "namespace": str_schema("The namespace the object lives in; empty for cluster-scoped objects."),
        "uid": str_schema("The server-assigned unique identifier of this object in time and space."),
        "resourceVersion": str_schema("The version of this object, for optimistic concurrency and watches."),
        "generation": {"description": "A sequence number of the desired state's changes.", "type": "integer"},
        "creationTimestamp": _time("When this object was created."),
        "deletionTimestamp": _time("When this object will be deleted, once its finalizers are done."),
        "deletionGracePeriodSeconds": {"description": "Seconds allowed to terminate.", "type": "integer"},
        "labels": _string_map("Map of string keys and values to organize and select objects."),
        "annotations": _string_map("Unstructured key value map set by external tools; not queryable."),
        "ownerReferences": list_schema("Objects this object depends on.", _OWNER_REFERENCE, keys=("uid",)),
        "finalizers": _strings(
            "Must be empty before the object is deleted from the registry.", list_type="set"
        ),
        "managedFields": list_schema("Which manager owns which fields.", _MANAGED_FIELDS_ENTRY),
    },
)
LIST_META: Final = object_schema(
    "ListMeta describes metadata that synthetic resources must have, including lists.",
    {
        "resourceVersion": str_schema("The version of the list, to watch from."),
        "continue": str_schema("Set when more items can be listed with this token."),
    },
)

_CONDITION_FIELDS: Final = {
    "type": str_schema("Type of condition."),
    "status": str_schema("Status of the condition: True, False or Unknown."),
    "reason": str_schema("Unique, one-word, CamelCase reason for the condition's last transition."),
    "message": str_schema("Human-readable message indicating details about the last transition."),
    "lastTransitionTime": _time("Last time the condition changed from one status to another."),
}


def _conditions(description: str, **extra: Schema) -> Schema:
    item = object_schema("One condition.", {**_CONDITION_FIELDS, **extra}, required=("type", "status"))
    return list_schema(description, item, keys=("type",))


_RESOURCES: Final = object_schema(
    "Compute resources required by this container.",
    {
        "limits": _quantities("The most compute resources allowed, e.g. nvidia.com/gpu: 8."),
        "requests": _quantities("The least compute resources required; the scheduler places by these."),
    },
)
_CONTAINER_PORT: Final = object_schema(
    "A network port in a single container.",
    {
        "name": str_schema("An IANA_SVC_NAME unique within the pod."),
        "containerPort": _int("Number of port to expose on the pod's IP address."),
        "protocol": str_schema("UDP, TCP, or SCTP. Defaults to TCP.", default="TCP"),
    },
    required=("containerPort",),
)
_ENV_VAR: Final = object_schema(
    "An environment variable present in a container.",
    {"name": str_schema("Name of the environment variable."), "value": str_schema("Its value.")},
    required=("name",),
)
_CONTAINER: Final = object_schema(
    "A single application container to run within a pod.",
    {
        "name": str_schema("Name of the container, unique within the pod (DNS_LABEL)."),
        "image": str_schema("Container image name."),
        "command": _strings("Entrypoint array; the image's ENTRYPOINT is used if not given."),
        "args": _strings("Arguments to the entrypoint."),
        "env": list_schema("Environment variables to set in the container.", _ENV_VAR, keys=("name",)),
        "ports": list_schema(
            "Ports to expose from the container.", _CONTAINER_PORT, keys=("containerPort", "protocol")
        ),
        "resources": _RESOURCES,
        "imagePullPolicy": str_schema("Always, Never or IfNotPresent."),
        "workingDir": str_schema("Container's working directory."),
    },
    required=("name",),
)
_TOLERATION: Final = object_schema(
    "Lets the pod run on nodes with a matching taint.",
    {
        "key": str_schema("The taint key the toleration applies to; empty matches all keys."),
        "operator": str_schema("Exists or Equal (the default)."),
        "value": str_schema("The taint value the toleration matches."),
        "effect": str_schema("The taint effect to match: NoSchedule, PreferNoSchedule or NoExecute."),
        "tolerationSeconds": {"description": "How long a NoExecute taint is tolerated.", "type": "integer"},
    },
)
_POD_SPEC: Final = object_schema(
    "The specification of the desired behavior of the pod.",
    {
        "containers": list_schema("Containers belonging to the pod.", _CONTAINER, keys=("name",)),
        "initContainers": list_schema(
            "Containers run to completion before the others start.", _CONTAINER, keys=("name",)
        ),
        "nodeName": str_schema("The node the pod is bound to; set by binding."),
        "nodeSelector": _string_map("Labels a node must have for the pod to fit on it."),
        "schedulerName": str_schema("The scheduler that places this pod; default-scheduler if not given."),
        "priorityClassName": str_schema("The name of the pod's PriorityClass."),
        "priority": _int("The priority value; higher runs first."),
        "restartPolicy": str_schema("Always, OnFailure or Never."),
        "terminationGracePeriodSeconds": {"description": "Seconds to stop gracefully.", "type": "integer"},
        "tolerations": list_schema("The pod's tolerations.", _TOLERATION),
        "schedulingGates": list_schema(
            "Gates that keep the pod from being scheduled while any remains.",
            object_schema(
                "A scheduling gate.", {"name": str_schema("Name of the gate.")}, required=("name",)
            ),
            keys=("name",),
        ),
        "volumes": list_schema(
            "Volumes that can be mounted by containers.",
            object_schema("A named volume.", {"name": str_schema("Volume's name.")}, required=("name",)),
            keys=("name",),
        ),
    },
    required=("containers",),
)
_POD_STATUS: Final = object_schema(
    "The most recently observed status of the pod.",
    {
        "phase": str_schema("Pending, Running, Succeeded, Failed or Unknown."),
        "conditions": _conditions("Current service state of the pod.", lastProbeTime=_time("Last probed.")),
        "hostIP": str_schema("IP address of the host the pod runs on."),
        "podIP": str_schema("IP address allocated to the pod."),
        "startTime": _time("When the kubelet acknowledged the pod."),
        "qosClass": str_schema("Guaranteed, Burstable or BestEffort."),
        "message": str_schema("Why the pod is in this condition."),
        "reason": str_schema("A brief CamelCase reason for the pod's state."),
    },
)
_NODE_SPEC: Final = object_schema(
    "The specification of the node.",
    {
        "unschedulable": _bool("Whether new pods may be placed on the node."),
        "taints": list_schema(
            "Taints that repel pods without a matching toleration.",
            object_schema(
                "A taint.",
                {
                    "key": str_schema("Taint key."),
                    "value": str_schema("Taint value."),
                    "effect": str_schema("Taint effect."),
                },
                required=("key", "effect"),
            ),
        ),
        "podCIDR": str_schema("The pod IP range assigned to the node."),
        "providerID": str_schema("ID of the node assigned by the cloud provider."),
    },
)
_NODE_STATUS: Final = object_schema(
    "The most recently observed status of the node.",
    {
        "capacity": _quantities("Total resources of the node."),
        "allocatable": _quantities("Resources of the node available for scheduling."),
        "conditions": _conditions("Conditions of the node: Ready, MemoryPressure, ..."),
        "addresses": list_schema(
            "Addresses reachable to the node.",
            object_schema(
                "An address.", {"type": str_schema("Address type."), "address": str_schema("The address.")}
            ),
            keys=("type",),
        ),
        "nodeInfo": {"description": "General information about the node.", "type": "object"},
    },
)
_SERVICE_SPEC: Final = object_schema(
    "The behavior of the service.",
    {
        "selector": _string_map("The labels of the pods traffic is routed to."),
        "ports": list_schema(
            "The ports the service exposes.",
            object_schema(
                "A service port.",
                {
                    "name": str_schema("Name of the port within the service."),
                    "port": _int("The port the service exposes."),
                    "targetPort": {
                        "description": "Number or name of the pods' port.",
                        "x-kubernetes-int-or-string": True,
                    },
                    "protocol": str_schema("TCP, UDP or SCTP. Defaults to TCP.", default="TCP"),
                },
                required=("port",),
            ),
            keys=("port", "protocol"),
        ),
        "type": str_schema("ClusterIP, NodePort, LoadBalancer or ExternalName."),
        "clusterIP": str_schema("The IP address of the service."),
    },
)
_EVENT_FIELDS: Final = {
    "involvedObject": object_schema(
        "The object this event is about.",
        {
            "kind": str_schema("Kind."),
            "name": str_schema("Name."),
            "namespace": str_schema("Namespace."),
            "uid": str_schema("UID."),
        },
    ),
    "reason": str_schema("A short, machine understandable string of why the event happened."),
    "message": str_schema("A human-readable description of the status of this operation."),
    "type": str_schema("Normal or Warning."),
    "count": _int("The number of times this event has occurred."),
    "firstTimestamp": _time("When the event was first recorded."),
    "lastTimestamp": _time("When the event most recently occurred."),
    "source": object_schema(
        "The component reporting this event.",
        {"component": str_schema("Component."), "host": str_schema("Node.")},
    ),
}


def _kind(description: str, properties: Schema, *, required: tuple[str, ...] = ()) -> Schema:
    return object_schema(description, properties, required=required)


#: (group, kind) → its schema (without apiVersion, kind and metadata, which every kind gets).
BUILTIN_SCHEMAS: Final = MappingProxyType(
    {
        ("", "Pod"): _kind(
            "Pod is a collection of containers that can run on a host.",
            {"spec": _POD_SPEC, "status": _POD_STATUS},
        ),
        ("", "Node"): _kind(
            "Node is a worker node; each node has a unique name.",
            {"spec": _NODE_SPEC, "status": _NODE_STATUS},
        ),
        ("", "Service"): _kind(
            "Service is a named abstraction of a software service: a port and a selector of pods.",
            {
                "spec": _SERVICE_SPEC,
                "status": {"description": "Current status of the service.", "type": "object"},
            },
        ),
        ("", "Namespace"): _kind(
            "Namespace provides a scope for names.",
            {
                "spec": object_schema(
                    "Spec of the namespace.", {"finalizers": _strings("Finalizers of the namespace.")}
                ),
                "status": object_schema(
                    "Status of the namespace.",
                    {
                        "phase": str_schema("Active or Terminating."),
                        "conditions": _conditions("Namespace conditions."),
                    },
                ),
            },
        ),
        ("", "ConfigMap"): _kind(
            "ConfigMap holds configuration data for pods to consume.",
            {
                "data": _string_map("Configuration data (UTF-8 strings)."),
                "binaryData": _string_map("Binary configuration data, base64-encoded."),
                "immutable": _bool("Whether the data may no longer change."),
            },
        ),
        ("", "Event"): _kind("Event is a report of an event somewhere in the cluster.", dict(_EVENT_FIELDS)),
        ("", "ServiceAccount"): _kind(
            "ServiceAccount binds a name to an identity that pods run as.",
            {"automountServiceAccountToken": _bool("Whether pods mount the account's API token.")},
        ),
        ("coordination.k8s.io", "Lease"): _kind(
            "Lease defines a lease concept.",
            {
                "spec": object_schema(
                    "Specification of the lease.",
                    {
                        "holderIdentity": str_schema("The identity of the holder of a current lease."),
                        "leaseDurationSeconds": _int("How long candidates wait to force acquire the lease."),
                        "acquireTime": _time("When the current lease was acquired."),
                        "renewTime": _time("When the current holder last renewed the lease."),
                    },
                )
            },
        ),
        ("events.k8s.io", "Event"): _kind(
            "Event is a report of an event somewhere in the cluster.",
            {
                "reason": _EVENT_FIELDS["reason"],
                "note": str_schema("A human-readable description of the status of this operation."),
                "type": _EVENT_FIELDS["type"],
                "regarding": _EVENT_FIELDS["involvedObject"],
                "eventTime": _time("When the event was first observed."),
                "reportingController": str_schema("The controller that emitted the event."),
                "action": str_schema("What action was taken or failed regarding the regarding object."),
            },
        ),
        ("apiextensions.k8s.io", "CustomResourceDefinition"): _kind(
            "CustomResourceDefinition represents a resource that should be exposed on the API server.",
            {
                "spec": object_schema(
                    "The resource the CRD defines.",
                    {
                        "group": str_schema("The API group of the defined custom resource."),
                        "names": {"description": "The resource and kind names.", "type": "object"},
                        "scope": str_schema("Cluster or Namespaced."),
                        "versions": {
                            "description": "The API versions served.",
                            "type": "array",
                            "items": {"type": "object"},
                        },
                    },
                    required=("group", "names", "scope", "versions"),
                ),
                "status": {"description": "The observed state of the CRD.", "type": "object"},
            },
        ),
    }
)

_GROUP_PACKAGES: Final = MappingProxyType(
    {
        "": "io.k8s.api.core",
        "events.k8s.io": "io.k8s.api.events",
        "coordination.k8s.io": "io.k8s.api.coordination",
        "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
    }
)


def builtin_name(group: str, version: str, kind: str) -> str:
    """A built-in kind's schema name, as the real server publishes it (`io.k8s.api.core.v1.Pod`)."""
    package = _GROUP_PACKAGES.get(group) or "io.k8s.api." + group.split(".", maxsplit=1)[0]
    return f"{package}.{version}.{kind}"
