"""Writes to an organization's people: invitations, joining, leaving and roles.

Every function takes the connection of the caller's transaction. Rows a decision depends on
are locked (`FOR UPDATE` / `FOR NO KEY UPDATE`) so that concurrent mutations serialize on them.

Lock order, the same in every mutation so that none can deadlock another:
organization row, then invitation row, then account row, then membership row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg

from datasources.postgres.accounts import Membership
from datasources.postgres.organizations import Invitation

INVITATION_DAYS = 7

_INVITATION_COLUMNS = ("id, organization_id, email, role::text AS role, invited_by, created_at, expires_at,"
                       " accepted_at, revoked_at, name")


@dataclass(frozen=True)
class LockedOrganization:
    id: UUID
    name: str


@dataclass(frozen=True)
class EmailStanding:
    """What an email already is, as far as inviting it into one organization goes."""

    email: str
    account_id: UUID | None
    organization_id: UUID | None  # of the account's membership, if any
    pending_invitation_id: UUID | None  # an unexpired, unanswered invitation into this organization


@dataclass(frozen=True)
class AccountForJoin:
    id: UUID
    email: str
    password_hash: str | None
    organization_id: UUID | None


@dataclass(frozen=True)
class HeldSeat:
    license_id: UUID
    product_name: str
    kind: str  # SUBSCRIPTION, PERPETUAL, TRIAL, BETA, EDUCATIONAL


def _invitation(row: asyncpg.Record) -> Invitation:
    return Invitation(**{k: row[k] for k in Invitation.__dataclass_fields__})


async def lock_organization(conn: asyncpg.Connection, organization_id: UUID) -> LockedOrganization | None:
    """Serializes the mutations that decide on the organization's invitations.

    FOR NO KEY UPDATE rather than FOR UPDATE: it conflicts with itself (so two invites of one
    organization run one after the other) but not with the KEY SHARE locks that inserting rows
    referencing the organization takes (memberships, audit entries, allocations elsewhere), so
    it never blocks, or deadlocks with, those.
    """
    row = await conn.fetchrow("SELECT id, name FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
                              organization_id)
    return LockedOrganization(**row) if row else None


async def email_standings(conn: asyncpg.Connection, organization_id: UUID,
                          emails: Sequence[str]) -> dict[str, EmailStanding]:
    """One row per distinct email (lower-case), in one statement."""
    rows = await conn.fetch(
        """
        SELECT e.email, a.id AS account_id, m.organization_id,
               (SELECT i.id FROM invitations i
                WHERE i.organization_id = $1 AND i.email = e.email AND i.accepted_at IS NULL
                  AND i.revoked_at IS NULL AND i.expires_at > now()
                ORDER BY i.created_at DESC LIMIT 1) AS pending_invitation_id
        FROM unnest($2::text[]) AS e(email)
        LEFT JOIN accounts a ON a.email = e.email
        LEFT JOIN memberships m ON m.account_id = a.id
        """,
        organization_id, sorted(set(emails)))
    return {r["email"]: EmailStanding(**r) for r in rows}


async def create_invitation(conn: asyncpg.Connection, *, organization_id: UUID, email: str, role: str,
                            token_hash: bytes, invited_by: UUID, name: str = "") -> Invitation:
    row = await conn.fetchrow(
        f"""
        INSERT INTO invitations (id, organization_id, email, role, token_hash, invited_by, expires_at, name)
        VALUES ($1, $2, $3, $4::organization_role, $5, $6, now() + make_interval(days => {INVITATION_DAYS}), $7)
        RETURNING {_INVITATION_COLUMNS}
        """,
        uuid4(), organization_id, email, role, token_hash, invited_by, name)
    return _invitation(row)


async def invitation_for_update(conn: asyncpg.Connection, invitation_id: UUID) -> Invitation | None:
    row = await conn.fetchrow(f"SELECT {_INVITATION_COLUMNS} FROM invitations WHERE id = $1 FOR UPDATE",
                              invitation_id)
    return _invitation(row) if row else None


async def invitation_by_token_for_update(conn: asyncpg.Connection, token_hash: bytes) -> Invitation | None:
    """The invitation a token names, locked: concurrent accepts of it run one after the other."""
    row = await conn.fetchrow(f"SELECT {_INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1 FOR UPDATE",
                              token_hash)
    return _invitation(row) if row else None


async def renew_invitation(conn: asyncpg.Connection, invitation_id: UUID, token_hash: bytes) -> Invitation:
    """A new token (the old one stops working) and a new expiry, counted from now."""
    row = await conn.fetchrow(
        f"""
        UPDATE invitations SET token_hash = $2, expires_at = now() + make_interval(days => {INVITATION_DAYS})
        WHERE id = $1 RETURNING {_INVITATION_COLUMNS}
        """,
        invitation_id, token_hash)
    return _invitation(row)


async def revoke_invitation(conn: asyncpg.Connection, invitation_id: UUID) -> Invitation:
    row = await conn.fetchrow(
        f"UPDATE invitations SET revoked_at = now() WHERE id = $1 RETURNING {_INVITATION_COLUMNS}", invitation_id)
    return _invitation(row)


async def mark_accepted(conn: asyncpg.Connection, invitation_id: UUID) -> None:
    await conn.execute("UPDATE invitations SET accepted_at = now() WHERE id = $1", invitation_id)


async def account_for_join(conn: asyncpg.Connection, email: str) -> AccountForJoin | None:
    """The account with this email, locked against a concurrent join of another invitation.

    FOR NO KEY UPDATE: logins (which insert sessions referencing the account) are not blocked.
    The membership is read by a second statement on purpose: under READ COMMITTED it then sees
    what a join that held the lock before us committed, which a subquery of the locking
    statement (run on the snapshot taken before waiting) would not.
    """
    return await _for_join(conn, "email", email)


async def account_for_join_by_id(conn: asyncpg.Connection, account_id: UUID) -> AccountForJoin | None:
    """As `account_for_join`, by id."""
    return await _for_join(conn, "id", account_id)


async def _for_join(conn: asyncpg.Connection, column: str, value: object) -> AccountForJoin | None:
    row = await conn.fetchrow(f"SELECT id, email, password_hash FROM accounts WHERE {column} = $1 FOR NO KEY UPDATE",
                              value)
    if row is None:
        return None
    organization_id = await conn.fetchval("SELECT organization_id FROM memberships WHERE account_id = $1", row["id"])
    return AccountForJoin(**row, organization_id=organization_id)


async def create_account(conn: asyncpg.Connection, *, email: str, name: str,
                         password_hash: str | None) -> UUID | None:
    """The new account's id; None when an account with this email was created meanwhile. No
    password hash: the account signs in through its organization's provider only."""
    return await conn.fetchval(
        "INSERT INTO accounts (id, email, name, password_hash) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (email) DO NOTHING RETURNING id",
        uuid4(), email, name, password_hash)


async def set_password(conn: asyncpg.Connection, account_id: UUID, password_hash: str) -> None:
    await conn.execute("UPDATE accounts SET password_hash = $2 WHERE id = $1", account_id, password_hash)


async def add_membership(conn: asyncpg.Connection, *, account_id: UUID, organization_id: UUID, role: str) -> None:
    await conn.execute(
        "INSERT INTO memberships (account_id, organization_id, role) VALUES ($1, $2, $3::organization_role)",
        account_id, organization_id, role)


async def memberships_for_update(conn: asyncpg.Connection, account_ids: Sequence[UUID]) -> dict[UUID, Membership]:
    """The memberships of these accounts, locked in one statement in account order (two changes
    naming the same two people lock them alike, so neither waits on the other for good)."""
    rows = await conn.fetch(
        "SELECT account_id, organization_id, role::text AS role, joined_at FROM memberships"
        " WHERE account_id = ANY($1::uuid[]) ORDER BY account_id FOR UPDATE", list(account_ids))
    return {r["account_id"]: Membership(**r) for r in rows}


async def seats_held(conn: asyncpg.Connection, account_id: UUID, organization_id: UUID) -> list[HeldSeat]:
    """The seats the account holds of the organization's licenses, locked, by product name."""
    rows = await conn.fetch(
        """
        SELECT l.id AS license_id, p.name AS product_name, l.kind
        FROM allocations al JOIN licenses l ON l.id = al.license_id JOIN products p ON p.id = l.product_id
        WHERE al.account_id = $1 AND l.organization_id = $2
        ORDER BY p.name, l.id
        FOR UPDATE OF al
        """,
        account_id, organization_id)
    return [HeldSeat(**r) for r in rows]


async def revoke_seats(conn: asyncpg.Connection, account_id: UUID, license_ids: Sequence[UUID]) -> int:
    status = await conn.execute("DELETE FROM allocations WHERE account_id = $1 AND license_id = ANY($2::uuid[])",
                                account_id, list(license_ids))
    return int(status.split()[-1])


async def remove_membership(conn: asyncpg.Connection, account_id: UUID, organization_id: UUID) -> None:
    """The membership and the member's credit access there; their usage history stays."""
    await conn.execute("DELETE FROM credit_access WHERE account_id = $1 AND organization_id = $2",
                       account_id, organization_id)
    await conn.execute("DELETE FROM memberships WHERE account_id = $1 AND organization_id = $2",
                       account_id, organization_id)


async def set_role(conn: asyncpg.Connection, account_id: UUID, role: str) -> None:
    await conn.execute("UPDATE memberships SET role = $2::organization_role WHERE account_id = $1",
                       account_id, role)
