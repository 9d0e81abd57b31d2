"""Idempotency keys: the first result of a request is kept and replayed for its retries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Claim:
    """What a key holds: nothing yet (ours to fill), a stored response, or another request."""

    response: dict[str, Any] | None
    same_request: bool


async def claim(conn: asyncpg.Connection, scope: str, key: str, request_hash: bytes) -> Claim:
    """Inside the transaction doing the work. A concurrent request with the same key blocks on
    the row until this transaction ends, then sees its stored response (or, after a rollback,
    claims the key itself)."""
    await conn.execute(
        "INSERT INTO idempotency_records (scope, key, request_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT (scope, key) DO NOTHING", scope, key, request_hash)
    row = await conn.fetchrow(
        "SELECT request_hash, response::text AS response FROM idempotency_records"
        " WHERE scope = $1 AND key = $2 FOR UPDATE", scope, key)
    assert row is not None
    response = json.loads(row["response"]) if row["response"] is not None else None
    return Claim(response=response, same_request=bytes(row["request_hash"]) == request_hash)


async def complete(conn: asyncpg.Connection, scope: str, key: str, response: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE idempotency_records SET response = $3::jsonb, completed_at = now() WHERE scope = $1 AND key = $2",
        scope, key, json.dumps(response, default=str))
