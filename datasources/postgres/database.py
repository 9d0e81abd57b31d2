"""The connection pool, with time-boxed acquisition and translated connection failures.

Every way PostgreSQL can be out of reach while a request runs (the server stopped, crashed,
restarting, refusing connections, too slow to hand out a connection) leaves this module as
one `DatabaseUnavailable`, whether it happens while a connection is acquired, during a
`fetch`/`execute`, or inside the body of `connection()` / `transaction()`, where callers use
the raw asyncpg connection. Other database errors (constraint violations, bad SQL, wrong
argument types) pass through unchanged: they are bugs or domain outcomes, not an outage.

Recovery needs nothing from the app: asyncpg's pool notices a connection whose server went
away (the socket closes) and opens a new one at the next acquire, so once the server is back
the same pool serves again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import asyncpg
from asyncpg import exceptions as pg

from datasources.errors import DatabaseUnavailable, GatewayError
from datasources.instrumentation import count_sql

# How long a request waits for a pooled connection before it is told DATABASE_UNAVAILABLE.
ACQUIRE_TIMEOUT_SECONDS = 5.0
# How long opening one new connection may take: a dead or unreachable server shows quickly.
CONNECT_TIMEOUT_SECONDS = 2.0
# How long `close()` waits for borrowed connections to come back before cutting them.
CLOSE_TIMEOUT_SECONDS = 10.0
UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly."

log = logging.getLogger("datasources.postgres")

# What the driver raises at all: any of it while acquiring means no connection could be had.
_DRIVER_ERRORS = (OSError, TimeoutError, pg.PostgresError, pg.InterfaceError)
# Errors that mean the server or the connection is gone, whatever the connection's state.
_CONNECTION_LOST = (
    ConnectionError,  # refused, reset, broken pipe
    TimeoutError,  # asyncio.TimeoutError: acquire, connect or command timeout
    pg.PostgresConnectionError,  # SQLSTATE class 08 (ProtocolViolationError excepted below)
    pg.AdminShutdownError,  # 57P01: smart/fast shutdown, pg_terminate_backend
    pg.CrashShutdownError,  # 57P02: immediate shutdown, a crashed backend
    pg.CannotConnectNowError,  # 57P03: starting up, shutting down, recovering
    pg.DatabaseDroppedError,  # 57P04
    pg.IdleSessionTimeoutError,  # 57P05
    pg.TooManyConnectionsError,  # 53300
)


def is_connection_failure(exc: BaseException, conn: Any = None, *, acquiring: bool = False) -> bool:
    """Whether `exc` means PostgreSQL is out of reach (rather than a bug or a domain error).

    While acquiring, every driver failure counts: no connection could be had. In the body,
    `conn` is the connection it used: asyncpg raises a plain `InterfaceError` ("connection is
    closed", "released back to the pool") for work on a connection the server dropped, and
    that class also covers programming errors (wrong argument types), so it counts only when
    the connection is in fact closed; likewise an OSError (a file the body writes, say).
    """
    if isinstance(exc, GatewayError) or not isinstance(exc, _DRIVER_ERRORS):
        return False
    if acquiring or _closed(conn):
        return True
    if isinstance(exc, pg.ProtocolViolationError):  # 08P01 is also what a malformed message gets
        return False
    if isinstance(exc, _CONNECTION_LOST):
        return True
    return isinstance(exc, pg.InterfaceError) and "pool is clos" in str(exc)


def _closed(conn: Any) -> bool:
    if conn is None:
        return False
    try:
        return bool(conn.is_closed())
    except pg.InterfaceError:  # a proxy already released to the pool
        return True


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    return DatabaseUnavailable(UNAVAILABLE_MESSAGE)


class Executor(Protocol):
    """What query functions need: a Database or a connection inside a transaction."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...


# Statements are prepared once per connection (asyncpg), and should be planned once too. Left
# to choose, PostgreSQL planned the members page (members with accounts, licenses and credit)
# again on every run, 1.9 ms of planning for 2.6 ms of execution. Our statements take their
# keys as arrays and their filters as nullable parameters, which plans made for particular
# values do not serve better.
SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}
# A custom (dotted) setting: read with current_setting(PORTAL_URL_SETTING, true), NULL when unset.
PORTAL_URL_SETTING = "account_gateway.portal_url"


class Database:
    """One asyncpg pool per process; every call waits a bounded time for a connection."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float = ACQUIRE_TIMEOUT_SECONDS,
                 connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        # An idle connection is taken without a bound of its own only while opening a new one
        # (which the pool may do in its place, for one it found closed) is bounded as tightly.
        self._idle_unbounded = connect_timeout <= acquire_timeout
        # Callers queued for a connection right now (a gauge: asyncpg keeps no public count).
        self.waiting = 0
        # Query text -> column names, for merged reads (datasources/postgres/merging.py).
        self._columns: dict[str, tuple[str, ...]] = {}

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 10,
                      acquire_timeout: float = ACQUIRE_TIMEOUT_SECONDS,
                      connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
                      command_timeout: float | None = None, portal_url: str | None = None) -> "Database":
        """Opens the pool (one connection at once, up to `max_size`).

        acquire_timeout: seconds a caller waits for a connection (including opening a new
        one) before DatabaseUnavailable. connect_timeout: seconds one new connection may
        take. command_timeout: seconds any one statement may run, None for no limit (the
        CLI's migrations must not be cut short); a statement that runs out is cancelled at
        the server and reported as DatabaseUnavailable. portal_url: the customer portal's
        address, which every connection carries as the session setting PORTAL_URL_SETTING, so
        that mail written inside any transaction links to it (resolvers/notifications.py)
        without each caller handing it down.
        """
        server_settings = {**SERVER_SETTINGS, **({PORTAL_URL_SETTING: portal_url} if portal_url else {})}
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, timeout=connect_timeout,
                                             command_timeout=command_timeout,
                                             init=_count_statements, reset=_keep_session,
                                             server_settings=server_settings)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc or type(exc).__name__}") from exc
        return cls(pool, acquire_timeout=acquire_timeout, connect_timeout=connect_timeout)

    async def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Waits for borrowed connections up to `timeout`, then terminates what is left."""
        try:
            await asyncio.wait_for(self.pool.close(), timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("closing the database pool: %s: %s; terminating it", type(exc).__name__, exc)
            self.pool.terminate()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for the body; connection failures anywhere become DatabaseUnavailable."""
        # With a connection idle there is no wait to bound, and asyncpg bounds one by running the
        # acquire in a task of its own (acquire and release: 28.3 -> 25.3 us). The release is
        # bounded either way.
        idle = self._idle_unbounded and self.pool.get_idle_size() > 0
        self.waiting += 1
        try:
            conn = await self.pool.acquire(timeout=None if idle else self.acquire_timeout)
        except Exception as exc:
            if is_connection_failure(exc, acquiring=True):
                raise _unavailable(exc) from exc
            raise
        finally:
            self.waiting -= 1
        try:
            yield conn
        except Exception as exc:
            # Judged before the release, while the connection's state is still ours to read.
            lost = is_connection_failure(exc, conn)
            await _release(self.pool, conn, self.acquire_timeout)
            if lost:
                raise _unavailable(exc) from exc
            raise
        except BaseException:  # cancellation: asyncpg's release copes with a busy connection
            await _release(self.pool, conn, self.acquire_timeout)
            raise
        else:
            await _release(self.pool, conn, self.acquire_timeout, settled=True)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """BEGIN … COMMIT on one connection; an exception in the body rolls back.

        A connection lost in the body, at COMMIT or at ROLLBACK surfaces as
        DatabaseUnavailable; the server then discards the transaction, so nothing half-done
        is stored. (A connection lost after COMMIT was sent leaves the outcome unknown to
        us: the client is told to try again, and idempotency keys make that retry safe.)
        """
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return await conn.fetch(query, *args)

    async def column_names(self, conn: asyncpg.Connection, query: str) -> tuple[str, ...]:
        """The columns a query returns, from its prepared description; cached per query text."""
        found = self._columns.get(query)
        if found is None:
            statement = await conn.prepare(query)
            found = self._columns[query] = tuple(a.name for a in statement.get_attributes())
        return found

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.connection() as conn:
            return await conn.execute(query, *args)

    async def ping(self, timeout: float = 1.0) -> bool:
        """Whether a pooled connection answers `SELECT 1` within about `timeout` seconds.

        For readiness checks: never raises for an unreachable server, only answers False.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with self.pool.acquire(timeout=timeout) as conn:
                remaining = max(deadline - loop.time(), 0.05)
                return await conn.fetchval("SELECT 1", timeout=remaining) == 1
        except Exception as exc:
            if is_connection_failure(exc, acquiring=True):
                return False
            raise


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection, timeout: float, settled: bool = False) -> None:
    """Gives the connection back; a failure here (asyncpg rolling back a transaction left open
    on a connection that just died) is a lost connection too.

    `settled`: the body ended normally, its statement answered, so the release has nothing to
    wait for. `Pool.release` shields the release from the caller's cancellation by running it
    as a task of its own: a task per statement for a release that never waits (2.5% of the
    members page's CPU under load). It is run here as `Pool.release` runs it, without the task
    (tests/test_asyncpg_internals.py); should it wait after all and be cancelled, asyncpg
    terminates the connection, and the pool opens another in its place."""
    try:
        holder = getattr(conn, "_holder", None)
        if settled and holder is not None and holder._pool is pool and conn._con is not None:
            pool._check_init()
            conn._con._on_release()
            await holder.release(timeout)
        else:
            await pool.release(conn, timeout=timeout)
    except Exception as exc:
        if is_connection_failure(exc, acquiring=True):
            raise _unavailable(exc) from exc
        raise


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
