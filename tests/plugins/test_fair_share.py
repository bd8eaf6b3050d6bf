"""FairShare: priority first, then the tenant furthest below its weighted share, then age."""

from __future__ import annotations

from aisched.framework.types import Gang, PodInfo
from aisched.plugins.fair_share import FairShare
from aisched.queue import GangQueue
from aisched.quota import GPU_MILLI, QuotaLedger, Tenant


def gang(name: str, namespace: str, *, priority: int = 0, created: float = 0.0) -> Gang:
    pod = PodInfo(namespace=namespace, name=name, requests={"pods": 1}, priority=priority, created=created)
    return Gang(key=f"{namespace}/{name}", members=(pod,), min_member=1, priority=priority, created=created)


def ledger() -> QuotaLedger:
    return QuotaLedger(
        [
            Tenant(name="a", namespaces=frozenset({"ns-a"}), weight=1.0),
            Tenant(name="b", namespaces=frozenset({"ns-b"}), weight=2.0),
        ],
        capacity={GPU_MILLI: 100_000},
    )


def test_the_tenant_using_less_of_its_fair_share_goes_first() -> None:
    quota = ledger()
    quota.charge("ns-a/x", "a", {GPU_MILLI: 20_000})  # a: 0.2 / 1 = 0.2
    quota.charge("ns-b/y", "b", {GPU_MILLI: 30_000})  # b: 0.3 / 2 = 0.15
    order = FairShare(quota)
    old_a, young_b = gang("p", "ns-a", created=1.0), gang("q", "ns-b", created=5.0)
    assert order.less(young_b, old_a), "b's weighted share is lower, whatever the age"
    assert order.less(gang("r", "ns-a", priority=10), young_b), "priority comes before share"


def test_the_order_version_moves_with_usage() -> None:
    quota = ledger()
    order = FairShare(quota)
    before = order.order_version()
    quota.charge("ns-a/x", "a", {GPU_MILLI: 1000})
    assert order.order_version() != before


def test_the_queue_resorts_waiting_gangs_when_shares_move() -> None:
    quota = ledger()
    order = FairShare(quota)
    now = [0.0]
    queue = GangQueue(less=order.less, clock=lambda: now[0], order_version=order.order_version)
    from_a, from_b = gang("p", "ns-a", created=1.0), gang("q", "ns-b", created=2.0)
    queue.add(from_a)
    queue.add(from_b)
    quota.charge("ns-a/running", "a", {GPU_MILLI: 50_000})  # a now uses far more than b
    now[0] = 1.0
    assert queue.pop() == from_b, "re-sorted: the tenant below its share first"
    assert queue.pop() == from_a
