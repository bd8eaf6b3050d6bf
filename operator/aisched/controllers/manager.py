"""`Manager`: one scheduler process — leader election, the scheduling runtime, the AIJob controller
and the metrics server (with the cluster view), started and stopped together.

Every replica keeps the job index Kopf feeds and serves its metrics and the cluster view (a
follower's says it does not lead: it knows no cluster state); only the Lease holder runs a
term: a fresh `SchedulerRuntime` (its informers list pods, nodes and topologies from scratch) and a
`JobController` reading the runtime's pods. When leadership ends the term is cancelled and all its
state dropped, so a replica that leads again, or the one that takes over, rebuilds from the API:
bound pods are accounted from their nodeName, pods that were assumed but never bound are pending
again and get scheduled, and no pod is bound twice (the API server refuses a second Binding).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final

from aisched.binder import Binder
from aisched.binder.ratelimit import TokenBucket
from aisched.controllers.aijob.admission import Admissions
from aisched.controllers.aijob.controller import TENANTQUOTAS_PATH, JobController
from aisched.controllers.index import JobIndex
from aisched.controllers.scheduling.explain import LiveExplain
from aisched.controllers.scheduling.runtime import SchedulerRuntime
from aisched.controllers.tenantquota import QuotaController
from aisched.framework.profile import Profile
from aisched.kube.client import ApiError, ApiUnavailable, ConfigError, JsonObject, KubeClient
from aisched.kube.events import EventRecorder
from aisched.kube.leader import LeaderElector
from aisched.kube.retry import until_stopped
from aisched.observability.http import HealthServer
from aisched.observability.logging import get_logger
from aisched.observability.metrics import Metrics
from aisched.observability.tracing import HeadSampling, Tracing
from aisched.quota import QuotaLedger
from aisched.settings import Settings
from aisched.view import RuntimeViews

__all__ = ["Manager", "default_identity"]

log = get_logger(__name__)

_FORBIDDEN: Final = 403
_NOT_FOUND: Final = 404
_LIST_RETRY: Final = 1.0


def default_identity() -> str:
    """This replica's name in the Lease: the pod name (hostname in a pod) plus a random suffix, so a
    restarted container never mistakes the previous one's Lease for its own."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Manager:
    """See the module's docstring. `run` it for the life of the process."""

    def __init__(
        self,
        client: KubeClient,
        settings: Settings,
        *,
        identity: str | None = None,
        metrics: Metrics | None = None,
        serve_metrics: bool = True,
    ) -> None:
        self.client = client
        self.settings = settings
        self.identity = identity or default_identity()
        self.metrics = metrics if metrics is not None else Metrics()
        self.index = JobIndex(unlisted=settings.tenancy.unlisted_namespaces)
        self.runtime: SchedulerRuntime | None = None  # the current term's, while leading
        self.jobs: JobController | None = None
        self.quotas: QuotaController | None = None
        self.leading = asyncio.Event()  # set while a term runs
        self._serve_metrics = serve_metrics
        self._alive = True
        self._health: HealthServer | None = None
        election = settings.leader_election
        self._elector = (
            LeaderElector(
                client,
                namespace=election.namespace,
                name=election.name,
                identity=self.identity,
                lease_duration=election.lease_duration,
                renew_deadline=election.renew_deadline,
                retry_period=election.retry_period,
                clock=lambda: datetime.now(UTC),
                sleep=asyncio.sleep,
            )
            if election.enabled
            else None
        )
        self.index.subscribe(lambda key: None, self._quota_changed)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve metrics, campaign, and lead when elected, until `stop` is set."""
        health = HealthServer(
            self.metrics,
            host=self.settings.metrics.host,
            port=self.settings.metrics.port,
            ready=self._ready,
            live=lambda: self._alive,
            view=RuntimeViews(
                lambda: self.runtime,
                jobs=self._jobs,
                clock=time.monotonic,
                wall=time.time,
            ),
            explain=LiveExplain(lambda: self.runtime),
        )
        if self._elector is not None:
            await self._check_lease_namespace()
        if self._serve_metrics:
            await health.start()
            self._health = health
            log.info("http_serving", url=health.url, view=f"{health.url}/", metrics=f"{health.url}/metrics")
        try:
            if self._elector is None:
                await self._term(stop)
            else:
                await self._elector.run(stop, on_started_leading=self._lead, on_stopped_leading=self._follow)
        except BaseException:
            self._alive = False
            raise
        finally:
            self._health = None
            if self._serve_metrics:
                await health.stop()

    def _jobs(self) -> Iterable[JsonObject]:
        """The AIJobs as Kopf last delivered them (the cluster view counts them by phase)."""
        return self.index.jobs.values()

    @property
    def url(self) -> str | None:
        """The base URL of the metrics, health and cluster-view server while it serves, else None."""
        return self._health.url if self._health is not None else None

    async def _check_lease_namespace(self) -> None:
        """Fail at start, with the way out, when the Lease's namespace is missing: otherwise the
        replica would campaign forever and never lead."""
        namespace = self.settings.leader_election.namespace
        try:
            found = await self.client.get(
                "/api/v1/namespaces", params={"fieldSelector": f"metadata.name={namespace}"}
            )
        except ApiError as exc:
            if exc.status == _FORBIDDEN:
                return  # cannot tell; the elector reports its own errors
            raise
        if not found.get("items"):
            raise ConfigError(
                f"the leader-election Lease's namespace {namespace!r} does not exist: create it "
                "(manifests/base/00-namespace.yaml) or set AISCHED_LEADER_ELECTION__NAMESPACE"
            )

    def _ready(self) -> bool:
        """Ready when following, or when leading with a full view of the cluster."""
        runtime = self.runtime
        return runtime is None or all(i.synced.is_set() for i in runtime.informers)

    async def _lead(self) -> None:
        """One leadership term; cancelled by the elector when the Lease is lost or the process stops.

        Cancellation is turned into a graceful stop: the term stops scheduling and lets the bindings
        in flight finish (or roll their gang back), within `_grace()` seconds, so that no gang is
        left half-bound; only then is it cancelled outright.
        """
        stop = asyncio.Event()
        term = asyncio.create_task(self._term(stop), name="leadership term")
        try:
            await asyncio.shield(term)
        except asyncio.CancelledError:
            stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(term), timeout=self._grace())
            except TimeoutError:
                log.warning("term_stop_timed_out", grace=self._grace())
                term.cancel()
                await asyncio.gather(term, return_exceptions=True)
            except asyncio.CancelledError:
                term.cancel()
                await asyncio.gather(term, return_exceptions=True)
            raise

    def _grace(self) -> float:
        """How long a stopping term may take: until the next leader could start, at the earliest
        (a Lease not renewed for `lease_duration` expires; we stopped renewing `renew_deadline` in)."""
        election = self.settings.leader_election
        return max(0.5, election.lease_duration - election.renew_deadline - election.retry_period)

    def _follow(self) -> None:
        log.info("stopped_leading", identity=self.identity)

    async def _term(self, stop: asyncio.Event) -> None:
        settings = self.settings.scheduler
        clock: Callable[[], float] = time.monotonic
        tracing = Tracing(
            metrics=self.metrics, profile=settings.scheduler_name, sampling=HeadSampling.from_environ()
        )
        binder = Binder(
            self.client,
            concurrency=settings.bind_concurrency,
            qps=settings.bind_qps,
            burst=settings.bind_burst,
            clock=clock,
            tracing=tracing,
        )
        jobs: JobController | None = None
        quotas: QuotaController | None = None

        def tell_jobs(pod: dict[str, object], deleted: bool) -> None:
            if jobs is not None:
                jobs.pod_event(pod, deleted)

        # Every TenantQuota first: a term that started scheduling or admitting before they are known
        # would charge no one and admit anything (Kopf's own list may come later).
        self.index.replace_quotas(await self._list(TENANTQUOTAS_PATH, stop))
        ledger = QuotaLedger(self.index.tenants(), unlisted=self.settings.tenancy.unlisted_namespaces)
        runtime = SchedulerRuntime(
            self.client,
            clock=clock,
            wall=time.time,
            profile=Profile(scheduler_name=settings.scheduler_name),
            ledger=ledger,
            binder=binder,
            pod_listeners=[tell_jobs],
            metrics=self.metrics,
            queueing=self.settings.queueing.policy(),
            detection=self.settings.failures.detection_seconds,
            cooldown=self.settings.failures.node_cooldown_seconds,
            domains=self.settings.topology.domains(),
            gang_frameworks=settings.frameworks(),
            tracing=tracing,
        )
        pods_synced = runtime.pods.synced
        jobs = JobController(
            self.client,
            self.index,
            clock=time.time,
            pods_synced=pods_synced,
            scheduler_name=settings.scheduler_name,
            events=EventRecorder(self.client, clock=time.monotonic),
            queue_view=runtime.queue_status,
            queue_status_every=self.settings.queueing.status_every_seconds,
            admissions=Admissions(ledger.tenant, cluster=runtime.cluster_gpus, strategy=runtime.strategy_of),
            creates=TokenBucket(
                qps=settings.pod_create_qps, burst=settings.pod_create_burst, clock=clock, sleep=asyncio.sleep
            ),
            tracing=tracing,
        )
        quotas = QuotaController(
            self.client,
            self.index,
            ledger,
            clock=time.time,
            pods_synced=pods_synced,
            metrics=self.metrics,
        )
        self.runtime, self.jobs, self.quotas = runtime, jobs, quotas
        self.leading.set()
        log.info("started_leading", identity=self.identity)
        try:
            async with asyncio.TaskGroup() as term:
                term.create_task(runtime.run(stop), name="scheduling runtime")
                term.create_task(jobs.run(stop), name="aijob controller")
                term.create_task(quotas.run(stop), name="tenantquota controller")
        finally:
            self.leading.clear()
            self.runtime = self.jobs = self.quotas = None

    async def _list(self, path: str, stop: asyncio.Event) -> list[JsonObject]:
        """The items at `path`, retried until the API server answers (or the term stops)."""
        while not stop.is_set():
            try:
                return list((await self.client.get(path)).get("items") or [])
            except ApiError as exc:
                if exc.status == _NOT_FOUND:  # the kind is not installed: there are none
                    log.warning("list_not_found", path=path)
                    return []
                log.warning("list_failed", path=path, error=str(exc))
            except ApiUnavailable as exc:
                log.warning("list_failed", path=path, error=str(exc))
            await until_stopped(asyncio.sleep(_LIST_RETRY), stop)
        return []

    def _quota_changed(self) -> None:
        if self.runtime is not None:
            self.runtime.set_tenants(self.index.tenants())
