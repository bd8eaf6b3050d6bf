"""Property: a tenant's guarantee is reachable whenever the cluster has the capacity.

Tenant a borrows tenant b's idle guarantee with gangs of its own; then b asks for no more than
what remains of its guarantee. Whatever a holds, b's gang is placed at once or the core's
preemption finds whole gangs of a whose eviction lets the real scheduler place it, and a is
never left below its own guarantee by more than the gangs b needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import event, given, settings
from hypothesis import strategies as st

from aisched.cache import Cache, PodUsage
from aisched.framework.profile import Profile
from aisched.framework.runtime import Framework
from aisched.framework.types import Gang
from aisched.plugins import default_registry
from aisched.plugins.quota import NAME as QUOTA
from aisched.plugins.quota import Quota
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant, quota_usage
from aisched.scheduler import Scheduler
from aisched.scheduler.preemption import Workload, candidates, choose_victims
from tests.support.core import node, pod

NODES = 4
GPUS = NODES * 8


def _world(guaranteed_b: int) -> tuple[Scheduler, QuotaLedger]:
    ledger = QuotaLedger(
        [
            Tenant(name=name, namespaces=frozenset({name}), cohort="pool", guaranteed={GPU_MILLI: g * 1000},
                   maximum={GPU_MILLI: GPUS * 1000}, min_runtime_seconds=0)
            for name, g in (("a", GPUS - guaranteed_b), ("b", guaranteed_b))
        ],
        capacity={GPU_MILLI: GPUS * 1000},
    )  # fmt: skip
    registry = default_registry()
    registry.register(QUOTA, lambda args: Quota(ledger))
    cache = Cache()
    for i in range(NODES):
        cache.set_node(node(f"n{i}", rack="r1"))
    profile = Profile(pre_filter=("Gang", QUOTA))
    return Scheduler(framework=Framework(profile, registry), cache=cache), ledger


def _run(scheduler: Scheduler, ledger: QuotaLedger, gang: Gang, tenant: str) -> Workload | None:
    result = scheduler.schedule(gang)
    if result.placement is None:
        return None
    pods = []
    for placed in result.placement.pods:
        ledger.charge(placed.pod.key, tenant, quota_usage(placed.pod))
        usage = scheduler.cache.pod(placed.pod.key)
        assert usage is not None
        pods.append(usage)
    gpus = sum(quota_usage(m).get(GPU_MILLI, 0) for m in gang.members)
    return Workload(gang.key, tenant, 0, True, 0.0, tuple(pods), gpus)


def _fits(scheduler: Scheduler, ledger: QuotaLedger, gang: Gang, victims: Sequence[Workload]) -> bool:
    taken: list[tuple[PodUsage, tuple[str, dict[str, int]] | None]] = []
    for workload in victims:
        for usage in workload.pods:
            taken.append((usage, ledger.charge_of(usage.key)))
            scheduler.cache.remove_pod(usage.key)
            ledger.release(usage.key)
    try:
        result = scheduler.schedule(gang)
        if result.placement is not None:
            scheduler.forget(result.placement)
        return result.placement is not None
    finally:
        for usage, charge in taken:
            scheduler.cache.set_pod(usage)
            if charge is not None:
                ledger.charge(usage.key, *charge)


@settings(max_examples=60, deadline=None)
@given(
    guaranteed_b=st.integers(4, 24),
    borrower_gangs=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 8)), min_size=1, max_size=12),
    data=st.data(),
)
def test_a_tenant_always_reaches_its_guarantee(
    guaranteed_b: int, borrower_gangs: list[tuple[int, int]], data: st.DataObject
) -> None:
    scheduler, ledger = _world(guaranteed_b)
    running = []
    for i, (size, gpus) in enumerate(borrower_gangs):
        members = [pod(f"a{i}-{j}", gpus=gpus, namespace="a") for j in range(size)]
        placed = _run(scheduler, ledger, Gang(key=f"a/g{i}", members=members, min_member=size), "a")
        if placed is not None:
            running.append(placed)
    want = data.draw(st.integers(1, guaranteed_b), label="GPUs b asks for")
    members = [pod(f"b-{j}", gpus=1, namespace="b") for j in range(want)]
    owner = Gang(key="b/owner", members=members, min_member=want)
    if scheduler.schedule(owner).placement is not None:
        event("placed at once")
        return
    event("placed by preemption")
    reclaim = not ledger.admit("b", {GPU_MILLI: want * 1000}).admitted
    ordered = candidates(tenant="b", priority=0, reclaim=True, workloads=running, ledger=ledger, now=1.0)
    victims = choose_victims(ordered, lambda chosen: _fits(scheduler, ledger, owner, chosen))
    assert victims is not None, f"b's guarantee ({guaranteed_b}) must be reachable (reclaim={reclaim})"
    assert all(v.tenant == "a" for v in victims)
    assert _fits(scheduler, ledger, owner, victims)
