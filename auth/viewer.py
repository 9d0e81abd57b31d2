"""Who is asking: resolved once per request from the Authorization header."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from auth import tokens
from datasources.errors import Unauthenticated
from datasources.postgres import sessions
from datasources.postgres.database import Executor

# One message for every authentication failure, so nothing tells which part was wrong.
NOT_AUTHENTICATED = "Not authenticated: sign in and send 'Authorization: Bearer <token>'."


@dataclass(frozen=True)
class Viewer:
    account_id: UUID | None = None
    session_id: UUID | None = None

    @property
    def authenticated(self) -> bool:
        return self.account_id is not None


ANONYMOUS = Viewer()


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def authenticate(db: Executor, secret: str, authorization: str | None) -> Viewer:
    """A viewer for a valid token of a live session; anonymous otherwise."""
    token = bearer_token(authorization)
    claims = tokens.decode(secret, token) if token else None
    if claims is None:
        return ANONYMOUS
    session = await sessions.active_session(db, claims.session_id)
    if session is None or session.account_id != claims.account_id:
        return ANONYMOUS
    return Viewer(account_id=session.account_id, session_id=session.id)


def require_account(viewer: Viewer) -> UUID:
    if viewer.account_id is None:
        raise Unauthenticated(NOT_AUTHENTICATED)
    return viewer.account_id
