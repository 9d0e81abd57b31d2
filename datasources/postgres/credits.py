"""Cloud credits: grants, usage, per-member access and credit requests, read in batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from datasources.paging import Page, Slice
from datasources.postgres.database import Executor, in_key_order
from datasources.postgres.paging import fetch_page

T = TypeVar("T")


@dataclass(frozen=True)
class Grant:
    id: UUID
    organization_id: UUID
    amount: int
    source: str
    granted_at: datetime
    expires_at: datetime | None  # None: never expires


@dataclass(frozen=True)
class Usage:
    id: UUID
    organization_id: UUID
    account_id: UUID | None  # None once the account is deleted; the usage still counts
    amount: int
    description: str
    used_at: datetime


@dataclass(frozen=True)
class UsagePeriod:
    """An organization's usage between two consecutive moments at which its set of live grants
    changes (a grant granted or expiring): within one period every use could draw on the same
    grants, which is all the balance needs to know (see resolvers.credits.settle)."""

    organization_id: UUID
    since: datetime | None  # the grant boundary the period starts at; None: before any grant
    amount: int


@dataclass(frozen=True)
class Access:
    account_id: UUID
    organization_id: UUID
    mode: str  # DISABLED, UNLIMITED or QUOTA
    quota: int | None  # set exactly when mode is QUOTA


@dataclass(frozen=True)
class CreditRequest:
    id: UUID
    organization_id: UUID
    account_id: UUID
    amount: int
    note: str
    requested_at: datetime
    resolved_at: datetime | None  # None: pending
    outcome: str | None  # APPROVED or DECLINED once answered
    answer_note: str  # the answer's note for the requester; empty for none


@dataclass(frozen=True)
class Member:
    organization_id: UUID
    account_id: UUID


def _record(cls: type[T], row: asyncpg.Record) -> T:
    """Builds a dataclass from the row's columns of the same names (pages carry extra columns)."""
    return cls(**{f.name: row[f.name] for f in fields(cls)})  # type: ignore[arg-type]


async def _all(db: Executor, cls: type[T], query: str, keys: Sequence[Any]) -> list[T]:
    return [_record(cls, r) for r in await db.fetch(query, list(keys))]


async def _by_id(db: Executor, cls: type[T], query: str, ids: Sequence[UUID]) -> list[T | None]:
    rows = await _all(db, cls, query, ids)
    return in_key_order(ids, {r.id: r for r in rows})  # type: ignore[attr-defined]


# Listed in the order usage consumes them: soonest expiry first, never-expiring last.
_GRANTS = ("SELECT id, organization_id, amount, source, granted_at, expires_at FROM credit_grants"
           " WHERE {} = ANY($1::uuid[]) ORDER BY expires_at NULLS LAST, granted_at, id")
_USAGE = "SELECT id, organization_id, account_id, amount, description, used_at FROM credit_usage"
REQUEST_COLUMNS = ("id, organization_id, account_id, amount, note, created_at AS requested_at, resolved_at,"
                   " outcome, answer_note")
_REQUESTS = f"SELECT {REQUEST_COLUMNS} FROM credit_requests"


async def grants_of_organizations(db: Executor, organization_ids: Sequence[UUID]) -> list[Grant]:
    return await _all(db, Grant, _GRANTS.format("organization_id"), organization_ids)


async def grants_by_ids(db: Executor, ids: Sequence[UUID]) -> list[Grant | None]:
    return await _by_id(db, Grant, _GRANTS.format("id"), ids)


async def usage_periods_of_organizations(db: Executor, organization_ids: Sequence[UUID]) -> list[UsagePeriod]:
    """Usage summed per period, so the balance costs O(grants) rows however much usage there is.

    A use belongs to the period starting at the latest grant boundary (granted_at or
    expires_at of one of its organization's grants) at or before it.
    """
    return await _all(db, UsagePeriod, """
        SELECT u.organization_id, p.since, sum(u.amount)::bigint AS amount
        FROM credit_usage u
        LEFT JOIN LATERAL (
            SELECT max(b.at) AS since
            FROM credit_grants g CROSS JOIN LATERAL (VALUES (g.granted_at), (g.expires_at)) AS b (at)
            WHERE g.organization_id = u.organization_id AND b.at <= u.used_at) AS p ON true
        WHERE u.organization_id = ANY($1::uuid[])
        GROUP BY u.organization_id, p.since""", organization_ids)


async def pending_requests_of_organizations(db: Executor, organization_ids: Sequence[UUID]) -> list[CreditRequest]:
    """Oldest first: the order they should be answered in."""
    return await _all(db, CreditRequest, f"{_REQUESTS} WHERE organization_id = ANY($1::uuid[])"
                                         " AND resolved_at IS NULL ORDER BY created_at, id", organization_ids)


async def requests_by_ids(db: Executor, ids: Sequence[UUID]) -> list[CreditRequest | None]:
    return await _by_id(db, CreditRequest, f"{_REQUESTS} WHERE id = ANY($1::uuid[])", ids)


def request_key(request: CreditRequest) -> tuple[object, ...]:
    return (request.requested_at, request.id)


async def requests_page(db: Executor, account_id: UUID, organization_id: UUID,
                        slice: Slice) -> Page[CreditRequest]:
    """One account's requests in one organization, newest first."""
    return await fetch_page(
        db, matching=f"SELECT {REQUEST_COLUMNS}, created_at FROM credit_requests"
                     " WHERE account_id = $1 AND organization_id = $2",
        args=[account_id, organization_id], key_columns=["created_at", "id"], key_types=["timestamptz", "uuid"], descending=True,
        slice=slice, row=lambda r: _record(CreditRequest, r), sort_key=request_key)


async def usage_by_ids(db: Executor, ids: Sequence[UUID]) -> list[Usage | None]:
    return await _by_id(db, Usage, f"{_USAGE} WHERE id = ANY($1::uuid[])", ids)


def usage_key(usage: Usage) -> tuple[object, ...]:
    return (usage.used_at, usage.id)


async def usage_page(db: Executor, organization_id: UUID, slice: Slice) -> Page[Usage]:
    """Newest first."""
    return await fetch_page(
        db, matching=f"{_USAGE} WHERE organization_id = $1", args=[organization_id],
        key_columns=["used_at", "id"], key_types=["timestamptz", "uuid"], descending=True, slice=slice,
        row=lambda r: _record(Usage, r), sort_key=usage_key)


async def members_of_organizations(db: Executor, organization_ids: Sequence[UUID]) -> list[Member]:
    """Owner, admins, then members, each group by email."""
    return await _all(db, Member, """
        SELECT m.organization_id, m.account_id FROM memberships m JOIN accounts a ON a.id = m.account_id
        WHERE m.organization_id = ANY($1::uuid[]) ORDER BY m.role, a.email""", organization_ids)


@dataclass(frozen=True)
class PoolAlert:
    organization_id: UUID
    threshold: int | None  # the balance at or under which the managers are warned; None: no alert


async def pool_alerts_of_organizations(db: Executor, organization_ids: Sequence[UUID]) -> list[PoolAlert | None]:
    rows = await db.fetch("SELECT id AS organization_id, credit_low_threshold AS threshold FROM organizations"
                          " WHERE id = ANY($1::uuid[])", list(organization_ids))
    return in_key_order(organization_ids, {r["organization_id"]: PoolAlert(**r) for r in rows})
