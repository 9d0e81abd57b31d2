"""Service tokens: created, listed and revoked by the CLI, looked up on every request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from datasources.errors import BadUserInput
from datasources.postgres.database import Executor

# `last_used_at` is written at most this often per token, so a busy dashboard does not
# rewrite its token's row on every request.
LAST_USED_PRECISION_SECONDS = 60


@dataclass(frozen=True)
class ServiceToken:
    id: UUID
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


_COLUMNS = "id, name, scopes, created_at, revoked_at, last_used_at"


def _token(row: asyncpg.Record) -> ServiceToken:
    return ServiceToken(**{**dict(row), "scopes": tuple(row["scopes"])})


async def create(db: Executor, *, name: str, scopes: tuple[str, ...], token_hash: bytes) -> ServiceToken:
    try:
        row = await db.fetchrow(
            f"INSERT INTO service_tokens (id, name, scopes, token_hash) VALUES ($1, $2, $3, $4)"
            f" RETURNING {_COLUMNS}", uuid.uuid4(), name, list(scopes), token_hash)
    except asyncpg.UniqueViolationError:
        raise BadUserInput("A live service token already has this name; revoke it or pick another name.") from None
    except asyncpg.CheckViolationError:
        raise BadUserInput("A service token name has 1 to 63 characters: lower-case letters, digits, '.', '_' "
                           "and '-', starting with a letter or digit.") from None
    return _token(row)


async def list_tokens(db: Executor) -> list[ServiceToken]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM service_tokens ORDER BY revoked_at NULLS FIRST, name, created_at")
    return [_token(r) for r in rows]


async def revoke(db: Executor, name_or_id: str) -> ServiceToken | None:
    """The live token of that name (or id), now revoked; None when there is none."""
    try:
        by_id: UUID | None = UUID(name_or_id)
    except ValueError:
        by_id = None
    row = await db.fetchrow(
        f"UPDATE service_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND (name = $1 OR id = $2)"
        f" RETURNING {_COLUMNS}", name_or_id, by_id)
    return _token(row) if row else None


async def live_token(db: Executor, token_hash: bytes) -> ServiceToken | None:
    """The unrevoked token with this hash, noting its use, in one statement."""
    row = await live_row(db, "service_tokens", _COLUMNS, token_hash)
    return _token(row) if row else None


async def live_row(db: Executor, table: str, columns: str, token_hash: bytes) -> asyncpg.Record | None:
    """`columns` of the unrevoked row of a table of hashed tokens (service_tokens, scim_tokens)
    with this hash, its `last_used_at` noted at most every LAST_USED_PRECISION_SECONDS."""
    return await db.fetchrow(
        f"""WITH found AS (SELECT {columns} FROM {table} WHERE token_hash = $1 AND revoked_at IS NULL),
                 touched AS (UPDATE {table} SET last_used_at = now()
                             WHERE id IN (SELECT id FROM found WHERE last_used_at IS NULL
                                          OR last_used_at < now() - make_interval(secs => $2)))
            SELECT * FROM found""", token_hash, LAST_USED_PRECISION_SECONDS)
