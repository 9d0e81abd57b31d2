"""Changes an account makes to itself: name, country, password."""

from __future__ import annotations

from uuid import UUID

from datasources.postgres.database import Executor


async def update_profile(db: Executor, account_id: UUID, *, name: str | None, country: str | None,
                         clear_country: bool) -> None:
    await db.execute(
        "UPDATE accounts SET name = coalesce($2, name),"
        " country = CASE WHEN $4 THEN NULL ELSE coalesce($3, country) END WHERE id = $1",
        account_id, name, country, clear_country)


async def password_hash(db: Executor, account_id: UUID) -> str | None:
    return await db.fetchval("SELECT password_hash FROM accounts WHERE id = $1", account_id)


async def replace_password_hash(db: Executor, account_id: UUID, checked: str | None, password_hash: str) -> bool:
    """Sets the hash only if it is still `checked` (the one the current password was verified
    against); False when another change came first."""
    status = await db.execute("UPDATE accounts SET password_hash = $3 WHERE id = $1"
                              " AND password_hash IS NOT DISTINCT FROM $2", account_id, checked, password_hash)
    return status.split()[-1] == "1"


async def revoke_other_sessions(db: Executor, account_id: UUID, keep_session_id: UUID | None) -> list[UUID]:
    """Ends every live session of the account but `keep_session_id`; the ids of those it ended."""
    rows = await db.fetch(
        "UPDATE sessions SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL"
        " AND expires_at > now() AND id IS DISTINCT FROM $2 RETURNING id", account_id, keep_session_id)
    return [r["id"] for r in rows]
