"""Prometheus metrics, one registry per app (never the global one), served at `GET /metrics`.

`Metrics` is also the app's `datasources.instrumentation.Observer`: the HTTP layer sets it
for each request, and the loaders and the payments client report batches and provider
calls through it, with spans when the app has a tracer (gateway/tracing.py).

The operation label is bounded by what the gateway knows, never by what clients send: the
operations registered from `operations/*.graphql`, `anonymous`, and `other` for every other
name. The operation type (`query`, `mutation`, `subscription`, `unknown` for a document
that names none) is a label of its own, so `other` queries and mutations stay apart.

Who may scrape: with METRICS_PORT, `/metrics` is served only on that listener
(METRICS_HOST, loopback by default) and the public port answers 404; with METRICS_TOKEN,
every scrape must send `Authorization: Bearer <token>` (401 otherwise); in production with
neither, the public port answers 404. Development without either serves it openly.

Several workers on one port (gateway/workers.py) would each answer a scrape with their own
figures, so the supervisor gives them one PROMETHEUS_MULTIPROC_DIR: prometheus_client then
keeps every worker's values in files there, and `/metrics` answers their sum whichever
worker the scrape reaches. Counter files of a worker that died stay (a counter never goes
back); its gauge files are removed by the supervisor. What is read at scrape time in one
process (the pool, the breaker, `process_*`) cannot be read in another, so there each
worker writes those figures to its files every SHARE_SECONDS, and once more when it
answers a scrape.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datasources.instrumentation import pool_usage
from datasources.payments.breaker import BreakerState
from gateway.persisted import OperationRegistry
from gateway.request_log import ANONYMOUS, RequestRecord
from gateway.settings import Settings
from gateway.tracing import Tracer

OTHER = "other"
UNKNOWN_TYPE = "unknown"
_NOTHING: AbstractContextManager[Any] = nullcontext()
# Keys per loader batch: one object, a page of members (up to 100), a whole level of a big tenant.
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
# Seconds: from a cached answer to the provider's 10 s time box.
PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client chooses between in-process values and shared files once, when it is
# imported, from this variable: read it at the same moment so both agree for the process.
_SHARED_DIR = os.environ.get(MULTIPROCESS_DIR_ENV) or None
# How stale another worker's pool, breaker and process figures may be in a scrape.
SHARE_SECONDS = 1.0


class OperationLabels:
    """Operation names as label values: the registered ones, `anonymous`, and `other`."""

    def __init__(self, registered: Iterable[str]) -> None:
        self._registered = frozenset({ANONYMOUS, *registered})

    def __call__(self, name: str) -> str:
        return name if name in self._registered else OTHER


def registered_names(operations: OperationRegistry) -> set[str]:
    names = set()
    for digest in operations.hashes():
        try:
            document = parse(operations.get(digest) or "")
        except GraphQLError:
            continue  # the request that sends it gets the parse error
        names.update(d.name.value for d in document.definitions
                     if isinstance(d, OperationDefinitionNode) and d.name is not None)
    return names


class Metrics:
    def __init__(self, operations: OperationRegistry, *, db: Any = None, payments: Any = None,
                 tracer: Tracer | None = None) -> None:
        self.registry = CollectorRegistry()
        self.tracer = tracer
        self.tracing = tracer is not None
        self.operation_label = OperationLabels(registered_names(operations))
        r = self.registry
        labels = ["operation", "operation_type", "outcome"]
        self.requests = Counter("gateway_requests", "GraphQL requests, by registered operation (others: 'other'), "
                                "operation type and outcome.", labels, registry=r)
        self.request_seconds = Histogram("gateway_request_duration_seconds",
                                         "Time to answer a GraphQL request, by registered operation (others: "
                                         "'other'), operation type and outcome.", labels, registry=r)
        self.rate_limited = Counter("gateway_rate_limit_rejections",
                                    "Requests refused as RATE_LIMITED, by kind: query_cost (the viewer's cost "
                                    "budget) or sign_in (the failed sign-in throttles).", ["kind"], registry=r)
        self.batch_sizes = Histogram("gateway_dataloader_batch_size", "Keys per DataLoader batch.",
                                     buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.provider_seconds = Histogram("gateway_provider_request_duration_seconds",
                                          "Payment provider request attempts, by kind (read or write).",
                                          ["kind"], buckets=PROVIDER_BUCKETS, registry=r)
        self.provider_errors = Counter("gateway_provider_request_errors",
                                       "Payment provider attempts that failed, by kind and reason (timeout, "
                                       "connection, rate_limited, server_error, auth, other).",
                                       ["kind", "reason"], registry=r)
        sources: list[Collector] = [ProcessCollector(registry=None)]
        if db is not None or payments is not None:
            sources.append(_ResourceCollector(db, payments))
        self._shared: _SharedFigures | None = None
        if _SHARED_DIR is None:
            for source in sources:
                r.register(source)
        else:
            self._shared = _SharedFigures(sources, r)
            self._summed = CollectorRegistry()
            MultiProcessCollector(self._summed, path=_SHARED_DIR)
        # Children by label values: `labels()` takes a lock and builds a key on every call.
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    # --- the HTTP layer --------------------------------------------------------------

    def request_done(self, record: RequestRecord) -> None:
        key = (self.operation_label(record.operation), record.operation_type or UNKNOWN_TYPE, record.outcome)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (self.requests.labels(*key), self.request_seconds.labels(*key))
        children[0].inc()
        children[1].observe(record.duration_seconds)
        if record.rate_limited is not None:
            self.rate_limited.labels(record.rate_limited).inc()

    # --- instrumentation.Observer ------------------------------------------------------

    def loader_batch(self, size: int) -> None:
        self.batch_sizes.observe(size)

    def provider_call(self, kind: str, seconds: float, failure: str | None) -> None:
        self.provider_seconds.labels(kind).observe(seconds)
        if failure is not None:
            self.provider_errors.labels(kind, failure).inc()

    def span(self, name: str, attributes: dict[str, Any], *, leaf: bool = False) -> AbstractContextManager[Any]:
        if self.tracer is None:
            return _NOTHING
        return self.tracer.span(name, attributes, leaf=leaf)

    def exposition(self) -> bytes:
        if self._shared is None:
            return generate_latest(self.registry)
        self._shared.write()  # this worker's figures as of now; the others' are SHARE_SECONDS old at most
        return generate_latest(self._summed)

    async def share(self) -> None:
        """Runs for the app's life when several workers share the figures; returns at once otherwise."""
        if self._shared is None:
            return
        while True:
            self._shared.write()
            await asyncio.sleep(SHARE_SECONDS)


class _ResourceCollector(Collector):
    """Read at scrape time, so requests pay nothing for them: the pool and the breaker."""

    def __init__(self, db: Any, payments: Any) -> None:
        self._db = db
        self._payments = payments

    def collect(self) -> Iterator[Metric]:
        if self._db is not None:
            usage = pool_usage(self._db.pool, self._db.waiting)
            yield GaugeMetricFamily("gateway_db_pool_in_use", "PostgreSQL connections lent to requests.",
                                    value=usage.in_use)
            yield GaugeMetricFamily("gateway_db_pool_waiting", "Requests waiting for a PostgreSQL connection.",
                                    value=usage.waiting)
            yield GaugeMetricFamily("gateway_db_pool_size", "PostgreSQL connections open.", value=usage.size)
            yield GaugeMetricFamily("gateway_db_pool_max_size", "The most PostgreSQL connections the pool opens.",
                                    value=usage.max_size)
        if self._payments is not None:
            breaker = self._payments.breaker
            yield GaugeMetricFamily("gateway_provider_breaker_open",
                                    "1 while the payment provider's circuit breaker fails calls fast.",
                                    value=int(breaker.state is not BreakerState.CLOSED))
            yield CounterMetricFamily("gateway_provider_breaker_rejections",
                                      "Provider calls failed fast by the open circuit breaker.",
                                      value=breaker.rejected)


class _SharedFigures:
    """Writes what `sources` read in this process to this process's multiprocess files.

    Pool and breaker gauges are `livesum`: the scrape shows their total over the live
    workers (in use, waiting, open, ceiling; breaker open = how many workers' breakers are
    open). `process_*` gauges are `liveall`: one series per live worker, labelled `pid`.
    Counters (CPU seconds, breaker rejections) grow by what the source grew since the last
    write, so a dead worker's count stays in the sum.
    """

    def __init__(self, sources: list[Collector], registry: CollectorRegistry) -> None:
        self._sources = sources
        self._registry = registry
        self._metrics: dict[str, Any] = {}
        self._written: dict[str, float] = {}

    def write(self) -> None:
        for source in self._sources:
            for family in source.collect():
                metric = self._metrics.get(family.name) or self._declare(family)
                value = family.samples[0].value
                if family.type == "counter":
                    metric.inc(max(0.0, value - self._written.get(family.name, 0.0)))
                    self._written[family.name] = value
                else:
                    metric.set(value)

    def _declare(self, family: Metric) -> Any:
        if family.type == "counter":
            metric = Counter(family.name, family.documentation, registry=self._registry)
        else:
            mode = "liveall" if family.name.startswith("process_") else "livesum"
            metric = Gauge(family.name, family.documentation, registry=self._registry, multiprocess_mode=mode)
        self._metrics[family.name] = metric
        return metric


async def metrics_endpoint(request: Request) -> Response:
    return _answer(request, request.app.state)


def listener_app(app: Starlette) -> Starlette:
    """The app of the METRICS_PORT listener: `/metrics` of `app`, and nothing else."""

    async def endpoint(request: Request) -> Response:
        return _answer(request, app.state)

    return Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])


def _answer(request: Request, state: Any) -> Response:
    metrics: Metrics | None = getattr(state, "metrics", None)
    if metrics is None:  # the lifespan has not run (yet)
        return Response("metrics are not available yet\n", status_code=503, media_type="text/plain")
    token = state.services.settings.metrics_token
    if token and not _bearer_matches(request.headers.get("authorization", ""), token):
        return Response("send the metrics token: Authorization: Bearer <METRICS_TOKEN>\n", status_code=401,
                        media_type="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(presented.strip().encode(), token.encode())


def on_public_port(settings: Settings) -> bool:
    """Whether the public app serves `/metrics` (else it answers 404 there)."""
    return settings.metrics_port is None and (bool(settings.metrics_token) or not settings.production)
