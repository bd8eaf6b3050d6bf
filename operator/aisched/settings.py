"""Settings of the aisched process: one pydantic model per concern, composed into `Settings`.

Every field can be set from the environment as `AISCHED_<SECTION>__<FIELD>` (for example
`AISCHED_LOGGING__LEVEL=DEBUG`, `AISCHED_METRICS__PORT=9090`). An `AISCHED_` variable that names
no setting is an error, so a typo is reported instead of silently ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from aisched.queue.policy import QueueingPolicy
    from aisched.topology.node import DomainLabels

__all__ = [
    "ENV_PREFIX",
    "LeaderElectionSettings",
    "LoggingSettings",
    "MetricsSettings",
    "QueueingSettings",
    "SchedulerSettings",
    "Settings",
    "SettingsError",
    "bind_address",
    "load_settings",
]

ENV_PREFIX: Final = "AISCHED_"
_NESTING: Final = "__"
#: One label of a host name (RFC 1123).
_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def bind_address(value: str) -> str:
    """`value` if a server can be told to listen on it: an IPv4 or IPv6 address (`0.0.0.0` and `::`
    mean every interface) or a host name; a ValueError saying what was expected otherwise."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    if len(value) <= 253 and all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit():
        return value
    raise ValueError(
        f"{value!r} is not an address to listen on: expected an IP address (0.0.0.0 or :: for every"
        " interface, 127.0.0.1 or ::1 for this machine only) or a host name, without a port"
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoggingSettings(_Section):
    """How the process logs: JSON lines in a cluster, readable lines at a terminal."""

    #: `auto` picks `json` when stderr is not a terminal or the process runs in a pod.
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class MetricsSettings(_Section):
    """Where Prometheus metrics and the health endpoints are served."""

    #: The address the server listens on: every interface by default (a pod's probes and the
    #: Prometheus scraper come from outside it); `aisched run --emulator` and the demo use 127.0.0.1.
    host: Annotated[str, AfterValidator(bind_address)] = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080


class LeaderElectionSettings(_Section):
    """The Lease the scheduler's replicas compete for; only its holder schedules and binds."""

    enabled: bool = True
    namespace: str = "aisched-system"
    name: str = "aisched-scheduler"
    lease_duration: Annotated[int, Field(ge=2, le=3600)] = 15
    renew_deadline: Annotated[float, Field(gt=0)] = 10.0
    retry_period: Annotated[float, Field(gt=0)] = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElectionSettings:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        return self


class SchedulerSettings(_Section):
    """How fast the scheduler may write Bindings, and which pods are its own."""

    scheduler_name: str = "aisched"
    #: Binding POSTs in flight, and their rate across all gangs (token bucket).
    bind_concurrency: Annotated[int, Field(ge=1, le=1024)] = 64
    bind_qps: Annotated[float, Field(gt=0)] = 1000.0
    bind_burst: Annotated[int, Field(ge=1)] = 2000
    #: Pods the AIJob controller creates, across all jobs (token bucket): a large job is made
    #: at this pace, in batches, so it cannot starve the API server or the other jobs.
    pod_create_qps: Annotated[float, Field(gt=0)] = 200.0
    pod_create_burst: Annotated[int, Field(ge=1)] = 400
    #: The job frameworks whose gangs pods of ours join (`aisched.queue.frameworks`), comma-separated;
    #: "" for none. Each but leaderworkerset costs one list+watch of that framework's objects.
    gang_frameworks: str = "coscheduling,volcano,podgroup,workload,leaderworkerset,jobset,raycluster,job"

    @field_validator("gang_frameworks")
    @classmethod
    def _frameworks(cls, value: str) -> str:
        from aisched.queue.frameworks import NAMES  # noqa: PLC0415 - see `QueueingSettings.policy`

        unknown = sorted({n.strip() for n in value.split(",") if n.strip()} - NAMES)
        if unknown:
            known = ", ".join(sorted(NAMES))
            raise ValueError(f"unknown job framework(s) {', '.join(unknown)}; known: {known}")
        return value

    def frameworks(self) -> frozenset[str]:
        """`gang_frameworks` as a set of names."""
        return frozenset(n.strip() for n in self.gang_frameworks.split(",") if n.strip())


class QueueingSettings(_Section):
    """The cluster's default queueing for tenants whose TenantQuota leaves it unset, and for
    namespaces no TenantQuota lists (each such namespace is its own queue)."""

    #: `api.tenantquota.QueueingStrategy`, spelled out: these settings import no API models.
    strategy: Literal["StrictFIFO", "BestEffortFIFO"] = "BestEffortFIFO"
    #: Hold the nodes a blocked head of a queue will start on (EASY backfill around them).
    reservation: bool = True
    #: Aging: every `aging_interval_seconds` of waiting adds `aging_step` to a gang's queue
    #: priority, at most `aging_max_boost`, never into the next band of `priority_band_width`.
    aging_interval_seconds: Annotated[int, Field(ge=0)] = 60
    aging_step: Annotated[int, Field(ge=1)] = 1
    aging_max_boost: Annotated[int, Field(ge=0)] = 100
    priority_band_width: Annotated[int, Field(ge=1)] = 1000
    #: How often a waiting AIJob's place in its queue is looked up again for its status.
    status_every_seconds: Annotated[float, Field(gt=0)] = 10.0

    def policy(self) -> QueueingPolicy:
        """The scheduler's default queue policy (imported here: the node agent and the logging
        setup read these settings without the scheduling core)."""
        from aisched.queue.policy import QueueingPolicy  # noqa: PLC0415

        return QueueingPolicy(
            strategy=self.strategy,
            reservation=self.reservation,
            aging_interval=float(self.aging_interval_seconds),
            aging_step=self.aging_step,
            aging_max_boost=self.aging_max_boost,
            band_width=self.priority_band_width,
        )


class FailureSettings(_Section):
    """How fast a fault under running pods ends them (`controllers.scheduling.faults`)."""

    #: A node whose Ready condition has been False or Unknown this long has failed.
    detection_seconds: Annotated[float, Field(ge=0, le=3600)] = 10.0
    #: A node a fault ended pods on gets nothing new placed on it for this long.
    node_cooldown_seconds: Annotated[float, Field(ge=0, le=86400)] = 300.0


class TenancySettings(_Section):
    """Who a job belongs to (`aisched.quota.tenancy`): namespaces no TenantQuota lists are `Allow`ed
    (run unlimited, charged to no one: a single-team cluster), `Deny`ed, or given to the tenant
    named here."""

    unlisted_namespaces: str = "Allow"

    @field_validator("unlisted_namespaces")
    @classmethod
    def _unlisted(cls, value: str) -> str:
        from aisched.quota.tenancy import check_unlisted  # noqa: PLC0415 - see `QueueingSettings.policy`

        return check_unlisted(value)


class TopologySettings(_Section):
    """The node labels the topology levels above the node come from, widest first: a cluster's own
    network labels (`network.topology.nvidia.com/spine`, `.../leaf`, a cloud's topology block
    labels) instead of `aisched.io/block` and `aisched.io/rack`. An AIJob's `topology.level:
    block|rack` then means "nodes sharing that label's value"."""

    block_label: str = "aisched.io/block"
    rack_label: str = "aisched.io/rack"

    @field_validator("block_label", "rack_label")
    @classmethod
    def _label_key(cls, value: str) -> str:
        from aisched.api.meta import QUALIFIED_NAME_PATTERN  # noqa: PLC0415 - see `QueueingSettings.policy`

        prefix, _, name = value.rpartition("/")
        if len(prefix) > 253 or len(name) > 63 or not re.fullmatch(QUALIFIED_NAME_PATTERN, value):
            raise ValueError(f"{value!r} is not a node label key (such as network.topology.nvidia.com/leaf)")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> TopologySettings:
        if self.block_label == self.rack_label:
            raise ValueError(f"block_label and rack_label are both {self.block_label!r}: one label per level")
        return self

    def domains(self) -> DomainLabels:
        from aisched.topology.node import DomainLabels  # noqa: PLC0415 - see `QueueingSettings.policy`

        return DomainLabels(block=self.block_label, rack=self.rack_label)


class Settings(_Section):
    """All settings of the aisched process."""

    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    leader_election: LeaderElectionSettings = Field(default_factory=LeaderElectionSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    queueing: QueueingSettings = Field(default_factory=QueueingSettings)
    tenancy: TenancySettings = Field(default_factory=TenancySettings)
    failures: FailureSettings = Field(default_factory=FailureSettings)
    topology: TopologySettings = Field(default_factory=TopologySettings)


class SettingsError(ValueError):
    """The environment holds settings that do not exist or do not parse."""


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from the models' defaults, then `defaults` by section (a command's own, e.g. a local
    run's), then `AISCHED_...` variables of `environ`, then `overrides` by section."""
    env = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {section: dict(values) for section, values in (defaults or {}).items()}
    sections = Settings.model_fields
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, sep, field = name[len(ENV_PREFIX) :].lower().partition(_NESTING)
        model = sections.get(section)
        if not sep or model is None or model.annotation is None or field not in model.annotation.model_fields:
            raise SettingsError(
                f"{name} names no setting (expected {ENV_PREFIX}<SECTION>__<FIELD>, e.g. "
                f"{ENV_PREFIX}LOGGING__LEVEL)"
            )
        raw.setdefault(section, {})[field] = value
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(problems) from None
