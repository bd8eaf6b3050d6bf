"""The cache's accounting of sharing and MIG pods: per GPU, from their devices when known, where
aisched would have put them when not, in place on assume, and exactly undone on forget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aisched.cache import Cache, PodUsage
from aisched.topology import resources
from aisched.topology.snapshot import Snapshot
from tests.cache.test_cache import RecordingSnapshot, assert_rows_equal, cache_with, row
from tests.support.core import GiB, node

REQUESTS = {resources.CPU: 1000, resources.PODS: 1}


def share(key: str, on: str, milli: int, **fields: object) -> PodUsage:
    return PodUsage(key=key, node=on, requests=REQUESTS, gpu_milli=milli, **fields)  # type: ignore[arg-type]


def mig(key: str, on: str, profile: str, start: int | None, **fields: object) -> PodUsage:
    return PodUsage(key=key, node=on, requests=REQUESTS, mig=(profile, start), **fields)  # type: ignore[arg-type]


def refreshed(cache: Cache) -> tuple[Snapshot, int]:
    snapshot = cache.update_snapshot(Snapshot())
    return snapshot, snapshot.slot_of["a"]


def test_shares_named_by_uuid_are_summed_per_gpu() -> None:
    cache = cache_with(node("a"))
    cache.set_pod(share("ml/p0", "a", 400, gpu_uuids=("GPU-a-2",)))
    cache.set_pod(share("ml/p1", "a", 300, gpu_uuids=("GPU-a-2",), gpu_memory=GiB))
    cache.set_pod(share("ml/p2", "a", 100, gpu_mask=0b1000))

    snapshot, slot = refreshed(cache)

    assert snapshot.gpu_milli_free[slot, :4].tolist() == [1000, 1000, 300, 900]
    assert snapshot.gpu_memory_free[slot, 2] == 79 * GiB
    assert int(snapshot.gpu_free[slot]) == 0b1111_0011


def test_a_share_of_unknown_gpu_is_charged_where_best_fit_puts_it() -> None:
    cache = cache_with(node("a"))
    cache.set_pod(share("ml/known", "a", 600, gpu_uuids=("GPU-a-5",)))
    cache.set_pod(share("ml/blind", "a", 300))  # bound by another scheduler: no device annotation

    snapshot, slot = refreshed(cache)

    assert snapshot.gpu_milli_free[slot, 5] == 100  # 400 left was the best fit for 300
    assert int(snapshot.gpu_free[slot]) == 0b1101_1111


def test_mig_instances_hold_their_slots_on_their_gpu() -> None:
    cache = cache_with(node("a", machine="a100-mig"))
    cache.set_pod(mig("ml/m0", "a", "3g.40gb", 0, gpu_uuids=("GPU-a-3",)))
    cache.set_pod(mig("ml/m1", "a", "1g.10gb", 6, gpu_mask=0b1000))

    snapshot, slot = refreshed(cache)

    assert snapshot.mig_free[slot, 3] == 0b1011_0000


def test_a_mig_instance_of_unknown_place_is_charged_where_aisched_would_put_it() -> None:
    cache = cache_with(node("a", machine="a100-mig"))
    cache.set_pod(mig("ml/m0", "a", "3g.40gb", None))

    snapshot, slot = refreshed(cache)

    assert snapshot.mig_free[slot, 3] == 0b0000_1111


def test_a_mig_profile_the_nodes_gpus_lack_holds_nothing() -> None:
    cache = cache_with(node("a", machine="a100-mig"))
    cache.set_pod(mig("ml/m0", "a", "3g.20gb", 0, gpu_uuids=("GPU-a-3",)))

    snapshot, slot = refreshed(cache)

    assert snapshot.mig_free[slot, 3] == 0xFF


def test_assume_of_shares_and_mig_updates_the_snapshot_in_place() -> None:
    cache = cache_with(node("a", machine="a100-mig"))
    snapshot = RecordingSnapshot()
    cache.update_snapshot(snapshot)
    snapshot.writes.clear()
    slot = snapshot.slot_of["a"]

    cache.assume(
        [
            (share("ml/s", "a", 250, gpu_mask=0b1_0000, gpu_memory=GiB), slot),
            (mig("ml/m", "a", "2g.20gb", 4, gpu_mask=0b1000), slot),
        ]
    )
    in_place = snapshot.gpu_milli_free[slot, 4], snapshot.mig_free[slot, 3]
    cache.update_snapshot(snapshot)

    assert in_place == (750, 0b1100_1111)
    assert snapshot.writes == []


def test_assume_without_a_known_device_is_written_at_the_next_update() -> None:
    cache = cache_with(node("a"))
    snapshot = RecordingSnapshot()
    cache.update_snapshot(snapshot)
    snapshot.writes.clear()
    slot = snapshot.slot_of["a"]

    cache.assume([(share("ml/s", "a", 250), slot)])
    cache.update_snapshot(snapshot)

    assert set(snapshot.writes) == {("set_usage", "a")}  # that row only
    assert snapshot.gpu_milli_free[slot, 0] == 750


def test_forget_of_shares_and_mig_restores_the_rows_exactly() -> None:
    cache = cache_with(node("a", machine="a100-mig"))
    cache.set_pod(share("ml/bound", "a", 500, gpu_mask=0b1_0000))
    snapshot = cache.update_snapshot(Snapshot())
    slot = snapshot.slot_of["a"]
    before = row(snapshot, "a")

    cache.assume(
        [
            (share("ml/s", "a", 250, gpu_mask=0b1_0000), slot),
            (mig("ml/m", "a", "1g.10gb", 6, gpu_mask=0b1000), slot),
            (PodUsage(key="ml/w", node="a", requests={resources.GPU: 2}, gpu_mask=0b1100_0000), slot),
        ]
    )
    cache.forget(["ml/s", "ml/m", "ml/w"])
    cache.update_snapshot(snapshot)

    assert_rows_equal(row(snapshot, "a"), before)


placements = st.lists(
    st.one_of(
        st.tuples(st.just("share"), st.integers(0, 7), st.integers(1, 999)),
        st.tuples(st.just("mig"), st.integers(3, 3), st.sampled_from(["1g.10gb", "2g.20gb", "3g.40gb"])),
        st.tuples(st.just("whole"), st.integers(4, 7), st.just(1)),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(placed=placements)
def test_assume_in_place_equals_a_rewrite_from_the_cache(placed: list[tuple[str, int, object]]) -> None:
    cache = cache_with(node("a", machine="a100-mig"))
    snapshot = cache.update_snapshot(Snapshot())
    slot = snapshot.slot_of["a"]
    for i, (kind, gpu, amount) in enumerate(placed):
        key = f"ml/p{i}"
        if kind == "share":
            usage = share(key, "a", int(str(amount)), gpu_mask=1 << gpu)
        elif kind == "mig":
            profile = snapshot.mig_profile(slot, str(amount))
            assert profile is not None
            free = int(snapshot.mig_free[slot, gpu])
            starts = [s for s in profile.starts if free & profile.slots_at(s) == profile.slots_at(s)]
            if not starts:
                continue
            usage = mig(key, "a", str(amount), starts[0], gpu_mask=1 << gpu)
        else:
            if not int(snapshot.gpu_free[slot]) >> gpu & 1:
                continue
            usage = PodUsage(key=key, node="a", requests={resources.GPU: 1}, gpu_mask=1 << gpu)
        cache.assume([(usage, slot)])
    in_place = row(snapshot, "a")

    cache.set_node(node("a", machine="a100-mig"))  # forces a rewrite from the cache's records
    cache.update_snapshot(snapshot)

    assert_rows_equal(in_place, row(snapshot, "a"))
