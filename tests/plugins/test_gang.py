from aisched.framework.cycle_state import CycleState
from aisched.framework.status import Code
from aisched.framework.types import Gang as GangInfo
from aisched.plugins.gang import NAME, Gang, new
from tests.plugins._cluster import snapshot_of
from tests.support.core import gang, handle, node, pod

SNAPSHOT_NODES = [node("a"), node("b"), node("c")]


def test_incomplete_gang_is_unschedulable_with_a_reason_naming_the_counts() -> None:
    workers = [pod(f"w{i}", gpus=8) for i in range(2)]

    status = Gang().pre_filter(
        CycleState(), gang("train", workers, min_member=4), snapshot_of(SNAPSHOT_NODES)
    )

    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE  # preemption cannot help, its members can
    assert status.plugin == NAME
    assert status.reasons == ("gang ml/train has 2 of its 4 members; waiting for the rest",)


def test_gang_with_exactly_min_member_members_passes() -> None:
    workers = [pod(f"w{i}", gpus=8) for i in range(3)]

    status = Gang().pre_filter(
        CycleState(), gang("train", workers, min_member=3), snapshot_of(SNAPSHOT_NODES)
    )

    assert status.ok


def test_gang_with_more_members_than_min_member_passes() -> None:
    workers = [pod(f"w{i}", gpus=8) for i in range(3)]

    status = Gang().pre_filter(
        CycleState(), gang("elastic", workers, min_member=2), snapshot_of(SNAPSHOT_NODES)
    )

    assert status.ok


def test_lone_pod_is_a_complete_gang_of_one() -> None:
    status = Gang().pre_filter(CycleState(), GangInfo.of(pod("solo")), snapshot_of(SNAPSHOT_NODES))

    assert status.ok


def test_factory_builds_the_plugin() -> None:
    assert new({}, handle()).name == "Gang"
