"""The emulator's store on its own, without HTTP: what each watcher is offered, and what a write
commits whatever its watchers and listeners do."""

from __future__ import annotations

import copy
from typing import Any, Final

import pytest

from aisched.emulator.resources import BUILTIN, ResourceType
from aisched.emulator.store import Event, Obj, Store, Watcher

CONFIGMAPS: Final = next(r for r in BUILTIN if r.key == ("", "configmaps"))


def _everything(obj: Any) -> bool:
    return True


def _web(obj: Any) -> bool:
    return bool(((obj.get("metadata") or {}).get("labels") or {}).get("tier") == "web")


def _watch(store: Store, *, since: int | None = None, labels: Any = _everything) -> Watcher:
    return store.watch(CONFIGMAPS, namespace=None, labels=labels, fields=_everything, since=since)


def _configmap(name: str, **labels: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels}, "data": {}}


def _drain(watcher: Watcher) -> list[tuple[str, Obj] | None]:
    items = []
    while not watcher.queue.empty():
        items.append(watcher.queue.get_nowait())
    return items


def _seen(watcher: Watcher) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of each queued event; a closed stream ends with ("END", "", "")."""
    return [
        (item[0], item[1]["metadata"]["name"], item[1]["metadata"]["resourceVersion"])
        if item is not None
        else ("END", "", "")
        for item in _drain(watcher)
    ]


def _relabel(store: Store, name: str, **labels: str) -> Obj:
    current = store.get(CONFIGMAPS, "default", name)
    changed = copy.deepcopy(current)
    changed["metadata"]["labels"] = labels
    return store.replace(CONFIGMAPS, current, changed)


# -- what a watcher is offered ------------------------------------------------------------------


def test_an_object_leaving_a_selection_is_deleted_in_its_last_matching_state_at_the_new_revision() -> None:
    store = Store()
    store.create(CONFIGMAPS, _configmap("cm", tier="web"))
    watcher = _watch(store, labels=_web)
    _drain(watcher)
    moved = _relabel(store, "cm", tier="db")
    [item] = _drain(watcher)
    assert item is not None
    kind, obj = item
    assert (kind, obj["metadata"]["labels"]) == ("DELETED", {"tier": "web"})
    assert obj["metadata"]["resourceVersion"] == moved["metadata"]["resourceVersion"]


def test_a_deleted_object_comes_in_its_last_state_at_the_deletion_revision_leaving_history_alone() -> None:
    store = Store()
    created = store.create(CONFIGMAPS, _configmap("cm", tier="web"))
    created_revision = created["metadata"]["resourceVersion"]
    watcher = _watch(store, since=store.revision)
    store.delete(CONFIGMAPS, "default", "cm")
    assert _seen(watcher) == [("DELETED", "cm", str(store.revision))]
    assert created["metadata"]["resourceVersion"] == created_revision, "the old state was copied"


def test_a_create_between_a_list_and_a_watch_from_now_is_in_the_initial_state() -> None:
    store = Store()
    store.create(CONFIGMAPS, _configmap("listed"))
    items, _ = store.list(CONFIGMAPS, None, _everything, _everything)
    store.create(CONFIGMAPS, _configmap("after-the-list"))
    watcher = _watch(store, since=None)
    assert [name for _, name, _ in _seen(watcher)] == ["after-the-list", "listed"]
    assert [i["metadata"]["name"] for i in items] == ["listed"]


def test_a_create_between_a_list_and_a_watch_from_its_revision_is_replayed() -> None:
    store = Store()
    store.create(CONFIGMAPS, _configmap("listed"))
    _, revision = store.list(CONFIGMAPS, None, _everything, _everything)
    made = store.create(CONFIGMAPS, _configmap("after-the-list"))
    watcher = _watch(store, since=revision)
    assert _seen(watcher) == [("ADDED", "after-the-list", made["metadata"]["resourceVersion"])]
    store.create(CONFIGMAPS, _configmap("after-the-watch"))
    assert [name for _, name, _ in _seen(watcher)] == ["after-the-watch"]


# -- what a write commits ---------------------------------------------------------------------------


def test_a_write_that_changes_nothing_keeps_the_resource_version_and_tells_no_one() -> None:
    store = Store()
    store.create(CONFIGMAPS, _configmap("cm", tier="web"))
    heard: list[Event] = []
    store.listeners.append(heard.append)
    watcher = _watch(store, since=store.revision)
    current = store.get(CONFIGMAPS, "default", "cm")
    revision = store.revision
    same = copy.deepcopy(current)
    del same["metadata"]["resourceVersion"]
    assert store.replace(CONFIGMAPS, current, same) is current
    assert (store.revision, current["metadata"]["resourceVersion"]) == (revision, str(revision))
    assert (heard, _seen(watcher)) == ([], [])


def test_a_failing_listener_neither_undoes_the_write_nor_silences_the_listeners_after_it() -> None:
    store = Store()

    def broken(event: Event) -> None:
        raise RuntimeError("a listener bug")

    heard: list[Event] = []
    store.listeners += [broken, heard.append]
    watcher = _watch(store)
    created = store.create(CONFIGMAPS, _configmap("cm"))
    assert store.get(CONFIGMAPS, "default", "cm") is created
    assert [e.type for e in heard] == ["ADDED"]
    assert [kind for kind, _, _ in _seen(watcher)] == ["ADDED"]


def test_a_failing_watcher_is_closed_and_the_others_still_hear_of_the_write() -> None:
    store = Store()

    def broken(obj: Any) -> bool:
        raise RuntimeError("a selector bug")

    failing = _watch(store, labels=broken)
    healthy = _watch(store)
    heard: list[Event] = []
    store.listeners.append(heard.append)
    store.create(CONFIGMAPS, _configmap("cm"))
    assert _seen(failing) == [("END", "", "")]
    assert failing not in store.watchers
    assert [kind for kind, _, _ in _seen(healthy)] == ["ADDED"]
    assert [e.type for e in heard] == ["ADDED"]


def test_a_watcher_too_far_behind_is_closed_without_its_backlog() -> None:
    store = Store(watch_queue_limit=3)
    store.create(CONFIGMAPS, _configmap("before"))
    watcher = _watch(store)  # its initial state does not count against the bound
    for i in range(4):
        store.create(CONFIGMAPS, _configmap(f"cm-{i}"))
    assert _seen(watcher) == [("END", "", "")]
    assert watcher not in store.watchers
    store.create(CONFIGMAPS, _configmap("later"))
    assert _seen(watcher) == []


@pytest.mark.parametrize("count", [3, 0])
def test_a_watcher_within_its_bound_keeps_every_event(count: int) -> None:
    store = Store(watch_queue_limit=3)
    watcher = _watch(store)
    for i in range(count):
        store.create(CONFIGMAPS, _configmap(f"cm-{i}"))
    assert [name for _, name, _ in _seen(watcher)] == [f"cm-{i}" for i in range(count)]
    assert watcher in store.watchers


def test_closing_one_version_s_watchers_leaves_the_other_versions_alone() -> None:
    store = Store()
    v1 = ResourceType(group="example.com", version="v1", plural="widgets", kind="Widget", namespaced=True)
    v2 = ResourceType(group="example.com", version="v2", plural="widgets", kind="Widget", namespaced=True)
    old, new = (
        store.watch(r, namespace=None, labels=_everything, fields=_everything, since=None) for r in (v1, v2)
    )
    store.close_watchers(v1)
    assert (_drain(old), _drain(new)) == ([None], [])
