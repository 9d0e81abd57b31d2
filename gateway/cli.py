"""`account-gateway`: serve, migrate, seed, export-schema, service-token, staff."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib.metadata
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from uuid import UUID

from auth import principals
from datasources.errors import GatewayError
from datasources.postgres import service_tokens, staff
from datasources.payments.client import PaymentsClient
from datasources.payments.emulator import EMULATOR_API_KEY
from datasources.postgres.database import Database
from gateway import logs, startup
from gateway.embedded import embedded_services
from gateway.persisted import load_operations
from gateway.settings import Settings, SettingsError, for_start, from_env
from gateway.settings_doc import environment_help

log = logging.getLogger("gateway")


class CliError(Exception):
    """Stops the command with a one-line message and a non-zero exit code."""


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except (CliError, SettingsError) as exc:
        print(f"account-gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("account-gateway: interrupted", file=sys.stderr)
        sys.exit(130)


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless it has none, or says it itself)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) \
                and "default" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """A usage error is one line and exit code 2, like every other error of the command."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="account-gateway", description=__doc__)
    parser.add_argument("--version", action="version", help="print the version and exit",
                        version=f"%(prog)s {importlib.metadata.version('account-gateway')}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND", help="what to do")

    serve = commands.add_parser("serve", help="run the gateway (embedded services unless configured)",
                                description="Run the gateway: start the embedded services that are not\n"
                                            "configured, migrate, seed the demo into an empty database, serve.",
                                epilog=environment_help())
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port to listen on, 1 to 65535")
    serve.add_argument("--workers", type=_positive, default=1,
                       help="gateway processes on the one port; they share state through "
                            "PostgreSQL and REDIS_URL")
    _data_dir_option(serve)
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    _data_dir_option(migrate)
    migrate.set_defaults(run=_migrate)

    seed = commands.add_parser("seed", help="load the demo organizations into an empty database")
    _data_dir_option(seed)
    seed.set_defaults(run=_seed)

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument("--output", "-o", type=Path, help="write to this file (default: stdout)")
    export.set_defaults(run=_export_schema)

    service_token = commands.add_parser("service-token", help="manage service tokens of internal tools")
    token_commands = service_token.add_subparsers(required=True, metavar="ACTION", help="what to do")
    create = token_commands.add_parser("create", help="create a token and print it (shown only this once)")
    create.add_argument("--name", required=True, help="the service's name, e.g. billing-dashboard")
    create.add_argument("--scopes", required=True, help=f"comma-separated, from: {', '.join(principals.SCOPES)}")
    _data_dir_option(create)
    create.set_defaults(run=_service_token_create)
    listing = token_commands.add_parser("list", help="list service tokens (never the tokens themselves)")
    _data_dir_option(listing)
    listing.set_defaults(run=_service_token_list)
    revoke = token_commands.add_parser("revoke", help="revoke a live token; it stops working at once")
    revoke.add_argument("token", metavar="NAME_OR_ID", help="the token's name or id (from `service-token list`)")
    _data_dir_option(revoke)
    revoke.set_defaults(run=_service_token_revoke)

    staff = commands.add_parser("staff", help="manage staff roles of the vendor's people")
    staff_commands = staff.add_subparsers(required=True, metavar="ACTION", help="what to do")
    staff_list = staff_commands.add_parser("list", help="list the accounts holding a staff role, with their roles")
    _data_dir_option(staff_list)
    staff_list.set_defaults(run=_staff_list)
    grant = staff_commands.add_parser("grant", help="give an account a staff role (replacing its current one)")
    grant.add_argument("email", help="the account's email")
    grant.add_argument("role", type=str.upper, choices=principals.STAFF_ROLES, help="the staff role")
    _data_dir_option(grant)
    grant.set_defaults(run=_staff_grant)
    staff_revoke = staff_commands.add_parser("revoke", help="take an account's staff role away")
    staff_revoke.add_argument("email", help="the account's email")
    _data_dir_option(staff_revoke)
    staff_revoke.set_defaults(run=_staff_revoke)
    return parser


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"a port from 1 to 65535, not {raw!r}")
    return int(raw)


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {raw!r}")
    return int(raw)


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where embedded PostgreSQL, the local payment provider and the "
                             "development secrets live; a running `serve`'s services there are used, "
                             "never stopped (default: GATEWAY_DATA_DIR, else ./.gateway-data)")


def _settings(args: argparse.Namespace) -> Settings:
    settings = from_env()
    logs.configure(settings.request_log_format)
    if args.data_dir is not None:
        settings = settings.with_(data_dir=args.data_dir)
    _ensure_writable(settings.data_dir)
    return for_start(settings)


def _ensure_writable(data_dir: Path) -> None:
    probe = data_dir / ".write-probe"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CliError(f"data directory {str(data_dir)!r} is not writable: {exc.strerror}") from None


def _bind(host: str, port: int) -> socket.socket:
    """Binds before anything starts, so a taken port fails fast and leaves nothing running.

    The protocol is named, not left 0: asyncio sets TCP_NODELAY on accepted connections only
    when the socket says IPPROTO_TCP. Without it, a keep-alive client's second request waited
    about 40 ms for its delayed ACK (Nagle holding the response body behind its headers).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


def _serve(args: argparse.Namespace) -> None:
    settings = _settings(args)
    if settings.public_url is None and not settings.production:
        settings = settings.with_(public_url=f"http://{args.host}:{args.port}")
    load_operations(settings)  # a bad operation or manifest stops here, before anything starts
    sock = _bind(args.host, args.port)
    try:
        metrics_sock = _bind(settings.metrics_host, settings.metrics_port) if settings.metrics_port else None
    except CliError:
        sock.close()
        raise
    # Until the server runs, a SIGTERM interrupts start-up like Ctrl-C does, and the
    # services started so far are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(_serve_async(settings, sock, metrics_sock, args))
    finally:
        sock.close()
        if metrics_sock is not None:
            metrics_sock.close()


async def _serve_async(settings: Settings, sock: socket.socket, metrics_sock: socket.socket | None,
                       args: argparse.Namespace) -> None:
    async with embedded_services(settings) as settings:
        async with _resources(settings) as (db, payments):
            await startup.apply_migrations(db)
            if settings.seed_demo:
                await _seed_demo(settings, db, payments)
            # Rows made before the provider held subscriptions get their provider side in the
            # scheduler's passes (resolvers/subscription_sync.py), not here before listening.
        log.info("GraphQL at http://%s:%d/graphql%s", args.host, args.port,
                 "" if settings.production else " (GraphiQL in a browser)")
        if metrics_sock is not None:
            log.info("metrics at http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
        # Imported here, not at the top: the app and its schema take over a second to import,
        # which every other command (migrate, staff, service-token) would pay for nothing.
        from gateway import workers

        if args.workers > 1:
            await workers.supervise(settings, sock, args.workers, metrics_sock)
        else:
            await workers.serve_app(settings, sock, metrics_sock)
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
                seeded = await _seed_demo(settings, db, payments)
        print("seeded the demo data" if seeded else "demo data already present; provider side checked")

    asyncio.run(run())


async def _seed_demo(settings: Settings, db: Database, payments: PaymentsClient) -> bool:
    try:
        return await startup.seed_demo(db, payments)
    except GatewayError as exc:
        provider = settings.stripe_api_base or "Stripe"
        raise CliError(f"seeding the demo data failed: {exc.message} (payment provider: {provider})") from None


def _export_schema(args: argparse.Namespace) -> None:
    from schema import build_schema  # see _serve_async

    sdl = build_schema().as_str() + "\n"
    if args.output:
        args.output.write_text(sdl)
    else:
        sys.stdout.write(sdl)


def _with_database(args: argparse.Namespace, action: Callable[[Database], Awaitable[None]]) -> None:
    """Runs `action` on the migrated database (embedded unless DATABASE_URL is set)."""
    async def run() -> None:
        async with embedded_services(_settings(args), payments=False) as settings:
            async with _resources(settings) as (db, _):
                await startup.apply_migrations(db)
                try:
                    await action(db)
                except GatewayError as exc:
                    raise CliError(exc.message) from None

    asyncio.run(run())


def _service_token_create(args: argparse.Namespace) -> None:
    try:
        scopes = principals.parse_scopes(args.scopes)
    except ValueError as exc:
        raise CliError(str(exc)) from None

    async def create(db: Database) -> None:
        token = principals.new_service_token()
        created = await service_tokens.create(db, name=args.name, scopes=scopes,
                                              token_hash=principals.hash_service_token(token))
        # The token alone on stdout, for scripts; it exists nowhere else after this.
        print(f"created service token {created.name} ({created.id}) with scopes {','.join(created.scopes)}; "
              "store the token now, it is not shown again:", file=sys.stderr)
        print(token)

    _with_database(args, create)


def _service_token_list(args: argparse.Namespace) -> None:
    async def show(db: Database) -> None:
        for t in await service_tokens.list_tokens(db):
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "live"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            print(f"{t.id}  {t.name}  {','.join(t.scopes)}  created {t.created_at:%Y-%m-%d}  last used {used}  {state}")

    _with_database(args, show)


def _service_token_revoke(args: argparse.Namespace) -> None:
    async def revoke(db: Database) -> None:
        revoked = await service_tokens.revoke(db, args.token)
        if revoked is None:
            raise CliError(f"no live service token named or with id {args.token!r}")
        print(f"revoked service token {revoked.name} ({revoked.id})")

    _with_database(args, revoke)


async def _staff_account(db: Database, email: str) -> UUID:
    account_id = await staff.account_id_by_email(db, email)
    if account_id is None:
        raise CliError(f"no account has the email {email!r}")
    return account_id


def _staff_list(args: argparse.Namespace) -> None:
    async def show(db: Database) -> None:
        for member in await staff.list_staff(db):
            print(f"{member.email}  {member.role}  {member.name}  since {member.granted_at:%Y-%m-%d}")

    _with_database(args, show)


def _staff_grant(args: argparse.Namespace) -> None:
    async def grant(db: Database) -> None:
        account_id = await _staff_account(db, args.email)
        async with db.transaction() as conn:
            previous = await staff.grant_role(conn, account_id, args.role)
        print(f"{args.email} is now staff {args.role}" + (f" (was {previous})" if previous else ""))

    _with_database(args, grant)


def _staff_revoke(args: argparse.Namespace) -> None:
    async def revoke(db: Database) -> None:
        revoked = await staff.revoke_role(db, await _staff_account(db, args.email))
        if revoked is None:
            raise CliError(f"{args.email} has no staff role")
        print(f"{args.email} is no longer staff (was {revoked})")

    _with_database(args, revoke)
