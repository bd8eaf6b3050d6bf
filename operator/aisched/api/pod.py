"""The parts of a pod template and of plain pods that aisched reads.

An AIJob embeds pod templates; aisched needs their containers' resource requests to know what a
gang asks for. The rest of the template is carried through untouched (the API server checks it
when the pods are created), so these models allow unknown fields below `spec`.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field

from aisched.api import keys
from aisched.api.meta import K8sModel, QualifiedName, Rule, SpecModel
from aisched.api.quantity import NonNegativeQuantity, Quantity

__all__ = [
    "Container",
    "Pod",
    "PodMeta",
    "PodSpec",
    "PodTemplateSpec",
    "ResourceList",
    "ResourceRequirements",
    "TemplateMeta",
]


#: Resource name → quantity. Bounded so that CEL rules iterating it have a bounded cost.
_POSITIVE_INT: Final = re.compile(r"[1-9][0-9]{0,8}")

ResourceList = Annotated[dict[QualifiedName, NonNegativeQuantity], Field(max_length=64)]


class ResourceRequirements(SpecModel):
    """A container's `resources`: requests and limits by resource name."""

    model_config = ConfigDict(extra="allow")

    requests: ResourceList = Field(default_factory=dict)
    limits: ResourceList = Field(default_factory=dict)

    def effective(self) -> dict[str, Quantity]:
        """What the container asks for: requests, with limits standing in where requests are unset.

        The API server defaults a missing request to its limit; extended resources such as
        `nvidia.com/gpu` may only be given as limits, so this is how GPUs are read.
        """
        merged: dict[str, Quantity] = dict(self.limits)
        merged.update(self.requests)
        return merged


class Container(SpecModel):
    """One container: its name, image and resources are checked; the rest is passed through."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(min_length=1, max_length=63)]
    image: Annotated[str, Field(min_length=1)]
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)

    __rules__ = (
        Rule(
            path="resources",
            message=f"{keys.GPU_RESOURCE} must be set in limits, and a request must equal the limit",
            cel=(
                "!has(self.resources) || !has(self.resources.requests)"
                f" || !('{keys.GPU_RESOURCE}' in self.resources.requests)"
                f" || (has(self.resources.limits) && '{keys.GPU_RESOURCE}' in self.resources.limits"
                f" && quantity(string(self.resources.requests['{keys.GPU_RESOURCE}'])).compareTo("
                f"quantity(string(self.resources.limits['{keys.GPU_RESOURCE}']))) == 0)"
            ),
            check=lambda c: (
                keys.GPU_RESOURCE not in c.resources.requests
                or c.resources.requests[keys.GPU_RESOURCE] == c.resources.limits.get(keys.GPU_RESOURCE)
            ),
        ),
        Rule(
            path="resources",
            message=f"{keys.GPU_RESOURCE} must be a whole number of GPUs",
            cel=(
                "!has(self.resources) || !has(self.resources.limits)"
                f" || !('{keys.GPU_RESOURCE}' in self.resources.limits)"
                f" || quantity(string(self.resources.limits['{keys.GPU_RESOURCE}'])).isInteger()"
            ),
            check=lambda c: (
                keys.GPU_RESOURCE not in c.resources.limits
                or c.resources.limits[keys.GPU_RESOURCE].decimal
                == c.resources.limits[keys.GPU_RESOURCE].decimal.to_integral_value()
            ),
        ),
    )

    def requests(self) -> dict[str, Quantity]:
        return self.resources.effective()


class PodSpec(SpecModel):
    """A pod spec: containers are read for their requests, everything else is kept as given."""

    model_config = ConfigDict(extra="allow")

    containers: Annotated[list[Container], Field(min_length=1, max_length=64)]
    init_containers: Annotated[list[Container], Field(max_length=64)] = Field(default_factory=list)
    scheduler_name: Annotated[str, Field(max_length=253)] | None = None
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
    priority_class_name: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)

    def requests(self) -> dict[str, Quantity]:
        """The pod's effective request, as kube-scheduler computes it.

        The sum over containers, raised per resource to the largest init container, since init
        containers run one at a time before the others start.
        """
        total: dict[str, Quantity] = {}
        for container in self.containers:
            for name, qty in container.requests().items():
                total[name] = total[name] + qty if name in total else qty
        for init in self.init_containers:
            for name, qty in init.requests().items():
                if name not in total or total[name] < qty:
                    total[name] = qty
        return total

    def gpus(self) -> int:
        """Whole GPUs the pod asks for."""
        qty = self.requests().get(keys.GPU_RESOURCE)
        return qty.value() if qty is not None else 0


def _own_keys(found: dict[str, str]) -> list[str]:
    return sorted(k for k in found if k in keys.RESERVED_POD_KEYS)


def _reserved_rule(field: str) -> Rule:
    """`field` (a template's labels or annotations) sets none of the keys aisched writes."""
    return Rule(
        path=field,
        message="aisched sets these from the AIJob's spec; a template may not",
        cel=None,
        check=lambda meta: not _own_keys(getattr(meta, field)),
        detail=lambda meta: ", ".join(_own_keys(getattr(meta, field))),
    )


# aisched writes `keys.RESERVED_POD_KEYS` from the AIJob's spec (tenant, gang, priority, GPU share)
# and at binding (devices), and trusts them for that: a template may set none of them.
class TemplateMeta(K8sModel):
    """Labels and annotations of a pod template; aisched adds its own when it creates the pods."""

    model_config = ConfigDict(extra="allow")

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    __rules__ = (_reserved_rule("annotations"), _reserved_rule("labels"))


class PodTemplateSpec(SpecModel):
    """A `PodTemplateSpec` as in a Job or Deployment."""

    metadata: TemplateMeta = Field(default_factory=TemplateMeta)
    spec: PodSpec


def _positive_int(text: str | None) -> bool:
    return text is not None and _POSITIVE_INT.fullmatch(text) is not None


def _gang_min_member_valid(pod: Pod) -> bool:
    return keys.ANNOTATION_GANG_MIN_MEMBER not in pod.metadata.annotations or _positive_int(
        pod.metadata.annotations[keys.ANNOTATION_GANG_MIN_MEMBER]
    )


def _gpu_milli_valid(pod: Pod) -> bool:
    text = pod.metadata.annotations.get(keys.ANNOTATION_GPU_MILLI)
    return text is None or (_positive_int(text) and int(text) <= 999)


class PodMeta(K8sModel):
    """Pod metadata: aisched reads the gang label and its own annotations."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Pod(K8sModel):
    """A plain pod that names aisched as its scheduler, as `aisched validate` checks it.

    Such a pod joins a gang with the label `aisched.io/gang` and says how many members the gang
    needs with the annotation `aisched.io/gang-min-member`; `aisched.io/gpu-milli` asks for part
    of one GPU. The API server knows none of this, so these rules are checked by aisched alone.
    """

    model_config = ConfigDict(extra="allow")

    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    metadata: PodMeta = Field(default_factory=PodMeta)
    spec: PodSpec

    __rules__ = (
        Rule(
            path=f"metadata.annotations[{keys.ANNOTATION_GANG_MIN_MEMBER}]",
            message="must be a positive integer",
            cel=None,
            check=_gang_min_member_valid,
        ),
        Rule(
            path=f"metadata.labels[{keys.LABEL_GANG}]",
            message=f"is required when {keys.ANNOTATION_GANG_MIN_MEMBER} is set",
            cel=None,
            check=lambda p: (
                keys.ANNOTATION_GANG_MIN_MEMBER not in p.metadata.annotations
                or bool(p.metadata.labels.get(keys.LABEL_GANG))
            ),
        ),
        Rule(
            path=f"metadata.annotations[{keys.ANNOTATION_GPU_MILLI}]",
            message="must be an integer from 1 to 999 (thousandths of one GPU)",
            cel=None,
            check=_gpu_milli_valid,
        ),
        Rule(
            path=f"metadata.annotations[{keys.ANNOTATION_GPU_MILLI}]",
            message=f"a shared-GPU pod cannot also request {keys.GPU_RESOURCE}",
            cel=None,
            check=lambda p: keys.ANNOTATION_GPU_MILLI not in p.metadata.annotations or p.spec.gpus() == 0,
        ),
    )

    def gang(self) -> str | None:
        """The gang the pod belongs to, if its label names one."""
        return self.metadata.labels.get(keys.LABEL_GANG) or None
