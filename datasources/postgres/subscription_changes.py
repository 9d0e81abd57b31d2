"""Changing a subscription's auto-renew: the statements of one mutation's transaction."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from datasources.postgres.entitlements import Subscription

_COLUMNS = ("id, organization_id, product_id, plan_interval, seats, status, auto_renew, current_period_start,"
            " current_period_end, unit_price, currency")


async def lock_subscription(conn: asyncpg.Connection, subscription_id: UUID) -> Subscription | None:
    """The subscription as it is now, locked until the transaction ends."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM subscriptions WHERE id = $1 FOR UPDATE", subscription_id)
    return Subscription(**row) if row else None


async def set_auto_renew(conn: asyncpg.Connection, subscription_id: UUID, auto_renew: bool) -> None:
    await conn.execute("UPDATE subscriptions SET auto_renew = $2 WHERE id = $1", subscription_id, auto_renew)
