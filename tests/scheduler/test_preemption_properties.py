"""Property: a tenant's guarantee is reachable whenever the cluster has the capacity.

Tenant a borrows tenant b's idle guarantee with gangs of its own; then b asks for no more than
what remains of its guarantee. Whatever a holds, b's gang is placed at once or the core's
preemption (the DefaultPreemption PostFilter over the one `Evaluator`, as the operator and the
simulator run it) nominates whole gangs of a, and holds a placement that, once they are gone,
uses no GPU twice and leaves every node within its capacity.
"""

from __future__ import annotations

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aisched.framework.types import Gang
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant
from aisched.scheduler import Scheduler
from tests.support.core import node, pod, scheduler

NODES = 4
GPUS = NODES * 8


def _world(guaranteed_b: int) -> Scheduler:
    ledger = QuotaLedger(
        [
            Tenant(name=name, namespaces=frozenset({name}), cohort="pool", guaranteed={GPU_MILLI: g * 1000},
                   maximum={GPU_MILLI: GPUS * 1000}, min_runtime_seconds=0)
            for name, g in (("a", GPUS - guaranteed_b), ("b", guaranteed_b))
        ],
        capacity={GPU_MILLI: GPUS * 1000},
    )  # fmt: skip
    world = scheduler([node(f"n{i}", rack="r1") for i in range(NODES)])
    return Scheduler(cache=world.cache, ledger=ledger, clock=lambda: 1.0)


@settings(max_examples=60, deadline=None)
@given(
    guaranteed_b=st.integers(4, 24),
    borrower_gangs=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 8)), min_size=1, max_size=12),
    data=st.data(),
)
def test_a_tenant_always_reaches_its_guarantee(
    guaranteed_b: int, borrower_gangs: list[tuple[int, int]], data: st.DataObject
) -> None:
    world = _world(guaranteed_b)
    for i, (size, gpus) in enumerate(borrower_gangs):
        members = [pod(f"a{i}-{j}", gpus=gpus, namespace="a") for j in range(size)]
        placed = world.schedule(Gang(key=f"a/g{i}", members=members, min_member=size)).placement
        if placed is not None:
            world.bound(p.pod.key for p in placed.pods)
    want = data.draw(st.integers(1, guaranteed_b), label="GPUs b asks for")
    members = [pod(f"b-{j}", gpus=1, namespace="b") for j in range(want)]
    result = world.schedule(Gang(key="b/owner", members=members, min_member=want))
    if result.placement is not None:
        event("placed at once")
        return
    event("placed by preemption")
    nomination = result.nomination
    assert nomination is not None, f"b's guarantee ({guaranteed_b}) must be reachable: {result.message}"
    assert {v.tenant for v in nomination.victims} == {"a"}
    assert all(world.cache.pod(p.pod.key) is not None for p in nomination.placement.pods)  # held
    for key in nomination.victim_pods:  # the victims go
        world.cache.remove_pod(key)
    snapshot = world.cache.update_snapshot(world.snapshot)
    n = snapshot.size
    assert (snapshot.free[:, :n] >= 0).all(), "a node is over its capacity"
    held: dict[str, int] = {}
    for _, members_held in world.cache.gangs():
        for usage in members_held.values():
            mask = usage.gpu_mask or 0
            assert held.get(usage.node, 0) & mask == 0, f"a GPU of {usage.node} is used twice"
            held[usage.node] = held.get(usage.node, 0) | mask
    assert np.bitwise_count(snapshot.gpu_free[:n]).sum() == GPUS - sum(m.bit_count() for m in held.values())
