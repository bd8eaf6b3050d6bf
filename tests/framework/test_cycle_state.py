from typing import Final

import pytest

from aisched.framework.cycle_state import CycleState, StateKey

GPUS: Final = StateKey[int]("gpus")
NODES: Final = StateKey[list[str]]("nodes")


def test_value_written_is_read_back_under_its_key() -> None:
    state = CycleState()
    state.write(GPUS, 8)
    state.write(NODES, ["a", "b"])

    assert state.read(GPUS) == 8
    assert state.read(NODES) == ["a", "b"]


def test_writing_again_replaces_the_value() -> None:
    state = CycleState()
    state.write(GPUS, 8)
    state.write(GPUS, 4)

    assert state.read(GPUS) == 4


def test_reading_a_key_not_written_in_this_cycle_names_the_key() -> None:
    with pytest.raises(KeyError, match=r"StateKey\('gpus'\) was not written in this cycle"):
        CycleState().read(GPUS)


def test_get_returns_the_default_for_a_missing_key_and_the_value_otherwise() -> None:
    state = CycleState()

    assert state.get(GPUS, -1) == -1
    state.write(GPUS, 2)
    assert state.get(GPUS, -1) == 2


def test_keys_with_the_same_name_from_two_plugins_do_not_collide() -> None:
    mine = StateKey[int]("count")
    theirs = StateKey[int]("count")
    state = CycleState()
    state.write(mine, 1)

    assert state.get(theirs, 0) == 0
    with pytest.raises(KeyError):
        state.read(theirs)


def test_each_cycle_starts_empty() -> None:
    first = CycleState()
    first.write(GPUS, 8)

    assert CycleState().get(GPUS, 0) == 0


def test_key_shows_its_name() -> None:
    assert repr(GPUS) == "StateKey('gpus')"
    assert GPUS.name == "gpus"
