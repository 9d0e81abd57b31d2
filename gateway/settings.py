"""Settings read once from the environment (and the CLI), then passed down explicitly."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway import tracing
from gateway.limits import LimitSettings
from gateway.setting_kinds import (Address, Choice, Directory, File, Flag, Integer, Kind, Origins, Prefixed, Proxies,
                                   Seconds,
                                   StrongSecret, Text, Url)

log = logging.getLogger("gateway.settings")

DEFAULT_HELP_CENTER_URL = "https://support.account-gateway.example/hc"
# A request body may be at most this large (GraphQL and webhooks alike); bigger ones get 413.
DEFAULT_MAX_BODY_BYTES = 1 << 20
MAX_BODY_BYTES_CEILING = 64 << 20  # past this the limit no longer protects the memory of a process
# A request's start line and headers; browsers send a few KiB, large cookies tens; more is 431.
DEFAULT_MAX_HEADER_BYTES = 64 << 10
MAX_HEADER_BYTES_CEILING = 1 << 20  # no real client sends a megabyte of headers
# Where the customer portal runs: links in mail (an invitation's accept page) point there.
DEFAULT_PORTAL_URL = "https://portal.account-gateway.example"
# The portal's named operations, registered as persisted operations at start.
DEFAULT_OPERATIONS_DIR = Path(__file__).resolve().parents[1] / "operations"
# Okta's ceiling for its refresh token grace period: longer and a stolen token gets a real window.
MAX_REFRESH_REUSE_GRACE_SECONDS = 60


class SettingsError(Exception):
    """A setting is missing or unusable; the message is shown to the operator as is."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    data_dir: Path = Path(".gateway-data")
    database_url: str | None = None
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    secret_key: str = ""
    # Verifies `POST /webhooks/payments` deliveries (Stripe's `whsec_...`); empty: every one refused.
    stripe_webhook_secret: str = ""
    smtp_url: str | None = None
    # Access tokens are short-lived; clients keep signed in by trading their refresh token.
    token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # A refresh token traded in this recently gets the same successor again (two tabs, a lost
    # answer) instead of ending the session as reuse; 0 turns the grace off.
    refresh_reuse_grace_seconds: int = 10
    provider_timeout_seconds: float = 10.0
    provider_max_retries: int = 2
    provider_breaker_failures: int = 5
    provider_breaker_cooldown_seconds: float = 10.0
    db_pool_max_size: int = 10
    db_acquire_timeout_seconds: float = 5.0
    db_connect_timeout_seconds: float = 2.0
    # Bounds a query on a connection that has silently gone away (acquiring has its own bound).
    db_command_timeout_seconds: float | None = 30.0
    help_center_url: str = DEFAULT_HELP_CENTER_URL
    portal_url: str = DEFAULT_PORTAL_URL
    # The gateway's own address as browsers reach it: corporate sign-in's redirect URI is under it.
    public_url: str | None = None
    # Seed the demo organizations into an empty database on start.
    seed_demo: bool = True
    redis_url: str | None = None
    # Where the rate-limit buckets' keys start in Redis: deployments sharing one keep apart.
    redis_key_prefix: str = "account-gateway:bucket:"
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto count: addresses or networks, or ("*",).
    # Empty: the headers are ignored and the client is the connection's peer.
    forwarded_allow_ips: tuple[str, ...] = ()
    limits: LimitSettings = field(default_factory=LimitSettings)
    # Persisted operations: the registered `*.graphql` files, and whether only they may run.
    operations_dir: Path = DEFAULT_OPERATIONS_DIR
    persisted_operations_only: bool = False
    # A manifest client tooling writes (graphql-codegen's persisted-documents.json): more registered operations.
    persisted_operations_manifest: Path | None = None
    # The request log line: "json" or "text"; None: JSON in production, text in development.
    log_format: str | None = None
    # OpenTelemetry spans (gateway/tracing.py), when the `otel` extra is installed.
    tracing: bool = False
    # Production only: run on the embedded PostgreSQL and the payment emulator anyway (a trial).
    allow_embedded_services: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    # /metrics (gateway/metrics.py): its own listener when a port is given, and a bearer token
    # it demands when one is given; production without either serves no /metrics.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    metrics_token: str = ""
    # Web origins (scheme://host[:port]) whose pages may call the API from a browser; ("*",): any.
    cors_origins: tuple[str, ...] = ()
    # Which executor answers queries (schema.EXECUTORS): "levels", or "graphql-core" alone, which the
    # tests run every behavioural test under too. Not read from the environment: production has one.
    executor: str = "levels"
    # Live events (issue 17): how long the event log keeps events (`after` resumes within it),
    # subscriptions one WebSocket or one viewer may hold, and how often the scheduler looks for
    # time-based events (expiries, a low credit pool).
    event_retention_days: float = 7.0
    max_subscriptions_per_connection: int = 20
    max_subscriptions_per_viewer: int = 50
    scheduler_interval_seconds: float = 60.0
    # Issue 18: how long the licenses of a subscription whose renewal payment failed keep working.
    payment_grace_days: int = 14
    # Issue 20: the billing mirror's lists are fetched again by the scheduler when older than this
    # (webhooks drop them at once; this is for the ones that never arrive).
    billing_mirror_max_age_seconds: float = 3600.0
    # Whether this app runs the scheduler loop (gateway/scheduler.py). Not read from the environment:
    # every `serve` runs it (one process at a time holds its lock); the tests' in-process apps
    # switch it off, so that seeded expiries do not turn into events and mail under other tests.
    run_scheduler: bool = True

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def request_log_format(self) -> str:
        return self.log_format or ("json" if self.production else "text")

    def with_(self, **changes: object) -> "Settings":
        return replace(self, **changes)


_FIELD_DEFAULT = object()  # the Settings (or LimitSettings) field's own default


@dataclass(frozen=True)
class Setting:
    """One environment variable: the Settings attribute it sets (`limits.x` for LimitSettings),
    its kind (how it is read and checked), and what it means (the README and `serve --help`)."""

    env: str
    attr: str
    kind: Kind
    help: str
    # Unset or empty: this value; a callable gets the values read so far (the table is in order).
    default: object = _FIELD_DEFAULT
    default_doc: str | None = None  # the default as the README says it, when not a plain value

    def default_value(self, read: dict[str, object]) -> object:
        if callable(self.default):
            return self.default(read)
        if self.default is not _FIELD_DEFAULT:
            return self.default
        owner, _, name = self.attr.rpartition(".")
        return (LimitSettings if owner else Settings).__dataclass_fields__[name or self.attr].default


def _not_production(read: dict[str, object]) -> bool:
    return read["env"] != "production"


# Every setting the gateway reads from the environment, in the order the README lists them.
# Adding one: a field on Settings, then one entry here (README: python -m gateway.settings_doc).
SETTINGS: tuple[Setting, ...] = (
    Setting("GATEWAY_ENV", "env", Choice(("development", "production")),
            "`production` turns off GraphiQL, introspection and the demo seed, and requires real "
            "services and a strong SECRET_KEY (see Production)"),
    Setting("GATEWAY_DATA_DIR", "data_dir", Directory(), "same as `--data-dir`: embedded services, "
            "the development secrets, mail files"),
    Setting("DATABASE_URL", "database_url", Url(("postgresql", "postgres"), "postgresql://user@db:5432/gateway"),
            "PostgreSQL DSN", default_doc="unset: embedded PostgreSQL under the data directory"),
    Setting("STRIPE_API_KEY", "stripe_api_key", Prefixed(("sk_", "rk_")), "payment provider secret key",
            default_doc="unset: localstripe on a free loopback port"),
    Setting("STRIPE_API_BASE", "stripe_api_base", Url(("http", "https"), "http://127.0.0.1:8420"),
            "provider base URL (for example your own emulator)", default_doc="Stripe's own"),
    Setting("STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret", Prefixed(("whsec_",)),
            "verifies `POST /webhooks/payments` deliveries; required in production with a STRIPE_API_KEY",
            default_doc="development: generated once into `<data-dir>/stripe_webhook_secret`; "
                        "production: unset, every delivery refused"),
    Setting("SECRET_KEY", "secret_key", StrongSecret(), "signs tokens (see Production for what counts as strong)",
            default_doc="development: generated once into `<data-dir>/secret_key`; production: required"),
    Setting("ALLOW_EMBEDDED_SERVICES", "allow_embedded_services", Flag(),
            "production only: allow the embedded PostgreSQL and the payment emulator (a trial; logged "
            "as a warning at every start)"),
    Setting("SMTP_URL", "smtp_url", Url(("smtp", "smtps"), "smtp://user:password@mail.example.com:587"),
            "outgoing mail server (STARTTLS when offered; `smtps://` for TLS from the start)",
            default_doc="unset: mail is written as `.eml` files to `<data-dir>/mail/`"),
    Setting("TOKEN_TTL_SECONDS", "token_ttl_seconds", Integer(60, 24 * 3600), "bearer token lifetime"),
    Setting("REFRESH_TOKEN_TTL_SECONDS", "refresh_token_ttl_seconds", Integer(300, 365 * 24 * 3600),
            "refresh token lifetime, counted again at each rotation"),
    Setting("REFRESH_REUSE_GRACE_SECONDS", "refresh_reuse_grace_seconds", Integer(0, MAX_REFRESH_REUSE_GRACE_SECONDS),
            "a just-rotated refresh token presented again within this many seconds returns the same successor "
            "(two tabs, a retried request) instead of ending the session; 0: never"),
    Setting("PROVIDER_TIMEOUT_SECONDS", "provider_timeout_seconds", Seconds(120),
            "time box for every payment provider request, its retries included"),
    Setting("PROVIDER_MAX_RETRIES", "provider_max_retries", Integer(0, 10),
            "retries of reads, and of writes that carry an idempotency key (the same key every time)"),
    Setting("PROVIDER_BREAKER_FAILURES", "provider_breaker_failures", Integer(1, 1000),
            "failed provider requests in a row that open the circuit breaker"),
    Setting("PROVIDER_BREAKER_COOLDOWN_SECONDS", "provider_breaker_cooldown_seconds", Seconds(3600),
            "how long the open breaker fails fast before trying again"),
    Setting("DB_POOL_MAX_SIZE", "db_pool_max_size", Integer(1, 1000), "PostgreSQL connections per process"),
    Setting("DB_ACQUIRE_TIMEOUT_SECONDS", "db_acquire_timeout_seconds", Seconds(300),
            "the longest a request waits for a pooled connection"),
    Setting("DB_CONNECT_TIMEOUT_SECONDS", "db_connect_timeout_seconds", Seconds(300),
            "the longest a new connection may take (a dead server is noticed quickly)"),
    Setting("DB_COMMAND_TIMEOUT_SECONDS", "db_command_timeout_seconds", Seconds(3600, zero_is_off=True),
            "bounds one statement on a connection that went away silently"),
    Setting("HELP_CENTER_URL", "help_center_url", Url(("http", "https"), "https://help.example.com"),
            "shown by `support { helpCenterUrl }`"),
    Setting("PORTAL_URL", "portal_url", Url(("http", "https"), "https://portal.example.com", base=True),
            "the customer portal's address, for links in mail (an invitation's `/accept-invitation?token=…`)"),
    Setting("PUBLIC_URL", "public_url", Url(("http", "https"), "https://api.example.com", base=True),
            "the gateway's own address as browsers reach it; corporate sign-in's redirect URI is "
            "`<PUBLIC_URL>/sso/callback`", default_doc="unset: `http://<host>:<port>` of `serve` in development"),
    Setting("SEED_DEMO", "seed_demo", Flag(), "seed the demo into an empty database", default=_not_production,
            default_doc="`1` in development, `0` in production"),
    Setting("REDIS_URL", "redis_url", Url(("redis", "rediss", "unix"), "redis://cache:6379/0"),
            "Redis for rate-limit buckets shared by several processes", default_doc="unset: buckets in each process"),
    Setting("REDIS_KEY_PREFIX", "redis_key_prefix", Text(r"\S{1,200}", "text without spaces, at most 200 "
                                                         "characters", ("two words", "x" * 201)),
            "where the buckets' keys start in Redis (deployments sharing one Redis keep apart)"),
    Setting("CORS_ORIGINS", "cors_origins", Origins(),
            "web origins whose pages may call the API from a browser (`*`: any, refused in production)",
            default_doc="unset: no CORS"),
    Setting("FORWARDED_ALLOW_IPS", "forwarded_allow_ips", Proxies(),
            "proxies whose `X-Forwarded-For` gives the client address", default_doc="unset: forwarded headers ignored"),
    Setting("MAX_QUERY_COST", "limits.max_query_cost", Integer(1, 10**12), "the most one query may cost"),
    Setting("COST_BUDGET", "limits.cost_budget", Integer(1, 10**12), "each viewer's bucket of cost points"),
    Setting("COST_RESTORE_RATE", "limits.cost_restore_rate", Seconds(10**12), "cost points restored per second"),
    Setting("SIGN_IN_ATTEMPTS", "limits.sign_in_attempts", Integer(1, 10**6),
            "failed password and token checks allowed per account in a window (counted before the check)"),
    Setting("SIGN_IN_ATTEMPTS_PER_ADDRESS", "limits.sign_in_attempts_per_address", Integer(1, 10**6),
            "the same, per client address"),
    Setting("SIGN_IN_WINDOW_SECONDS", "limits.sign_in_window_seconds", Seconds(24 * 3600),
            "the sign-in throttles' window"),
    Setting("MAX_BODY_BYTES", "max_body_bytes", Integer(1024, MAX_BODY_BYTES_CEILING),
            "the largest request body (GraphQL and webhooks); larger is 413"),
    Setting("MAX_HEADER_BYTES", "max_header_bytes", Integer(1024, MAX_HEADER_BYTES_CEILING),
            "the largest request head (start line and headers); larger is 431 and the connection closed"),
    Setting("OPERATIONS_DIR", "operations_dir", Directory(exists=True),
            "the registered persisted operations (`*.graphql`)", default_doc="the repository's `operations/`"),
    Setting("PERSISTED_OPERATIONS_MANIFEST", "persisted_operations_manifest", File(),
            "a client tool's manifest of persisted operations (graphql-codegen's `persisted-documents.json` "
            "or Apollo's), registered beside `OPERATIONS_DIR`", default_doc="unset: the folder alone"),
    Setting("PERSISTED_OPERATIONS_ONLY", "persisted_operations_only", Flag(),
            "run registered operations only: any other query text is refused"),
    Setting("LOG_FORMAT", "log_format", Choice(("json", "text")), "every log line as one JSON object, or readable text",
            default_doc="`json` in production, `text` in development"),
    Setting("METRICS_HOST", "metrics_host", Address(), "where the `METRICS_PORT` listener binds"),
    Setting("METRICS_PORT", "metrics_port", Integer(1, 65535),
            "serve `/metrics` on its own listener at this port instead of the public one",
            default_doc="unset: `/metrics` on the public port in development, nowhere in production"),
    Setting("METRICS_TOKEN", "metrics_token", StrongSecret(),
            "every scrape of `/metrics` must send `Authorization: Bearer <token>`", default_doc="unset: none asked"),
    Setting("EVENT_RETENTION_DAYS", "event_retention_days", Seconds(3650),
            "days the event log keeps events; a subscription resumes with `after` within this window"),
    Setting("MAX_SUBSCRIPTIONS_PER_CONNECTION", "max_subscriptions_per_connection", Integer(1, 10_000),
            "live subscriptions one WebSocket may hold at once; more are refused"),
    Setting("MAX_SUBSCRIPTIONS_PER_VIEWER", "max_subscriptions_per_viewer", Integer(1, 100_000),
            "live subscriptions one account or service token may hold at once in this process"),
    Setting("PAYMENT_GRACE_DAYS", "payment_grace_days", Integer(0, 90),
            "days the seats of a subscription whose renewal payment failed keep working; SUSPENDED after, "
            "until an invoice is paid"),
    Setting("BILLING_MIRROR_MAX_AGE_SECONDS", "billing_mirror_max_age_seconds", Seconds(7 * 24 * 3600),
            "how old a customer's billing lists in the mirror may get before the scheduler fetches them again "
            "from the payment provider (each webhook about the customer refreshes them at once)"),
    Setting("SCHEDULER_INTERVAL_SECONDS", "scheduler_interval_seconds", Seconds(24 * 3600),
            "how often the scheduler (on one process at a time) looks for expiries and low credit pools"),
    Setting("GATEWAY_TRACING", "tracing", Flag(),
            "OpenTelemetry spans through a tracer provider set up elsewhere (the OTEL_* variables also "
            "turn tracing on; see Observability)"),
)

# Read by the OpenTelemetry SDK as it documents them; the gateway looks at these too (tracing.configured).
OPENTELEMETRY_VARIABLES = ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME")


def from_env(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Reads and checks every setting of SETTINGS; the first unusable one is a SettingsError.

    An empty value counts as unset.
    """
    env = dict(os.environ if environ is None else environ)
    read: dict[str, object] = {}
    for setting in SETTINGS:
        raw = (env.get(setting.env) or "").strip()
        read[setting.attr] = _parse(setting, raw) if raw else setting.default_value(read)
    limits = {attr.split(".", 1)[1]: value for attr, value in read.items() if attr.startswith("limits.")}
    top = {attr: value for attr, value in read.items() if not attr.startswith("limits.")}
    settings = Settings(**top, limits=LimitSettings(**limits))
    settings = settings.with_(tracing=tracing.configured(env))
    if settings.production and settings.cors_origins == ("*",):  # the one rule across two settings
        raise SettingsError("CORS_ORIGINS=* is refused in production: name the origins of your web clients, "
                            "such as https://portal.example.com")
    return settings.with_(**overrides) if overrides else settings


def _parse(setting: Setting, raw: str) -> object:
    try:
        return setting.kind.parse(raw)
    except ValueError:
        refused = getattr(setting.kind, "refused", None)
        if refused:
            raise SettingsError(f"{setting.env} {refused}: use {setting.kind.accepts}") from None
        shown = getattr(setting.kind, "shown", lambda value: value)(raw)
        raise SettingsError(f"{setting.env} must be {setting.kind.accepts}, not {shown!r}") from None


def for_start(settings: Settings) -> Settings:
    """What every command checks and settles before it starts anything: the production
    requirements, then the secrets (the token signing key, the webhook signing secret)."""
    check_production(settings)
    return resolve_webhook_secret(_resolve_token_key(settings))


def check_production(settings: Settings) -> None:
    """Production runs on real services: a PostgreSQL of its own (DATABASE_URL) and the real
    payment provider (STRIPE_API_KEY). The embedded ones keep their data in one directory of
    one machine, and the emulator takes any card: ALLOW_EMBEDDED_SERVICES=1 allows them for a
    trial, with a warning at every start."""
    if not settings.production:
        return
    missing = [name for name, value in (("DATABASE_URL", settings.database_url),
                                        ("STRIPE_API_KEY", settings.stripe_api_key)) if not value]
    if not missing:
        return
    if not settings.allow_embedded_services:
        raise SettingsError(f"production needs {' and '.join(missing)}: without them the gateway would run on the "
                            "embedded development services (set ALLOW_EMBEDDED_SERVICES=1 for a trial only)")
    log.warning("PRODUCTION ON DEVELOPMENT SERVICES: %s not set and ALLOW_EMBEDDED_SERVICES=1; the embedded "
                "PostgreSQL and the payment emulator are for trials, never for customers", " and ".join(missing))


def _resolve_token_key(settings: Settings) -> Settings:
    """Production must be given SECRET_KEY (its strength is checked where it is read, in
    from_env); development keeps one in the data directory, so that tokens survive a
    restart of `serve`."""
    if settings.secret_key:
        return settings
    if settings.production:
        raise SettingsError(f"SECRET_KEY is not set: production needs {StrongSecret().accepts}")
    return settings.with_(secret_key=_kept_secret(settings.data_dir / "secret_key"))


def resolve_webhook_secret(settings: Settings) -> Settings:
    """STRIPE_WEBHOOK_SECRET, the secret the provider signs webhook deliveries with.

    Production with a real provider (STRIPE_API_KEY) must be given it: that provider sends
    events, and one not known to come from it must never be applied. Production without a
    key (an emulator) keeps it empty, so every delivery is refused. Development keeps a
    generated one in the data directory, for signing local test deliveries.
    """
    if settings.stripe_webhook_secret:
        return settings
    if settings.production:
        if settings.stripe_api_key:
            raise SettingsError("STRIPE_WEBHOOK_SECRET is not set: production with a STRIPE_API_KEY needs the "
                                "webhook signing secret (whsec_...) of the endpoint /webhooks/payments")
        return settings
    return settings.with_(stripe_webhook_secret=_kept_secret(settings.data_dir / "stripe_webhook_secret", "whsec_"))


def _kept_secret(path: Path, prefix: str = "") -> str:
    """A random secret made once and kept in `path`, readable by its owner only."""
    if not path.exists():
        path.write_text(prefix + secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
