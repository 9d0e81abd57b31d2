"""Refresh tokens: the statements of `login` and of a rotation, on the caller's transaction.

A token's chain is its session: every token rotated from one sign-in names the session that
sign-in opened. A token is usable while it is unused, unexpired and its session is live, so
ending the session (logout, reuse of a token, support ending an account's sessions) ends the
chain at once, however many tokens it holds.

A token traded in moments ago (within the reuse grace) may be presented again by the client
that traded it, which lost the answer or sent two requests at once: `lock_successor` finds the
token it was traded for, so that the same one is handed out again while it is still unused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from datasources.postgres.database import Executor


@dataclass(frozen=True)
class PresentedToken:
    id: UUID
    session_id: UUID
    account_id: UUID
    used: bool  # traded in before: presenting it again is reuse
    usable: bool  # unused, unexpired, and its session live (by the database's clock)
    just_used: bool  # traded in less than the grace seconds ago


@dataclass(frozen=True)
class Successor:
    """The token a presented one was traded for."""

    id: UUID
    expires_at: datetime
    usable: bool  # unused, unexpired, and its session live


async def insert_refresh_token(db: Executor, *, session_id: UUID, token_hash: bytes, expires_at: datetime,
                               parent_id: UUID | None = None) -> UUID:
    token_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, expires_at) VALUES ($1, $2, $3, $4, $5)",
        token_id, session_id, token_hash, parent_id, expires_at,
    )
    return token_id


# Whether a token row (r) of a session (s) can be traded in now.
_USABLE = "(r.used_at IS NULL AND r.expires_at > now() AND s.revoked_at IS NULL AND s.expires_at > now())"


async def lock_presented(db: Executor, token_hash: bytes, grace_seconds: float) -> PresentedToken | None:
    """The token with this hash, locked until the transaction ends.

    A second transaction presenting the same token waits here for the first to commit, then
    reads the token as the first left it (used): exactly one of them can trade it in. The
    grace is measured by the clock now, not at the start of a transaction that may have
    waited for the lock.
    """
    row = await db.fetchrow(
        f"""SELECT r.id, r.session_id, s.account_id, r.used_at IS NOT NULL AS used, {_USABLE} AS usable,
                   COALESCE(clock_timestamp() - r.used_at < make_interval(secs => $2), false) AS just_used
            FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
            WHERE r.token_hash = $1
            FOR UPDATE OF r""",
        token_hash, float(grace_seconds),
    )
    return PresentedToken(**row) if row else None


async def lock_successor(db: Executor, parent_id: UUID, token_hash: bytes) -> Successor | None:
    """The token `parent_id` was traded for, if its hash is `token_hash`; locked like the parent."""
    row = await db.fetchrow(
        f"""SELECT r.id, r.expires_at, {_USABLE} AS usable
            FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
            WHERE r.token_hash = $1 AND r.parent_id = $2
            FOR UPDATE OF r""",
        token_hash, parent_id,
    )
    return Successor(**row) if row else None


async def mark_used(db: Executor, token_id: UUID) -> None:
    await db.execute("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", token_id)
