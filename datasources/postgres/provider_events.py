"""The provider's webhook events, each recorded once, and the payment attempts they settle.

Recording and applying an event happen in one transaction (the caller's): the insert of
the event id decides whether this delivery is the first, so a redelivery, even one racing
the first, applies nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from datasources.postgres.database import Executor
from datasources.values import replaced


@dataclass(frozen=True)
class PendingAttempt:
    """An idempotency record of a payment attempt still marked pending on an invoice."""

    scope: str
    key: str
    response: dict[str, Any]


async def organization_of_customer(db: Executor, customer_id: str) -> UUID | None:
    return await db.fetchval("SELECT id FROM organizations WHERE payment_customer_id = $1", customer_id)


async def record(conn: asyncpg.Connection, *, event_id: str, event_type: str, object_id: str | None,
                 customer_id: str | None, organization_id: UUID | None, outcome: str, created_at: datetime,
                 payload: dict[str, Any]) -> bool:
    """True when this is the event's first delivery. A concurrent first delivery of the same id
    makes this wait until that transaction ends: False if it committed, True if it rolled back."""
    # PostgreSQL's jsonb refuses the NUL character and lone surrogates, which JSON text may still carry.
    document = json.dumps(replaced(payload))
    inserted = await conn.fetchval(
        "INSERT INTO provider_events (id, type, object_id, customer_id, organization_id, outcome, created_at,"
        " payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) ON CONFLICT (id) DO NOTHING RETURNING true",
        event_id, event_type, object_id, customer_id, organization_id, outcome, created_at, document)
    return bool(inserted)


async def pending_attempts(conn: asyncpg.Connection, invoice_id: str,
                           operations: Sequence[str]) -> list[PendingAttempt]:
    """The attempt records of these operations (a scope is `<operation>:<account>`) pending on
    the invoice, locked until the transaction ends: a retry settling the same attempt waits,
    then writes over what it finds."""
    rows = await conn.fetch(
        "SELECT scope, key, response::text AS response FROM idempotency_records"
        " WHERE response ? 'pending' AND (response -> 'pending') ? $1"
        " AND split_part(scope, ':', 1) = ANY($2::text[]) ORDER BY scope, key FOR UPDATE",
        invoice_id, list(operations))
    return [PendingAttempt(r["scope"], r["key"], json.loads(r["response"])) for r in rows]
