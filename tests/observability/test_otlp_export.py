"""`OTEL_TRACES_EXPORTER=otlp`: spans reach an OTLP/HTTP receiver as protobuf, named and linked as
the operator makes them. The receiver is a small aiohttp server; the spans come from a process that
configures tracing exactly as `aisched run` does."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SCRIPT = """
from aisched.observability.tracing import HeadSampling, Tracing, configure_tracing, traceparent
from aisched.framework.types import Gang, PodInfo
shutdown = configure_tracing()
tracing = Tracing(sampling=HeadSampling.from_environ())
job = tracing.root("aijob", start_time=None, attributes={"aisched.job": "ml/j"})
pod = PodInfo(namespace="ml", name="p", requests={"pods": 1}, trace_context=job)
cycle = tracing.cycle(Gang.of(pod))
cycle.finish(result="scheduled", reason="1 pod(s) on 1 node(s)")
shutdown()
"""


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[ExportTraceServiceRequest]]]:
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()


async def test_otlp_exports_a_jobs_spans_as_one_trace(
    receiver: tuple[str, list[ExportTraceServiceRequest]],
) -> None:
    endpoint, received = receiver
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "aisched-test",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()

    spans = [
        (span, resource.resource)
        for message in received
        for resource in message.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = {span.name: span for span, _ in spans}
    assert set(names) == {"aijob", "schedule_cycle"}
    assert names["schedule_cycle"].trace_id == names["aijob"].trace_id
    assert names["schedule_cycle"].parent_span_id == names["aijob"].span_id
    service = {a.key: a.value.string_value for a in spans[0][1].attributes}["service.name"]
    assert service == "aisched-test"
