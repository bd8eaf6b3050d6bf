"""MIG placement tables: where the next instance goes on a GPU's free slots, and how many fit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aisched.api.mig import MIG_PROFILES, mig_profiles_for
from aisched.topology.mig import ALL_SLOTS, MigTables, remainder_rank

MODELS = ["A100-80GB", "A100-40GB", "H200-141GB", "L40S-48GB"]


def tables() -> MigTables:
    return MigTables(list(MODELS))


def start(profile: str, mask: int, model: str = "A100-80GB") -> int:
    return int(tables().table(profile).start[MODELS.index(model), mask])


def slots(*ranges: tuple[int, int]) -> int:
    return sum(((1 << (end - begin)) - 1) << begin for begin, end in ranges)


def test_a_small_instance_on_an_empty_gpu_goes_to_the_last_slot_it_may_use() -> None:
    assert start("1g.10gb", ALL_SLOTS) == 6


def test_a_half_gpu_instance_leaves_the_first_half_for_a_4g() -> None:
    # 3g may start at 0 or 4; at 4 the first half still takes a 4g (which starts only at 0).
    assert start("3g.40gb", ALL_SLOTS) == 4


def test_a_full_instance_needs_every_slot() -> None:
    assert start("7g.80gb", ALL_SLOTS) == 0
    assert start("7g.80gb", ALL_SLOTS & ~1) == -1


def test_a_profile_fits_only_where_its_slots_are_free_and_aligned() -> None:
    assert start("2g.20gb", slots((1, 3))) == -1  # slots 1-2: free but not aligned
    assert start("2g.20gb", slots((2, 4))) == 2
    assert start("1g.10gb", slots((7, 8))) == -1  # no 1g instance starts at 7


def test_profile_names_mean_each_models_own_sizes() -> None:
    table = tables().table("1g.10gb")

    assert table.size[MODELS.index("A100-80GB")] == 1
    assert table.size[MODELS.index("A100-40GB")] == 2  # the A100-40GB's 1g.10gb takes two slots
    assert table.size[MODELS.index("H200-141GB")] == 0  # named 1g.18gb there
    assert table.size[MODELS.index("L40S-48GB")] == 0


def test_a_model_without_mig_and_an_unknown_model_fit_nothing() -> None:
    table = tables().table("1g.10gb")

    assert (table.start[MODELS.index("L40S-48GB")] == -1).all()
    assert (table.start[-1] == -1).all()  # model id -1: a node of no known model


@pytest.mark.parametrize(
    ("profile", "count"), [("1g.10gb", 7), ("2g.20gb", 3), ("3g.40gb", 2), ("7g.80gb", 1)]
)
def test_count_is_how_many_instances_fit_one_after_another(profile: str, count: int) -> None:
    assert tables().table(profile).count[0, ALL_SLOTS] == count


def test_tables_grow_with_new_models() -> None:
    models: list[object] = ["A100-80GB"]
    mig = MigTables(models)
    assert mig.table("1g.10gb").start.shape[0] == 2
    models.append("H100-80GB")

    grown = mig.table("1g.10gb")

    assert grown.start.shape[0] == 3
    assert grown.start[1, ALL_SLOTS] == 6


def test_remainder_rank_prefers_room_for_larger_profiles() -> None:
    # Slots 0-3 free keep a 4g placeable; slots 0-1 and 4-5 keep only 2-slot profiles.
    assert remainder_rank("A100-80GB", slots((0, 4))) > remainder_rank("A100-80GB", slots((0, 2), (4, 6)))


@given(
    model=st.sampled_from(sorted(MIG_PROFILES)),
    mask=st.integers(min_value=0, max_value=ALL_SLOTS),
    data=st.data(),
)
def test_the_chosen_start_is_free_aligned_and_counts_agree(
    model: str, mask: int, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(mig_profiles_for(model))))
    profile = mig_profiles_for(model)[name]
    table = MigTables([model]).table(name)

    placed, free, count = 0, mask, 0
    while (begin := int(table.start[0, free])) >= 0:
        assert begin in profile.starts
        taken = profile.slots_at(begin)
        assert free & taken == taken, "an instance was placed on slots already held"
        assert not placed & taken
        placed |= taken
        free &= ~taken
        count += 1
    assert count == table.count[0, mask]
    assert not any(free & profile.slots_at(s) == profile.slots_at(s) for s in profile.starts)
