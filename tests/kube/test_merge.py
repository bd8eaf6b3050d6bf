"""Merge patches computed from two documents."""

from __future__ import annotations

from aisched.kube.merge import merge_patch


def test_removed_keys_become_null_at_every_depth_and_unchanged_ones_are_left_out() -> None:
    old = {"phase": "Running", "startTime": "t1", "used": {"gpu": "4", "cpu": "2"}, "conditions": [1]}
    new = {"phase": "Queued", "used": {"gpu": "4"}, "conditions": [1], "restarts": 1}
    assert merge_patch(old, new) == {
        "phase": "Queued",
        "startTime": None,
        "used": {"cpu": None},
        "restarts": 1,
    }


def test_lists_and_scalars_replace_whole() -> None:
    assert merge_patch({"a": [1, 2]}, {"a": [2]}) == {"a": [2]}
    assert merge_patch({"a": {"b": 1}}, {"a": 3}) == {"a": 3}
    assert merge_patch({}, {}) == {}
