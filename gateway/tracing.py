"""OpenTelemetry spans: per operation, per loader batch, per payment provider attempt.

Only when the `otel` extra is installed AND tracing is configured (`configured`): an
exporter named by the standard OTEL_* variables, or GATEWAY_TRACING=1 for a tracer
provider set up by someone else (`opentelemetry-instrument`, a test). Otherwise this
module never imports opentelemetry and the hooks cost a no-op context manager.

When no tracer provider has been installed yet, one is built from the environment:
`OTEL_TRACES_EXPORTER` (default `otlp`, over HTTP/protobuf to
`OTEL_EXPORTER_OTLP_ENDPOINT`; `console` prints spans), `OTEL_SERVICE_NAME` (default
`account-gateway`) and the exporter's own OTEL_EXPORTER_OTLP_* variables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from gateway.setting_kinds import TRUE_WORDS

log = logging.getLogger("gateway.tracing")

INSTRUMENTATION_NAME = "account-gateway"


def configured(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces (the OpenTelemetry variables, or ours)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("GATEWAY_TRACING", "").strip().lower() in TRUE_WORDS:  # checked in settings.SETTINGS
        return True
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


class Tracer:
    """The gateway's side of an OpenTelemetry tracer: what `instrumentation.Observer.span` needs."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._tracer = tracer
        self._error = Status(StatusCode.ERROR)

    def span(self, name: str, attributes: dict[str, Any], *, leaf: bool = False) -> AbstractContextManager[Any]:
        if leaf:
            return _Leaf(self._tracer.start_span(name, attributes=attributes), self._error)
        return self._tracer.start_as_current_span(name, attributes=attributes)


class _Leaf:
    """A span that is never made current (see `instrumentation.Observer.span`)."""

    __slots__ = ("_span", "_error")

    def __init__(self, span: Any, error: Any) -> None:
        self._span = span
        self._error = error

    def __enter__(self) -> Any:
        return self._span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self._span.record_exception(exc)
            self._span.set_status(self._error)
        self._span.end()


def load_tracer(enabled: bool) -> Tracer | None:
    """The tracer for an app, or None (tracing off, or OpenTelemetry not installed)."""
    if not enabled:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        log.warning("tracing is configured but OpenTelemetry is not installed: "
                    "pip install 'account-gateway[otel]'; running without traces")
        return None
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):  # nobody installed one
        _install_provider(trace)
    return Tracer(trace.get_tracer(INSTRUMENTATION_NAME))


def _install_provider(trace: Any) -> None:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("tracing is configured but the OpenTelemetry SDK is not installed: "
                    "pip install 'account-gateway[otel]'; spans go nowhere")
        return
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, but attributes
    # given here win: name the service only when the operator has not.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": INSTRUMENTATION_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        name = name.strip().lower()
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                log.warning("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http: "
                            "pip install 'account-gateway[otel]'")
                continue
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name and name != "none":
            log.warning("unknown OTEL_TRACES_EXPORTER %r: use otlp or console", name)
    trace.set_tracer_provider(provider)
