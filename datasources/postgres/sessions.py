"""Sessions: the server-side half of a bearer token, so a token can be revoked early."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from datasources.postgres.database import Executor


@dataclass(frozen=True)
class Session:
    id: UUID
    account_id: UUID
    expires_at: datetime


async def create_session(db: Executor, session_id: UUID, account_id: UUID, expires_at: datetime) -> None:
    await db.execute(
        "INSERT INTO sessions (id, account_id, expires_at) VALUES ($1, $2, $3)",
        session_id, account_id, expires_at,
    )


async def active_session(db: Executor, session_id: UUID) -> Session | None:
    row = await db.fetchrow(
        "SELECT id, account_id, expires_at FROM sessions"
        " WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()",
        session_id,
    )
    return Session(**row) if row else None


async def extend_session(db: Executor, session_id: UUID, expires_at: datetime) -> bool:
    """Moves a live session's end to `expires_at`; False if it has ended (revoked or expired).

    The UPDATE waits for a concurrent revocation of the same row and then sees it, so a
    session revoked meanwhile is never brought back.
    """
    status = await db.execute(
        "UPDATE sessions SET expires_at = $2 WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()",
        session_id, expires_at,
    )
    return status == "UPDATE 1"


async def revoke_session(db: Executor, session_id: UUID) -> bool:
    """True when it was live until now (False: revoked before)."""
    status = await db.execute(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", session_id
    )
    return status == "UPDATE 1"


async def revoke_account_sessions(db: Executor, account_id: UUID) -> list[UUID]:
    """Ends every live session of the account; the ids of those it ended."""
    rows = await db.fetch(
        "UPDATE sessions SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL"
        " AND expires_at > now() RETURNING id",
        account_id,
    )
    return [r["id"] for r in rows]
