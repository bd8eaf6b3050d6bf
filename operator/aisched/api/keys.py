"""Names that cross process boundaries: labels, annotations, resource names, the scheduler name.

Every other module imports these; none spells the strings itself.
"""

from __future__ import annotations

from typing import Final

SCHEDULER_NAME: Final = "aisched"

# Extended resources.
GPU_RESOURCE: Final = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX: Final = "nvidia.com/mig-"

# Labels aisched puts on the pods of an AIJob (and that plain pods may set to join a gang).
LABEL_JOB: Final = "aisched.io/job"
LABEL_ROLE: Final = "aisched.io/role"
LABEL_INDEX: Final = "aisched.io/index"
LABEL_GANG: Final = "aisched.io/gang"

# Annotations on pods: gang size for plain pods, GPU sharing requests, and the devices chosen.
ANNOTATION_GANG_MIN_MEMBER: Final = "aisched.io/gang-min-member"
ANNOTATION_GPUS: Final = "aisched.io/gpus"
ANNOTATION_GPU_MILLI: Final = "aisched.io/gpu-milli"
ANNOTATION_GPU_MEMORY: Final = "aisched.io/gpu-memory"
ANNOTATION_MIG: Final = "aisched.io/mig"
# Placement constraints carried on a pod (the AIJob controller copies them from the job's spec).
ANNOTATION_GPU_MODELS: Final = "aisched.io/gpu-models"  # comma-separated allowed models
ANNOTATION_TOPOLOGY_POLICY: Final = "aisched.io/topology-policy"  # Required | Preferred | None
ANNOTATION_TOPOLOGY_LEVEL: Final = "aisched.io/topology-level"  # nvlink | node | rack | block
# An AIJob's spec.priority and spec.preemptible, carried by its pods (a pod's own spec.priority,
# set from a PriorityClass, wins over the annotation).
ANNOTATION_PRIORITY: Final = "aisched.io/priority"
ANNOTATION_PREEMPTIBLE: Final = "aisched.io/preemptible"
# Preemption: the gang a victim pod makes room for (set before it is deleted), and how long a
# victim may take to checkpoint and exit (its AIJob's spec.checkpoint.gracePeriodSeconds).
ANNOTATION_PREEMPTED_BY: Final = "aisched.io/preempted-by"
ANNOTATION_PREEMPTED_AT: Final = "aisched.io/preempted-at"  # epoch seconds
ANNOTATION_CHECKPOINT_GRACE: Final = "aisched.io/checkpoint-grace-seconds"
# How a victim is told to save its state (its AIJob's spec.checkpoint.method: Signal | Annotation),
# and the annotation set on it for the Annotation method.
ANNOTATION_CHECKPOINT_METHOD: Final = "aisched.io/checkpoint-method"
ANNOTATION_CHECKPOINT_REQUESTED: Final = "aisched.io/checkpoint-requested"
# Which of the TenantQuotas listing a pod's namespace it is charged to (an AIJob's spec.tenant); a
# name no TenantQuota of its namespace has is refused (`quota.tenancy`).
ANNOTATION_TENANT: Final = "aisched.io/tenant"
# The submission order of an AIJob's pods within the same creation second: the AIJob's creation
# revision, stamped by the AIJob controller (a decimal integer). Never the name.
ANNOTATION_QUEUE_SEQUENCE: Final = "aisched.io/queue-sequence"
# How many times lost pods of the AIJob were replaced (`restart.policy: Replace`): written on every
# pod of the job, survivors included, and given to its containers as AISCHED_RENDEZVOUS_EPOCH.
ANNOTATION_RENDEZVOUS_EPOCH: Final = "aisched.io/rendezvous-epoch"
# A pod an elastic AIJob grows by, above its role's minReplicas: placed only into idle room (it
# never holds nodes for itself nor evicts anything), and the first to go when room is needed.
ANNOTATION_ELASTIC_SURPLUS: Final = "aisched.io/elastic-surplus"
#: The W3C traceparent of the AIJob's root span (`observability.tracing`), copied onto its pods.
ANNOTATION_TRACE_CONTEXT: Final = "aisched.io/trace-context"
# A class of jobs whose past run times estimate how long a new one will run (for reservations);
# the AIJob's label of the same name, copied to its pods.
LABEL_JOB_CLASS: Final = "aisched.io/job-class"

# What aisched writes on the pods it makes or binds and trusts when it reads them back: a pod
# template of an AIJob may set none of these (the job's spec says them), so no pod chooses its
# tenant, gang, priority or devices behind the spec. (The attempt annotation is the AIJob
# controller's own, `controllers.aijob.pods.ANNOTATION_ATTEMPT`.)
RESERVED_POD_KEYS: Final = frozenset(
    {
        LABEL_JOB,
        LABEL_ROLE,
        LABEL_INDEX,
        LABEL_GANG,
        LABEL_JOB_CLASS,
        ANNOTATION_GANG_MIN_MEMBER,
        ANNOTATION_GPUS,
        ANNOTATION_GPU_MILLI,
        ANNOTATION_GPU_MEMORY,
        ANNOTATION_MIG,
        ANNOTATION_GPU_MODELS,
        ANNOTATION_TOPOLOGY_POLICY,
        ANNOTATION_TOPOLOGY_LEVEL,
        ANNOTATION_PRIORITY,
        ANNOTATION_PREEMPTIBLE,
        ANNOTATION_PREEMPTED_BY,
        ANNOTATION_PREEMPTED_AT,
        ANNOTATION_CHECKPOINT_GRACE,
        ANNOTATION_CHECKPOINT_METHOD,
        ANNOTATION_CHECKPOINT_REQUESTED,
        ANNOTATION_TENANT,
        ANNOTATION_QUEUE_SEQUENCE,
        ANNOTATION_RENDEZVOUS_EPOCH,
        ANNOTATION_ELASTIC_SURPLUS,
        ANNOTATION_TRACE_CONTEXT,
        "aisched.io/attempt",
    }
)

# Node labels that place a node in the topology domains above it.
LABEL_RACK: Final = "aisched.io/rack"
LABEL_BLOCK: Final = "aisched.io/block"
LABEL_GPU_PRODUCT: Final = "nvidia.com/gpu.product"
LABEL_GPU_COUNT: Final = "nvidia.com/gpu.count"
LABEL_GPU_MEMORY: Final = "nvidia.com/gpu.memory"

# A running pod ended by a fault under it (`controllers.scheduling.faults`): its DisruptionTarget
# condition says which, and the AIJob controller counts it as failed at once.
CONDITION_DISRUPTION: Final = "DisruptionTarget"
REASON_NODE_NOT_READY: Final = "NodeNotReady"
REASON_NODE_LOST: Final = "NodeLost"
REASON_GPU_UNHEALTHY: Final = "GPUUnhealthy"
FAULT_REASONS: Final = frozenset({REASON_NODE_NOT_READY, REASON_NODE_LOST, REASON_GPU_UNHEALTHY})
