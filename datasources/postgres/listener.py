"""LISTEN on the event log's channel over a connection of its own.

A pooled connection cannot listen: the pool resets it (UNLISTEN *) when it is given back, and
a listener must stay connected for the process's lifetime. So the fan-out holds one dedicated
connection, and learns from this module when a notification arrives or the connection is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from datasources.postgres.database import SERVER_SETTINGS
from datasources.postgres.events import CHANNEL

# How the listening connection shows in pg_stat_activity (an operator, or a test, can find it).
APPLICATION_NAME = "account-gateway-listener"


class ListenerLost(Exception):
    """The listening connection is gone (server restart, network): reconnect, then catch up."""


class Listener:
    """One LISTEN connection: `wait` returns when something was notified (or after `timeout`,
    having checked that the connection still answers) and raises ListenerLost once it is gone.
    Between waits, `connection` reads the log: the fan-out never waits for the pool, which
    the requests that write events are using."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._notified = asyncio.Event()
        self._lost = False
        conn.add_termination_listener(self._on_lost)

    @property
    def connection(self) -> asyncpg.Connection:
        return self._conn

    def _on_notify(self, *_args: Any) -> None:
        self._notified.set()

    def _on_lost(self, *_args: Any) -> None:
        self._lost = True
        self._notified.set()

    async def wait(self, timeout: float) -> None:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns normally when the
            # notification and a cancel arrive together, and the cancel is lost: the hub then
            # kept listening and the app's shutdown waited for it forever.
            async with asyncio.timeout(timeout):
                await self._notified.wait()
        except TimeoutError:
            # Quiet for a while: a dead TCP peer is noticed only by talking to it.
            try:
                await self._conn.fetchval("SELECT 1", timeout=timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise ListenerLost(str(exc) or type(exc).__name__) from exc
        self._notified.clear()
        if self._lost or self._conn.is_closed():
            raise ListenerLost("the listening connection closed")


@contextlib.asynccontextmanager
async def listening(dsn: str, *, connect_timeout: float) -> AsyncIterator[Listener]:
    """Connects and LISTENs; ListenerLost when the server cannot be reached."""
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout,
                                     server_settings={**SERVER_SETTINGS, "application_name": APPLICATION_NAME})
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ListenerLost(f"cannot connect to PostgreSQL: {exc or type(exc).__name__}") from exc
    try:
        listener = Listener(conn)
        await conn.add_listener(CHANNEL, listener._on_notify)
        yield listener
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ListenerLost(str(exc) or type(exc).__name__) from exc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 2)
        if not conn.is_closed():
            conn.terminate()
