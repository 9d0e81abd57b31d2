"""Refresh tokens: the statements of `login` and of a rotation, on the caller's transaction.

A token's chain is its session: every token rotated from one sign-in names the session that
sign-in opened. A token is usable while it is unused, unexpired and its session is live, so
ending the session (logout, reuse of a token, support ending an account's sessions) ends the
chain at once, however many tokens it holds.
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


async def insert_refresh_token(db: Executor, *, session_id: UUID, token_hash: bytes, expires_at: datetime,
                               parent_id: UUID | None = None) -> UUID:
    token_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, expires_at) VALUES ($1, $2, $3, $4, $5)",
        token_id, session_id, token_hash, parent_id, expires_at,
    )
    return token_id


async def lock_presented(db: Executor, token_hash: bytes) -> PresentedToken | None:
    """The token with this hash, locked until the transaction ends.

    A second transaction presenting the same token waits here for the first to commit, then
    reads the token as the first left it (used): exactly one of them can trade it in.
    """
    row = await db.fetchrow(
        """SELECT r.id, r.session_id, s.account_id, r.used_at IS NOT NULL AS used,
                  (r.used_at IS NULL AND r.expires_at > now()
                   AND s.revoked_at IS NULL AND s.expires_at > now()) AS usable
           FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
           WHERE r.token_hash = $1
           FOR UPDATE OF r""",
        token_hash,
    )
    return PresentedToken(**row) if row else None


async def mark_used(db: Executor, token_id: UUID) -> None:
    await db.execute("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", token_id)
