"""Who is asking: resolved once per request from the Authorization header."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from uuid import UUID

from auth import principals, tokens
from auth.principals import ServicePrincipal
from auth.tokens import TokenClaims
from datasources.errors import Unauthenticated
from datasources.postgres import service_tokens, staff
from datasources.postgres.database import Executor

# One message for every authentication failure, so nothing tells which part was wrong.
NOT_AUTHENTICATED = "Not authenticated: sign in and send 'Authorization: Bearer <token>'."


@dataclass(frozen=True)
class Viewer:
    account_id: UUID | None = None
    session_id: UUID | None = None
    # The vendor's own: a staff member's role (they sign in as accounts), or a service token,
    # which never has an account.
    staff_role: str | None = None
    service: ServicePrincipal | None = None
    # What the session check read of the account, for the request's loaders to start from.
    standing: staff.SessionStanding | None = field(default=None, compare=False, repr=False)

    @property
    def authenticated(self) -> bool:
        return self.account_id is not None


ANONYMOUS = Viewer()


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the Authorization header presents, read once per request (admission keys the
    budget on it before `authenticate` checks it in the database)."""

    token: str | None = None
    # A signed token's claims when it verifies: who it says it is, the session not yet checked.
    claims: TokenClaims | None = None


def credentials(secret: str, authorization: str | None) -> Credentials:
    token = bearer_token(authorization)
    if token is None or principals.is_service_token(token):
        return Credentials(token)
    return Credentials(token, tokens.decode(secret, token))


async def authenticate(db: Executor, presented: Credentials) -> Viewer:
    """A viewer for a valid token of a live session, or for a live service token; anonymous
    otherwise. Both are checked in the database on every request, so a revocation holds from
    the next request on."""
    token, claims = presented.token, presented.claims
    if token and principals.is_service_token(token):
        found = await service_tokens.live_token(db, principals.hash_service_token(token))
        if found is None:
            return ANONYMOUS
        return Viewer(service=ServicePrincipal(found.id, found.name, frozenset(found.scopes)))
    if claims is None:
        return ANONYMOUS
    return session_viewer(claims, await staff.live_session(db, claims.session_id))


def session_viewer(claims: TokenClaims, session: staff.SessionStanding | None) -> Viewer:
    """The viewer a token's claims make with what the session check found (None: no live session)."""
    if session is None or session.account_id != claims.account_id:
        return ANONYMOUS
    return Viewer(account_id=session.account_id, session_id=session.session_id, staff_role=session.staff_role,
                  standing=session)


class RecentSessions:
    """What each session's check found the last time, in this process: a guess to start a query
    with, never an answer. A query that starts from it runs the check in its own first statement
    and stands only if the check finds the same (gateway/http.py); so no change to a session,
    role or membership waits on this to be forgotten."""

    # About 1 KB each: 10,000 sessions active in one process in 10 MB.
    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._found: dict[UUID, staff.SessionStanding] = {}

    def guess(self, claims: TokenClaims) -> staff.SessionStanding | None:
        """None for a session not seen, past its expiry (no use running a query for it), or of
        another account than the token's."""
        found = self._found.get(claims.session_id)
        if found is None or found.account_id != claims.account_id:
            return None
        return found if found.expires_at > datetime.now(timezone.utc) else None

    def note(self, claims: TokenClaims, viewer: Viewer) -> None:
        """What a check found for the session (an anonymous viewer: no live session)."""
        self._found.pop(claims.session_id, None)  # re-inserted last: the dict's order is the age
        if viewer.standing is None:
            return
        if len(self._found) >= self._capacity:
            del self._found[next(iter(self._found))]  # the session noted longest ago
        self._found[claims.session_id] = viewer.standing


def require_account(viewer: Viewer) -> UUID:
    if viewer.account_id is None:
        raise Unauthenticated(NOT_AUTHENTICATED)
    return viewer.account_id
