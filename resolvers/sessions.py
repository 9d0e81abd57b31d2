"""Signing in and out, and keeping signed in with refresh tokens.

`login` opens a session and hands out a short-lived access token (a JWT naming the session)
and a refresh token. `refresh` trades a refresh token for a new pair within the same session:
each refresh token works once, and presenting a used one again ends the session, which ends
every token of its chain (see datasources/postgres/refresh_tokens.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from uuid import UUID

from auth import refresh_tokens, tokens
from auth.viewer import NOT_AUTHENTICATED
from datasources.errors import Unauthenticated
from datasources.postgres import accounts, sessions
from datasources.postgres import refresh_tokens as stored_refresh_tokens
from datasources.postgres.accounts import Account
from datasources.postgres.database import Executor
from resolvers.attempts import check_password, give_back_attempt, take_attempt
from resolvers.context import Context
from resolvers.user_errors import Problem
from resolvers.writes import require_change, require_own_change

MAX_EMAIL_LENGTH = 320
MAX_PASSWORD_LENGTH = 1024
# One message for every refused refresh token (unknown, expired, revoked, reused).
REFRESH_REFUSED = "The refresh token is not valid: sign in again."


@dataclass(frozen=True)
class LoginResult:
    token: str | None = None
    refresh_token: str | None = None
    account: Account | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class RefreshResult:
    token: str | None = None
    refresh_token: str | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Credentials:
    """A new access token and refresh token for one session, not yet stored."""

    token: str
    refresh_token: str
    refresh_hash: bytes
    refresh_expires_at: datetime
    # The session must outlive both: the access token for its requests, the refresh token for
    # the next rotation (and so that ending "all sessions" still finds it).
    session_expires_at: datetime


def _credentials(ctx: Context, session_id: UUID, account_id: UUID) -> _Credentials:
    token, claims = tokens.issue(ctx.config.secret_key, session_id=session_id, account_id=account_id,
                                 ttl_seconds=ctx.config.token_ttl_seconds)
    refresh, refresh_hash = refresh_tokens.new()
    refresh_expires_at = datetime.now(timezone.utc) + timedelta(seconds=ctx.config.refresh_token_ttl_seconds)
    return _Credentials(token, refresh, refresh_hash, refresh_expires_at,
                        max(claims.expires_at, refresh_expires_at))


async def login(ctx: Context, email: str, password: str) -> LoginResult:
    await require_change(ctx, "login")
    email = email.strip().lower()
    problems = _validate(email, password)
    if problems:
        return LoginResult(problems=problems)
    credentials = await accounts.credentials_by_email(ctx.db, email)
    # Checked even for an unknown email, so that both failures take the same time.
    valid = await check_password(ctx, email, credentials.password_hash if credentials else None, password)
    if credentials is None or not valid:
        raise Unauthenticated(NOT_AUTHENTICATED)
    async with ctx.db.transaction() as conn:
        token, refresh_token = await start_session(ctx, conn, credentials.account_id)
    account = await ctx.loaders.accounts.account.load(credentials.account_id)
    return LoginResult(token=token, refresh_token=refresh_token, account=account)


async def start_session(ctx: Context, conn: Executor, account_id: UUID) -> tuple[str, str]:
    """A new server-side session of the account: its bearer token and first refresh token.

    `conn` is the caller's transaction, so the session exists only if the change commits.
    """
    session_id = uuid.uuid4()
    issued = _credentials(ctx, session_id, account_id)
    await sessions.create_session(conn, session_id, account_id, issued.session_expires_at)
    await _store_refresh_token(conn, session_id, issued)
    return issued.token, issued.refresh_token


def _validate(email: str, password: str) -> list[Problem]:
    problems = []
    if not email or "@" not in email or len(email) > MAX_EMAIL_LENGTH:
        problems.append(Problem(("input", "email"), "Enter a valid email address.", "INVALID"))
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        problems.append(Problem(("input", "password"), "Enter your password.", "INVALID"))
    return problems


async def _store_refresh_token(db: Executor, session_id: UUID, issued: _Credentials,
                               parent_id: UUID | None = None) -> None:
    await stored_refresh_tokens.insert_refresh_token(db, session_id=session_id, token_hash=issued.refresh_hash,
                                                     expires_at=issued.refresh_expires_at, parent_id=parent_id)


async def refresh(ctx: Context, presented: str) -> RefreshResult:
    """A new access token and refresh token for the session of `presented`, which is used up.

    Refused (UNAUTHENTICATED, one message whatever the reason): an unknown token, an expired
    one, one whose session has ended, and a used one; a used one also ends its session, since
    either its owner or whoever copied it is replaying it, and there is no telling which.
    """
    await require_change(ctx, "refreshToken")
    if not presented:
        return RefreshResult(problems=[Problem(("input", "refreshToken"), "Send the refresh token.", "REQUIRED")])
    if len(presented) > refresh_tokens.MAX_TOKEN_LENGTH:
        return RefreshResult(problems=[Problem(("input", "refreshToken"), "This is not a refresh token.",
                                               "INVALID")])
    await take_attempt(ctx)
    # One transaction, the presented token locked first: of concurrent requests with one
    # token, exactly one trades it in; the others then find it used.
    async with ctx.db.transaction() as conn:
        found = await stored_refresh_tokens.lock_presented(conn, refresh_tokens.hash_token(presented))
        issued = await _rotate(ctx, conn, found) if found else None
    if issued is None:
        raise Unauthenticated(REFRESH_REFUSED)
    await give_back_attempt(ctx)
    return RefreshResult(token=issued.token, refresh_token=issued.refresh_token)


async def _rotate(ctx: Context, conn: Executor,
                  found: stored_refresh_tokens.PresentedToken) -> _Credentials | None:
    if found.used:
        # Committed although the request fails: ending the chain is the point of noticing reuse.
        await sessions.revoke_session(conn, found.session_id)
        return None
    if not found.usable:
        return None
    issued = _credentials(ctx, found.session_id, found.account_id)
    if not await sessions.extend_session(conn, found.session_id, issued.session_expires_at):
        return None  # the session ended while this request waited for it
    await stored_refresh_tokens.mark_used(conn, found.id)
    await _store_refresh_token(conn, found.session_id, issued, parent_id=found.id)
    return issued


async def logout(ctx: Context, *, all_sessions: bool = False) -> int:
    """Ends this token's session, or all of the account's; returns how many ended.

    Ending a session also ends its refresh tokens: they are usable only while it is live.
    """
    account_id = await require_own_change(ctx, "logout")
    if all_sessions:
        return await sessions.revoke_account_sessions(ctx.db, account_id)
    assert ctx.viewer.session_id is not None
    return int(await sessions.revoke_session(ctx.db, ctx.viewer.session_id))
