"""Bulk loading of prepared rows (the demo data, later the benchmark's), via COPY."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

import asyncpg

from datasources.postgres.database import Database, Executor

# Loaded in this order so that foreign keys always point at rows already there.
TABLES = (
    "organizations", "accounts", "memberships", "invitations", "products", "downloads",
    "learning_resources", "subscriptions", "licenses", "allocations", "credit_grants",
    "credit_usage", "credit_access", "credit_requests",
)


async def load_tables(conn: asyncpg.Connection, rows_by_table: Mapping[str, Sequence[Mapping[str, object]]]) -> None:
    """COPY each table's rows; all rows of one table must have the same keys."""
    unknown = set(rows_by_table) - set(TABLES)
    if unknown:
        raise ValueError(f"not a seedable table: {sorted(unknown)}")
    for table in TABLES:
        rows = rows_by_table.get(table)
        if not rows:
            continue
        columns = list(rows[0])
        await conn.copy_records_to_table(
            table, columns=columns, records=[tuple(row[c] for c in columns) for row in rows])


async def set_payment_customer(db: Executor, organization_id: UUID, customer_id: str) -> None:
    await db.execute("UPDATE organizations SET payment_customer_id = $2 WHERE id = $1",
                     organization_id, customer_id)


_SEED_LOCK_ID = 0x7365_6564  # "seed"


async def load_if_empty(db: Database, rows: Callable[[], Mapping[str, Sequence[Mapping[str, object]]]]) -> bool:
    """Loads `rows()` in one transaction when no organization exists yet; True if it did.

    The lock makes two processes starting on an empty database seed it once.
    """
    async with db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEED_LOCK_ID)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM organizations)"):
            return False
        await load_tables(conn, rows())
        return True


async def payment_customers(db: Executor, organization_ids: Sequence[UUID]) -> dict[UUID, str | None]:
    rows = await db.fetch("SELECT id, payment_customer_id FROM organizations WHERE id = ANY($1::uuid[])",
                          list(organization_ids))
    return {r["id"]: r["payment_customer_id"] for r in rows}
