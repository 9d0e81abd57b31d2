"""Settings read once from the environment (and the CLI), then passed down explicitly."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.limits import LimitSettings

MIN_SECRET_LENGTH = 32
DEFAULT_HELP_CENTER_URL = "https://support.account-gateway.example/hc"
# The portal's named operations, registered as persisted operations at start.
DEFAULT_OPERATIONS_DIR = Path(__file__).resolve().parents[1] / "operations"


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
    smtp_url: str | None = None
    token_ttl_seconds: int = 8 * 3600
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
    # Seed the demo organizations into an empty database on start.
    seed_demo: bool = True
    redis_url: str | None = None
    limits: LimitSettings = field(default_factory=LimitSettings)
    # Persisted operations: the registered `*.graphql` files, and whether only they may run.
    operations_dir: Path = DEFAULT_OPERATIONS_DIR
    persisted_operations_only: bool = False

    @property
    def production(self) -> bool:
        return self.env == "production"

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
        smtp_url=env.get("SMTP_URL") or None,
        token_ttl_seconds=_int(env, "TOKEN_TTL_SECONDS", 8 * 3600),
        provider_timeout_seconds=_float(env, "PROVIDER_TIMEOUT_SECONDS", 10.0),
        provider_max_retries=_int(env, "PROVIDER_MAX_RETRIES", 2),
        provider_breaker_failures=_int(env, "PROVIDER_BREAKER_FAILURES", 5),
        provider_breaker_cooldown_seconds=_float(env, "PROVIDER_BREAKER_COOLDOWN_SECONDS", 10.0),
        db_pool_max_size=_int(env, "DB_POOL_MAX_SIZE", 10),
        db_acquire_timeout_seconds=_float(env, "DB_ACQUIRE_TIMEOUT_SECONDS", 5.0),
        db_connect_timeout_seconds=_float(env, "DB_CONNECT_TIMEOUT_SECONDS", 2.0),
        db_command_timeout_seconds=_float(env, "DB_COMMAND_TIMEOUT_SECONDS", 30.0) or None,
        help_center_url=env.get("HELP_CENTER_URL", DEFAULT_HELP_CENTER_URL),
        # Production databases start empty of demo organizations unless asked.
        seed_demo=env.get("SEED_DEMO", "0" if gateway_env == "production" else "1")
        not in ("0", "false", "no"),
        redis_url=env.get("REDIS_URL") or None,
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
    )
    return settings.with_(**overrides) if overrides else settings


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from None


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None


def resolve_secret_key(settings: Settings) -> Settings:
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
    path = settings.data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return settings.with_(secret_key=path.read_text().strip())
