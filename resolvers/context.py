"""The one typed Context each request gets: viewer, loaders and datasources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from auth.viewer import Viewer
from loaders import Loaders

if TYPE_CHECKING:
    from datasources.identity.oidc import IdentityProviders
    from datasources.payments.client import PaymentsClient
    from datasources.postgres.database import Database
    from resolvers.event_hub import Hub


@dataclass(frozen=True)
class Config:
    """The settings resolvers act on; built by the gateway from its Settings."""

    secret_key: str
    token_ttl_seconds: int
    refresh_token_ttl_seconds: int
    # How long a traded-in refresh token still gets its successor again; 0: never.
    refresh_reuse_grace_seconds: int
    help_center_url: str
    portal_url: str  # no trailing slash
    # The gateway's own address as browsers reach it (the OpenID redirect URI); None: the request's.
    public_url: str | None = None
    # How far back a subscription may resume with `after` (the event log's window).
    event_retention_days: float = 7.0
    # Days a PAST_DUE subscription's licenses keep working (GRACE) before they are SUSPENDED.
    payment_grace_days: int = 14


class SignInThrottle(Protocol):
    """Slows down guessing of passwords and tokens (the gateway's Limiter): an attempt is taken
    before the check (RATE_LIMITED when the account's or the address's bucket is full) and given
    back when the check succeeds. resolvers/attempts.py is the one place that uses it."""

    async def take_attempt(self, account: str | None, address: str) -> None: ...
    async def give_back_attempt(self, account: str | None, address: str) -> None: ...


@dataclass(frozen=True)
class Context:
    viewer: Viewer
    loaders: Loaders
    db: "Database"
    payments: "PaymentsClient | None"
    config: Config
    request_id: str
    client_address: str = "unknown"
    sign_in_throttle: SignInThrottle | None = None
    # The process's fan-out of live events: set for subscriptions (over WebSocket) only.
    hub: "Hub | None" = None
    # Organizations' OpenID providers (corporate sign-in); None where a context needs none.
    identity: "IdentityProviders | None" = None
