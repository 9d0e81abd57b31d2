"""Changing subscriptions: the statements of the transactions that write them.

A subscription that exists at the payment provider follows it: `follow` writes what the
provider holds (seats, status, auto-renew, period, price, a scheduled decrease) into the row and
into the row's SUBSCRIPTION licenses, so license, subscription and provider say the same.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from datasources.payments.records import ProviderSubscription
from datasources.postgres.database import Executor
from datasources.postgres.entitlements import SUBSCRIPTION_COLUMNS, Subscription


async def lock_subscription(conn: asyncpg.Connection, subscription_id: UUID) -> Subscription | None:
    """The subscription as it is now, locked until the transaction ends."""
    row = await conn.fetchrow(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.id = $1 FOR UPDATE",
                              subscription_id)
    return Subscription(**row) if row else None


async def by_provider_id(db: Executor, provider_subscription_id: str) -> Subscription | None:
    row = await db.fetchrow(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s"
                            " WHERE s.provider_subscription_id = $1", provider_subscription_id)
    return Subscription(**row) if row else None


async def running_without_provider(db: Executor) -> list[UUID]:
    """Rows still running that the provider does not hold yet (made before it held subscriptions),
    of organizations the provider bills (a customer there)."""
    return [r["id"] for r in await db.fetch(
        "SELECT s.id FROM subscriptions s JOIN organizations o ON o.id = s.organization_id"
        " WHERE s.provider_subscription_id IS NULL AND s.status NOT IN ('EXPIRED', 'CANCELED')"
        " AND s.current_period_end > now() AND o.payment_customer_id IS NOT NULL ORDER BY s.id")]


async def follow(conn: asyncpg.Connection, subscription_id: UUID, provider: ProviderSubscription, *,
                 event_created: datetime | None = None) -> tuple[Subscription, Subscription] | None:
    """Writes the provider's state into the row and its licenses; (before, after).

    None when the row is gone, or when `event_created` (a webhook's) is older than what the row
    already follows: the provider delivers events late and out of order. A subscription that
    ended lets its licenses expire at the end of what was paid, or now if that is earlier;
    leaving PAST_DUE ends its licenses' grace.
    """
    before = await lock_subscription(conn, subscription_id)
    if before is None:
        return None
    row = await conn.fetchrow(
        f"""UPDATE subscriptions s SET provider_subscription_id = $2, provider_price_id = $3, seats = $4,
                   status = $5, auto_renew = NOT $6, current_period_start = $7, current_period_end = $8,
                   unit_price = $9, currency = $10, plan_interval = $11, scheduled_seats = $12,
                   scheduled_seats_at = $13,
                   past_due_since = CASE WHEN $5 = 'PAST_DUE' THEN coalesce(s.past_due_since, now()) END,
                   provider_updated_at = greatest(s.provider_updated_at, $14)
            WHERE s.id = $1 AND ($14::timestamptz IS NULL OR s.provider_updated_at IS NULL
                                 OR s.provider_updated_at <= $14)
            RETURNING {SUBSCRIPTION_COLUMNS}""",
        subscription_id, provider.id, provider.price_id, provider.quantity, provider.status,
        provider.cancel_at_period_end, provider.current_period_start, provider.current_period_end,
        provider.unit_amount, provider.currency, provider.interval, provider.scheduled_quantity,
        provider.scheduled_at, event_created)
    if row is None:
        return None
    after = Subscription(**row)
    await conn.execute(
        """UPDATE licenses SET quantity = $2,
                  expires_at = CASE WHEN $3 = 'EXPIRED' THEN least($4, now()) ELSE $4 END,
                  grace_until = CASE WHEN $3 = 'PAST_DUE' THEN grace_until END
           WHERE subscription_id = $1 AND kind = 'SUBSCRIPTION'""",
        subscription_id, after.seats, after.status, after.current_period_end)
    return before, after


async def set_auto_renew(conn: asyncpg.Connection, subscription_id: UUID, auto_renew: bool) -> None:
    await conn.execute("UPDATE subscriptions SET auto_renew = $2 WHERE id = $1", subscription_id, auto_renew)


async def mark_past_due(conn: asyncpg.Connection, subscription_id: UUID, grace_until: datetime) -> list[UUID]:
    """A renewal payment failed: PAST_DUE, and its licenses' grace, which a later failure does not
    extend. The licenses whose grace starts now (none when it had started already)."""
    await conn.execute("UPDATE subscriptions SET status = 'PAST_DUE', past_due_since = coalesce(past_due_since, now())"
                       " WHERE id = $1", subscription_id)
    return [r["id"] for r in await conn.fetch(
        "UPDATE licenses SET grace_until = $2 WHERE subscription_id = $1 AND kind = 'SUBSCRIPTION'"
        " AND grace_until IS NULL RETURNING id", subscription_id, grace_until)]


async def past_due_of_organization(db: Executor, organization_id: UUID) -> list[Subscription]:
    rows = await db.fetch(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.organization_id = $1"
                          " AND s.status = 'PAST_DUE' AND s.provider_subscription_id IS NOT NULL", organization_id)
    return [Subscription(**r) for r in rows]


async def license_ids(db: Executor, subscription_id: UUID) -> list[UUID]:
    return [r["id"] for r in await db.fetch(
        "SELECT id FROM licenses WHERE subscription_id = $1 AND kind = 'SUBSCRIPTION' ORDER BY id", subscription_id)]
