"""`aisched demo` (`make demo`): the scheduler on the embedded emulator, with example jobs.

Starts the emulator with a simulated cluster, runs the operator against it exactly as in a cluster
(Kopf, leader election, informers, binder, all over HTTP), applies the examples directory and a
burst of generated jobs that asks for more GPUs than the cluster has, and shows a live table of the
jobs until every one has finished. The simulated kubelet ends each demo pod after the time in its
`aisched.io/sim-duration` annotation, which the demo adds to what it applies. Jobs that need MIG
are left out (the cluster has no MIG-enabled GPUs); the shared-GPU job runs, its four pods on
quarters of GPUs. One job is broken on purpose (9 GPUs per pod on 8-GPU nodes, with a gang
timeout): it must end Failed with the scheduler's explanation, while the others run.

Exit code 0 when every job ended as expected, 1 otherwise (or on timeout).
"""

from __future__ import annotations

import asyncio
import copy
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import yaml

from aisched.api import keys
from aisched.api.objects import TERMINAL_PHASES, ObjectView, object_key, parse_time
from aisched.controllers.kopf_handlers import Connection, run_operator
from aisched.controllers.manager import Manager
from aisched.emulator.kubelet import ANNOTATION_SIM_DURATION, whole_node_template
from aisched.emulator.runner import Emulator
from aisched.kube.client import ApiError, JsonObject, KubeClient, resource_path
from aisched.observability.logging import configure_logging
from aisched.runner import LOCAL_ONLY, ensure_namespace
from aisched.settings import LoggingSettings, load_settings

__all__ = ["apply_demo", "burst_jobs", "run_demo"]

DEMO_NAMESPACE: Final = "demo"
AIJOBS: Final = "/apis/aisched.io/v1alpha1/aijobs"
BROKEN_JOB: Final = "broken-9gpu"
_CONFLICT: Final = 409


def run_demo(*, cluster: Path, examples: Path, timeout: float, out: TextIO, err: TextIO) -> int:
    configure_logging(LoggingSettings(level="WARNING", format="console"), stream=err)
    try:
        return asyncio.run(_demo(cluster=cluster, examples=examples, give_up_after=timeout, out=out))
    except (OSError, ValueError) as exc:
        print(f"aisched demo: {' '.join(str(exc).split())}", file=err)
        return 1


async def _demo(*, cluster: Path, examples: Path, give_up_after: float, out: TextIO) -> int:
    settings = load_settings(None, metrics={"host": LOCAL_ONLY, "port": 0})
    stop = asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="aisched-demo-") as scratch:
        async with Emulator(cluster=cluster) as api, KubeClient(base_url=api.url) as kube:
            ensure_namespace(api, settings.leader_election.namespace)
            kubeconfig = api.kubeconfig(Path(scratch) / "kubeconfig")
            print(f"emulator: {api.url}  (kubectl --kubeconfig {kubeconfig} get aijobs -A)", file=out)
            managers: list[Manager] = []
            operator = asyncio.create_task(
                run_operator(Connection(server=api.url), settings, stop=stop, on_manager=managers.append)
            )
            try:
                expected = await apply_demo(kube, examples)
                view = await _view_url(managers, operator)
                print(f"applied {len(expected)} jobs; waiting for them to finish\n", file=out, flush=True)
                finished = await _watch_table(kube, expected, give_up_after=give_up_after, out=out, view=view)
            finally:
                stop.set()
                code = await operator
        if code != 0:
            print("the operator failed; see the log above", file=out)
            return 1
        return _summary(finished, expected, out=out)


async def _view_url(managers: list[Manager], operator: asyncio.Task[int]) -> str | None:
    """Where the operator serves the cluster view once it leads (None if it ended first)."""
    if not managers:
        return None
    leading = asyncio.ensure_future(managers[0].leading.wait())
    await asyncio.wait({leading, operator}, return_when=asyncio.FIRST_COMPLETED)
    leading.cancel()
    url = managers[0].url
    return f"{url}/" if url is not None and managers[0].leading.is_set() else None


# -- what the demo applies -------------------------------------------------------------------------


def _documents(examples: Path) -> Iterator[JsonObject]:
    for path in sorted(examples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                yield doc


def _needs_mig(job: JsonObject) -> bool:
    return "migProfile" in (ObjectView(job).spec.get("gpu") or {})


def _with_duration(template: JsonObject, seconds: float) -> None:
    meta = template.setdefault("metadata", {})
    meta.setdefault("annotations", {})[ANNOTATION_SIM_DURATION] = f"{seconds:g}s"


def burst_jobs(
    count: int, *, namespace: str = DEMO_NAMESPACE, seconds: float | None = None
) -> list[JsonObject]:
    """`count` jobs of 4 pods × 8 GPUs confined to one rack, running 6 to 14 s each (or `seconds`)."""
    jobs = []
    for i in range(count):
        template = whole_node_template(f"{seconds if seconds is not None else 6 + (i * 3) % 9:g}s")
        jobs.append(
            {
                "apiVersion": "aisched.io/v1alpha1",
                "kind": "AIJob",
                "metadata": {"name": f"burst-{i:02d}", "namespace": namespace},
                "spec": {
                    "topology": {"policy": "Required", "level": "rack"},
                    "replicas": [
                        {"name": "master", "count": 1, "template": template},
                        {"name": "worker", "count": 3, "template": copy.deepcopy(template)},
                    ],
                },
            }
        )
    return jobs


def _broken_job(namespace: str = DEMO_NAMESPACE) -> JsonObject:
    return {
        "apiVersion": "aisched.io/v1alpha1",
        "kind": "AIJob",
        "metadata": {"name": BROKEN_JOB, "namespace": namespace},
        "spec": {
            "gang": {"timeoutSeconds": 15},
            "restart": {"policy": "Never"},
            "replicas": [
                {
                    "name": "worker",
                    "count": 2,
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "train",
                                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                                    "resources": {"limits": {keys.GPU_RESOURCE: 9}},
                                }
                            ]
                        }
                    },
                }
            ],
        },
    }


async def apply_demo(kube: KubeClient, examples: Path, *, seconds: float | None = None) -> dict[str, str]:
    """Create the examples and the generated jobs, each pod running `seconds` (default: 6 to 14 s);
    returns job key → the phase it should end in."""
    expected: dict[str, str] = {}
    await _create(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE}})
    for doc in _documents(examples):
        kind = doc.get("kind")
        if kind == "AIJob" and _needs_mig(doc):
            continue  # the demo's cluster has no MIG-enabled GPUs
        if kind == "AIJob":
            for role in ObjectView(doc).spec["replicas"]:
                _with_duration(role.setdefault("template", {}), seconds or 10)
            expected[ObjectView(doc).key] = "Succeeded"
        elif kind == "Pod":
            _with_duration(doc, seconds or 8)
        elif kind not in ("Namespace", "TenantQuota"):
            continue
        await _create(kube, doc)
    for job in [*burst_jobs(10, seconds=seconds), _broken_job()]:
        await _create(kube, job)
        view = ObjectView(job)
        expected[view.key] = "Failed" if view.name == BROKEN_JOB else "Succeeded"
    return expected


async def _create(kube: KubeClient, doc: JsonObject) -> None:
    group, _, version = str(doc["apiVersion"]).rpartition("/")
    plural = {"Namespace": "namespaces", "TenantQuota": "tenantquotas", "AIJob": "aijobs", "Pod": "pods"}
    path = resource_path(
        group=group,
        version=version,
        plural=plural[doc["kind"]],
        namespace=ObjectView(doc).namespace or None,
    )
    try:
        await kube.post(path, doc)
    except ApiError as exc:
        if exc.status != _CONFLICT:
            raise


# -- the live table ----------------------------------------------------------------------------------


@dataclass
class _Row:
    key: str
    phase: str
    pods: str
    gpus: float
    racks: list[str]
    nodes: int
    waited: float | None
    message: str


async def _watch_table(
    kube: KubeClient, expected: dict[str, str], *, give_up_after: float, out: TextIO, view: str | None = None
) -> dict[str, _Row]:
    started = time.monotonic()
    if view is not None and not out.isatty():
        print(f"cluster view: {view}", file=out, flush=True)
    racks = await _racks(kube)
    interactive = out.isatty()
    last: dict[str, str] = {}
    rows: dict[str, _Row] = {}
    while time.monotonic() - started < give_up_after:
        listing = await kube.get(AIJOBS)
        rows = {r.key: r for r in (_row(j, racks) for j in listing["items"]) if r.key in expected}
        if interactive:
            table = _table(rows.values(), elapsed=time.monotonic() - started, view=view)
            out.write("\x1b[H\x1b[J" + table + "\n")
            out.flush()
        else:
            for row in rows.values():
                if last.get(row.key) != row.phase:
                    last[row.key] = row.phase
                    print(f"{time.monotonic() - started:6.1f}s  {_line(row)}", file=out, flush=True)
        if len(rows) == len(expected) and all(r.phase in TERMINAL_PHASES for r in rows.values()):
            return rows
        await asyncio.sleep(0.5)
    print(f"timed out after {give_up_after:.0f}s", file=out)
    return rows


async def _racks(kube: KubeClient) -> dict[str, str]:
    nodes = await kube.get("/api/v1/nodes")
    views = [ObjectView(n) for n in nodes["items"]]
    return {n.name: n.labels.get(keys.LABEL_RACK, "-") for n in views}


def _row(job: JsonObject, racks: dict[str, str]) -> _Row:
    view = ObjectView(job)
    status = view.status
    placement = status.get("placement") or []
    elastic = view.spec.get("elastic") or {}
    total = sum(
        elastic.get("maxReplicas", r.get("count", 0))
        if r.get("name") == elastic.get("role", "worker") and elastic
        else r.get("count", 0)
        for r in view.spec.get("replicas") or ()
    )  # an elastic role counts what it may grow to
    nodes = {p["node"] for p in placement}
    queued, scheduled = parse_time(status.get("queuedTime")), parse_time(status.get("scheduledTime"))
    return _Row(
        key=view.key,
        phase=status.get("phase", "Pending"),
        pods=f"{len(placement)}/{total}",
        gpus=float(status.get("gpus") or 0),
        racks=sorted({racks.get(n, "-") for n in nodes}),
        nodes=len(nodes),
        waited=None if queued is None or scheduled is None else max(0.0, scheduled - queued),
        message=str(status.get("message") or ""),
    )


_HEADER: Final = f"{'JOB':<36} {'PHASE':<11} {'PODS':>5} {'GPUS':>4} {'NODES':>5} {'RACKS':<18} MESSAGE"


def _line(row: _Row) -> str:
    width = 60
    message = row.message if len(row.message) <= width else row.message[: width - 1] + "…"
    return (
        f"{row.key:<36} {row.phase:<11} {row.pods:>5} {row.gpus:>4g} {row.nodes:>5} "
        f"{','.join(row.racks) or '-':<18} {message}"
    )


def _table(rows: Any, *, elapsed: float, view: str | None = None) -> str:
    title = f"aisched demo — {elapsed:5.1f}s" + (f"    cluster view: {view}" if view else "")
    lines = [title, "", _HEADER]
    lines += [_line(r) for r in sorted(rows, key=lambda r: r.key)]
    return "\n".join(lines)


def _summary(rows: dict[str, _Row], expected: dict[str, str], *, out: TextIO) -> int:
    print("\nsummary", file=out)
    print(_HEADER.replace("MESSAGE", "WAITED"), file=out)
    wrong = []
    for key in sorted(expected):
        row = rows.get(key)
        if row is None:
            wrong.append(f"{key}: never seen")
            continue
        waited = "-" if row.waited is None else f"{row.waited:.1f}s"
        print(_line(_Row(**{**row.__dict__, "message": waited})), file=out)
        if row.phase != expected[key]:
            wrong.append(f"{key}: {row.phase}, expected {expected[key]} ({row.message})")
    broken = rows.get(object_key(DEMO_NAMESPACE, BROKEN_JOB))
    if broken is not None:
        print(f"\n{BROKEN_JOB}: {broken.message}", file=out)
    split = [
        r.key for r in rows.values() if r.key.startswith(f"{DEMO_NAMESPACE}/burst-") and len(r.racks) > 1
    ]
    print(f"rack-confined gangs split across racks: {len(split)}", file=out)
    for problem in wrong:
        print(f"unexpected: {problem}", file=out)
    ok = not wrong and not split
    print("demo finished: " + ("every job ended as expected" if ok else "see above"), file=out)
    sys.stdout.flush()
    return 0 if ok else 1
