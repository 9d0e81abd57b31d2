"""The mirror of the payment provider's answers (migration 0018): read, written back, dropped.

Bodies are JSON text: datasources/payments/stored.py turns records into it and back. Every
write-back is conditional on the generation its fetch started from (see the migration), so
nothing here needs a lock, and a drop always wins over an answer older than it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from datasources.postgres.database import Executor

KINDS = ("customer", "invoices", "payment_methods")


@dataclass(frozen=True, slots=True)
class Mirrored:
    """One row as a fetch needs it: `body` None when there is nothing to show (dropped, or never
    fetched: then `generation` is 0 and there is no row)."""

    customer_id: str
    kind: str
    generation: int
    body: str | None
    fetched_at: datetime | None = None


async def read(db: Executor, keys: Sequence[tuple[str, str]]) -> list[Mirrored]:
    """One entry per (customer id, kind) key, in key order."""
    rows = await db.fetch(
        "SELECT m.customer_id, m.kind, m.generation, m.body::text AS body FROM billing_mirror m"
        " JOIN unnest($1::text[], $2::text[]) AS k (customer_id, kind) USING (customer_id, kind)",
        [c for c, _ in keys], [k for _, k in keys])
    found = {(r["customer_id"], r["kind"]): r for r in rows}
    return [Mirrored(c, k, found[(c, k)]["generation"], found[(c, k)]["body"]) if (c, k) in found
            else Mirrored(c, k, 0, None) for c, k in keys]


async def write_back(db: Executor, customer_id: str, kind: str, generation: int, body: str) -> bool:
    """Keeps a fetched answer, unless the row was dropped since `generation` was read. True if kept."""
    kept = await db.fetchval(
        "INSERT INTO billing_mirror AS m (customer_id, kind, generation, body, fetched_at)"
        " VALUES ($1, $2, $3, $4::jsonb, now())"
        " ON CONFLICT (customer_id, kind) DO UPDATE SET body = EXCLUDED.body, fetched_at = EXCLUDED.fetched_at"
        " WHERE m.generation = EXCLUDED.generation RETURNING true",
        customer_id, kind, generation, body)
    return bool(kept)


async def drop(db: Executor, customer_ids: Sequence[str]) -> None:
    """Forgets what is kept of these customers (every kind) and makes any fetch already under
    way for them write nothing back: the next read asks the provider."""
    await db.execute(
        "INSERT INTO billing_mirror AS m (customer_id, kind, generation)"
        " SELECT c, k, 1 FROM unnest($1::text[]) AS c, unnest($2::text[]) AS k"
        " ON CONFLICT (customer_id, kind) DO UPDATE SET generation = m.generation + 1, body = NULL,"
        " fetched_at = NULL",
        sorted(set(customer_ids)), list(KINDS))


async def due(db: Executor, older_than: datetime, limit: int) -> list[Mirrored]:
    """Rows to fetch again: dropped ones first, then those fetched before `older_than`, oldest first."""
    rows = await db.fetch(
        "SELECT customer_id, kind, generation, fetched_at FROM billing_mirror"
        " WHERE fetched_at IS NULL OR fetched_at < $1 ORDER BY fetched_at NULLS FIRST, customer_id, kind"
        " LIMIT $2", older_than, limit)
    return [Mirrored(r["customer_id"], r["kind"], r["generation"], None, r["fetched_at"]) for r in rows]
