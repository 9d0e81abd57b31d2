"""What PostgreSQL keeps for payments: a lock that serializes one customer's billing changes.

Idempotency records (`idempotency.py`) hold the results; the provider holds the payments.
"""

from __future__ import annotations

import asyncpg


async def lock_customer(conn: asyncpg.Connection, customer_id: str) -> None:
    """Until the caller's transaction ends, no other transaction (in any gateway process) gets
    past this line for the same provider customer: payments and payment-method changes of
    one organization run one at a time, so a check made under the lock (the invoice is still
    OPEN, this is not the last card) still holds when the provider is asked."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"billing-customer:{customer_id}")
