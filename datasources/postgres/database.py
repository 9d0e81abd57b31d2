"""The connection pool, with time-boxed acquisition and translated connection failures."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import asyncpg

from datasources.errors import DatabaseUnavailable
from datasources.instrumentation import count_sql

ACQUIRE_TIMEOUT_SECONDS = 5.0
_UNAVAILABLE = "The database is unavailable; try again shortly."


class Executor(Protocol):
    """What query functions need: a Database or a connection inside a transaction."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...


class Database:
    """One asyncpg pool per process; every call waits a bounded time for a connection."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 10) -> "Database":
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, timeout=10,
                                             init=_count_statements, reset=_keep_session)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                yield conn
        except (OSError, TimeoutError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError) as exc:
            raise DatabaseUnavailable(_UNAVAILABLE) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.connection() as conn:
            return await conn.execute(query, *args)


async def _count_statements(conn: asyncpg.Connection) -> None:
    # asyncpg runs query loggers via call_soon in the querying task's context.
    conn.add_query_logger(count_sql)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skips asyncpg's reset query on release, a round trip per loader batch.

    It undoes session state (advisory locks, LISTEN, SET); the gateway keeps none past a
    borrow: transactions end before release, and migrations unlock their lock themselves.
    """


def in_key_order(keys: Sequence[Any], rows: dict[Any, Any], default: Any = None) -> list[Any]:
    """Loader batch results must come back one per key, in key order."""
    return [rows.get(key, default) for key in keys]
