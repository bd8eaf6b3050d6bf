"""`aisched explain NAMESPACE/NAME` (also `kubectl aisched explain`): why an AIJob or a pod waits.

The answer is read from the API server, from what the operator keeps there: an AIJob's
`status.pendingReason` (quota, placement, queue and preemption as fields, refreshed while it
waits), its phase and placement once it runs, its tenant's TenantQuota status. A pod made by an
AIJob is explained by its job; a pod alone by its PodScheduled condition (the scheduler's verdict
in kube-scheduler's words) and its tenant's quota; with `--scheduler URL` (the leading operator's
HTTP port), by what that scheduler knows of the gang it waits in, as fields. The structure always
has the four sections `quota`, `placement`, `queue` and `preemption` (`-o json`); the text output
prints them as lines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol, TextIO
from urllib.parse import quote

import aiohttp

from aisched.api import keys
from aisched.api.objects import ObjectView, PodView
from aisched.kube.client import ApiError, ApiUnavailable, ConfigError, JsonObject, KubeClient, resource_path

__all__ = ["Answer", "Reader", "explain", "explain_command", "parse_target", "render"]

Answer = dict[str, Any]
_GROUP: Final = "aisched.io"
_VERSION: Final = "v1alpha1"
_KINDS: Final = {
    "aijob": "AIJob",
    "aijobs": "AIJob",
    "aij": "AIJob",
    "pod": "Pod",
    "pods": "Pod",
    "po": "Pod",
}


def parse_target(target: str, namespace: str | None) -> tuple[str | None, str, str]:
    """`[KIND/]NAMESPACE/NAME` or `[KIND/]NAME` (with `namespace`, default `default`) as (kind or
    None for either, namespace, name); ValueError naming what is wrong."""
    parts = target.split("/")
    kind = None
    if len(parts) > 1 and parts[0].lower() in _KINDS:
        kind = _KINDS[parts[0].lower()]
        parts = parts[1:]
    if len(parts) == 2:
        if namespace is not None and namespace != parts[0]:
            raise ValueError(f"{target}: names namespace {parts[0]}, but -n says {namespace}")
        ns, name = parts
    elif len(parts) == 1:
        ns, name = namespace or "default", parts[0]
    else:
        raise ValueError(f"{target}: expected NAMESPACE/NAME, NAME, or KIND/NAMESPACE/NAME")
    if not ns or not name:
        raise ValueError(f"{target}: the namespace and the name must not be empty")
    return kind, ns, name


#: Asks the leading scheduler why pod (namespace, name) waits; None when it does not know it.
Scheduler = Callable[[str, str], Awaitable[Answer | None]]


def scheduler_at(url: str) -> Scheduler:
    """The live answers of the operator serving `url` (its HTTP port, e.g. a port-forward)."""

    async def ask(namespace: str, name: str) -> Answer | None:
        path = f"{url.rstrip('/')}/api/explain/pods/{quote(namespace, safe='')}/{quote(name, safe='')}"
        timeout = aiohttp.ClientTimeout(total=10)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(path) as response:
                if response.status == 404:
                    return None
                response.raise_for_status()
                answer: Answer = await response.json()
                return answer
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ApiUnavailable(f"the scheduler at {url} did not answer: {exc}") from exc

    return ask


class Reader(Protocol):
    """The one verb explain needs of `aisched.kube.client.KubeClient`."""

    async def get(self, path: str) -> JsonObject: ...


async def explain(
    client: Reader,
    namespace: str,
    name: str,
    *,
    kind: str | None = None,
    scheduler: Scheduler | None = None,
) -> Answer:
    """The structured answer for the AIJob or pod `namespace/name` (an AIJob first when `kind` is
    None); LookupError when neither exists. `scheduler` answers live for a pod alone."""
    if kind in (None, "AIJob"):
        job = await _get(client, _job_path(namespace, name))
        if job is not None:
            return await _explain_job(client, job)
    if kind in (None, "Pod"):
        pod = await _get(
            client, resource_path(group="", version="v1", plural="pods", namespace=namespace, name=name)
        )
        if pod is not None:
            return await _explain_pod(client, pod, scheduler)
    what = {None: "AIJob or pod", "AIJob": "AIJob", "Pod": "pod"}[kind]
    raise LookupError(f"no {what} {namespace}/{name}")


async def _explain_job(client: Reader, job: JsonObject, *, pod: JsonObject | None = None) -> Answer:
    view = ObjectView(job)
    status = view.status
    phase = str(status.get("phase") or "Pending")
    pending = status.get("pendingReason")
    pending = pending if isinstance(pending, Mapping) else None
    answer: Answer = {
        "object": {"kind": "AIJob", "namespace": view.namespace, "name": view.name, "phase": phase},
        "summary": str(status.get("message") or ""),
        "stage": str(pending.get("stage")) if pending is not None else phase,
    }
    if pod is not None:
        answer["pod"] = {"namespace": PodView(pod).namespace, "name": PodView(pod).name}
    tenant = status.get("tenant")
    quota = dict(pending.get("quota") or {}) if pending is not None else {}
    if not quota:
        quota = {"tenant": tenant, "blocking": False}
    quota["tenantStatus"] = await _tenant_status(client, quota.get("tenant") or tenant)
    answer["quota"] = quota
    if pending is not None:
        admission = pending.get("stage") == "Admission"
        not_looked = _AT_ADMISSION if admission else _QUOTA_FIRST if quota.get("blocking") else _NOT_TRIED
        answer["placement"] = dict(pending.get("placement") or {"note": not_looked})
        answer["queue"] = dict(pending.get("queue") or status.get("queue") or {"note": _NOT_QUEUED})
        answer["preemption"] = dict(
            pending.get("preemption")
            or {"wouldPreempt": False, "note": _AT_ADMISSION if admission else _NOT_TRIED}
        )
        return answer
    placed = [p for p in status.get("placement") or () if isinstance(p, Mapping)]
    answer["placement"] = (
        {"placed": True, "pods": len(placed), "nodes": sorted({str(p.get("node")) for p in placed})}
        if placed
        else {"placed": False, "note": _NOT_WAITING if phase in _DONE else _NOT_TRIED}
    )
    answer["queue"] = dict(status.get("queue") or {"note": _NOT_QUEUED})
    answer["preemption"] = {
        "wouldPreempt": False,
        "preempted": int(status.get("preemptions") or 0),
        "note": "the job was preempted before" if status.get("preemptions") else "",
    }
    return answer


async def _explain_pod(client: Reader, pod: JsonObject, scheduler: Scheduler | None) -> Answer:
    view = PodView(pod)
    owner = view.aijob_reference(controller=True)
    if owner is not None:
        job = await _get(client, _job_path(view.namespace, str(owner.get("name") or "")))
        if job is not None and ObjectView(job).uid == owner.get("uid"):
            return await _explain_job(client, job, pod=pod)
    if scheduler is not None:
        live = await scheduler(view.namespace, view.name)
        if live is not None:
            return live
    condition = view.condition("PodScheduled") or {}
    node = view.node_name
    phase = str(view.status.get("phase") or "Pending")
    tenant = view.annotations.get(keys.ANNOTATION_TENANT) or await _tenant_of_namespace(
        client, view.namespace
    )
    answer: Answer = {
        "object": {"kind": "Pod", "namespace": view.namespace, "name": view.name, "phase": phase},
        "summary": str(condition.get("message") or (f"bound to {node}" if node else "")),
        "stage": "Running" if node else "Scheduling",
        "quota": {"tenant": tenant, "tenantStatus": await _tenant_status(client, tenant)},
        "placement": (
            {"placed": True, "nodes": [node]}
            if node
            else {
                "placed": False,
                "reason": str(condition.get("reason") or ""),
                "message": str(condition.get("message") or ""),
            }
        ),
        "queue": {"note": "a pod outside an AIJob is queued with its gang; its verdict says where it holds"},
        "preemption": {
            "wouldPreempt": False,
            "preemptedBy": view.annotations.get(keys.ANNOTATION_PREEMPTED_BY) or None,
        },
    }
    return answer


_NOT_TRIED: Final = "no scheduling attempt has turned the job away yet"
_NOT_QUEUED: Final = "not in the scheduler's queue"
_AT_ADMISSION: Final = "not looked at: the job is not admitted (see quota), so it has no pods yet"
_QUOTA_FIRST: Final = "no node looked at: its tenant's quota holds the gang back first"
_NOT_WAITING: Final = "the job does not wait"
_DONE: Final = ("Succeeded", "Failed")


async def _get(client: Reader, path: str) -> JsonObject | None:
    try:
        return await client.get(path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _job_path(namespace: str, name: str) -> str:
    return resource_path(group=_GROUP, version=_VERSION, plural="aijobs", namespace=namespace, name=name)


async def _tenant_status(client: Reader, tenant: object) -> dict[str, Any] | None:
    """The TenantQuota's own account of its usage (its status), or None."""
    if not isinstance(tenant, str) or not tenant:
        return None
    found = await _get(
        client, resource_path(group=_GROUP, version=_VERSION, plural="tenantquotas", name=tenant)
    )
    if found is None:
        return None
    status = ObjectView(found).status
    wanted = ("usedGPUs", "guaranteedGPUs", "borrowedGPUs", "admittedJobs", "pendingJobs")
    return {k: status[k] for k in wanted if k in status}


async def _tenant_of_namespace(client: Reader, namespace: str) -> str | None:
    """The TenantQuota listing `namespace`, if exactly one does."""
    quotas = await client.get(resource_path(group=_GROUP, version=_VERSION, plural="tenantquotas"))
    names = [
        ObjectView(q).name
        for q in quotas.get("items") or ()
        if isinstance(q, Mapping) and namespace in (ObjectView(q).spec.get("namespaces") or ())
    ]
    return names[0] if len(names) == 1 else None


def render(answer: Answer) -> str:
    """The answer as lines a person reads."""
    obj = answer["object"]
    lines = [f"{obj['kind']} {obj['namespace']}/{obj['name']}: {obj['phase']}"]
    if "pod" in answer:
        lines[0] += f" (explaining pod {answer['pod']['namespace']}/{answer['pod']['name']} by its job)"
    if answer.get("summary"):
        lines.append(f"  {answer['summary']}")
    lines += _section("Quota", _quota_lines(answer["quota"]))
    lines += _section("Placement", _placement_lines(answer["placement"]))
    lines += _section("Queue", _queue_lines(answer["queue"]))
    lines += _section("Preemption", _preemption_lines(answer["preemption"]))
    return "\n".join(lines) + "\n"


def _section(title: str, body: Sequence[str]) -> list[str]:
    body = list(body) or ["-"]
    return [f"{title + ':':<12}{body[0]}", *(f"{'':<12}{line}" for line in body[1:])]


def _gpus(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, int | float) else str(value)


def _quota_lines(quota: Mapping[str, Any]) -> list[str]:
    tenant = quota.get("tenant")
    if not tenant:
        lines = ["no TenantQuota applies (the namespace is not listed by one)"]
        if quota.get("blocking"):
            lines.append(f"holds the job back: {quota.get('message') or 'yes'}")
        return lines
    head = f"tenant {tenant}" + (f" (cohort {quota['cohort']})" if quota.get("cohort") else "")
    figures = [
        f"{label} {_gpus(quota[key])}"
        for key, label in (
            ("asked", "asks"),
            ("inUse", "in use"),
            ("admitted", "admitted"),
            ("guaranteed", "guaranteed"),
            ("max", "max"),
            ("borrowed", "borrowed"),
        )
        if quota.get(key) is not None
    ]
    lines = [head + (": " + ", ".join(figures) + " GPUs" if figures else "")]
    tenant_status = quota.get("tenantStatus") or {}
    if tenant_status and "inUse" not in quota:
        lines.append(
            f"tenant now: {_gpus(tenant_status.get('usedGPUs'))} GPUs used of "
            f"{_gpus(tenant_status.get('guaranteedGPUs'))} guaranteed"
        )
    lines.append(
        "holds the job back: " + (str(quota.get("message") or "yes") if quota.get("blocking") else "no")
    )
    if quota.get("wouldFree"):
        lines.append(f"would free it: {quota['wouldFree']}")
    return lines


def _placement_lines(placement: Mapping[str, Any]) -> list[str]:
    if placement.get("placed"):
        nodes = placement.get("nodes") or []
        return [f"placed on {len(nodes)} node(s): {', '.join(nodes[:8])}{' ...' if len(nodes) > 8 else ''}"]
    if "nodes" not in placement:
        return [str(placement.get("message") or placement.get("note") or "")]
    lines = [f"{placement.get('feasibleNodes', 0)}/{placement['nodes']} nodes pass every filter"]
    lines += [f"{r['nodes']:>6} {r['reason']}" for r in placement.get("reasons") or ()]
    lines += [f"topology: {t}" for t in placement.get("topology") or ()]
    if placement.get("fragmentation"):
        lines.append(f"fragmentation: {placement['fragmentation']}")
    if placement.get("freeGPUs") is not None:
        lines.append(f"free GPUs on the nodes it may use: {placement['freeGPUs']}")
    return lines


def _queue_lines(queue: Mapping[str, Any]) -> list[str]:
    if "name" not in queue:
        return [str(queue.get("note") or "")]
    position = queue.get("position") or 0
    where = f"in {queue['name']} ({queue.get('strategy', '')})"
    lines = [f"position {position} of {queue.get('length', 0)} {where}" if position else f"queued {where}"]
    since = f", since {queue['heldSince']}" if queue.get("heldSince") else ""
    spare = queue.get("spareNodes") or 0
    if queue.get("reservedNodes"):
        lines.append(
            f"holds {queue['reservedNodes']} node(s) to start on, {queue.get('readyNodes', 0)} with room now"
            + (f", and {spare} more it could start on" if spare else "")
            + since
        )
    elif spare:
        lines.append(f"holds the {spare} node(s) it could start on, behind gangs ahead that hold them{since}")
    lines.append(
        f"estimated start: {queue.get('estimatedStart') or 'not known (no running job near it has a limit)'}"
    )
    return lines


def _preemption_lines(preemption: Mapping[str, Any]) -> list[str]:
    if preemption.get("wouldPreempt"):
        victims = preemption.get("victims") or []
        return [f"yes: evicting {len(victims)} gang(s): {', '.join(victims)}"]
    lines = ["no" + (f": {preemption['message']}" if preemption.get("message") else "")]
    if preemption.get("note"):
        lines.append(str(preemption["note"]))
    if preemption.get("preemptedBy"):
        lines.append(f"preempted before by {preemption['preemptedBy']}")
    return lines


def explain_command(
    target: str,
    *,
    namespace: str | None,
    kubeconfig: str | None,
    output: str,
    out: TextIO,
    err: TextIO,
    prog: str = "aisched",
    scheduler: str | None = None,
) -> int:
    """Run `explain`; the exit code (1: not found or no cluster, 2: a malformed target)."""
    try:
        kind, ns, name = parse_target(target, namespace)
    except ValueError as exc:
        print(f"{prog} explain: {exc}", file=err)
        return 2

    async def run() -> Answer:
        async with await KubeClient.auto(kubeconfig) as client:
            live = scheduler_at(scheduler) if scheduler else None
            return await explain(client, ns, name, kind=kind, scheduler=live)

    try:
        answer = asyncio.run(run())
    except (LookupError, ConfigError, ApiUnavailable) as exc:
        print(f"{prog} explain: {' '.join(str(exc).split())}", file=err)
        return 1
    except ApiError as exc:
        print(f"{prog} explain: {exc.status} {exc.reason}: {exc.message}", file=err)
        return 1
    out.write(json.dumps(answer, indent=2, sort_keys=True) + "\n" if output == "json" else render(answer))
    return 0
