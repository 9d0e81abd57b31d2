"""Allocating and revoking license seats: the statements of one mutation's transaction.

Every function takes the transaction's connection. `lock_license` comes first: it holds the
license row until the transaction ends, so that counting seats and inserting allocations are
one step for every concurrent writer of the same license.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from datasources.postgres.database import Executor
from datasources.postgres.entitlements import Allocation, License

_LICENSE_COLUMNS = "id, organization_id, product_id, subscription_id, kind, seat_model, quantity, expires_at, grace_until"


async def lock_license(conn: asyncpg.Connection, license_id: UUID) -> License | None:
    """The license as it is now, locked against concurrent seat changes until commit."""
    row = await conn.fetchrow(f"SELECT {_LICENSE_COLUMNS} FROM licenses WHERE id = $1 FOR UPDATE", license_id)
    return License(**row) if row else None


async def members_among(conn: asyncpg.Connection, organization_id: UUID, account_ids: Sequence[UUID]) -> set[UUID]:
    """Which of the accounts are members of the organization; their memberships are held
    (FOR KEY SHARE) so that no one removes them before the seats are committed."""
    rows = await conn.fetch(
        "SELECT account_id FROM memberships WHERE organization_id = $1 AND account_id = ANY($2::uuid[])"
        " FOR KEY SHARE", organization_id, list(account_ids))
    return {r["account_id"] for r in rows}


async def holders_among(conn: asyncpg.Connection, license_id: UUID, account_ids: Sequence[UUID]) -> set[UUID]:
    rows = await conn.fetch("SELECT account_id FROM allocations WHERE license_id = $1"
                            " AND account_id = ANY($2::uuid[])", license_id, list(account_ids))
    return {r["account_id"] for r in rows}


async def allocated_count(conn: asyncpg.Connection, license_id: UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM allocations WHERE license_id = $1", license_id)


async def allocate(conn: asyncpg.Connection, license_id: UUID, account_ids: Sequence[UUID],
                   allocated_by: UUID) -> list[Allocation]:
    """Inserts one allocation per account, in the order given."""
    if not account_ids:
        return []
    rows = await conn.fetch(
        """INSERT INTO allocations (license_id, account_id, allocated_by)
           SELECT $1, a.account_id, $3 FROM unnest($2::uuid[]) WITH ORDINALITY AS a(account_id, n) ORDER BY a.n
           RETURNING license_id, account_id, allocated_at, allocated_by""",
        license_id, list(account_ids), allocated_by)
    by_account = {r["account_id"]: Allocation(**r) for r in rows}
    return [by_account[a] for a in account_ids]


async def revoke(conn: asyncpg.Connection, license_id: UUID, account_ids: Sequence[UUID]) -> set[UUID]:
    """Deletes the accounts' allocations of the license; returns whose were deleted."""
    rows = await conn.fetch("DELETE FROM allocations WHERE license_id = $1 AND account_id = ANY($2::uuid[])"
                            " RETURNING account_id", license_id, list(account_ids))
    return {r["account_id"] for r in rows}


async def seat_limit(conn: asyncpg.Connection, license: License) -> int:
    """How many seats may be allocated: the quantity, or fewer while a decrease of its
    subscription waits for the period's end (so the change never finds too many allocated)."""
    scheduled = await conn.fetchval("SELECT scheduled_seats FROM subscriptions WHERE id = $1",
                                    license.subscription_id) if license.subscription_id else None
    return min(license.quantity, scheduled) if scheduled else license.quantity


async def lock_licenses_of_subscription(conn: asyncpg.Connection, subscription_id: UUID) -> list[UUID]:
    """The subscription's own licenses (their quantity is its seats), locked as allocations lock them."""
    return [r["id"] for r in await conn.fetch(
        "SELECT id FROM licenses WHERE subscription_id = $1 AND kind = 'SUBSCRIPTION' ORDER BY id FOR UPDATE",
        subscription_id)]


async def allocated_of_subscription(db: Executor, subscription_id: UUID) -> int:
    """The most seats allocated of any of the subscription's licenses."""
    return await db.fetchval(
        "SELECT coalesce(max((SELECT count(*) FROM allocations a WHERE a.license_id = l.id)), 0)"
        " FROM licenses l WHERE l.subscription_id = $1 AND l.kind = 'SUBSCRIPTION'", subscription_id)
