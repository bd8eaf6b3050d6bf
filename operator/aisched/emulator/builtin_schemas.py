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


def _str(description: str, **extra: Any) -> Schema:
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


def _object(description: str, properties: Schema, *, required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"description": description, "type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _list_of(description: str, item: Schema, *, keys: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"description": description, "type": "array", "items": item}
    if keys:
        schema["x-kubernetes-list-type"] = "map"
        schema["x-kubernetes-list-map-keys"] = list(keys)
    else:
        schema["x-kubernetes-list-type"] = "atomic"
    return schema


API_VERSION: Final = _str(
    "APIVersion defines the versioned schema of this representation of an object. Servers should"
    " convert recognized schemas to the latest internal value, and may reject unrecognized values."
)
KIND: Final = _str(
    "Kind is a string value representing the REST resource this object represents. Servers may infer"
    " this from the endpoint the client submits requests to. In CamelCase."
)

_OWNER_REFERENCE: Final = _object(
    "Identifies an object that owns this one; it is deleted with its last owner.",
    {
        "apiVersion": _str("API version of the owner."),
        "kind": _str("Kind of the owner."),
        "name": _str("Name of the owner."),
        "uid": _str("UID of the owner."),
        "controller": _bool("Whether the owner is the managing controller."),
        "blockOwnerDeletion": _bool("Whether the owner cannot be deleted before this object."),
    },
    required=("apiVersion", "kind", "name", "uid"),
)
_MANAGED_FIELDS_ENTRY: Final = _object(
    "Which fields a manager owns, recorded by the API server on every write.",
    {
        "manager": _str("The name of the workflow that wrote the fields."),
        "operation": _str("Apply or Update: the kind of write that last touched these fields."),
        "apiVersion": _str("The version the fields were written through."),
        "time": _time("When the manager last changed its fields."),
        "fieldsType": _str("The format of fieldsV1: always FieldsV1."),
        "fieldsV1": {"description": "The set of fields owned, as a tree.", "type": "object"},
        "subresource": _str("The subresource the write went through, if any."),
    },
)
OBJECT_META: Final = _object(
    "ObjectMeta is metadata that all persisted resources must have.",
    {
        "name": _str("Name must be unique within a namespace. Cannot be updated."),
        "generateName": _str("A prefix the server completes into a unique name when name is not given."),
        "namespace": _str("The namespace the object lives in; empty for cluster-scoped objects."),
        "uid": _str("The server-assigned unique identifier of this object in time and space."),
        "resourceVersion": _str("The version of this object, for optimistic concurrency and watches."),
        "generation": {"description": "A sequence number of the desired state's changes.", "type": "integer"},
        "creationTimestamp": _time("When this object was created."),
        "deletionTimestamp": _time("When this object will be deleted, once its finalizers are done."),
        "deletionGracePeriodSeconds": {"description": "Seconds allowed to terminate.", "type": "integer"},
        "labels": _string_map("Map of string keys and values to organize and select objects."),
        "annotations": _string_map("Unstructured key value map set by external tools; not queryable."),
        "ownerReferences": _list_of("Objects this object depends on.", _OWNER_REFERENCE, keys=("uid",)),
        "finalizers": _strings(
            "Must be empty before the object is deleted from the registry.", list_type="set"
        ),
        "managedFields": _list_of("Which manager owns which fields.", _MANAGED_FIELDS_ENTRY),
    },
)
LIST_META: Final = _object(
    "ListMeta describes metadata that synthetic resources must have, including lists.",
    {
        "resourceVersion": _str("The version of the list, to watch from."),
        "continue": _str("Set when more items can be listed with this token."),
    },
)

_CONDITION_FIELDS: Final = {
    "type": _str("Type of condition."),
    "status": _str("Status of the condition: True, False or Unknown."),
    "reason": _str("Unique, one-word, CamelCase reason for the condition's last transition."),
    "message": _str("Human-readable message indicating details about the last transition."),
    "lastTransitionTime": _time("Last time the condition changed from one status to another."),
}


def _conditions(description: str, **extra: Schema) -> Schema:
    item = _object("One condition.", {**_CONDITION_FIELDS, **extra}, required=("type", "status"))
    return _list_of(description, item, keys=("type",))


_RESOURCES: Final = _object(
    "Compute resources required by this container.",
    {
        "limits": _quantities("The most compute resources allowed, e.g. nvidia.com/gpu: 8."),
        "requests": _quantities("The least compute resources required; the scheduler places by these."),
    },
)
_CONTAINER_PORT: Final = _object(
    "A network port in a single container.",
    {
        "name": _str("An IANA_SVC_NAME unique within the pod."),
        "containerPort": _int("Number of port to expose on the pod's IP address."),
        "protocol": _str("UDP, TCP, or SCTP. Defaults to TCP.", default="TCP"),
    },
    required=("containerPort",),
)
_ENV_VAR: Final = _object(
    "An environment variable present in a container.",
    {"name": _str("Name of the environment variable."), "value": _str("Its value.")},
    required=("name",),
)
_CONTAINER: Final = _object(
    "A single application container to run within a pod.",
    {
        "name": _str("Name of the container, unique within the pod (DNS_LABEL)."),
        "image": _str("Container image name."),
        "command": _strings("Entrypoint array; the image's ENTRYPOINT is used if not given."),
        "args": _strings("Arguments to the entrypoint."),
        "env": _list_of("Environment variables to set in the container.", _ENV_VAR, keys=("name",)),
        "ports": _list_of(
            "Ports to expose from the container.", _CONTAINER_PORT, keys=("containerPort", "protocol")
        ),
        "resources": _RESOURCES,
        "imagePullPolicy": _str("Always, Never or IfNotPresent."),
        "workingDir": _str("Container's working directory."),
    },
    required=("name",),
)
_TOLERATION: Final = _object(
    "Lets the pod run on nodes with a matching taint.",
    {
        "key": _str("The taint key the toleration applies to; empty matches all keys."),
        "operator": _str("Exists or Equal (the default)."),
        "value": _str("The taint value the toleration matches."),
        "effect": _str("The taint effect to match: NoSchedule, PreferNoSchedule or NoExecute."),
        "tolerationSeconds": {"description": "How long a NoExecute taint is tolerated.", "type": "integer"},
    },
)
_POD_SPEC: Final = _object(
    "The specification of the desired behavior of the pod.",
    {
        "containers": _list_of("Containers belonging to the pod.", _CONTAINER, keys=("name",)),
        "initContainers": _list_of(
            "Containers run to completion before the others start.", _CONTAINER, keys=("name",)
        ),
        "nodeName": _str("The node the pod is bound to; set by binding."),
        "nodeSelector": _string_map("Labels a node must have for the pod to fit on it."),
        "schedulerName": _str("The scheduler that places this pod; default-scheduler if not given."),
        "priorityClassName": _str("The name of the pod's PriorityClass."),
        "priority": _int("The priority value; higher runs first."),
        "restartPolicy": _str("Always, OnFailure or Never."),
        "terminationGracePeriodSeconds": {"description": "Seconds to stop gracefully.", "type": "integer"},
        "tolerations": _list_of("The pod's tolerations.", _TOLERATION),
        "schedulingGates": _list_of(
            "Gates that keep the pod from being scheduled while any remains.",
            _object("A scheduling gate.", {"name": _str("Name of the gate.")}, required=("name",)),
            keys=("name",),
        ),
        "volumes": _list_of(
            "Volumes that can be mounted by containers.",
            _object("A named volume.", {"name": _str("Volume's name.")}, required=("name",)),
            keys=("name",),
        ),
    },
    required=("containers",),
)
_POD_STATUS: Final = _object(
    "The most recently observed status of the pod.",
    {
        "phase": _str("Pending, Running, Succeeded, Failed or Unknown."),
        "conditions": _conditions("Current service state of the pod.", lastProbeTime=_time("Last probed.")),
        "hostIP": _str("IP address of the host the pod runs on."),
        "podIP": _str("IP address allocated to the pod."),
        "startTime": _time("When the kubelet acknowledged the pod."),
        "qosClass": _str("Guaranteed, Burstable or BestEffort."),
        "message": _str("Why the pod is in this condition."),
        "reason": _str("A brief CamelCase reason for the pod's state."),
    },
)
_NODE_SPEC: Final = _object(
    "The specification of the node.",
    {
        "unschedulable": _bool("Whether new pods may be placed on the node."),
        "taints": _list_of(
            "Taints that repel pods without a matching toleration.",
            _object(
                "A taint.",
                {"key": _str("Taint key."), "value": _str("Taint value."), "effect": _str("Taint effect.")},
                required=("key", "effect"),
            ),
        ),
        "podCIDR": _str("The pod IP range assigned to the node."),
        "providerID": _str("ID of the node assigned by the cloud provider."),
    },
)
_NODE_STATUS: Final = _object(
    "The most recently observed status of the node.",
    {
        "capacity": _quantities("Total resources of the node."),
        "allocatable": _quantities("Resources of the node available for scheduling."),
        "conditions": _conditions("Conditions of the node: Ready, MemoryPressure, ..."),
        "addresses": _list_of(
            "Addresses reachable to the node.",
            _object("An address.", {"type": _str("Address type."), "address": _str("The address.")}),
            keys=("type",),
        ),
        "nodeInfo": {"description": "General information about the node.", "type": "object"},
    },
)
_SERVICE_SPEC: Final = _object(
    "The behavior of the service.",
    {
        "selector": _string_map("The labels of the pods traffic is routed to."),
        "ports": _list_of(
            "The ports the service exposes.",
            _object(
                "A service port.",
                {
                    "name": _str("Name of the port within the service."),
                    "port": _int("The port the service exposes."),
                    "targetPort": {
                        "description": "Number or name of the pods' port.",
                        "x-kubernetes-int-or-string": True,
                    },
                    "protocol": _str("TCP, UDP or SCTP. Defaults to TCP.", default="TCP"),
                },
                required=("port",),
            ),
            keys=("port", "protocol"),
        ),
        "type": _str("ClusterIP, NodePort, LoadBalancer or ExternalName."),
        "clusterIP": _str("The IP address of the service."),
    },
)
_EVENT_FIELDS: Final = {
    "involvedObject": _object(
        "The object this event is about.",
        {"kind": _str("Kind."), "name": _str("Name."), "namespace": _str("Namespace."), "uid": _str("UID.")},
    ),
    "reason": _str("A short, machine understandable string of why the event happened."),
    "message": _str("A human-readable description of the status of this operation."),
    "type": _str("Normal or Warning."),
    "count": _int("The number of times this event has occurred."),
    "firstTimestamp": _time("When the event was first recorded."),
    "lastTimestamp": _time("When the event most recently occurred."),
    "source": _object(
        "The component reporting this event.", {"component": _str("Component."), "host": _str("Node.")}
    ),
}


def _kind(description: str, properties: Schema, *, required: tuple[str, ...] = ()) -> Schema:
    return _object(description, properties, required=required)


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
                "spec": _object(
                    "Spec of the namespace.", {"finalizers": _strings("Finalizers of the namespace.")}
                ),
                "status": _object(
                    "Status of the namespace.",
                    {
                        "phase": _str("Active or Terminating."),
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
                "spec": _object(
                    "Specification of the lease.",
                    {
                        "holderIdentity": _str("The identity of the holder of a current lease."),
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
                "note": _str("A human-readable description of the status of this operation."),
                "type": _EVENT_FIELDS["type"],
                "regarding": _EVENT_FIELDS["involvedObject"],
                "eventTime": _time("When the event was first observed."),
                "reportingController": _str("The controller that emitted the event."),
                "action": _str("What action was taken or failed regarding the regarding object."),
            },
        ),
        ("apiextensions.k8s.io", "CustomResourceDefinition"): _kind(
            "CustomResourceDefinition represents a resource that should be exposed on the API server.",
            {
                "spec": _object(
                    "The resource the CRD defines.",
                    {
                        "group": _str("The API group of the defined custom resource."),
                        "names": {"description": "The resource and kind names.", "type": "object"},
                        "scope": _str("Cluster or Namespaced."),
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
