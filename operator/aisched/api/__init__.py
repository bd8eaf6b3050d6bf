"""The aisched.io/v1alpha1 API: AIJob, TenantQuota and GPUNodeTopology as pydantic models; and
`objects`, the typed views through which the shell reads any API object as the wire delivers it
(metadata, keys, a pod's phase and end, Kubernetes timestamps).

Pure data and validation: imports pydantic (and PyYAML to write CRDs), no I/O beyond
`crd.write_crds`, no clock. The CRDs in crds/ are generated from these models, and every
cross-field rule is stated once (`meta.Rule`) for both pydantic and the API server's CEL.
"""

from __future__ import annotations

from aisched.api.aijob import (
    AIJob,
    AIJobSpec,
    AIJobStatus,
    CheckpointSpec,
    ElasticSpec,
    GangSpec,
    GPUSpec,
    PodPlacement,
    ReplicaSpec,
    RestartSpec,
    TopologySpec,
)
from aisched.api.gpunodetopology import (
    GPUDevice,
    GPUNodeTopology,
    GPUNodeTopologySpec,
    GPUNodeTopologyStatus,
    GPUPair,
    MigInstance,
    NVLink,
)
from aisched.api.meta import API_VERSION, GROUP, VERSION, Condition, ObjectMeta, Resource, Rule
from aisched.api.mig import MIG_PROFILE_NAMES, MIG_PROFILES, MigProfile, mig_profiles_for
from aisched.api.pod import Container, Pod, PodSpec, PodTemplateSpec
from aisched.api.quantity import Quantity, QuantityError
from aisched.api.tenantquota import (
    PreemptionSpec,
    ResourceQuota,
    TenantQuota,
    TenantQuotaSpec,
    TenantQuotaStatus,
)
from aisched.api.validation import KIND_MODELS, FieldError, InvalidObjectError, parse, validate_manifest

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND_MODELS",
    "MIG_PROFILES",
    "MIG_PROFILE_NAMES",
    "VERSION",
    "AIJob",
    "AIJobSpec",
    "AIJobStatus",
    "CheckpointSpec",
    "Condition",
    "Container",
    "ElasticSpec",
    "FieldError",
    "GPUDevice",
    "GPUNodeTopology",
    "GPUNodeTopologySpec",
    "GPUNodeTopologyStatus",
    "GPUPair",
    "GPUSpec",
    "GangSpec",
    "InvalidObjectError",
    "MigInstance",
    "MigProfile",
    "NVLink",
    "ObjectMeta",
    "Pod",
    "PodPlacement",
    "PodSpec",
    "PodTemplateSpec",
    "PreemptionSpec",
    "Quantity",
    "QuantityError",
    "ReplicaSpec",
    "Resource",
    "ResourceQuota",
    "RestartSpec",
    "Rule",
    "TenantQuota",
    "TenantQuotaSpec",
    "TenantQuotaStatus",
    "TopologySpec",
    "mig_profiles_for",
    "parse",
    "validate_manifest",
]
