"""Profiles: which plugins run at each extension point, with what weights and arguments.

A profile is configuration (pydantic), so it loads from YAML and is validated before the
scheduler starts. The defaults are the operator's: gang completeness and quota admission, fair
share between tenants, preemption of whole gangs, topology-aware scoring.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from aisched.api import keys

__all__ = ["Profile", "ScorePluginRef"]


class ScorePluginRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    weight: Annotated[int, Field(ge=1, le=100)] = 1


class Profile(BaseModel):
    """The plugins of one scheduler name, by extension point, in the order they run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheduler_name: str = keys.SCHEDULER_NAME
    queue_sort: str = "FairShare"
    pre_filter: tuple[str, ...] = ("Gang", "Quota", "Reservation")
    filter: tuple[str, ...] = (
        "NodeUnschedulable",
        "TaintToleration",
        "NodeAffinity",
        "GPUModel",
        "ResourceFit",
        "GPUHealth",
        "GPUSharing",
        "Reservation",
    )
    post_filter: tuple[str, ...] = ("DefaultPreemption",)
    score: tuple[ScorePluginRef, ...] = (
        ScorePluginRef(name="GPUTopology", weight=2),
        ScorePluginRef(name="GPUBinPacking", weight=1),
        ScorePluginRef(name="LeastAllocated", weight=1),
        ScorePluginRef(name="GPUSharing", weight=1),
    )
    reserve: tuple[str, ...] = ()
    permit: tuple[str, ...] = ()
    #: Arguments by plugin name, passed to the plugin's factory.
    plugin_args: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Breaks ties between equally scored nodes: each node gets a fixed random priority from this
    #: seed and its name (stable as nodes come and go), and the best priority among the top scores
    #: wins. None: the lowest snapshot slot wins (slots follow node names on a fresh snapshot).
    tie_break_seed: int | None = None

    def plugin_names(self) -> list[str]:
        """Every plugin the profile uses, each once, in first-use order."""
        names = [
            self.queue_sort,
            *self.pre_filter,
            *self.filter,
            *self.post_filter,
            *(s.name for s in self.score),
            *self.reserve,
            *self.permit,
        ]
        return list(dict.fromkeys(names))
