"""The MIG (Multi-Instance GPU) profiles aisched knows, per GPU model.

A MIG-capable GPU has 8 memory slices and 7 compute slices. A profile `<c>g.<m>gb` takes `c`
compute slices and a run of memory slices that may start only at fixed positions. The table
follows NVIDIA's MIG user guide ("Supported MIG Profiles"); `+me` profiles add the media engines
and are otherwise the 1g profile. The scheduler places instances on the 8-slot mask with these
sizes and start positions; the API uses the names to refuse unknown profiles at admission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aisched.api.objects import decimal

__all__ = [
    "MIG_COMPUTE_SLICES",
    "MIG_MEMORY_SLOTS",
    "MIG_PROFILES",
    "MIG_PROFILE_NAMES",
    "MigAnnotation",
    "MigProfile",
    "mig_compute_slices",
    "mig_profiles_for",
]

MIG_MEMORY_SLOTS: Final = 8


@dataclass(frozen=True, kw_only=True)
class MigProfile:
    """One GPU instance profile on one GPU model."""

    gpu_model: str
    name: str
    compute_slices: int
    memory_slots: int
    memory_gib: float
    starts: tuple[int, ...]
    media_extensions: bool = False

    def fits_at(self, start: int) -> bool:
        """Whether an instance of this profile may begin at memory slot `start`."""
        return start in self.starts

    def slots_at(self, start: int) -> int:
        """The memory slots an instance beginning at `start` holds, as an 8-bit mask (bit i: slot i)."""
        return ((1 << self.memory_slots) - 1) << start


def _family(model: str, mem: tuple[str, str, str, str, str], gib: tuple[float, ...]) -> list[MigProfile]:
    # mem: the memory parts of the 1g (one slot), 1g (two slots), 2g, 3g/4g and 7g profile names.
    one, one_big, two, half, full = mem
    p = gib
    return [
        MigProfile(
            gpu_model=model,
            name=f"1g.{one}gb",
            compute_slices=1,
            memory_slots=1,
            memory_gib=p[0],
            starts=(0, 1, 2, 3, 4, 5, 6),
        ),
        MigProfile(
            gpu_model=model,
            name=f"1g.{one}gb+me",
            compute_slices=1,
            memory_slots=1,
            memory_gib=p[0],
            starts=(0, 1, 2, 3, 4, 5, 6),
            media_extensions=True,
        ),
        MigProfile(
            gpu_model=model,
            name=f"1g.{one_big}gb",
            compute_slices=1,
            memory_slots=2,
            memory_gib=p[1],
            starts=(0, 2, 4, 6),
        ),
        MigProfile(
            gpu_model=model,
            name=f"2g.{two}gb",
            compute_slices=2,
            memory_slots=2,
            memory_gib=p[1],
            starts=(0, 2, 4),
        ),
        MigProfile(
            gpu_model=model,
            name=f"3g.{half}gb",
            compute_slices=3,
            memory_slots=4,
            memory_gib=p[2],
            starts=(0, 4),
        ),
        MigProfile(
            gpu_model=model,
            name=f"4g.{half}gb",
            compute_slices=4,
            memory_slots=4,
            memory_gib=p[2],
            starts=(0,),
        ),
        MigProfile(
            gpu_model=model,
            name=f"7g.{full}gb",
            compute_slices=7,
            memory_slots=8,
            memory_gib=p[3],
            starts=(0,),
        ),
    ]


MIG_PROFILES: Final[dict[str, tuple[MigProfile, ...]]] = {
    model: tuple(profiles)
    for model, profiles in {
        "A100-40GB": _family("A100-40GB", ("5", "10", "10", "20", "40"), (4.75, 9.75, 19.62, 39.38)),
        "A100-80GB": _family("A100-80GB", ("10", "20", "20", "40", "80"), (9.75, 19.62, 39.38, 79.0)),
        "H100-80GB": _family("H100-80GB", ("10", "20", "20", "40", "80"), (9.75, 19.62, 39.38, 79.0)),
        "H200-141GB": _family("H200-141GB", ("18", "35", "35", "71", "141"), (17.5, 34.75, 70.5, 140.0)),
    }.items()
}

#: Every profile name any known model offers, sorted: the enum of `spec.gpu.migProfile`.
MIG_PROFILE_NAMES: Final[tuple[str, ...]] = tuple(
    sorted({p.name for profiles in MIG_PROFILES.values() for p in profiles})
)


#: The compute slices of a whole MIG-capable GPU.
MIG_COMPUTE_SLICES: Final = 7

#: The compute slices each profile takes, by name (the same on every model that offers it).
_COMPUTE_SLICES: Final = {p.name: p.compute_slices for profiles in MIG_PROFILES.values() for p in profiles}


def mig_compute_slices(name: str) -> int:
    """The compute slices an instance of profile `name` takes; ValueError for an unknown profile."""
    try:
        return _COMPUTE_SLICES[name]
    except KeyError:
        raise ValueError(f"unknown MIG profile {name!r}") from None


def mig_profiles_for(model: str) -> dict[str, MigProfile]:
    """The profiles of `model` by name; empty for a model without MIG."""
    return {p.name: p for p in MIG_PROFILES.get(model, ())}


@dataclass(frozen=True, kw_only=True)
class MigAnnotation:
    """The `aisched.io/mig` annotation: a profile asked for, or (once bound) where it was placed.

    A pending pod carries the profile alone (`3g.40gb`); the binding writes
    `<device>:<profile>@<start>` (`GPU-8f3c…:3g.40gb@4`), the device being the GPU's UUID (its
    index when the node published no topology) and `start` the first memory slot of the instance.
    """

    profile: str
    device: str | None = None
    start: int | None = None

    def __str__(self) -> str:
        if self.device is None or self.start is None:
            return self.profile
        return f"{self.device}:{self.profile}@{self.start}"

    @classmethod
    def parse(cls, text: str) -> MigAnnotation:
        """The annotation's parts; a `ValueError` names what is malformed."""
        raw = text.strip()
        if "@" not in raw:
            if not raw or ":" in raw:
                raise ValueError(
                    f"MIG annotation {text!r} is neither a profile nor <device>:<profile>@<start>"
                )
            return cls(profile=raw)
        placed, _, start = raw.rpartition("@")
        device, colon, profile = placed.rpartition(":")
        slot = decimal(start)
        if not colon or not device or not profile or slot is None or slot >= MIG_MEMORY_SLOTS:
            raise ValueError(f"MIG annotation {text!r} is not <device>:<profile>@<start slot 0-7>")
        return cls(profile=profile, device=device, start=slot)
