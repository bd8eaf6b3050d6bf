"""Small clusters for plugin tests: a filled snapshot, and masks read back by node name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aisched.cache import PodUsage
from aisched.framework.interface import Bools, FilterResult, Floats
from aisched.scheduler import Scheduler
from aisched.topology import resources
from aisched.topology.node import NodeInfo
from aisched.topology.snapshot import Snapshot
from tests.support.core import scheduler


def cluster(nodes: Iterable[NodeInfo], *, pods: Iterable[PodUsage] = ()) -> Scheduler:
    """A scheduler over `nodes` with `pods` bound, its snapshot already filled."""
    sched = scheduler(nodes)
    for usage in pods:
        sched.cache.set_pod(usage)
    sched.cache.update_snapshot(sched.snapshot)
    return sched


def snapshot_of(nodes: Iterable[NodeInfo], *, pods: Iterable[PodUsage] = ()) -> Snapshot:
    return cluster(nodes, pods=pods).snapshot


def bound(
    key: str,
    node: str,
    *,
    cpu: int = 0,
    memory: int = 0,
    gpus: int = 0,
    gpu_mask: int | None = None,
    gpu_uuids: tuple[str, ...] = (),
    extra: Mapping[str, int] | None = None,
) -> PodUsage:
    """A pod bound to `node` that uses the given amounts (one `pods` slot)."""
    requests = {resources.CPU: cpu, resources.MEMORY: memory, resources.PODS: 1, resources.GPU: gpus}
    requests.update(extra or {})
    return PodUsage(key=key, node=node, requests=requests, gpu_mask=gpu_mask, gpu_uuids=gpu_uuids)


def names(snapshot: Snapshot, mask: Bools) -> set[str]:
    """The nodes whose slot is set in `mask` (a mask over every slot of the snapshot)."""
    assert mask.shape == (snapshot.size,), f"mask covers {mask.shape}, snapshot has {snapshot.size} slots"
    return {name for name, slot in snapshot.slot_of.items() if mask[slot]}


def explained(snapshot: Snapshot, result: FilterResult) -> dict[str, set[str]]:
    """Each reason of the explanation with the nodes it names (reasons naming no node left out)."""
    out: dict[str, set[str]] = {}
    for reason, mask in result.explain():
        named = names(snapshot, mask)
        if named:
            out[reason] = out.get(reason, set()) | named
    return out


def by_name(snapshot: Snapshot, scores: Floats) -> dict[str, float]:
    """Each node's score (an array over every slot of the snapshot)."""
    assert scores.shape == (snapshot.size,), f"scores cover {scores.shape}, snapshot has {snapshot.size}"
    return {name: float(scores[slot]) for name, slot in snapshot.slot_of.items()}
