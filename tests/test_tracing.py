"""OpenTelemetry spans per operation, loader batch and provider call; nothing when not configured."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.settings import DEFAULT_OPERATIONS_DIR
from gateway.tracing import configured

DASHBOARD = (DEFAULT_OPERATIONS_DIR / "dashboard.graphql").read_text()


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """Spans of this module's tests. OpenTelemetry sets its tracer provider once per process:
    the first test that needs one installs it, later ones add their exporter to it."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    found = InMemorySpanExporter()
    processor = SimpleSpanProcessor(found)
    trace.get_tracer_provider().add_span_processor(processor)
    yield found
    processor.shutdown()


async def test_spans_for_the_operation_its_loader_batches_and_provider_calls(app_for, settings, exporter):
    gateway = await app_for(settings.with_(tracing=True))
    token = await gateway.login("admin@northwind.example")
    exporter.clear()
    body = await gateway.execute(DASHBOARD, token=token)
    assert "errors" not in body
    spans = exporter.get_finished_spans()

    [operation] = [s for s in spans if s.name == "query Dashboard"]
    assert operation.attributes["graphql.operation.name"] == "Dashboard"
    assert operation.attributes["gateway.request_id"]
    batches = [s for s in spans if s.name == "dataloader.batch"]
    provider_calls = [s for s in spans if s.name == "payments.request"]
    assert batches and provider_calls
    assert len(provider_calls) == body["extensions"]["io"]["providerCalls"]
    by_id = {s.context.span_id: s for s in spans}

    def ancestors(span):
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            yield span

    for span in batches + provider_calls:
        assert span.context.trace_id == operation.context.trace_id
        assert operation in ancestors(span)
    for call in provider_calls:
        assert by_id[call.parent.span_id].name == "dataloader.batch"  # billing reads go through loaders
        assert call.attributes["payments.kind"] == "read"
    names = {s.attributes["dataloader.function"] for s in batches}
    # Each batch is named for the datasource function it runs: the compiled statements
    # (planning's, run by datasources.postgres.statements) and the organization's reads.
    assert "statements.values" in names or "statements.records" in names
    assert "credits.grants_of_organizations" in names


async def test_an_app_without_tracing_makes_no_spans(gateway, exporter):
    token = await gateway.login("admin@northwind.example")
    exporter.clear()
    assert "errors" not in await gateway.execute(DASHBOARD, token=token)
    assert exporter.get_finished_spans() == ()


def test_without_tracing_opentelemetry_is_never_imported():
    script = ("import sys, gateway.app, gateway.http, loaders, datasources.payments.client\n"
              "from gateway.tracing import load_tracer\n"
              "from gateway.settings import from_env\n"
              "assert load_tracer(from_env({}).tracing) is None\n"
              "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("env,expected", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
    ({"GATEWAY_TRACING": "1"}, True),
    ({"GATEWAY_TRACING": "1", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_tracing_is_on_only_when_configured(env, expected):
    assert configured(env) is expected
