"""The binder's decisions, without HTTP: verdicts on answers, and when a gang is lost."""

from __future__ import annotations

from typing import Any

import pytest

from aisched.binder import GangLedger, Verdict, judge_conflict, judge_error
from aisched.kube.client import ApiError

KEYS = ["ns/a", "ns/b", "ns/c", "ns/d"]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (404, Verdict.GONE),
        (409, Verdict.CHECK),
        (408, Verdict.RETRY),
        (425, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (504, Verdict.RETRY),
        (400, Verdict.FAILED),
        (403, Verdict.FAILED),
        (422, Verdict.FAILED),
        (501, Verdict.FAILED),
    ],
)
def test_error_answers_map_to_gone_check_retry_or_failed(status: int, verdict: Verdict) -> None:
    error = ApiError(status=status, reason="", message="", body={})
    assert judge_error(error) is verdict


def pod(*, node: str | None = None, uid: str = "u1", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "a", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}}


@pytest.mark.parametrize(
    ("current", "verdict"),
    [
        (pod(node="n1"), Verdict.BOUND),
        (pod(node="n2"), Verdict.ELSEWHERE),
        (None, Verdict.GONE),
        (pod(node="n1", uid="u2"), Verdict.GONE),
        (pod(deleting=True), Verdict.GONE),
        (pod(), Verdict.RETRY),
    ],
    ids=["same-node", "other-node", "not-found", "recreated", "deleting", "unbound"],
)
def test_a_conflict_is_judged_by_where_the_pod_is_now(
    current: dict[str, Any] | None, verdict: Verdict
) -> None:
    assert judge_conflict(current, node="n1", uid="u1")[0] is verdict


def test_a_conflict_without_a_known_uid_trusts_the_name() -> None:
    assert judge_conflict(pod(node="n1", uid="u9"), node="n1", uid="")[0] is Verdict.BOUND


def test_gone_members_are_dropped_while_the_gang_keeps_min_member() -> None:
    ledger = GangLedger(keys=KEYS, min_member=3)
    for key in ("ns/d", "ns/a", "ns/c"):
        ledger.record(key, Verdict.BOUND)
    ledger.record("ns/b", Verdict.GONE, "deleted")

    outcome = ledger.outcome()

    assert ledger.lost is None
    assert outcome.bound == ["ns/a", "ns/c", "ns/d"]  # placement order, not completion order
    assert outcome.dropped == outcome.forget == ["ns/b"]
    assert not outcome.rolled_back


def test_one_gone_member_too_many_loses_the_gang() -> None:
    ledger = GangLedger(keys=KEYS, min_member=3)
    ledger.record("ns/a", Verdict.GONE)
    ledger.record("ns/b", Verdict.GONE)

    assert ledger.lost is not None
    assert "2 of 4 members left, the gang needs 3" in ledger.lost


@pytest.mark.parametrize("verdict", [Verdict.ELSEWHERE, Verdict.FAILED])
def test_a_member_bound_elsewhere_or_failed_loses_the_gang(verdict: Verdict) -> None:
    ledger = GangLedger(keys=KEYS, min_member=1)
    ledger.record("ns/c", verdict, "why")

    assert ledger.lost is not None
    assert "ns/c" in ledger.lost


def test_the_first_reason_to_lose_the_gang_is_kept() -> None:
    ledger = GangLedger(keys=KEYS, min_member=4)
    ledger.record("ns/a", Verdict.ELSEWHERE, "bound to node x")
    ledger.record("ns/b", Verdict.FAILED, "403")

    assert ledger.lost == "pod ns/a is bound to node x"


def test_a_rollback_forgets_every_member_and_reports_what_it_could_not_evict() -> None:
    ledger = GangLedger(keys=KEYS, min_member=4)
    ledger.record("ns/a", Verdict.BOUND)
    ledger.record("ns/b", Verdict.BOUND)
    ledger.record("ns/c", Verdict.FAILED, "503")

    outcome = ledger.outcome(evicted=["ns/a"], kept=["ns/b"])

    assert outcome.rolled_back
    assert outcome.forget == KEYS
    assert outcome.evicted == ["ns/a"]
    assert outcome.bound == ["ns/b"]
    assert "could not evict ns/b" in outcome.reason


@pytest.mark.parametrize("verdict", [Verdict.RETRY, Verdict.CHECK])
def test_only_final_verdicts_are_recorded(verdict: Verdict) -> None:
    with pytest.raises(ValueError, match="not a final verdict"):
        GangLedger(keys=KEYS, min_member=1).record("ns/a", verdict)
