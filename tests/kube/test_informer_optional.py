"""An optional informer, for a resource that may not be served (a job framework's CRD): a 404
reads as an empty collection, synced, listed again every `absent_retry` seconds; a 403 is tried
again as often and keeps what was delivered."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import pytest

from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient, Params
from aisched.kube.informer import ABSENT_RETRY_SECONDS, Informer
from aisched.kube.retry import Backoff
from tests.emulator.test_kopf import WIDGETS as WIDGET_CRD
from tests.kube.test_informer import GatedSleep, Recorder, running

WIDGETS: Final = "/apis/example.com/v1/namespaces/default/widgets"
CRDS: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_REASONS: Final = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    410: "Expired",
    503: "ServiceUnavailable",
}


def api_error(status: int) -> ApiError:
    """What `KubeClient` raises for an answer of `status` (a v1 Status body)."""
    reason = _REASONS[status]
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": status}
    return ApiError(status=status, reason=reason, message=f"widgets: {reason}", body=body)


def widget(name: str, version: str) -> JsonObject:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": version}
    }


def widget_list(version: str, *items: JsonObject) -> JsonObject:
    return {
        "apiVersion": "example.com/v1",
        "kind": "WidgetList",
        "metadata": {"resourceVersion": version},
        "items": list(items),
    }


@dataclass
class Scripted:
    """A list+watch client with scripted answers. Each LIST takes the next of `lists` (a list body,
    or an ApiError to raise); a LIST past the script fails the informer, rather than spin. Each
    WATCH takes the next of `watch_errors` to raise; with none left it stays open and quiet."""

    lists: list[JsonObject | ApiError]
    watch_errors: list[ApiError] = field(default_factory=list)
    listed: int = 0
    watches: list[dict[str, object]] = field(default_factory=list)
    watching: asyncio.Event = field(default_factory=asyncio.Event)

    async def get(self, path: str, *, params: Params | None = None) -> JsonObject:
        self.listed += 1
        if not self.lists:
            raise AssertionError(f"LIST {path} number {self.listed} is not in the script")
        answer = self.lists.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return copy.deepcopy(answer)

    async def watch(self, path: str, *, params: Params | None = None) -> AsyncIterator[JsonObject]:
        self.watches.append(dict(params or {}))
        if self.watch_errors:
            raise self.watch_errors.pop(0)
        self.watching.set()
        await asyncio.Event().wait()  # open and quiet until the informer is stopped
        yield {}  # pragma: no cover (makes this an async generator)


async def slept(sleep: GatedSleep) -> None:
    """Wait until the informer is in the `gate_after`-th sleep."""
    async with asyncio.timeout(5):
        await sleep.reached.wait()


@pytest.mark.parametrize("status", [404, 403])
async def test_an_absent_or_forbidden_resource_syncs_empty_and_waits_absent_retry_before_listing_again(
    status: int,
) -> None:
    client = Scripted(lists=[api_error(status)])
    sleep = GatedSleep(gate_after=1)
    recorder = Recorder()
    informer = Informer(client, path=WIDGETS, handler=recorder, optional=True, sleep=sleep, absent_retry=7.5)
    async with running(informer):
        await slept(sleep)
        assert await recorder.next(1) == [("synced", "")]
        assert recorder.seen.empty()
        assert informer.synced.is_set()
        assert informer.absent == (status == 404)
        assert informer.forbidden == (status == 403)
        assert dict(informer.index) == {}
        assert informer.resource_version is None
        assert sleep.delays == [7.5]
        for _ in range(5):  # while the retry sleeps, nothing lists or watches
            await asyncio.sleep(0)
        assert client.listed == 1
        assert client.watches == []
    assert informer.retries == 0  # not an outage: no backoff


async def test_a_resource_still_absent_is_listed_again_each_retry_and_synced_only_once() -> None:
    client = Scripted(lists=[api_error(404), api_error(404), api_error(403)])
    sleep = GatedSleep(gate_after=3)
    recorder = Recorder()
    informer = Informer(client, path=WIDGETS, handler=recorder, optional=True, sleep=sleep)
    async with running(informer):
        await slept(sleep)
        assert client.listed == 3
        assert sleep.delays == [ABSENT_RETRY_SECONDS] * 3
        assert await recorder.next(1) == [("synced", "")]
        assert recorder.seen.empty()
        assert informer.absent
        assert informer.forbidden
        assert client.watches == []


async def test_a_resource_served_later_is_delivered_as_adds_and_no_longer_absent() -> None:
    client = Scripted(lists=[api_error(404), widget_list("12", widget("a", "10"), widget("b", "11"))])
    sleep = GatedSleep(gate_after=1)
    recorder = Recorder()
    informer = Informer(client, path=WIDGETS, handler=recorder, optional=True, sleep=sleep)
    async with running(informer):
        await slept(sleep)
        assert await recorder.next(1) == [("synced", "")]
        assert informer.absent
        sleep.opened.set()
        assert await recorder.next(2) == [("add", "default/a"), ("add", "default/b")]
        assert not informer.absent
        assert set(informer.index) == {("default", "a"), ("default", "b")}
        assert informer.index[("default", "a")]["kind"] == "Widget"
        assert informer.resource_version == "12"
        async with asyncio.timeout(5):
            await client.watching.wait()
        assert [w["resourceVersion"] for w in client.watches] == ["12"]
    assert recorder.seen.empty()  # synced came once, before the resource was served
    assert client.listed == 2
    assert sleep.delays == [ABSENT_RETRY_SECONDS]


def served_then(
    lists_after: list[JsonObject | ApiError], watch_errors: list[ApiError]
) -> tuple[Informer, Recorder, GatedSleep]:
    """An optional informer of two widgets, whose later lists and watches answer as given."""
    served = widget_list("12", widget("a", "10"), widget("b", "11"))
    client = Scripted(lists=[served, *lists_after], watch_errors=watch_errors)
    sleep = GatedSleep(gate_after=1)
    recorder = Recorder()
    return Informer(client, path=WIDGETS, handler=recorder, optional=True, sleep=sleep), recorder, sleep


@pytest.mark.parametrize(
    ("lists_after", "watch_errors"),
    [
        pytest.param([api_error(404)], [api_error(410)], id="relist-after-expiry-is-404"),
        pytest.param([], [api_error(404)], id="watch-is-404"),
    ],
)
async def test_a_served_resource_that_disappears_delivers_the_known_objects_as_deletes(
    lists_after: list[JsonObject | ApiError], watch_errors: list[ApiError]
) -> None:
    informer, recorder, sleep = served_then(lists_after, watch_errors)
    async with running(informer):
        await slept(sleep)
        assert await recorder.next(5) == [
            ("add", "default/a"),
            ("add", "default/b"),
            ("synced", ""),
            ("delete", "default/a"),
            ("delete", "default/b"),
        ]
        assert recorder.seen.empty()
        assert [d["metadata"]["resourceVersion"] for d in recorder.deleted] == ["10", "11"]
        assert informer.absent
        assert dict(informer.index) == {}
        assert informer.resource_version is None
        assert sleep.delays == [ABSENT_RETRY_SECONDS]


@pytest.mark.parametrize(
    ("lists_after", "watch_errors"),
    [
        pytest.param([api_error(403)], [api_error(410)], id="relist-after-expiry-is-403"),
        pytest.param([], [api_error(403)], id="watch-is-403"),
    ],
)
async def test_a_resource_no_longer_granted_keeps_what_was_delivered(
    lists_after: list[JsonObject | ApiError], watch_errors: list[ApiError]
) -> None:
    informer, recorder, sleep = served_then(lists_after, watch_errors)
    async with running(informer):
        await slept(sleep)
        assert await recorder.next(3) == [("add", "default/a"), ("add", "default/b"), ("synced", "")]
        assert recorder.seen.empty(), "no deletes: a view that cannot be refreshed is kept"
        assert informer.forbidden
        assert not informer.absent
        assert set(informer.index) == {("default", "a"), ("default", "b")}
        assert sleep.delays == [ABSENT_RETRY_SECONDS]


async def test_a_resumed_informer_whose_resource_is_gone_deletes_what_it_was_given() -> None:
    client = Scripted(lists=[], watch_errors=[api_error(404)])
    sleep = GatedSleep(gate_after=1)
    recorder = Recorder()
    informer = Informer(
        client,
        path=WIDGETS,
        handler=recorder,
        optional=True,
        sleep=sleep,
        resource_version="12",
        known=[widget("a", "10")],
    )
    async with running(informer):
        await slept(sleep)
        assert await recorder.next(2) == [("synced", ""), ("delete", "default/a")]
        assert informer.absent
        assert dict(informer.index) == {}
        assert client.listed == 0


async def test_a_resource_that_comes_back_is_delivered_again_as_adds() -> None:
    client = Scripted(
        lists=[widget_list("12", widget("a", "10")), widget_list("20", widget("a", "18"))],
        watch_errors=[api_error(404)],
    )
    sleep = GatedSleep(gate_after=1)
    recorder = Recorder()
    informer = Informer(client, path=WIDGETS, handler=recorder, optional=True, sleep=sleep)
    async with running(informer):
        await slept(sleep)
        assert await recorder.next(3) == [("add", "default/a"), ("synced", ""), ("delete", "default/a")]
        sleep.opened.set()
        assert await recorder.next(1) == [("add", "default/a")]
        assert not informer.absent
        assert informer.index[("default", "a")]["metadata"]["resourceVersion"] == "18"


@pytest.mark.parametrize("status", [404, 403])
async def test_a_required_informer_ends_run_with_the_api_error(status: int) -> None:
    client = Scripted(lists=[api_error(status)])
    sleep = GatedSleep(gate_after=1)
    recorder = Recorder()
    informer = Informer(client, path=WIDGETS, handler=recorder, sleep=sleep)
    with pytest.raises(ApiError) as caught:
        async with asyncio.timeout(5):
            await informer.run(asyncio.Event())
    assert caught.value.status == status
    assert not informer.synced.is_set()
    assert not informer.absent
    assert recorder.seen.empty()
    assert sleep.delays == []


async def test_an_optional_informer_still_ends_run_on_another_configuration_fault() -> None:
    client = Scripted(lists=[api_error(400)])
    informer = Informer(client, path=WIDGETS, handler=Recorder(), optional=True, sleep=GatedSleep(1))
    with pytest.raises(ApiError) as caught:
        async with asyncio.timeout(5):
            await informer.run(asyncio.Event())
    assert caught.value.status == 400
    assert not informer.synced.is_set()


async def test_an_outage_of_an_optional_resource_backs_off_and_is_not_read_as_absent() -> None:
    client = Scripted(
        lists=[widget_list("12", widget("a", "10")), api_error(503)], watch_errors=[api_error(410)]
    )
    sleep = GatedSleep(gate_after=1)
    recorder = Recorder()
    backoff = Backoff(initial=0.25, cap=1.0, jitter=0.0)
    informer = Informer(client, path=WIDGETS, handler=recorder, optional=True, sleep=sleep, backoff=backoff)
    async with running(informer):
        await slept(sleep)
        assert await recorder.next(2) == [("add", "default/a"), ("synced", "")]
        assert recorder.seen.empty()  # no deletes: the objects may well still be there
        assert sleep.delays == [0.25]
        assert informer.retries == 1
        assert not informer.absent
        assert set(informer.index) == {("default", "a")}


async def test_a_crd_installed_and_removed_while_an_optional_informer_runs(emulator: Emulator) -> None:
    async with KubeClient(base_url=emulator.url, timeout=5) as kube:
        sleep = GatedSleep(gate_after=1)
        recorder = Recorder()
        informer = Informer(kube, path=WIDGETS, handler=recorder, optional=True, sleep=sleep)
        async with running(informer):
            await slept(sleep)
            assert await recorder.next(1) == [("synced", "")]
            assert informer.absent
            await kube.post(CRDS, copy.deepcopy(WIDGET_CRD))
            await kube.post(
                WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
            )
            sleep.opened.set()
            assert await recorder.next(1) == [("add", "default/w")]
            assert not informer.absent
            sleep.opened.clear()  # the next absent retry waits again
            sleep.reached.clear()
            await kube.delete(f"{CRDS}/widgets.example.com")
            assert await recorder.next(1) == [("delete", "default/w")]
            await slept(sleep)
            assert informer.absent
            assert dict(informer.index) == {}
            assert recorder.seen.empty()
        assert sleep.delays == [ABSENT_RETRY_SECONDS] * 2


async def test_what_an_informer_keeps_and_delivers_is_what_its_trim_leaves() -> None:
    bulky = widget("a", "10")
    bulky["spec"] = {"size": 3, "template": {"spec": {"containers": [{"name": "c"}]}}}
    client = Scripted(lists=[widget_list("12", bulky)])
    recorder = Recorder()

    def trim(obj: JsonObject) -> JsonObject:
        return {"metadata": obj["metadata"], "spec": {"size": obj["spec"]["size"]}}

    informer = Informer(client, path=WIDGETS, handler=recorder, optional=True, trim=trim)
    async with running(informer):
        assert await recorder.next(2) == [("add", "default/a"), ("synced", "")]
        kept = informer.index[("default", "a")]
        assert kept["spec"] == {"size": 3}
        assert kept["kind"] == "Widget"
