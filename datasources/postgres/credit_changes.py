"""Changing credit access and requesting credits: the statements of one mutation's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from datasources.postgres.credits import REQUEST_COLUMNS, Access, CreditRequest


@dataclass(frozen=True)
class Recipient:
    """A member of an organization, with what a mail to them needs."""

    account_id: UUID
    email: str
    name: str
    role: str


async def organization_name(conn: asyncpg.Connection, organization_id: UUID) -> str:
    return await conn.fetchval("SELECT name FROM organizations WHERE id = $1", organization_id)


async def members_among(conn: asyncpg.Connection, organization_id: UUID,
                        account_ids: Sequence[UUID]) -> dict[UUID, Recipient]:
    """The accounts that are members of the organization, held (FOR KEY SHARE) until commit."""
    rows = await conn.fetch(
        """SELECT a.id AS account_id, a.email, a.name, m.role::text AS role
           FROM memberships m JOIN accounts a ON a.id = m.account_id
           WHERE m.organization_id = $1 AND m.account_id = ANY($2::uuid[]) FOR KEY SHARE OF m""",
        organization_id, list(account_ids))
    return {r["account_id"]: Recipient(**r) for r in rows}


async def managers_of(conn: asyncpg.Connection, organization_id: UUID) -> list[Recipient]:
    """The OWNER and ADMINs, owner first, then by email."""
    rows = await conn.fetch(
        """SELECT a.id AS account_id, a.email, a.name, m.role::text AS role
           FROM memberships m JOIN accounts a ON a.id = m.account_id
           WHERE m.organization_id = $1 AND m.role IN ('OWNER', 'ADMIN') ORDER BY m.role, a.email""",
        organization_id)
    return [Recipient(**r) for r in rows]


async def access_of(conn: asyncpg.Connection, account_ids: Sequence[UUID]) -> dict[UUID, Access]:
    """The stored access rows, locked for the update that follows (no row: the default)."""
    rows = await conn.fetch("SELECT account_id, organization_id, mode, quota FROM credit_access"
                            " WHERE account_id = ANY($1::uuid[]) FOR UPDATE", list(account_ids))
    return {r["account_id"]: Access(**r) for r in rows}


async def set_access(conn: asyncpg.Connection, organization_id: UUID, account_ids: Sequence[UUID],
                     mode: str, quota: int | None) -> None:
    await conn.execute(
        """INSERT INTO credit_access (account_id, organization_id, mode, quota)
           SELECT a, $1, $3, $4 FROM unnest($2::uuid[]) AS a
           ON CONFLICT (account_id) DO UPDATE
           SET organization_id = excluded.organization_id, mode = excluded.mode, quota = excluded.quota,
               updated_at = now()""",
        organization_id, list(account_ids), mode, quota)


async def insert_request(conn: asyncpg.Connection, organization_id: UUID, account_id: UUID, amount: int,
                         note: str) -> CreditRequest:
    row = await conn.fetchrow(
        """INSERT INTO credit_requests (id, organization_id, account_id, amount, note) VALUES ($1, $2, $3, $4, $5)
           RETURNING """ + REQUEST_COLUMNS, uuid.uuid4(), organization_id, account_id, amount, note)
    return CreditRequest(**row)


async def lock_request(conn: asyncpg.Connection, request_id: UUID) -> CreditRequest | None:
    """The request, held until commit: of two answers at once the second sees the first's."""
    row = await conn.fetchrow(f"SELECT {REQUEST_COLUMNS} FROM credit_requests WHERE id = $1 FOR UPDATE", request_id)
    return CreditRequest(**row) if row else None


async def answer_request(conn: asyncpg.Connection, request_id: UUID, outcome: str, note: str,
                         answered_by: UUID) -> CreditRequest:
    row = await conn.fetchrow(
        """UPDATE credit_requests SET outcome = $2, answer_note = $3, answered_by = $4, resolved_at = now()
           WHERE id = $1 AND resolved_at IS NULL RETURNING """ + REQUEST_COLUMNS,
        request_id, outcome, note, answered_by)
    assert row is not None, "the caller holds the request and saw it pending"
    return CreditRequest(**row)


async def set_low_threshold(conn: asyncpg.Connection, organization_id: UUID,
                            threshold: int | None) -> tuple[bool, int | None] | None:
    """Sets the pool's alert threshold (None: off): (whether it changed, the one before); None
    for an organization that does not exist. A change starts a new crossing, so a pool already
    under the new threshold is reported once for it (datasources/postgres/schedule.py)."""
    row = await conn.fetchrow("SELECT credit_low_threshold FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
                              organization_id)
    if row is None:
        return None
    before = row["credit_low_threshold"]
    if before == threshold:
        return (False, before)
    await conn.execute("UPDATE organizations SET credit_low_threshold = $2, credit_low_warned = false,"
                       " credit_low_crossing = credit_low_crossing + 1 WHERE id = $1", organization_id, threshold)
    return (True, before)
