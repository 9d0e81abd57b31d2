"""Ownership transfers: the statements of one transaction each, and the pending transfer read
in batches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from datasources.postgres.database import Executor, in_key_order

TRANSFER_DAYS = 7
_COLUMNS = "id, organization_id, from_account_id, to_account_id, created_at, expires_at, accepted_at, canceled_at"


@dataclass(frozen=True)
class Transfer:
    id: UUID
    organization_id: UUID
    from_account_id: UUID | None  # None once that account is deleted
    to_account_id: UUID
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    canceled_at: datetime | None


async def lock_roles(conn: asyncpg.Connection, organization_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, str]:
    """The roles in the organization of those of `account_ids` who are members, and of its OWNER,
    held until commit.

    The organization's row first: every change of owner queues there, so the roles are read
    after the change before has committed. Locking the member rows alone is not enough: a
    transaction that waited on the old OWNER's row would find it no longer OWNER, and would not
    see the new OWNER its snapshot took for an ADMIN."""
    await conn.execute("SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE", organization_id)
    rows = await conn.fetch(
        "SELECT account_id, role::text AS role FROM memberships WHERE organization_id = $1"
        " AND (account_id = ANY($2::uuid[]) OR role = 'OWNER') ORDER BY account_id FOR UPDATE",
        organization_id, list(account_ids))
    return {r["account_id"]: r["role"] for r in rows}


async def people(conn: asyncpg.Connection, account_ids: Sequence[UUID | None]) -> list[tuple[str, str]]:
    """(name, email) of each account, in order; ("", "") for none or one deleted. Read on the
    transaction's own connection: a second one from the pool could wait on the requests that
    hold the pool while they wait on this one."""
    rows = await conn.fetch("SELECT id, name, email FROM accounts WHERE id = ANY($1::uuid[])",
                            [a for a in account_ids if a])
    found = {r["id"]: (r["name"], r["email"]) for r in rows}
    return [found.get(a, ("", "")) if a else ("", "") for a in account_ids]


async def swap_owner(conn: asyncpg.Connection, organization_id: UUID, old_owner: UUID | None,
                     new_owner: UUID) -> None:
    """The old OWNER becomes an ADMIN first, then the new one OWNER: one OWNER at every step."""
    if old_owner is not None:
        await conn.execute("UPDATE memberships SET role = 'ADMIN' WHERE organization_id = $1 AND account_id = $2",
                           organization_id, old_owner)
    await conn.execute("UPDATE memberships SET role = 'OWNER' WHERE organization_id = $1 AND account_id = $2",
                       organization_id, new_owner)


async def cancel_pending(conn: asyncpg.Connection, organization_id: UUID) -> Transfer | None:
    row = await conn.fetchrow(
        f"UPDATE ownership_transfers SET canceled_at = now() WHERE organization_id = $1 AND accepted_at IS NULL"
        f" AND canceled_at IS NULL RETURNING {_COLUMNS}", organization_id)
    return Transfer(**row) if row else None


async def create(conn: asyncpg.Connection, organization_id: UUID, from_account_id: UUID, to_account_id: UUID,
                 token_hash: bytes) -> Transfer:
    row = await conn.fetchrow(
        f"""INSERT INTO ownership_transfers (id, organization_id, from_account_id, to_account_id, token_hash,
                                             expires_at)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(days => $6)) RETURNING {_COLUMNS}""",
        uuid.uuid4(), organization_id, from_account_id, to_account_id, token_hash, TRANSFER_DAYS)
    return Transfer(**row)


async def by_token_for_update(conn: asyncpg.Connection, token_hash: bytes) -> Transfer | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM ownership_transfers WHERE token_hash = $1 FOR UPDATE",
                              token_hash)
    return Transfer(**row) if row else None


async def mark_accepted(conn: asyncpg.Connection, transfer_id: UUID) -> None:
    await conn.execute("UPDATE ownership_transfers SET accepted_at = now() WHERE id = $1", transfer_id)


async def mark_canceled(conn: asyncpg.Connection, transfer_id: UUID) -> None:
    await conn.execute("UPDATE ownership_transfers SET canceled_at = now() WHERE id = $1", transfer_id)


async def pending_of_organizations(db: Executor, organization_ids: Sequence[UUID]) -> list[Transfer | None]:
    """Each organization's transfer waiting for its new owner (not yet expired), or None."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM ownership_transfers WHERE organization_id = ANY($1::uuid[])"
        " AND accepted_at IS NULL AND canceled_at IS NULL AND expires_at > now()", list(organization_ids))
    return in_key_order(organization_ids, {r["organization_id"]: Transfer(**r) for r in rows})
