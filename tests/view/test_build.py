"""The cluster view built from a scheduling runtime's books: nodes by block and rack, who holds
each GPU (whole, shared, MIG), unhealthy GPUs, the queue, tenants against their quotas, the
decisions; racks summed up on a big cluster; odd data drawn as far as it goes."""

from __future__ import annotations

from typing import cast

import pytest

from aisched.api import keys
from aisched.framework.reservations import Reservation
from aisched.framework.types import Gang
from aisched.queue import GangBook
from aisched.quota import Tenant
from aisched.topology.gpu import GPUTopology
from aisched.topology.machines import MACHINES
from aisched.topology.node import NodeInfo
from aisched.view import build_view
from aisched.view.build import DECISIONS_SHOWN, DETAIL_NODES, QUEUE_SHOWN, ZOOM_NODES, natural
from aisched.view.model import MILLI, NO_DOMAIN, ClusterView, Gpu, Node
from aisched.view.nodes import job_name
from tests.view.cluster import WALL, Cluster, Unreadable, held, node, pending, unhealthy

GPU_MILLI = keys.GPU_RESOURCE


def view_of(cluster: Cluster, *, rack: str | None = None) -> ClusterView:
    return build_view(cluster.runtime, now=cluster.wall(), rack=rack)


def nodes_of(view: ClusterView) -> dict[str, Node]:
    return {n.name: n for b in view.blocks for r in b.racks for n in r.nodes or ()}


def gpu(view: ClusterView, name: str, index: int) -> Gpu:
    return nodes_of(view)[name].gpus[index]


def two_racks() -> Cluster:
    return Cluster(
        node("n-10", rack="r1", block="b1"),
        node("n-2", rack="r1", block="b1"),
        node("n-3", rack="r2", block="b1"),
        node("loose"),  # no rack or block label
    )


def test_a_small_cluster_lists_every_node_by_block_and_rack_in_natural_order() -> None:
    view = view_of(two_racks())

    assert view.detailed
    assert view.generated_at == WALL
    layout = {b.name: {r.name: [n.name for n in r.nodes or ()] for r in b.racks} for b in view.blocks}
    assert layout == {"b1": {"r1": ["n-2", "n-10"], "r2": ["n-3"]}, NO_DOMAIN: {NO_DOMAIN: ["loose"]}}
    assert [b.name for b in view.blocks] == [NO_DOMAIN, "b1"]
    assert (view.block_label, view.rack_label) == (keys.LABEL_BLOCK, keys.LABEL_RACK)
    n2 = nodes_of(view)["n-2"]
    assert (n2.model, len(n2.gpus), n2.wired, n2.ready) == ("H100-80GB", 8, True, True)
    assert view.summary.nodes == 4
    assert view.summary.gpus == 32


def test_a_gpu_shows_the_pod_job_and_tenant_holding_it() -> None:
    research = Tenant(name="research", namespaces=frozenset({"ml"}), guaranteed={GPU_MILLI: 8000})
    cluster = Cluster(node("n1", rack="r1"), tenants=[research])
    cluster.bind(
        held("ml/ddp-worker-0", "n1", gpus=2, mask=0b1100, gang="ml/gang:ddp"),
        held("web/solo", "n1", gpus=1, mask=0b1),
    )

    view = view_of(cluster)

    (worker,) = gpu(view, "n1", 2).holders
    assert (worker.pod, worker.job, worker.gang) == ("ml/ddp-worker-0", "ddp", "ml/gang:ddp")
    assert (worker.tenant, worker.owner, worker.milli, worker.exact) == ("research", "research", MILLI, True)
    assert gpu(view, "n1", 3).holders == (worker,)
    (solo,) = gpu(view, "n1", 0).holders
    assert (solo.job, solo.tenant, solo.owner) == ("solo", None, "namespace web")
    assert gpu(view, "n1", 1).holders == ()
    assert [(o.name, o.used) for o in view.owners] == [("research", 2000), ("namespace web", 1000)]
    assert view.summary.used == 3000


def test_shared_gpus_show_each_share_and_mig_gpus_their_slots() -> None:
    mig = MACHINES["a100-mig"]
    cluster = Cluster(
        node("shared"),
        NodeInfo(name="mig", labels={}, allocatable={"nvidia.com/gpu": 8}, gpus=mig.topology(node="mig")),
    )
    cluster.bind(
        held("ml/a", "shared", mask=0b1000, gpu_milli=250),
        held("ml/b", "shared", mask=0b1000, gpu_milli=500),
        held("ml/m", "mig", mask=0b1000, mig=("3g.40gb", 4)),
    )

    view = view_of(cluster)

    shared = gpu(view, "shared", 3)
    assert [(h.pod, h.milli) for h in shared.holders] == [("ml/a", 250), ("ml/b", 500)]
    assert shared.used == 750
    instance = gpu(view, "mig", 3)
    (holder,) = instance.holders
    assert (instance.mig, holder.mig, holder.slots, holder.milli) == (True, "3g.40gb", 0b11110000, 500)
    assert instance.used == 500
    assert gpu(view, "mig", 0).foreign_slots == mig.mig_mask(0)  # instances made outside aisched
    assert nodes_of(view)["mig"].problems == ()


def test_an_unhealthy_gpu_is_marked_and_counted() -> None:
    cluster = Cluster(unhealthy(node("n1", rack="r1"), 5))

    view = view_of(cluster)

    assert [g.index for g in nodes_of(view)["n1"].gpus if not g.healthy] == [5]
    assert view.summary.gpus_unhealthy == 1
    (rack,) = view.blocks[0].racks
    assert (rack.gpus_unhealthy, rack.gpus_free, rack.gpus_used) == (1, 7, 0)


def test_whole_gpus_of_unknown_devices_are_drawn_on_free_gpus_and_marked_inexact() -> None:
    cluster = Cluster(unhealthy(node("n1"), 1))
    cluster.bind(held("ml/mine", "n1", gpus=1, mask=0b1), held("ml/other", "n1", gpus=2))  # bound elsewhere

    view = view_of(cluster)

    drawn = [(g.index, h.pod, h.exact) for g in nodes_of(view)["n1"].gpus for h in g.holders]
    assert drawn == [(0, "ml/mine", True), (2, "ml/other", False), (3, "ml/other", False)]


def test_odd_data_is_drawn_as_far_as_it_goes_and_said_in_the_nodes_problems() -> None:
    cluster = Cluster(node("n1"), node("fine"))
    cluster.bind(
        held("ml/beyond", "n1", gpus=2, mask=(1 << 9) | 1),  # GPU 9 of an 8-GPU node
        held("ml/twice", "n1", gpus=1, mask=1),  # GPU 0 again
        held("ml/unknown-mig", "n1", mask=0b10, mig=("5g.99gb", 0)),
        held("ml/huge", "n1", gpus=20),  # more than the node has, devices unknown
    )

    view = view_of(cluster)

    n1 = nodes_of(view)["n1"]
    assert [h.pod for h in n1.gpus[0].holders] == ["ml/beyond", "ml/twice"]
    assert n1.gpus[0].used == MILLI
    assert any("GPU 9, which this node does not have" in p for p in n1.problems)
    assert any("GPU 0 is held by 2 pods" in p for p in n1.problems)
    assert any("5g.99gb" in p for p in n1.problems)
    assert any("ml/huge holds more GPUs than are free" in p for p in n1.problems)
    assert nodes_of(view)["fine"].problems == ()


def test_a_node_that_cannot_be_read_shows_its_name_and_error_and_the_others_as_usual() -> None:
    broken = NodeInfo(name="broken", labels={keys.LABEL_RACK: "r1"}, gpus=cast("GPUTopology", Unreadable()))
    cluster = Cluster(broken, node("ok", rack="r1"))
    cluster.bind(held("ml/p", "ok", gpus=1, mask=1))

    view = view_of(cluster)

    nodes = nodes_of(view)
    assert nodes["broken"].rack == "r1"
    assert nodes["broken"].gpus == ()
    assert nodes["broken"].problems == ("could not be read: ValueError: cannot read gpus",)
    assert nodes["ok"].gpus[0].holders[0].pod == "ml/p"


def big(racks: int, per_rack: int) -> Cluster:
    return Cluster(
        *(
            node(f"r{r}-n{i}", rack=f"rack-{r}", block=f"block-{r // 4}")
            for r in range(racks)
            for i in range(per_rack)
        )
    )


def test_a_big_cluster_is_summed_up_per_rack_with_used_and_free_gpus_by_owner() -> None:
    cluster = big(10, 8)
    assert cluster.runtime.cache.node_count > DETAIL_NODES
    cluster.bind(held("ml/a", "r3-n0", gpus=8, mask=0xFF), held("web/b", "r3-n1", gpus=2, mask=0b11))

    view = view_of(cluster)

    assert not view.detailed
    racks = {r.name: r for b in view.blocks for r in b.racks}
    assert len(racks) == 10
    assert all(r.nodes is None for r in racks.values())
    rack = racks["rack-3"]
    assert (rack.nodes_total, rack.gpus, rack.gpus_used, rack.gpus_free) == (8, 64, 10, 54)
    assert rack.owners == (("namespace ml", 8000), ("namespace web", 2000))
    assert view.summary.used == 10_000


def test_zooming_into_a_rack_draws_its_nodes_only() -> None:
    cluster = big(10, 8)

    view = view_of(cluster, rack="rack-7")

    drawn = {r.name: [n.name for n in r.nodes] for b in view.blocks for r in b.racks if r.nodes is not None}
    assert drawn == {"rack-7": [f"r7-n{i}" for i in range(8)]}
    assert (view.rack, view.rack_found) == ("rack-7", True)
    assert not view_of(cluster, rack="no-such-rack").rack_found


def test_a_zoomed_rack_beyond_the_drawing_limit_says_how_many_nodes_it_leaves_out() -> None:
    cluster = Cluster(*(node(f"n{i}") for i in range(ZOOM_NODES + 3)))  # no rack label at all

    view = view_of(cluster, rack=NO_DOMAIN)

    (rack,) = view.blocks[0].racks
    assert rack.nodes is not None
    assert (len(rack.nodes), rack.hidden, rack.nodes_total) == (ZOOM_NODES, 3, ZOOM_NODES + 3)


# -- queue, tenants, decisions --------------------------------------------------------------------------


def test_the_queue_shows_each_gang_with_its_place_state_reason_and_reservation() -> None:
    cluster = Cluster(node("n1"), node("n2"))
    cluster.bind(held("ml/running", "n1", gpus=8, mask=0xFF), held("ml/small", "n2", gpus=1, mask=1))
    cluster.submit(*(pending(f"ddp-{i}", gang="ddp", members=2) for i in range(2)))
    cluster.submit(pending("later", created="2026-12-01T00:01:00Z"))
    cluster.clock.now += 30
    cluster.cycle()  # ddp, turned away: it needs both nodes whole
    reservation = Reservation(
        gang="ml/gang:ddp", queue="namespace/ml", order=(0, 0.0, 0, "ml/gang:ddp"), nodes=("n1",),
        spare=("n2",), start=None, end=None, since=WALL,
    )  # fmt: skip
    cluster.runtime.scheduler.reservations.hold(reservation)

    view = view_of(cluster)

    assert view.queue.total == 2
    first, second = view.queue.waiting
    assert (first.gang, first.job, first.pods, first.min_member) == ("ml/gang:ddp", "ddp", 2, 2)
    assert first.gpus == 16000
    assert (first.queue, first.position, first.length, first.state) == ("namespace/ml", 1, 2, "unschedulable")
    assert "Insufficient nvidia.com/gpu" in first.reason
    assert first.waited == 30.0
    assert first.reserved_nodes == ("n1", "n2")
    assert first.reservation is not None
    assert first.reservation.startswith("reserved: 0 of 1 nodes")
    assert (second.job, second.position, second.state, second.reason) == ("later", 2, "active", "")
    n1, n2 = nodes_of(view)["n1"], nodes_of(view)["n2"]
    assert (n1.reserved_for, n1.spare_for) == (("ml/gang:ddp",), ())
    assert (n2.reserved_for, n2.spare_for) == ((), ("ml/gang:ddp",))
    assert view.summary.reservations == 1
    assert view.queue.states == {"active": 1, "backoff": 0, "unschedulable": 1, "blocked": 0}


def test_the_queue_shows_its_first_gangs_and_counts_the_rest() -> None:
    cluster = Cluster(node("n1"))
    times = (f"2026-12-01T00:{i // 60:02d}:{i % 60:02d}Z" for i in range(150))
    cluster.submit(*(pending(f"p{i:03d}", created=at) for i, at in enumerate(times)))

    view = view_of(cluster)

    assert view.queue.total == 150
    assert len(view.queue.waiting) == QUEUE_SHOWN
    assert [w.position for w in view.queue.waiting[:3]] == [1, 2, 3]
    assert view.queue.waiting[0].job == "p000"


def test_a_gang_that_fits_nowhere_is_listed_after_those_in_line() -> None:
    cluster = Cluster(node("n1"))
    cluster.submit(pending("huge", gpus=9), pending("small", gpus=1, created="2026-12-01T00:05:00Z"))
    cluster.cycle()  # huge: set aside, it fits no node even empty

    view = view_of(cluster)

    assert [(w.job, w.position) for w in view.queue.waiting] == [("small", 1), ("huge", 0)]
    assert "Insufficient nvidia.com/gpu" in view.queue.waiting[1].reason


def test_tenants_show_usage_against_guarantee_and_max_and_unlisted_namespaces_their_own() -> None:
    tenants = [
        Tenant(
            name="research", namespaces=frozenset({"ml"}), cohort="pool",
            guaranteed={GPU_MILLI: 8000}, maximum={GPU_MILLI: 16000}, weight=2.0,
        ),
        Tenant(name="serving", namespaces=frozenset({"web"}), cohort="pool", guaranteed={GPU_MILLI: 8000}),
    ]  # fmt: skip
    cluster = Cluster(node("n1"), node("n2"), tenants=tenants)
    cluster.bind(
        held("ml/a", "n1", gpus=8, mask=0xFF),
        held("ml/b", "n2", gpus=4, mask=0xF),
        held("other/c", "n2", mask=0x10, gpu_milli=500),
    )

    view = view_of(cluster)

    rows = {t.name: t for t in view.tenants}
    research = rows["research"]
    assert (research.used, research.borrowed) == (12000, 4000)
    assert (research.guaranteed, research.maximum) == (8000, 16000)
    assert (research.cohort, research.weight, research.namespaces) == ("pool", 2.0, ("ml",))
    assert research.listed
    assert (rows["serving"].used, rows["serving"].maximum) == (0, None)
    assert (rows["other"].listed, rows["other"].used, rows["other"].owner) == (False, 500, "namespace other")


class UnreadableGangs(GangBook):
    """A gang book whose gangs cannot be assembled: data nobody foresaw."""

    def gang(self, key: str) -> Gang | None:
        raise KeyError(key)


def test_a_section_that_cannot_be_read_is_said_and_the_rest_shown() -> None:
    cluster = Cluster(node("n1"))
    cluster.submit(pending("p"))
    cluster.runtime.gangs = UnreadableGangs()

    view = view_of(cluster)

    assert view.problems == ("the queue could not be read: KeyError: 'ml/p'",)
    assert view.queue.waiting == ()
    assert view.summary.nodes == 1


def test_the_newest_decisions_come_first_and_only_the_last_few_are_shown() -> None:
    cluster = Cluster(node("n1"))
    for i in range(DECISIONS_SHOWN + 5):
        cluster.submit(pending(f"p{i:02d}", gpus=9, created=f"2026-12-01T00:00:{i:02d}Z"))
        cluster.wall.now += 1
        cluster.cycle()

    view = view_of(cluster)

    assert len(view.decisions) == DECISIONS_SHOWN
    assert view.decisions[0].gang == f"ml/p{DECISIONS_SHOWN + 4:02d}"
    assert view.decisions[0].result == "unschedulable"
    assert view.decisions[0].at > view.decisions[1].at


def test_the_summary_counts_nodes_gpus_pods_bindings_and_jobs_by_phase() -> None:
    cluster = Cluster(node("n1"), node("n2", ready=False))
    cluster.bind(held("ml/a", "n1", gpus=2, mask=0b11), held("ml/b", "n1", gpus=1, mask=0b100, assumed=True))
    jobs = [{"status": {"phase": "Running"}}, {"status": {"phase": "Running"}}, {"metadata": {"name": "new"}}]

    view = build_view(cluster.runtime, now=WALL, jobs=jobs)

    summary = view.summary
    assert (summary.nodes, summary.nodes_ready, summary.gpus, summary.used) == (2, 1, 16, 3000)
    assert (summary.pods, summary.binding) == (2, 1)
    assert summary.jobs == {"Pending": 1, "Running": 2}
    assert gpu(view, "n1", 2).holders[0].assumed


@pytest.mark.parametrize(
    ("gang", "pod", "job"),
    [
        ("ml/gang:llama", "ml/llama-worker-0", "llama"),
        ("ml/solo", "ml/solo", "solo"),
        ("ml/gang:surplus_0123abcd", "ml/llama-worker-7", "llama-worker-7"),
        ("ml/gang:PodGroup:pg", "ml/pg-0", "PodGroup:pg"),
    ],
)
def test_a_job_is_named_by_its_gang_else_by_its_pod(gang: str, pod: str, job: str) -> None:
    assert job_name(gang, pod) == job


def test_names_sort_with_their_numbers_read_as_numbers() -> None:
    assert sorted(["n-10", "n-2", "n-1", "m"], key=natural) == ["m", "n-1", "n-2", "n-10"]
