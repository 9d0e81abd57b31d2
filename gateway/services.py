"""What the app holds for its lifetime: the pool, the provider client and the schema."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from datasources.identity.oidc import IdentityProviders
from datasources.payments.client import PaymentsClient
from datasources.postgres.database import Database
from gateway.limits import Limiter
from gateway.persisted import OperationRegistry
from gateway.settings import Settings
from auth.viewer import ANONYMOUS, RecentSessions
from loaders import create_loaders
from resolvers.context import Config, Context
from schema import GatewaySchema


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    payments: PaymentsClient
    schema: GatewaySchema
    resolver_config: Config
    limiter: Limiter
    operations: OperationRegistry = field(default_factory=OperationRegistry)
    identity: IdentityProviders | None = None
    # What each session's check found last time: where a query starts (gateway/http.py).
    recent_sessions: RecentSessions = field(default_factory=RecentSessions)


def resolver_config(settings: Settings) -> Config:
    return Config(secret_key=settings.secret_key, token_ttl_seconds=settings.token_ttl_seconds,
                  refresh_token_ttl_seconds=settings.refresh_token_ttl_seconds,
                  refresh_reuse_grace_seconds=settings.refresh_reuse_grace_seconds,
                  help_center_url=settings.help_center_url, portal_url=settings.portal_url,
                  public_url=settings.public_url,
                  event_retention_days=settings.event_retention_days,
                  payment_grace_days=settings.payment_grace_days)


def request_context(services: Services, request: Request, request_id: str) -> Context:
    """The Context of a request that is not GraphQL's and names no account (a signed link, a
    SCIM token): what authorizes it was checked by its route."""
    return Context(viewer=ANONYMOUS, loaders=create_loaders(services.db, services.payments), db=services.db,
                   payments=services.payments, config=services.resolver_config, request_id=request_id,
                   client_address=request.client.host if request.client else "unknown")
