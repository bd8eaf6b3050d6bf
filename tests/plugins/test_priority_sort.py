from aisched.framework.types import Gang
from aisched.plugins.priority_sort import NAME, PrioritySort, new
from tests.support.core import handle, pod


def g(key: str, *, priority: int = 0, created: float = 0.0) -> Gang:
    return Gang(key=key, members=(pod(key),), min_member=1, priority=priority, created=created)


def order(*gangs: Gang) -> list[str]:
    """The gangs' keys in the order the plugin's `less` puts them (insertion sort: no key function)."""
    plugin = PrioritySort()
    out: list[Gang] = []
    for item in gangs:
        at = next((i for i, other in enumerate(out) if plugin.less(item, other)), len(out))
        out.insert(at, item)
    return [x.key for x in out]


def test_higher_priority_goes_first() -> None:
    assert PrioritySort().less(g("b", priority=10), g("a", priority=0))
    assert not PrioritySort().less(g("a", priority=0), g("b", priority=10))


def test_priority_outranks_waiting_time() -> None:
    assert PrioritySort().less(g("new", priority=1, created=100.0), g("old", priority=0, created=1.0))


def test_at_equal_priority_the_gang_that_waited_longest_goes_first() -> None:
    assert PrioritySort().less(g("z", created=1.0), g("a", created=2.0))


def test_at_equal_priority_and_age_the_key_decides() -> None:
    assert PrioritySort().less(g("ml/a"), g("ml/b"))
    assert not PrioritySort().less(g("ml/b"), g("ml/a"))


def test_a_gang_is_not_less_than_itself() -> None:
    same = g("ml/a", priority=3, created=5.0)

    assert not PrioritySort().less(same, same)


def test_negative_priorities_sort_after_zero() -> None:
    assert PrioritySort().less(g("zero"), g("neg", priority=-5))


def test_queue_order_is_priority_then_age_then_key() -> None:
    assert order(
        g("ml/c", priority=0, created=1.0),
        g("ml/b", priority=5, created=9.0),
        g("ml/a", priority=0, created=1.0),
        g("ml/d", priority=5, created=3.0),
        g("ml/e", priority=0, created=0.5),
    ) == ["ml/d", "ml/b", "ml/e", "ml/a", "ml/c"]


def test_factory_builds_the_plugin() -> None:
    assert new({}, handle()).name == NAME == "PrioritySort"
