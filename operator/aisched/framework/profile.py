"""Profiles: which plugins run at each extension point, with what weights and arguments.

One profile per schedulerName. Profiles are configuration (pydantic), so they load from YAML
and are validated before the scheduler starts.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aisched.api import keys

__all__ = ["Profile", "Profiles", "ScorePluginRef"]


class ScorePluginRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    weight: Annotated[int, Field(ge=1, le=100)] = 1


class Profile(BaseModel):
    """The plugins of one scheduler name, by extension point, in the order they run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheduler_name: str = keys.SCHEDULER_NAME
    queue_sort: str = "PrioritySort"
    pre_filter: tuple[str, ...] = ("Gang",)
    filter: tuple[str, ...] = (
        "NodeUnschedulable",
        "TaintToleration",
        "NodeAffinity",
        "GPUModel",
        "ResourceFit",
        "GPUHealth",
        "GPUSharing",
    )
    post_filter: tuple[str, ...] = ()
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


class Profiles(BaseModel):
    """Every profile the scheduler serves, one per schedulerName."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profiles: tuple[Profile, ...] = (Profile(),)

    @model_validator(mode="after")
    def _one_per_scheduler_name(self) -> Profiles:
        names = [p.scheduler_name for p in self.profiles]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"schedulerName {', '.join(duplicated)} has more than one profile")
        if not names:
            raise ValueError("at least one profile is needed")
        return self

    def for_scheduler(self, name: str) -> Profile | None:
        """The profile of pods naming `name` as their scheduler, if aisched serves that name."""
        return next((p for p in self.profiles if p.scheduler_name == name), None)
