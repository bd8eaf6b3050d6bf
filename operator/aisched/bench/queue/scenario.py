"""The burst: whole-node AIJobs that fill the cluster exactly, wave after wave. Pure: no I/O, and
the random numbers come from the seed given.

Each wave is a random partition of the nodes into 2 to 9 jobs (fewer on a tiny cluster), so in
submission order every wave's jobs together take every node once. A FIFO queue then runs the
waves one after the other: the ideal makespan is `waves × run_seconds`. Every other wave puts its
biggest job last, so that the small jobs of the next wave could fit beside what still runs and
jump ahead of it; a queue that lets them does not fill the cluster when that big job's turn comes.

Job names are random words, so that an order by name is no order at all.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Final

from aisched.emulator.kubelet import whole_node_template
from aisched.topology.machines import MACHINES

__all__ = ["GPUS_PER_NODE", "Burst", "BurstJob", "aijob_manifest", "burst"]

#: The emulated machine's GPUs (a DGX H100): each pod of the burst asks for all of them.
GPUS_PER_NODE: Final = MACHINES["dgx-h100"].gpu_count
_MIN_PER_WAVE: Final = 2
_MAX_PER_WAVE: Final = 9
_NAME_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz"
_NAME_LENGTH: Final = 6


@dataclass(frozen=True)
class BurstJob:
    """One AIJob of the burst: `size` pods of one whole node each, submitted `index`-th (from 0)."""

    name: str
    index: int
    wave: int
    size: int


@dataclass(frozen=True)
class Burst:
    nodes: int
    waves: int
    run_seconds: float  #: how long each pod runs
    seed: int
    jobs: tuple[BurstJob, ...]  #: in submission order

    @property
    def pods(self) -> int:
        return sum(job.size for job in self.jobs)

    @property
    def ideal_makespan_s(self) -> float:
        """The waves back to back: what a FIFO queue that binds at once would take."""
        return self.waves * self.run_seconds

    @property
    def runtime_limit_seconds(self) -> int:
        """The limit a user would give: twice the run time, whole seconds."""
        return math.ceil(2 * self.run_seconds)


def burst(*, nodes: int, waves: int, run_seconds: float, seed: int) -> Burst:
    """The burst for a cluster of `nodes` nodes; the same arguments give the same burst."""
    if nodes < 1 or waves < 1 or run_seconds <= 0:
        raise ValueError("nodes, waves and the run time must be positive")
    rng = random.Random(seed)
    jobs: list[BurstJob] = []
    names: set[str] = set()
    for wave in range(waves):
        sizes = _partition(rng, nodes)
        rng.shuffle(sizes)
        if wave % 2 == 1:  # the biggest last: the next wave's small jobs could pass it
            sizes.append(sizes.pop(sizes.index(max(sizes))))
        for size in sizes:
            jobs.append(BurstJob(name=_fresh_name(rng, names), index=len(jobs), wave=wave, size=size))
    return Burst(nodes=nodes, waves=waves, run_seconds=run_seconds, seed=seed, jobs=tuple(jobs))


def _partition(rng: random.Random, nodes: int) -> list[int]:
    """`nodes` cut at random into 2..9 parts of at least one node (fewer parts if fewer nodes)."""
    parts = min(nodes, rng.randint(_MIN_PER_WAVE, _MAX_PER_WAVE))
    cuts = sorted(rng.sample(range(1, nodes), parts - 1))
    return [b - a for a, b in itertools.pairwise([0, *cuts, nodes])]


def _fresh_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = "burst-" + "".join(rng.choices(_NAME_ALPHABET, k=_NAME_LENGTH))
        if name not in taken:
            taken.add(name)
            return name


def aijob_manifest(job: BurstJob, burst: Burst, *, namespace: str) -> dict[str, Any]:
    """The AIJob of `job`: one role of `job.size` pods, each asking for a whole node and ended by the
    simulated kubelet after the burst's run time; no restart, so a failure shows as one."""
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": job.name, "namespace": namespace},
        "spec": {
            "runtimeLimitSeconds": burst.runtime_limit_seconds,
            "restart": {"policy": "Never"},
            "replicas": [
                {
                    "name": "worker",
                    "count": job.size,
                    "template": whole_node_template(f"{burst.run_seconds:g}", gpus=GPUS_PER_NODE),
                }
            ],
        },
    }
