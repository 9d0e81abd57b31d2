"""What every bench command shares: a working directory, the processes it starts (all stopped at
the end, on SIGTERM too), its own tuned PostgreSQL with the bench database, and how it exits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench import servers


@dataclass
class Run:
    name: str  # the command, in its messages
    root: Path
    started: list[servers.Process] = field(default_factory=list)  # stopped last first
    postgres: servers.Postgres | None = None

    async def start_postgres(self) -> servers.Postgres:
        """An embedded PostgreSQL in the run's directory with `servers.POSTGRES_SETTINGS` (loaded by
        a restart) and an empty database `servers.DATABASE`."""
        self.postgres = servers.Postgres(self.root)
        self.postgres.start()
        admin = await asyncpg.connect(self.postgres.admin_uri())
        try:
            for name, value in servers.POSTGRES_SETTINGS.items():
                await admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            await admin.execute(f'CREATE DATABASE "{servers.DATABASE}"')
        finally:
            await admin.close()
        self.postgres.restart()  # loads pg_stat_statements and the settings
        return self.postgres


@contextlib.asynccontextmanager
async def workspace(name: str, keep: bool) -> AsyncIterator[Run]:
    """A temporary directory for the run, removed at the end unless `keep`; SIGTERM cancels the
    run, and everything it started is stopped either way."""
    root = Path(tempfile.mkdtemp(prefix=f"account-gateway-{name.replace('.', '-')}-"))
    root.chmod(0o755)  # the embedded server runs as its own system user when we are root
    run = Run(name, root)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        yield run
    finally:
        for p in reversed(run.started):
            p.stop()
        if run.postgres is not None:
            run.postgres.stop()
        if keep:
            print(f"{name}: kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
        if task is not None:
            loop.remove_signal_handler(signal.SIGTERM)


def main(name: str, parser: argparse.ArgumentParser,
         run: Callable[[argparse.Namespace], Awaitable[int]]) -> None:
    """Parses the arguments, runs, and exits: 130 interrupted, 143 terminated, 1 with the message
    of a RuntimeError, otherwise the run's own code."""
    warnings.filterwarnings("ignore", module="platformdirs")
    args = parser.parse_args()
    try:
        code = asyncio.run(run(args))  # type: ignore[arg-type]
    except KeyboardInterrupt:
        print(f"{name}: interrupted; everything it started is stopped", file=sys.stderr)
        sys.exit(130)
    except asyncio.CancelledError:
        print(f"{name}: terminated; everything it started is stopped", file=sys.stderr)
        sys.exit(143)
    except RuntimeError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)
