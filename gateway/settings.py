"""Settings read once from the environment (and the CLI), then passed down explicitly."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from gateway import tracing
from gateway.limits import LimitSettings

MIN_SECRET_LENGTH = 32
DEFAULT_HELP_CENTER_URL = "https://support.account-gateway.example/hc"
# A request body may be at most this large (GraphQL and webhooks alike); bigger ones get 413.
DEFAULT_MAX_BODY_BYTES = 1 << 20
MAX_BODY_BYTES_CEILING = 64 << 20  # past this the limit no longer protects the memory of a process
# Where the customer portal runs: links in mail (an invitation's accept page) point there.
DEFAULT_PORTAL_URL = "https://portal.account-gateway.example"
# The portal's named operations, registered as persisted operations at start.
DEFAULT_OPERATIONS_DIR = Path(__file__).resolve().parents[1] / "operations"
# Okta's ceiling for its refresh token grace period: longer and a stolen token gets a real window.
MAX_REFRESH_REUSE_GRACE_SECONDS = 60
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")  # a DNS name or IPv4 address, or an IPv6 one (urlsplit lower-cases)


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
    # The request log line: "json" or "text"; None: JSON in production, text in development.
    log_format: str | None = None
    # OpenTelemetry spans (gateway/tracing.py), when the `otel` extra is installed.
    tracing: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Web origins (scheme://host[:port]) whose pages may call the API from a browser; ("*",): any.
    cors_origins: tuple[str, ...] = ()

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def request_log_format(self) -> str:
        return self.log_format or ("json" if self.production else "text")

    def with_(self, **changes: object) -> "Settings":
        return replace(self, **changes)


def from_env(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    env = dict(os.environ if environ is None else environ)
    gateway_env = env.get("GATEWAY_ENV", "development")
    if gateway_env not in ("development", "production"):
        raise SettingsError(f"GATEWAY_ENV must be 'development' or 'production', not {gateway_env!r}")
    settings = Settings(
        env=gateway_env,
        data_dir=Path(env.get("GATEWAY_DATA_DIR", ".gateway-data")),
        database_url=env.get("DATABASE_URL") or None,
        stripe_api_key=env.get("STRIPE_API_KEY") or None,
        stripe_api_base=env.get("STRIPE_API_BASE") or None,
        secret_key=env.get("SECRET_KEY", ""),
        stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", ""),
        smtp_url=env.get("SMTP_URL") or None,
        token_ttl_seconds=_int(env, "TOKEN_TTL_SECONDS", Settings.token_ttl_seconds),
        refresh_token_ttl_seconds=_int(env, "REFRESH_TOKEN_TTL_SECONDS", Settings.refresh_token_ttl_seconds),
        refresh_reuse_grace_seconds=_int(env, "REFRESH_REUSE_GRACE_SECONDS", Settings.refresh_reuse_grace_seconds,
                                         bounds=(0, MAX_REFRESH_REUSE_GRACE_SECONDS)),
        provider_timeout_seconds=_float(env, "PROVIDER_TIMEOUT_SECONDS", 10.0),
        provider_max_retries=_int(env, "PROVIDER_MAX_RETRIES", 2),
        provider_breaker_failures=_int(env, "PROVIDER_BREAKER_FAILURES", 5),
        provider_breaker_cooldown_seconds=_float(env, "PROVIDER_BREAKER_COOLDOWN_SECONDS", 10.0),
        db_pool_max_size=_int(env, "DB_POOL_MAX_SIZE", 10),
        db_acquire_timeout_seconds=_float(env, "DB_ACQUIRE_TIMEOUT_SECONDS", 5.0),
        db_connect_timeout_seconds=_float(env, "DB_CONNECT_TIMEOUT_SECONDS", 2.0),
        db_command_timeout_seconds=_float(env, "DB_COMMAND_TIMEOUT_SECONDS", 30.0) or None,
        help_center_url=env.get("HELP_CENTER_URL", DEFAULT_HELP_CENTER_URL),
        portal_url=_base_url(env, "PORTAL_URL", DEFAULT_PORTAL_URL),
        # Production databases start empty of demo organizations unless asked.
        seed_demo=env.get("SEED_DEMO", "0" if gateway_env == "production" else "1")
        not in ("0", "false", "no"),
        redis_url=env.get("REDIS_URL") or None,
        redis_key_prefix=env.get("REDIS_KEY_PREFIX") or Settings.redis_key_prefix,
        forwarded_allow_ips=_proxies(env, "FORWARDED_ALLOW_IPS"),
        limits=LimitSettings(
            max_query_cost=_int(env, "MAX_QUERY_COST", LimitSettings.max_query_cost),
            cost_budget=_int(env, "COST_BUDGET", LimitSettings.cost_budget),
            cost_restore_rate=_float(env, "COST_RESTORE_RATE", LimitSettings.cost_restore_rate),
            sign_in_attempts=_int(env, "SIGN_IN_ATTEMPTS", LimitSettings.sign_in_attempts),
            sign_in_attempts_per_address=_int(env, "SIGN_IN_ATTEMPTS_PER_ADDRESS",
                                              LimitSettings.sign_in_attempts_per_address),
            sign_in_window_seconds=_float(env, "SIGN_IN_WINDOW_SECONDS", LimitSettings.sign_in_window_seconds),
        ),
        operations_dir=Path(env.get("OPERATIONS_DIR") or DEFAULT_OPERATIONS_DIR),
        persisted_operations_only=env.get("PERSISTED_OPERATIONS_ONLY", "0").strip().lower() in ("1", "true", "yes"),
        log_format=_choice(env, "LOG_FORMAT", ("json", "text")),
        tracing=tracing.configured(env),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, bounds=(1024, MAX_BODY_BYTES_CEILING)),
        cors_origins=_origins(env, "CORS_ORIGINS", production=gateway_env == "production"),
    )
    return settings.with_(**overrides) if overrides else settings


def _int(env: dict[str, str], name: str, default: int, bounds: tuple[int, int] | None = None) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    wanted = "an integer" if bounds is None else f"an integer from {bounds[0]} to {bounds[1]}"
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {wanted}, not {raw!r}") from None
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise SettingsError(f"{name} must be {wanted}, not {raw!r}")
    return value


def _base_url(env: dict[str, str], name: str, default: str) -> str:
    """An absolute http(s) address that paths are appended to: no query, no fragment, no trailing slash."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(f"{name} must be an http(s) address such as https://portal.example.com, not {raw!r}")
    return raw.rstrip("/")


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = (env.get(name) or "").strip().lower()
    if raw and raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw or None


def _proxies(env: dict[str, str], name: str) -> tuple[str, ...]:
    """A comma list of IP addresses or networks (CIDR), or `*` for any peer."""
    raw = (env.get(name) or "").strip()
    if raw == "*":
        return ("*",)
    found = tuple(item.strip() for item in raw.split(",") if item.strip())
    for item in found:
        try:
            ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        except ValueError:
            raise SettingsError(f"{name} must be a comma list of proxy IP addresses or networks (such as "
                                f"10.0.0.5,10.1.0.0/16), or *, not {raw!r}") from None
    return found


def _origins(env: dict[str, str], name: str, *, production: bool) -> tuple[str, ...]:
    """A comma list of web origins, written as a browser sends them in `Origin` (lower case, no
    default port), or `*` for any origin outside production."""
    raw = (env.get(name) or "").strip()
    if raw == "*":
        if production:
            raise SettingsError(f"{name}=* is refused in production: name the origins of your web clients, "
                                "such as https://portal.example.com")
        return ("*",)
    found = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (parts.scheme.lower() not in _DEFAULT_PORTS or not _HOST.fullmatch(parts.hostname or "") or port == -1
                or parts.username
                or parts.password or parts.path or parts.query or parts.fragment or item.endswith(("?", "#"))):
            raise SettingsError(f"{name} must be a comma list of origins such as https://portal.example.com or "
                                f"http://localhost:5173 (scheme, host and port; no path), not {item!r}")
        scheme = parts.scheme.lower()
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        found.append(f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[scheme]) else ""))
    return tuple(dict.fromkeys(found))


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None


def resolve_secret_key(settings: Settings) -> Settings:
    """Settles every secret at start: the token signing key, then the webhook signing secret."""
    return resolve_webhook_secret(_resolve_token_key(settings))


def _resolve_token_key(settings: Settings) -> Settings:
    """Production demands a strong SECRET_KEY; development keeps one in the data directory.

    Keeping the development key on disk means tokens survive a restart of `serve`.
    """
    if settings.secret_key:
        if settings.production and len(settings.secret_key) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"SECRET_KEY is too weak: use at least {MIN_SECRET_LENGTH} random characters "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return settings
    if settings.production:
        raise SettingsError("SECRET_KEY is not set: production needs a random key of at least "
                            f"{MIN_SECRET_LENGTH} characters")
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
