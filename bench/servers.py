"""The processes a run starts: its own PostgreSQL, the gateway and PostGraphile; all stopped at the end."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from datasources.postgres.embedded import EmbeddedPostgres

CACHE = Path(os.environ.get("ACCOUNT_GATEWAY_BENCH_CACHE", Path.home() / ".cache" / "account-gateway-bench"))
POSTGRAPHILE = "postgraphile@4"
DATABASE = "bench"

# Applied with ALTER SYSTEM before the restart that loads pg_stat_statements; the same for both
# servers. fsync/synchronous_commit off: the dataset is throw-away and loads faster.
POSTGRES_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",
    "pg_stat_statements.max": "10000",
    "shared_buffers": "512MB",
    "effective_cache_size": "2GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A dedicated embedded PostgreSQL in `root`, tuned and with pg_stat_statements loaded."""

    def __init__(self, root: Path) -> None:
        self.server = EmbeddedPostgres(root / "postgres")

    def start(self) -> None:
        self.server.start()

    def admin_uri(self) -> str:
        return self.server.uri()

    def dsn(self) -> str:
        return self.server.uri(DATABASE)

    def node_connection_string(self) -> str:
        """node-postgres takes the socket directory as `host` in the query string."""
        return f"postgres://postgres@/{DATABASE}?host={self.server.pgdata}"

    def restart(self) -> None:
        self.server.stop()
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Process:
    name: str
    process: subprocess.Popen
    url: str
    log: Path

    def output(self, tail: int = 3000) -> str:
        try:
            return self.log.read_text()[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _spawn(name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    with log.open("w") as out:
        # A session of its own: Ctrl-C reaches only the benchmark, which stops these in order.
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)


def _wait_until_up(p: Process, probe: dict, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.process.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.process.returncode}:\n{p.output()}")
        try:
            r = httpx.post(f"{p.url}/graphql", json=probe, timeout=2)
            if r.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{p.name} did not come up in {timeout:.0f} s:\n{p.output()}")


def gateway_command() -> list[str]:
    script = Path(sys.executable).with_name("account-gateway")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from gateway.cli import main; main()"]


def start_gateway(dsn: str, root: Path, started: list[Process], settings: dict[str, str] | None = None,
                  workers: int = 1) -> Process:
    """`settings`: more environment for the gateway (bench.events names its SECRET_KEY); `workers`:
    `serve --workers`, processes sharing the port (1: the one process, no supervisor)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "STRIPE_API_KEY", "GATEWAY_DATA_DIR"}}
    env.update({
        "DATABASE_URL": dsn,
        "GATEWAY_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(36)[:48],
        "SEED_DEMO": "0",
        # Production settings on a bench database and no payment provider: a trial, as far as
        # the production checks go.
        "ALLOW_EMBEDDED_SERVICES": "1",
        # Nothing listens there: the benchmarked operations do not touch the payment provider.
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "MAX_QUERY_COST": "100000000",
        "COST_BUDGET": "1000000000",
        "COST_RESTORE_RATE": "1000000000",
        **(settings or {}),
    })
    data_dir = root / "gateway"
    log = root / f"gateway-{port}.log"
    process = _spawn("gateway", [*gateway_command(), "serve", "--port", str(port), "--data-dir", str(data_dir),
                                 "--workers", str(workers)], env, log)
    p = Process("gateway", process, f"http://127.0.0.1:{port}", log)
    started.append(p)
    _wait_until_up(p, {"query": "{ __typename }"})
    return p


def postgraphile_available() -> tuple[bool, str]:
    if not (shutil.which("node") and shutil.which("npm")):
        return False, "node not found: gateway only"
    cli = CACHE / "node" / "node_modules" / "postgraphile" / "cli.js"
    if cli.exists():
        return True, str(cli)
    workdir = CACHE / "node"
    workdir.mkdir(parents=True, exist_ok=True)
    package = workdir / "package.json"
    if not package.exists():
        package.write_text(json.dumps({"name": "account-gateway-bench-peers", "private": True}) + "\n")
    print(f"installing {POSTGRAPHILE} into {workdir} ...", flush=True)
    try:
        done = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", POSTGRAPHILE], cwd=workdir,
                              capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return False, f"npm install {POSTGRAPHILE} timed out: gateway only"
    if done.returncode != 0 or not cli.exists():
        return False, f"npm install {POSTGRAPHILE} failed ({done.stderr.strip()[:200]}): gateway only"
    return True, str(cli)


def postgraphile_version(cli: str) -> str:
    try:
        return json.loads((Path(cli).parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def start_postgraphile(cli: str, connection: str, root: Path, started: list[Process]) -> Process:
    port = free_port()
    env = {**os.environ, "NODE_ENV": "production"}
    argv = ["node", cli, "--connection", connection, "--schema", "public", "--host", "127.0.0.1",
            "--port", str(port), "--disable-graphiql", "--disable-query-log", "--no-setof-functions-contain-nulls",
            "--max-pool-size", "10"]
    log = root / "postgraphile.log"
    p = Process("postgraphile", _spawn("postgraphile", argv, env, log, cwd=Path(cli).parent), f"http://127.0.0.1:{port}",
                log)
    started.append(p)
    _wait_until_up(p, {"query": "{ __typename }"})
    return p
