from collections.abc import Callable

import pytest

from aisched.framework.status import Code, Status


def test_default_status_is_success() -> None:
    assert Status().ok
    assert Status() == Status.success()
    assert Status.success().code is Code.SUCCESS


@pytest.mark.parametrize(
    ("status", "ok", "rejected"),
    [
        (Status.success(), True, False),
        (Status.skip(plugin="P"), False, False),
        (Status.unschedulable("r", plugin="P"), False, True),
        (Status.unresolvable("r", plugin="P"), False, True),
        (Status.error("boom", plugin="P"), False, False),
    ],
)
def test_only_unschedulable_codes_count_as_rejections(status: Status, ok: bool, rejected: bool) -> None:
    assert status.ok is ok
    assert status.rejected is rejected


@pytest.mark.parametrize(
    ("factory", "code"),
    [
        (Status.unschedulable, Code.UNSCHEDULABLE),
        (Status.unresolvable, Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
        (Status.error, Code.ERROR),
    ],
)
def test_factories_keep_every_reason_in_order_and_the_plugin(
    factory: Callable[..., Status], code: Code
) -> None:
    status = factory("first", "second", plugin="ResourceFit")

    assert status == Status(code, ("first", "second"), "ResourceFit")


def test_skip_carries_no_reasons() -> None:
    status = Status.skip(plugin="GPUTopology")

    assert status.code is Code.SKIP
    assert status.reasons == ()
    assert status.plugin == "GPUTopology"


def test_message_joins_reasons_with_semicolons() -> None:
    status = Status.unschedulable("needs 8 GPUs on one NVLink clique", "rack r1 is full", plugin="Gang")

    assert status.message() == "needs 8 GPUs on one NVLink clique; rack r1 is full"


def test_message_of_a_status_without_reasons_is_empty() -> None:
    assert Status.success().message() == ""


def test_status_is_immutable() -> None:
    status = Status.unschedulable("r", plugin="P")

    with pytest.raises(AttributeError):
        status.code = Code.SUCCESS  # type: ignore[misc]
