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
4. inside a node, each pod's devices: whole GPUs by a table look-up of the best-connected free
   set, a share of one GPU or a MIG instance as `scheduler.devices` chooses.

A gang some of whose members already run (`Gang.near`: the survivors of a job whose lost pods are
replaced) is kept in their domain at every level below the cluster: Preferred tries their NVLink
domain, node, rack and block in turn before anywhere else, Required only their domain of its level.

Roles are placed one after another against a scratch record of what earlier roles took, so a
failure of any role abandons the whole gang. Equal scores go to the lowest slot, or, when the
profile sets a tie-break seed, to the node of the best fixed random priority.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from aisched.framework.interface import Bools, Floats, GPUPicker
from aisched.framework.types import LEVELS, Gang, GangPlacement, PodPlacement, TopologyLevel
from aisched.scheduler.devices import DeviceLedger, choose_devices, device_fit, unfit_device
from aisched.scheduler.roles import Role, Scratch, slots
from aisched.topology.snapshot import Snapshot

__all__ = ["Level", "PlacementFailure", "Role", "place_gang", "plan_levels", "slots"]

Level = TopologyLevel | str  # "cluster" above the four named levels
Ints = npt.NDArray[np.int64]
#: How many candidate domains of one level are tried before the level is given up.
MAX_DOMAIN_ATTEMPTS: Final = 8


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


def place_gang(
    snapshot: Snapshot, gang: Gang, roles: Sequence[Role], *, picker: GPUPicker | None = None
) -> GangPlacement | PlacementFailure:
    """Place every pod of every role, or say why that cannot be done.

    `picker` chooses the GPU each sharing pod gets on its node (None: the best fit).
    """
    near = [snapshot.slot_of[n] for n in gang.near if n in snapshot.slot_of]
    if (
        len(roles) == 1
        and len(roles[0].pods) == 1
        and not (gang.topology_policy == "Required" and gang.topology_level == "nvlink")
        and not (near and gang.topology_policy != "None")
    ):
        return _place_one(snapshot, gang, roles[0], picker)
    failure = PlacementFailure()
    levels = plan_levels(gang)
    shares = any(r.template.shares_gpu or r.template.mig_profile is not None for r in roles)
    for level in levels:
        nvlink = level == "nvlink"
        if nvlink and not any(r.gpus for r in roles):
            continue
        role_slots = [slots(snapshot, role, nvlink=nvlink) for role in roles]
        domains = domain_ids(snapshot, level)
        beside = None
        if near and level != "cluster":  # only beside the members already running
            beside = np.isin(domains, domains[near])
            role_slots = [np.where(beside, s, 0) for s in role_slots]
        reason = _unfit_reason(
            snapshot,
            gang=gang,
            roles=roles,
            role_slots=role_slots,
            domains=domains,
            level=level,
            within=beside,
        )
        if reason is not None and near and level != "cluster":
            reason += f" beside the {len(gang.near)} node(s) its running members are on"
        if reason is not None:
            if gang.topology_policy == "Required" or level == levels[-1]:
                failure.reasons.append(reason)
            continue
        for domain in _candidate_domains(snapshot, roles, role_slots, domains):
            ledger = DeviceLedger(snapshot, active=shares)
            try:
                placed = _place_in_domain(
                    snapshot,
                    roles=roles,
                    role_slots=role_slots,
                    in_domain=domains == domain,
                    nvlink=nvlink,
                    picker=picker,
                    ledger=ledger,
                )
            finally:
                ledger.restore()
            if placed is not None:
                return GangPlacement(
                    gang=gang,
                    pods=tuple(placed),
                    domain=(str(level), _domain_name(snapshot, level, domains, domain)),
                )
        failure.reasons.append(f"no {level} could hold every member once resources were shared between roles")
    return failure


def _place_one(
    snapshot: Snapshot, gang: Gang, role: Role, picker: GPUPicker | None
) -> GangPlacement | PlacementFailure:
    """A lone pod: every level holds it, so the best-scoring node that fits wins."""
    scores = role.score  # the framework's fresh array: this cycle may overwrite it
    np.copyto(scores, -np.inf, where=~role.feasibility.mask)
    pod = role.pods[0]
    slot = _top(scores, role.tie_break)
    devices = (
        choose_devices(snapshot, slot, pod, free=int(snapshot.gpu_free[slot]), picker=picker)
        if scores[slot] != -np.inf
        else None
    )
    if devices is None:
        # The profile's filters did not look at the devices (no GPUHealth, GPUSharing): look here.
        scores[~device_fit(snapshot, pod)] = -np.inf
        slot = _top(scores, role.tie_break)
        if scores[slot] == -np.inf:
            return PlacementFailure([unfit_device(pod)])
        devices = choose_devices(snapshot, slot, pod, free=int(snapshot.gpu_free[slot]), picker=picker)
        if devices is None:
            return PlacementFailure([unfit_device(pod)])
    placed = devices.placement(snapshot, slot, pod)
    return GangPlacement(gang=gang, pods=(placed,), domain=("node", placed.node))


def _top(scores: Floats, tie_break: Ints | None) -> int:
    """The slot of the best score; among equal best scores, the lowest slot or the best tie-break rank."""
    slot = int(np.argmax(scores))
    if tie_break is None:
        return slot
    tied = np.flatnonzero(scores == scores[slot])
    return int(tied[np.argmin(tie_break[tied])]) if tied.size > 1 else slot


def _unfit_reason(
    snapshot: Snapshot,
    *,
    gang: Gang,
    roles: Sequence[Role],
    role_slots: list[Ints],
    domains: Ints,
    level: Level,
    within: Bools | None = None,
) -> str | None:
    """Why no single domain of `level` (among the nodes `within`, None: all) can hold the gang, or
    None if one may."""
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
        usable = np.any([r.feasibility.mask for r in roles], axis=0)
        if within is not None:
            usable &= within
        free = np.where(usable, snapshot.gpus_free_count(), 0)
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
    """Domains that can hold every role, best fit first (least capacity left over), at most a few;
    equal fits in domain order, or by their best node's tie-break rank when the profile seeds one."""
    size = int(domains.max(initial=0)) + 1
    fits = np.ones(size, dtype=np.bool_)
    leftover = np.zeros(size)
    for role, s in zip(roles, role_slots, strict=True):
        cap = np.bincount(domains, weights=s, minlength=size)
        fits &= cap >= len(role.pods)
        weight = role.gpus or 1
        leftover += (cap - len(role.pods)) * weight
    candidates = np.nonzero(fits)[0]
    tie_break = roles[0].tie_break
    rank = candidates
    if tie_break is not None:
        best = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, domains, tie_break)
        rank = best[candidates]
    order = np.lexsort((rank, leftover[candidates]))
    return [int(d) for d in candidates[order][:MAX_DOMAIN_ATTEMPTS]]


def _place_in_domain(
    snapshot: Snapshot,
    *,
    roles: Sequence[Role],
    role_slots: list[Ints],
    in_domain: Bools,
    nvlink: bool,
    picker: GPUPicker | None,
    ledger: DeviceLedger,
) -> list[PodPlacement] | None:
    scratch = Scratch(snapshot)
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
        tie_break = role.tie_break[nodes] if role.tie_break is not None else None
        chosen = _choose_nodes(nodes, counts, role.score[nodes], len(role.pods), tie_break)
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
                devices = choose_devices(
                    snapshot, slot, pod, free=free & clique if clique is not None else free, picker=picker
                )
                if devices is None:
                    return None
                scratch.take(slot, needs, devices.mask)
                ledger.take(slot, devices)
                gpus_to_place -= role.gpus
                placed.append(devices.placement(snapshot, slot, pod))
    return placed


def _choose_nodes(
    nodes: Ints, counts: Ints, scores: Floats, k: int, tie_break: Ints | None = None
) -> list[tuple[int, int]] | None:
    """Nodes and how many pods each takes: fewest nodes, the last one best fit, ties by score
    (then by `tie_break` rank, else by slot)."""
    if counts.sum() < k:
        return None
    rank = tie_break if tie_break is not None else np.arange(len(nodes))
    whole = counts >= k
    if whole.any():
        candidates = np.nonzero(whole)[0]
        best = candidates[np.lexsort((rank[candidates], -scores[candidates]))[0]]
        return [(int(nodes[best]), k)]
    order = np.lexsort((rank, -scores, -counts))
    cumulative = np.cumsum(counts[order])
    m = int(np.searchsorted(cumulative, k)) + 1  # fewest nodes that hold k
    first = order[: m - 1]
    remaining = k - int(counts[first].sum())
    rest = order[m - 1 :]
    fitting = rest[counts[rest] >= remaining]
    # Best fit for the last node: the fewest spare slots, then the best score.
    last = fitting[np.lexsort((rank[fitting], -scores[fitting], counts[fitting]))[0]]
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
