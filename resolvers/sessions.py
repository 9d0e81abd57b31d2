"""Signing in and out."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from auth import passwords, tokens
from auth.viewer import NOT_AUTHENTICATED, require_account
from datasources.errors import Unauthenticated
from datasources.postgres import accounts, sessions
from datasources.postgres.accounts import Account
from resolvers.context import Context
from resolvers.user_errors import Problem

MAX_EMAIL_LENGTH = 320
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True)
class LoginResult:
    token: str | None = None
    account: Account | None = None
    problems: list[Problem] = field(default_factory=list)


async def login(ctx: Context, email: str, password: str) -> LoginResult:
    email = email.strip().lower()
    problems = _validate(email, password)
    if problems:
        return LoginResult(problems=problems)
    throttle = ctx.sign_in_throttle
    if throttle:
        await throttle.check_sign_in(email, ctx.client_address)
    credentials = await accounts.credentials_by_email(ctx.db, email)
    # Verify even for an unknown email so that both failures take the same time; in a thread,
    # so that argon2's ~50 ms of CPU does not stall every other request.
    valid = await asyncio.to_thread(passwords.verify_password,
                                    credentials.password_hash if credentials else None, password)
    if credentials is None or not valid:
        if throttle:
            await throttle.sign_in_failed(email, ctx.client_address)
        raise Unauthenticated(NOT_AUTHENTICATED)
    session_id = uuid.uuid4()
    token, claims = tokens.issue(ctx.config.secret_key, session_id=session_id,
                                 account_id=credentials.account_id,
                                 ttl_seconds=ctx.config.token_ttl_seconds)
    await sessions.create_session(ctx.db, session_id, credentials.account_id, claims.expires_at)
    account = await ctx.loaders.accounts.account.load(credentials.account_id)
    return LoginResult(token=token, account=account)


def _validate(email: str, password: str) -> list[Problem]:
    problems = []
    if not email or "@" not in email or len(email) > MAX_EMAIL_LENGTH:
        problems.append(Problem(("input", "email"), "Enter a valid email address.", "INVALID"))
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        problems.append(Problem(("input", "password"), "Enter your password.", "INVALID"))
    return problems


async def logout(ctx: Context, *, all_sessions: bool = False) -> int:
    """Ends this token's session, or all of the account's; returns how many ended."""
    account_id = require_account(ctx.viewer)
    if all_sessions:
        return await sessions.revoke_account_sessions(ctx.db, account_id)
    assert ctx.viewer.session_id is not None
    return int(await sessions.revoke_session(ctx.db, ctx.viewer.session_id))
