"""Per-request counts of I/O: SQL statements and payment provider calls.

The HTTP layer puts a fresh `IOStats` in the context variable for each request; every
task the request spawns (loader batches included) inherits it, so the datasources can
count without knowing about requests. Used to prove batching and by the benchmark.

Below the counts: the hooks through which the gateway observes the same I/O (metrics and
tracing) without the datasources importing the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol


@dataclass
class IOStats:
    sql_statements: int = 0
    provider_calls: int = 0
    # How many times the request's loaders were dispatched: sequential round trips, each
    # sending that round's statements at once.
    loader_rounds: int = 0
    # Which executor answered a query: "levels" (schema/execution.py) or "graphql-core".
    executor: str | None = None


current: ContextVar[IOStats | None] = ContextVar("io_stats", default=None)


def count_sql(_record: object = None) -> None:
    stats = current.get()
    if stats is not None:
        stats.sql_statements += 1


def count_provider_call() -> None:
    stats = current.get()
    if stats is not None:
        stats.provider_calls += 1


def count_loader_round() -> None:
    stats = current.get()
    if stats is not None:
        stats.loader_rounds += 1


def record_executor(name: str) -> None:
    stats = current.get()
    if stats is not None:
        stats.executor = name


# --- Observation hooks: what the gateway plugs in to watch the datasources --------------
#
# The gateway sets `observer` per request (metrics, and spans when tracing is on); every
# task of the request inherits it, as it inherits `current`. The datasources and loaders
# call the functions below and never import the gateway: outside a request (start-up, the
# readiness probe) there is no observer and they cost one context-variable read.


class Observer(Protocol):
    # False when no tracer is configured: callers skip building span attributes then.
    tracing: bool

    def loader_batch(self, size: int) -> None: ...
    def provider_call(self, kind: str, seconds: float, failure: str | None) -> None: ...
    def span(self, name: str, attributes: dict[str, Any], *, leaf: bool = False) -> AbstractContextManager[Any]:
        """`leaf` spans never become the current span: nothing runs inside them that could
        start a child, and they may interleave with other coroutines of the same task."""
        ...


observer: ContextVar[Observer | None] = ContextVar("observer", default=None)
_NOTHING: AbstractContextManager[Any] = contextlib.nullcontext()


def loader_batch(batch_load_fn: Callable[..., Any], size: int) -> AbstractContextManager[Any]:
    """Counts one loader batch of `size` keys; the span around it when tracing."""
    found = observer.get()
    if found is None:
        return _NOTHING
    found.loader_batch(size)
    if not found.tracing:
        return _NOTHING
    return found.span("dataloader.batch", {"dataloader.function": _describe(batch_load_fn),
                                           "dataloader.keys": size})


def _describe(fn: Any) -> str:
    """The datasource function behind a batch function, for span attributes, as `module.name`:
    loaders pass `partial(read, db)`, a partial of their own helper over such a partial, or a
    closure (loaders.base) over one."""
    found = _datasource_function(fn, 4)
    if found is None:
        found = fn
        while isinstance(found, partial):
            found = found.func
    module = getattr(found, "__module__", None) or ""
    name = getattr(found, "__qualname__", type(found).__name__)
    return f"{module.rsplit('.', 1)[-1]}.{name}" if module else name


def _datasource_function(fn: Any, depth: int) -> Any:
    if depth == 0:
        return None
    if isinstance(fn, partial):
        inside: list[Any] = [fn.func, *fn.args]
    elif (getattr(fn, "__module__", None) or "").startswith("datasources."):
        return fn
    else:
        inside = []
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                inside.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
    for each in inside:
        if callable(each) and (found := _datasource_function(each, depth - 1)) is not None:
            return found
    return None


class provider_call:  # noqa: N801 - used as a context manager, like contextlib's
    """Times one attempt of a payment provider request: latency, failures, a span.

    `classify` names the failure an exception means (None: it is an answer, such as a
    decline or a 404); a cancelled attempt is not observed at all.
    """

    __slots__ = ("_kind", "_classify", "_observer", "_span", "_started")

    def __init__(self, kind: str, classify: Callable[[BaseException], str | None]) -> None:
        self._kind = kind
        self._classify = classify
        self._observer: Observer | None = None
        self._span: AbstractContextManager[Any] = _NOTHING
        self._started = 0.0

    def __enter__(self) -> None:
        self._observer = found = observer.get()
        if found is None:
            return
        if found.tracing:
            self._span = found.span("payments.request", {"payments.kind": self._kind}, leaf=True)
            self._span.__enter__()
        self._started = time.perf_counter()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        found = self._observer
        if found is None:
            return
        seconds = time.perf_counter() - self._started
        self._span.__exit__(exc_type, exc, tb)
        if isinstance(exc, asyncio.CancelledError):
            return
        found.provider_call(self._kind, seconds, None if exc is None else self._classify(exc))


@dataclass(frozen=True)
class PoolUsage:
    size: int  # connections open
    max_size: int
    in_use: int  # lent to callers
    waiting: int  # callers queued for a connection


def pool_usage(pool: Any, waiting: int) -> PoolUsage:
    """An asyncpg pool's state from its public counts, for gauges read at scrape time;
    `waiting`: the callers queued for a connection (`Database.connection` counts them)."""
    size = pool.get_size()
    return PoolUsage(size=size, max_size=pool.get_max_size(), in_use=max(0, size - pool.get_idle_size()),
                     waiting=waiting)
