"""Staff: their roles, the viewer's session with its role, the cross-organization search, and
the statements of the staff mutations (each takes the transaction's connection)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from datasources.paging import Page, Slice
from datasources.postgres.accounts import Account, Membership, Organization, account_columns, account_from
from datasources.postgres.database import Executor
from datasources.postgres.entitlements import License
from datasources.postgres.organizations import _like
from datasources.postgres.paging import fetch_page
from datasources.postgres.seat_changes import _LICENSE_COLUMNS


@dataclass(frozen=True)
class SessionStanding:
    """A live session, the staff role its account holds now (None for customers), and the
    account with its membership and organization as they are now (None where there is none)."""

    session_id: UUID
    account_id: UUID
    staff_role: str | None
    expires_at: datetime
    account: Account | None
    membership: Membership | None
    organization: Organization | None


# `sessions.active_session` with the account's staff role, in the same one statement: a revoked
# role counts from the next request, and no request pays a second statement for it. The account,
# its membership and organization come with it: nearly every request reads them next, and would
# otherwise spend a round of its own on them. A query (`$1`: the session id) so that it can also
# travel inside a request's first merged statement (gateway/http.py, `MergingReader.ride_along`).
SESSION_CHECK = f"""SELECT s.id AS session_id, s.account_id, r.role AS staff_role, s.expires_at,
                  {account_columns("a", "found_")},
                  m.organization_id, m.role::text AS member_role, m.joined_at,
                  o.name AS organization_name, o.payment_customer_id
           FROM sessions s
           LEFT JOIN staff_roles r ON r.account_id = s.account_id AND r.revoked_at IS NULL
           LEFT JOIN accounts a ON a.id = s.account_id
           LEFT JOIN memberships m ON m.account_id = s.account_id
           LEFT JOIN organizations o ON o.id = m.organization_id
           WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"""


async def live_session(db: Executor, session_id: UUID) -> SessionStanding | None:
    return standing_from(await db.fetchrow(SESSION_CHECK, session_id))


def standing_from(row: Any) -> SessionStanding | None:
    """SESSION_CHECK's row (None: no live session) as a SessionStanding."""
    if row is None:
        return None
    account = account_from(row, "found_") if row["found_id"] is not None else None
    member = row["organization_id"] is not None
    return SessionStanding(
        row["session_id"], row["account_id"], row["staff_role"], row["expires_at"], account,
        Membership(row["account_id"], row["organization_id"], row["member_role"], row["joined_at"]) if member else None,
        Organization(row["organization_id"], row["organization_name"], row["payment_customer_id"]) if member else None)


# --- roles (the CLI) ----------------------------------------------------------------------------

async def account_id_by_email(db: Executor, email: str) -> UUID | None:
    return await db.fetchval("SELECT id FROM accounts WHERE email = $1", email.strip().lower())


async def grant_role(conn: asyncpg.Connection, account_id: UUID, role: str) -> str | None:
    """Gives the account `role`, replacing the role it had (returned; None if it had none)."""
    previous = await conn.fetchval(
        "UPDATE staff_roles SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL"
        " RETURNING role", account_id)
    await conn.execute("INSERT INTO staff_roles (account_id, role) VALUES ($1, $2)", account_id, role)
    return previous


@dataclass(frozen=True)
class StaffMember:
    email: str
    name: str
    role: str
    granted_at: datetime


async def list_staff(db: Executor) -> list[StaffMember]:
    """Every account holding a live staff role, by email."""
    rows = await db.fetch(
        "SELECT a.email, a.name, r.role, r.granted_at FROM staff_roles r JOIN accounts a ON a.id = r.account_id"
        " WHERE r.revoked_at IS NULL ORDER BY a.email")
    return [StaffMember(**row) for row in rows]


async def revoke_role(db: Executor, account_id: UUID) -> str | None:
    """The role revoked; None when the account held none."""
    return await db.fetchval(
        "UPDATE staff_roles SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL"
        " RETURNING role", account_id)


# --- search -------------------------------------------------------------------------------------

def account_key(account: Account) -> tuple[object, ...]:
    return (account.email, account.id)


async def search_accounts(db: Executor, search: str | None, slice: Slice) -> Page[Account]:
    """By email; `search` matches part of an email or name, or a customer number exactly."""
    return await fetch_page(
        db, matching=f"""SELECT {account_columns()} FROM accounts
                        WHERE $1::text IS NULL OR email ILIKE $1 OR name ILIKE $1 OR customer_number = upper($2)""",
        args=[_like(search) if search else None, search or ""], key_columns=["email", "id"],
        key_types=["text", "uuid"], descending=False, slice=slice,
        row=account_from,
        sort_key=account_key)


def organization_key(organization: Organization) -> tuple[object, ...]:
    return (organization.name, organization.id)


async def search_organizations(db: Executor, search: str | None, slice: Slice) -> Page[Organization]:
    """By name; `search` matches part of the name, or a member's email or exact customer number."""
    return await fetch_page(
        db, matching="""SELECT o.id, o.name, o.payment_customer_id FROM organizations o
                        WHERE $1::text IS NULL OR o.name ILIKE $1 OR EXISTS (
                            SELECT 1 FROM memberships m JOIN accounts a ON a.id = m.account_id
                            WHERE m.organization_id = o.id AND (a.email ILIKE $1 OR a.customer_number = upper($2)))""",
        args=[_like(search) if search else None, search or ""], key_columns=["name", "id"],
        key_types=["text", "uuid"], descending=False, slice=slice,
        row=lambda r: Organization(r["id"], r["name"], r["payment_customer_id"]), sort_key=organization_key)


# --- what staff change --------------------------------------------------------------------------

@dataclass(frozen=True)
class LockedAccount:
    id: UUID
    email: str
    name: str
    organization_id: UUID | None


async def lock_account(conn: asyncpg.Connection, account_id: UUID) -> LockedAccount | None:
    row = await conn.fetchrow(
        "SELECT a.id, a.email, a.name, m.organization_id FROM accounts a"
        " LEFT JOIN memberships m ON m.account_id = a.id WHERE a.id = $1 FOR UPDATE OF a", account_id)
    return LockedAccount(**row) if row else None


async def set_email(conn: asyncpg.Connection, account_id: UUID, email: str) -> bool:
    """False when another account already has the email (the unique index decides, also
    between two concurrent changes)."""
    try:
        async with conn.transaction():  # a savepoint: the caller's transaction survives a refusal
            await conn.execute("UPDATE accounts SET email = $2 WHERE id = $1", account_id, email)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def insert_grant(conn: asyncpg.Connection, *, organization_id: UUID, amount: int, source: str,
                       expires_at: datetime | None) -> UUID:
    grant_id = uuid.uuid4()
    await conn.execute("INSERT INTO credit_grants (id, organization_id, amount, source, expires_at)"
                       " VALUES ($1, $2, $3, $4, $5)", grant_id, organization_id, amount, source, expires_at)
    return grant_id


async def set_license_expiry(conn: asyncpg.Connection, license_id: UUID, expires_at: datetime) -> License:
    row = await conn.fetchrow(f"UPDATE licenses SET expires_at = $2 WHERE id = $1 RETURNING {_LICENSE_COLUMNS}",
                              license_id, expires_at)
    return License(**row)


async def set_license_quantity(conn: asyncpg.Connection, license_id: UUID, quantity: int) -> License:
    row = await conn.fetchrow(f"UPDATE licenses SET quantity = $2 WHERE id = $1 RETURNING {_LICENSE_COLUMNS}",
                              license_id, quantity)
    return License(**row)
