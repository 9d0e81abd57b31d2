"""The event log (migration 0010): written in the caller's transaction, read past a cursor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from datasources.postgres.database import Executor

# Held from an event's insert to its transaction's end, so ids become visible in order (see the
# migration). Any constant will do; it must differ from the other advisory locks' (migrations).
EVENT_LOG_LOCK = 0x6576_656E  # "even"
CHANNEL = "account_gateway_events"

_COLUMNS = "id, type, organization_id, account_id, actor_account_id, data, occurred_at"


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    organization_id: UUID | None
    account_id: UUID | None
    actor_account_id: UUID | None
    data: dict[str, Any]
    occurred_at: datetime


def _event(row: Any) -> Event:
    return Event(**{**dict(row), "data": json.loads(row["data"])})


async def emit(conn: Executor, *, type: str, organization_id: UUID | None = None, account_id: UUID | None = None,
               actor_account_id: UUID | None = None, data: dict[str, Any] | None = None,
               dedupe_key: str | None = None) -> Event | None:
    """Inside the transaction of the change. None when `dedupe_key` was already used (the
    event was reported before)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", EVENT_LOG_LOCK)
    row = await conn.fetchrow(
        f"INSERT INTO event_log (type, organization_id, account_id, actor_account_id, data, dedupe_key)"
        f" VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (dedupe_key) DO NOTHING RETURNING {_COLUMNS}",
        type, organization_id, account_id, actor_account_id, json.dumps(data or {}, default=str), dedupe_key)
    return _event(row) if row else None


async def after(db: Executor, last_id: int, limit: int = 500) -> list[Event]:
    """Every event past `last_id`, oldest first (for the per-process fan-out)."""
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM event_log WHERE id > $1 ORDER BY id LIMIT $2", last_id, limit)
    return [_event(r) for r in rows]


async def last_id(db: Executor) -> int:
    return await db.fetchval("SELECT coalesce(max(id), 0) FROM event_log")


async def for_organization(db: Executor, organization_id: UUID, last_id: int, types: list[str] | None,
                           limit: int = 500) -> list[Event]:
    """An organization's events past a cursor (a resumed subscription's backlog)."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM event_log WHERE organization_id = $1 AND id > $2"
        f" AND ($3::text[] IS NULL OR type = ANY($3)) ORDER BY id LIMIT $4",
        organization_id, last_id, types, limit)
    return [_event(r) for r in rows]


async def for_account(db: Executor, account_id: UUID, last_id: int, types: list[str], limit: int = 500) -> list[Event]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM event_log WHERE account_id = $1 AND id > $2 AND type = ANY($3)"
        f" ORDER BY id LIMIT $4",
        account_id, last_id, types, limit)
    return [_event(r) for r in rows]


async def oldest_kept(db: Executor) -> int:
    """The smallest id still in the log (0 when empty): a cursor older than it lost events."""
    return await db.fetchval("SELECT coalesce(min(id), 0) FROM event_log")


async def prune(db: Executor, keep_days: float) -> int:
    """Drops events older than the window; returns how many."""
    status = await db.execute("DELETE FROM event_log WHERE occurred_at < now() - make_interval(secs => $1)",
                              keep_days * 86400.0)
    return int(status.split()[-1])
