"""Signing in and out, and keeping signed in with refresh tokens.

`login` opens a session and hands out a short-lived access token (a JWT naming the session)
and a refresh token. `refresh` trades a refresh token for a new pair within the same session:
each refresh token works once, and presenting a used one again ends the session, which ends
every token of its chain (see datasources/postgres/refresh_tokens.py) — unless it was traded
in moments ago (the reuse grace) and what it was traded for is still unused: then the client
raced itself or lost the answer, and gets the same successor again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from uuid import UUID

from auth import refresh_tokens, tokens
from datasources.postgres import accounts, sessions
from datasources.postgres import refresh_tokens as stored_refresh_tokens
from datasources.postgres.accounts import Account
from datasources.postgres.database import Executor
from resolvers.attempts import check_password, give_back_attempt, take_attempt
from resolvers.context import Context
from resolvers.events import publish
from resolvers.sign_in_policy import password_refusal
from resolvers.user_errors import Problem
from resolvers.writes import require_change, require_own_change

MAX_EMAIL_LENGTH = 320
MAX_PASSWORD_LENGTH = 1024
# One answer for a wrong password and an unknown email: it must not tell which accounts exist.
INVALID_CREDENTIALS = Problem((), "The email or password is not correct.", "INVALID_CREDENTIALS")
# One answer for every refused refresh token (unknown, expired, revoked, reused).
INVALID_REFRESH_TOKEN = Problem(("input", "refreshToken"), "The refresh token is not valid: sign in again.",
                                "INVALID_REFRESH_TOKEN")


@dataclass(frozen=True)
class SessionTokens:
    """What a client keeps to stay signed in, with when each part expires."""

    token: str
    expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime

    @property
    def session_expires_at(self) -> datetime:
        # The session must outlive both: the access token for its requests, the refresh token
        # for the next rotation (and so that ending "all sessions" still finds it).
        return max(self.expires_at, self.refresh_token_expires_at)


@dataclass(frozen=True)
class LoginResult:
    tokens: SessionTokens | None = None
    account: Account | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class RefreshResult:
    tokens: SessionTokens | None = None
    problems: list[Problem] = field(default_factory=list)


def _issue(ctx: Context, session_id: UUID, account_id: UUID, refresh_token: str,
           refresh_expires_at: datetime | None = None) -> SessionTokens:
    """A new access token for the session, with `refresh_token` (expiring after the configured
    lifetime, or at `refresh_expires_at` for one issued before)."""
    token, claims = tokens.issue(ctx.config.secret_key, session_id=session_id, account_id=account_id,
                                 ttl_seconds=ctx.config.token_ttl_seconds)
    if refresh_expires_at is None:
        refresh_expires_at = datetime.now(timezone.utc) + timedelta(seconds=ctx.config.refresh_token_ttl_seconds)
    return SessionTokens(token, claims.expires_at, refresh_token, refresh_expires_at)


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
        return LoginResult(problems=[INVALID_CREDENTIALS])
    # Told only with the right password: it names the organization's provider.
    refusal = await password_refusal(ctx, email, credentials.account_id)
    if refusal is not None:
        return LoginResult(problems=[refusal])
    async with ctx.db.transaction() as conn:
        issued = await start_session(ctx, conn, credentials.account_id)
    account = await ctx.loaders.accounts.account.load(credentials.account_id)
    return LoginResult(tokens=issued, account=account)


async def start_session(ctx: Context, conn: Executor, account_id: UUID) -> SessionTokens:
    """A new server-side session of the account: its bearer token and first refresh token.

    `conn` is the caller's transaction, so the session exists only if the change commits.
    """
    session_id = uuid.uuid4()
    refresh_token, refresh_hash = refresh_tokens.new()
    issued = _issue(ctx, session_id, account_id, refresh_token)
    await sessions.create_session(conn, session_id, account_id, issued.session_expires_at)
    await stored_refresh_tokens.insert_refresh_token(conn, session_id=session_id, token_hash=refresh_hash,
                                                     expires_at=issued.refresh_token_expires_at)
    return issued


def _validate(email: str, password: str) -> list[Problem]:
    problems = []
    if not email or "@" not in email or len(email) > MAX_EMAIL_LENGTH:
        problems.append(Problem(("input", "email"), "Enter a valid email address.", "INVALID"))
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        problems.append(Problem(("input", "password"), "Enter your password.", "INVALID"))
    return problems


async def refresh(ctx: Context, presented: str) -> RefreshResult:
    """A new access token and refresh token for the session of `presented`, which is used up.

    Refused (INVALID_REFRESH_TOKEN, one message whatever the reason): an unknown token, an
    expired one, one whose session has ended, and a used one; a used one also ends its
    session, since either its owner or whoever copied it is replaying it, and there is no
    telling which. Except within the reuse grace: see `_handed_out_again`.
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
        found = await stored_refresh_tokens.lock_presented(conn, refresh_tokens.hash_token(presented),
                                                           ctx.config.refresh_reuse_grace_seconds)
        issued = await _trade(ctx, conn, presented, found) if found else None
    if issued is None:
        return RefreshResult(problems=[INVALID_REFRESH_TOKEN])
    await give_back_attempt(ctx)
    return RefreshResult(tokens=issued)


async def _trade(ctx: Context, conn: Executor, presented: str,
                 found: stored_refresh_tokens.PresentedToken) -> SessionTokens | None:
    if found.used:
        again = await _handed_out_again(ctx, conn, presented, found) if found.just_used else None
        if again is None:
            # Committed although the request is refused: ending the chain is the point of noticing reuse.
            if await sessions.revoke_session(conn, found.session_id):
                await report_ended(conn, found.account_id, [found.session_id], "REFRESH_TOKEN_REUSED", actor=None)
        return again
    if not found.usable:
        return None
    successor, successor_hash = refresh_tokens.successor(ctx.config.secret_key, presented)
    issued = _issue(ctx, found.session_id, found.account_id, successor)
    if not await sessions.extend_session(conn, found.session_id, issued.session_expires_at):
        return None  # the session ended while this request waited for it
    await stored_refresh_tokens.mark_used(conn, found.id)
    await stored_refresh_tokens.insert_refresh_token(conn, session_id=found.session_id, token_hash=successor_hash,
                                                     expires_at=issued.refresh_token_expires_at, parent_id=found.id)
    return issued


async def _handed_out_again(ctx: Context, conn: Executor, presented: str,
                            found: stored_refresh_tokens.PresentedToken) -> SessionTokens | None:
    """For a token traded in within the reuse grace: the same successor again, with a new access
    token, as long as that successor is unused and its session live. None when the client has
    moved on (the successor was traded in too: this is an older token) or it cannot be found."""
    successor, successor_hash = refresh_tokens.successor(ctx.config.secret_key, presented)
    stored = await stored_refresh_tokens.lock_successor(conn, found.id, successor_hash)
    if stored is None or not stored.usable:
        return None
    issued = _issue(ctx, found.session_id, found.account_id, successor, stored.expires_at)
    if not await sessions.extend_session(conn, found.session_id, issued.session_expires_at):
        return None
    return issued


async def logout(ctx: Context, *, all_sessions: bool = False) -> int:
    """Ends this token's session, or all of the account's; returns how many ended.

    Ending a session also ends its refresh tokens: they are usable only while it is live.
    """
    account_id = await require_own_change(ctx, "logout")
    async with ctx.db.transaction() as conn:
        if all_sessions:
            ended = await sessions.revoke_account_sessions(conn, account_id)
        else:
            assert ctx.viewer.session_id is not None
            ended = [ctx.viewer.session_id] if await sessions.revoke_session(conn, ctx.viewer.session_id) else []
        await report_ended(conn, account_id, ended, "SIGNED_OUT_EVERYWHERE" if all_sessions else "SIGNED_OUT",
                           actor=account_id)
    return len(ended)


async def report_ended(conn: Executor, account_id: UUID, session_ids: list[UUID], reason: str, *,
                       actor: UUID | None) -> None:
    """SESSION_ENDED for each session ended by someone (not by expiry), for the account's own viewerEvents."""
    for session_id in session_ids:
        await publish(conn, "SESSION_ENDED", account_id=account_id, actor_account_id=actor,
                      data={"session_id": session_id, "reason": reason})
