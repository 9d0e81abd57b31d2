"""Per-request counts of I/O: SQL statements and payment provider calls.

The HTTP layer puts a fresh `IOStats` in the context variable for each request; every
task the request spawns (loader batches included) inherits it, so the datasources can
count without knowing about requests. Used to prove batching and by the benchmark.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


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
