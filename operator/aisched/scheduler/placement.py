"""Gang placement: every member of a gang gets a node and its GPUs in one pass, or none does.

Domains nest: NVLink domain ⊂ node ⊂ rack ⊂ block ⊂ cluster. A `Required` policy confines the
gang to one domain of its level; `Preferred` walks the levels from the lowest and stops at the
first where some domain can hold the gang; `None` goes straight to the cluster. Within a level:

1. each role's *slots* per node (how many of its pods the node can take) come from the
   snapshot's columns in a few array operations;
2. each domain's capacity is one `bincount` of slots; domains that can hold every role are
   tried best fit first (the least capacity left over), so large domains stay whole;
3. inside the domain, nodes are taken most slots first (fewest nodes), the last one best fit,
   ties broken by score; a single node that holds the whole role wins outright;
4. inside a node, each pod's GPUs are a table look-up of the best-connected free set.

Roles are placed one after another against a scratch record of what earlier roles took, so a
failure of any role abandons the whole gang.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from aisched.framework.interface import Bools, Floats
from aisched.framework.runtime import Feasibility
from aisched.framework.types import LEVELS, Gang, GangPlacement, PodInfo, PodPlacement, TopologyLevel
from aisched.topology.gpuset import best_gpu_set
from aisched.topology.snapshot import Snapshot

__all__ = ["Level", "PlacementFailure", "Role", "place_gang", "plan_levels"]

Level = TopologyLevel | str  # "cluster" above the four named levels
Ints = npt.NDArray[np.int64]
#: How many candidate domains of one level are tried before the level is given up.
MAX_DOMAIN_ATTEMPTS: Final = 8
_UNLIMITED: Final = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class Role:
    """Pods of one template in a gang, with what the framework said about them."""

    pods: Sequence[PodInfo]
    feasibility: Feasibility
    score: Floats

    @property
    def template(self) -> PodInfo:
        return self.pods[0]

    @property
    def gpus(self) -> int:
        return self.template.gpus

    def needs(self, snapshot: Snapshot) -> list[tuple[int, int]]:
        """(column, amount) of every resource the role's pods request."""
        return [
            (snapshot.resource_index[name], value)
            for name, value in self.template.requests.items()
            if value > 0 and name in snapshot.resource_index
        ]


@dataclass
class PlacementFailure:
    """Why the gang found no place, in words for the user."""

    reasons: list[str] = field(default_factory=list)


def plan_levels(gang: Gang) -> list[Level]:
    """The topology levels to try, lowest first."""
    if gang.topology_policy == "Required":
        return [gang.topology_level or "node"]
    if gang.topology_policy == "None":
        return ["cluster"]
    return [*LEVELS, "cluster"]


def slots(snapshot: Snapshot, role: Role, *, nvlink: bool = False) -> Ints:
    """How many pods of `role` each node can take (0 where the role is infeasible)."""
    n = snapshot.size
    out = np.full(n, _UNLIMITED, dtype=np.int64)
    for column, value in role.needs(snapshot):
        np.minimum(out, snapshot.free[column, :n] // value, out=out)
    if role.gpus:
        if nvlink:
            per_clique = np.bitwise_count(snapshot.gpu_free[:n, None] & snapshot.gpu_cliques[:n]).max(axis=1)
            np.minimum(out, per_clique.astype(np.int64) // role.gpus, out=out)
        np.minimum(out, snapshot.gpus_free_count() // role.gpus, out=out)
    out[~role.feasibility.mask] = 0
    np.maximum(out, 0, out=out)
    return np.minimum(out, len(role.pods))


def domain_ids(snapshot: Snapshot, level: Level) -> Ints:
    """The domain of each node at `level`; nodes without a label are each a domain of their own."""
    n = snapshot.size
    own = np.arange(n, dtype=np.int64)
    if level == "cluster":
        return np.zeros(n, dtype=np.int64)
    if level == "node":
        return own
    column = {"nvlink": snapshot.fabric, "rack": snapshot.rack, "block": snapshot.block}[level][:n]
    labelled = column.astype(np.int64)
    return np.where(labelled >= 0, labelled, labelled.max(initial=-1) + 1 + own)


class _Scratch:
    """What earlier pods of this gang took, per node: resources and GPUs, not yet in the snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.taken: dict[int, dict[int, int]] = {}
        self.gpu_free: dict[int, int] = {}
        #: At the nvlink level: the NVLink clique the gang uses on each node it touches.
        self.clique: dict[int, int] = {}

    def free_gpus(self, slot: int) -> int:
        return self.gpu_free.get(slot, int(self.snapshot.gpu_free[slot]))

    def take(self, slot: int, needs: list[tuple[int, int]], gpu_mask: int) -> None:
        used = self.taken.setdefault(slot, {})
        for column, value in needs:
            used[column] = used.get(column, 0) + value
        self.gpu_free[slot] = self.free_gpus(slot) & ~gpu_mask

    def slots(self, slot: int, role: Role, needs: list[tuple[int, int]], nvlink: bool) -> int:
        """`role`'s slots on a node that earlier roles already used."""
        snapshot = self.snapshot
        used = self.taken.get(slot, {})
        count = len(role.pods)
        for column, value in needs:
            count = min(count, int(snapshot.free[column, slot] - used.get(column, 0)) // value)
        if role.gpus:
            free = self.free_gpus(slot)
            if nvlink and slot in self.clique:
                usable = (free & self.clique[slot]).bit_count()
            else:
                usable = max(_clique_capacity(snapshot, slot, free)) if nvlink else free.bit_count()
            usable -= int(snapshot.gpu_unassigned[slot])
            count = min(count, usable // role.gpus)
        return max(count, 0)


def _clique_capacity(snapshot: Snapshot, slot: int, free: int) -> list[int]:
    return [(free & int(c)).bit_count() for c in snapshot.gpu_cliques[slot] if c] or [0]


def place_gang(snapshot: Snapshot, gang: Gang, roles: Sequence[Role]) -> GangPlacement | PlacementFailure:
    """Place every pod of every role, or say why that cannot be done."""
    if (
        len(roles) == 1
        and len(roles[0].pods) == 1
        and not (gang.topology_policy == "Required" and gang.topology_level == "nvlink")
    ):
        return _place_one(snapshot, gang, roles[0])
    failure = PlacementFailure()
    levels = plan_levels(gang)
    for level in levels:
        nvlink = level == "nvlink"
        if nvlink and not any(r.gpus for r in roles):
            continue
        role_slots = [slots(snapshot, role, nvlink=nvlink) for role in roles]
        domains = domain_ids(snapshot, level)
        reason = _unfit_reason(
            snapshot, gang=gang, roles=roles, role_slots=role_slots, domains=domains, level=level
        )
        if reason is not None:
            if gang.topology_policy == "Required" or level == levels[-1]:
                failure.reasons.append(reason)
            continue
        for domain in _candidate_domains(snapshot, roles, role_slots, domains):
            placed = _place_in_domain(
                snapshot, roles=roles, role_slots=role_slots, in_domain=domains == domain, nvlink=nvlink
            )
            if placed is not None:
                return GangPlacement(
                    gang=gang,
                    pods=tuple(placed),
                    domain=(str(level), _domain_name(snapshot, level, domains, domain)),
                )
        failure.reasons.append(f"no {level} could hold every member once resources were shared between roles")
    return failure


def _place_one(snapshot: Snapshot, gang: Gang, role: Role) -> GangPlacement | PlacementFailure:
    """A lone pod: every level holds it, so the best-scoring node that fits wins."""
    scores = role.score  # the framework's fresh array: this cycle may overwrite it
    np.copyto(scores, -np.inf, where=~role.feasibility.mask)
    slot = int(np.argmax(scores))
    gpus = role.gpus
    mask = choose_gpus(snapshot, slot, int(snapshot.gpu_free[slot]), gpus) if gpus else 0
    if mask.bit_count() != gpus or scores[slot] == -np.inf:
        # The profile's filters did not count free GPUs (no GPUHealth); count them here.
        scores[snapshot.gpus_free_count() < gpus] = -np.inf
        slot = int(np.argmax(scores))
        if scores[slot] == -np.inf:
            return PlacementFailure([f"no node that passes the filters has {gpus} free GPUs"])
        mask = choose_gpus(snapshot, slot, int(snapshot.gpu_free[slot]), gpus)
    topology = snapshot.topologies[slot]
    pod = PodPlacement(
        pod=role.pods[0],
        node=snapshot.infos[slot].name,  # type: ignore[union-attr]
        slot=slot,
        gpu_mask=mask,
        gpu_ids=tuple(topology.uuids(mask)) if topology is not None and mask else (),
    )
    return GangPlacement(gang=gang, pods=(pod,), domain=("node", pod.node))


def _unfit_reason(
    snapshot: Snapshot,
    *,
    gang: Gang,
    roles: Sequence[Role],
    role_slots: list[Ints],
    domains: Ints,
    level: Level,
) -> str | None:
    """Why no single domain of `level` can hold the gang, or None if one may."""
    capacity = [
        np.bincount(domains, weights=s, minlength=int(domains.max(initial=0)) + 1) for s in role_slots
    ]
    fits = np.ones(capacity[0].shape[0], dtype=np.bool_)
    for role, cap in zip(roles, capacity, strict=True):
        fits &= cap >= len(role.pods)
    if fits.any():
        return None
    total_pods = sum(len(r.pods) for r in roles)
    gpus = gang.total_gpus()
    if level == "cluster":
        for role, cap in zip(roles, capacity, strict=True):
            if cap.sum() < len(role.pods):
                return (
                    f"only {int(cap.sum())} of {len(role.pods)} pods like {role.template.name}"
                    " fit on the nodes that pass the filters"
                )
        return f"the nodes that pass the filters cannot hold all {total_pods} pods at once"
    if gpus:
        free = np.where(np.any([r.feasibility.mask for r in roles], axis=0), snapshot.gpus_free_count(), 0)
        if level == "nvlink":
            free = np.where(
                free > 0,
                np.bitwise_count(
                    snapshot.gpu_free[: snapshot.size, None] & snapshot.gpu_cliques[: snapshot.size]
                ).max(axis=1),
                0,
            )
        largest = int(np.bincount(domains, weights=free).max(initial=0))
        where = "NVLink domain" if level == "nvlink" else level
        return f"needs {gpus} GPUs in one {where}; largest {where} has {largest} free"
    largest_pods = int(max(cap.max(initial=0) for cap in capacity))
    return f"needs {total_pods} pods in one {level}; largest {level} takes {largest_pods}"


def _candidate_domains(
    snapshot: Snapshot, roles: Sequence[Role], role_slots: list[Ints], domains: Ints
) -> list[int]:
    """Domains that can hold every role, best fit first (least capacity left over), at most a few."""
    size = int(domains.max(initial=0)) + 1
    fits = np.ones(size, dtype=np.bool_)
    leftover = np.zeros(size)
    for role, s in zip(roles, role_slots, strict=True):
        cap = np.bincount(domains, weights=s, minlength=size)
        fits &= cap >= len(role.pods)
        weight = role.gpus or 1
        leftover += (cap - len(role.pods)) * weight
    candidates = np.nonzero(fits)[0]
    order = np.lexsort((candidates, leftover[candidates]))
    return [int(d) for d in candidates[order][:MAX_DOMAIN_ATTEMPTS]]


def _place_in_domain(
    snapshot: Snapshot,
    *,
    roles: Sequence[Role],
    role_slots: list[Ints],
    in_domain: Bools,
    nvlink: bool,
) -> list[PodPlacement] | None:
    scratch = _Scratch(snapshot)
    placed: list[PodPlacement] = []
    gpus_to_place = sum(r.gpus * len(r.pods) for r in roles)
    for role, base in zip(roles, role_slots, strict=True):
        needs = role.needs(snapshot)
        nodes = np.nonzero(in_domain & (base > 0))[0]
        counts = (
            np.array(
                [
                    scratch.slots(int(s), role, needs, nvlink) if int(s) in scratch.taken else int(base[s])
                    for s in nodes
                ],
                dtype=np.int64,
            )
            if scratch.taken
            else base[nodes]
        )
        chosen = _choose_nodes(nodes, counts, role.score[nodes], len(role.pods))
        if chosen is None:
            return None
        pods = iter(role.pods)
        for slot, count in chosen:
            clique = None
            if nvlink and role.gpus:
                # The gang's GPUs on one node share one clique: chosen by the first role to land
                # here, to fit what the gang still has to place if any clique can.
                if slot not in scratch.clique:
                    picked = _pick_clique(
                        snapshot, slot, scratch.free_gpus(slot), gpus_to_place, role.gpus * count
                    )
                    if picked is None:
                        return None
                    scratch.clique[slot] = picked
                clique = scratch.clique[slot]
            for _ in range(count):
                pod = next(pods)
                free = scratch.free_gpus(slot)
                mask = choose_gpus(snapshot, slot, free & clique if clique is not None else free, role.gpus)
                if role.gpus and mask.bit_count() != role.gpus:
                    return None
                scratch.take(slot, needs, mask)
                gpus_to_place -= role.gpus
                topology = snapshot.topologies[slot]
                placed.append(
                    PodPlacement(
                        pod=pod,
                        node=snapshot.infos[slot].name,  # type: ignore[union-attr]
                        slot=slot,
                        gpu_mask=mask,
                        gpu_ids=tuple(topology.uuids(mask)) if topology is not None else (),
                    )
                )
    return placed


def _choose_nodes(nodes: Ints, counts: Ints, scores: Floats, k: int) -> list[tuple[int, int]] | None:
    """Nodes and how many pods each takes: fewest nodes, the last one best fit, ties by score."""
    if counts.sum() < k:
        return None
    whole = counts >= k
    if whole.any():
        candidates = np.nonzero(whole)[0]
        best = candidates[np.argmax(scores[candidates])]
        return [(int(nodes[best]), k)]
    order = np.lexsort((-scores, -counts))
    cumulative = np.cumsum(counts[order])
    m = int(np.searchsorted(cumulative, k)) + 1  # fewest nodes that hold k
    first = order[: m - 1]
    remaining = k - int(counts[first].sum())
    rest = order[m - 1 :]
    fitting = rest[counts[rest] >= remaining]
    # Best fit for the last node: the fewest spare slots, then the best score.
    last = fitting[np.lexsort((-scores[fitting], counts[fitting]))[0]]
    return [(int(nodes[i]), int(counts[i])) for i in first] + [(int(nodes[last]), remaining)]


def _pick_clique(snapshot: Snapshot, slot: int, free: int, wanted: int, needed: int) -> int | None:
    """The node's NVLink clique for the gang: the tightest that holds `wanted` GPUs (the rest of the
    gang), else the roomiest that holds the `needed` ones this role puts here; None if none does."""
    counts = [(int(c), (int(c) & free).bit_count()) for c in snapshot.gpu_cliques[slot] if c]
    whole = [c for c in counts if c[1] >= wanted]
    if whole:
        return min(whole, key=lambda c: (c[1], c[0]))[0]
    roomy = max(counts, key=lambda c: (c[1], -c[0]), default=None)
    return roomy[0] if roomy is not None and roomy[1] >= needed else None


def choose_gpus(snapshot: Snapshot, slot: int, free: int, gpus: int) -> int:
    """The best-connected `gpus` GPUs among `free` on node `slot` (a bit mask; 0 for none)."""
    if gpus <= 0:
        return 0
    table = int(snapshot.gpu_table[slot])
    if table >= 0:
        tables = snapshot.gpu_tables
        return int(tables.best[tables.index(table, free, gpus)]) if free.bit_count() >= gpus else 0
    topology = snapshot.topologies[slot]
    return best_gpu_set(topology, free, gpus) if topology is not None else 0


def _domain_name(snapshot: Snapshot, level: Level, domains: Ints, domain: int) -> str:
    members = np.nonzero(domains == domain)[0]
    first = snapshot.infos[int(members[0])]
    if level in ("cluster",) or first is None:
        return ""
    if level == "node":
        return first.name
    if level == "rack":
        return first.rack or first.name
    if level == "block":
        return first.block or first.name
    return first.gpu_topology().fabric_clique or first.name
