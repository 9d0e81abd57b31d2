"""Reports for the vendor's dashboards, across every organization, each paged in SQL."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial
from typing import TypeVar
from uuid import UUID

import asyncpg

from datasources.paging import Page, Slice
from datasources.postgres.accounts import Organization
from datasources.postgres.database import Executor
from datasources.postgres.entitlements import License
from datasources.postgres.paging import fetch_page
from datasources.postgres.seat_changes import _LICENSE_COLUMNS

T = TypeVar("T")


def _record(cls: type[T], row: asyncpg.Record) -> T:
    """A row of a page (which also carries the total count) as the dataclass `cls`."""
    return cls(**{f.name: row[f.name] for f in fields(cls)})  # type: ignore[arg-type]


def license_expiry_key(license: License) -> tuple[object, ...]:
    return (license.expires_at, license.id)


async def licenses_expiring(db: Executor, within_days: int, slice: Slice) -> Page[License]:
    """Unexpired licenses that expire within the days given, soonest first."""
    return await fetch_page(
        db, matching=f"""SELECT {_LICENSE_COLUMNS} FROM licenses
                         WHERE expires_at > now() AND expires_at <= now() + make_interval(days => $1)""",
        args=[within_days], key_columns=["expires_at", "id"], key_types=["timestamptz", "uuid"],
        descending=False, slice=slice, row=partial(_record, License), sort_key=license_expiry_key)


async def billed_organizations(db: Executor, slice: Slice) -> Page[Organization]:
    """Organizations that are customers of the payment provider, by name."""
    return await fetch_page(
        db, matching="SELECT id, name, payment_customer_id FROM organizations WHERE payment_customer_id IS NOT NULL",
        args=[], key_columns=["name", "id"], key_types=["text", "uuid"], descending=False, slice=slice,
        row=lambda r: Organization(r["id"], r["name"], r["payment_customer_id"]),
        sort_key=lambda o: (o.name, o.id))


@dataclass(frozen=True)
class SeatUtilization:
    product_id: UUID
    product_name: str
    licenses: int
    quantity: int
    allocated: int


async def seat_utilization(db: Executor, slice: Slice) -> Page[SeatUtilization]:
    """Per product, over its unexpired NAMED licenses in every organization: seats sold and taken."""
    return await fetch_page(
        db, matching="""SELECT p.id AS product_id, p.name AS product_name, count(*)::int AS licenses,
                               sum(l.quantity)::int AS quantity,
                               sum((SELECT count(*) FROM allocations a WHERE a.license_id = l.id))::int AS allocated
                        FROM licenses l JOIN products p ON p.id = l.product_id
                        WHERE l.seat_model = 'NAMED' AND (l.expires_at IS NULL OR l.expires_at > now())
                        GROUP BY p.id, p.name""",
        args=[], key_columns=["product_name", "product_id"], key_types=["text", "uuid"], descending=False,
        slice=slice, row=partial(_record, SeatUtilization), sort_key=lambda u: (u.product_name, u.product_id))


@dataclass(frozen=True)
class CreditUsage:
    organization_id: UUID
    organization_name: str
    used: int
    uses: int


async def credit_usage(db: Executor, start: datetime, end: datetime, slice: Slice) -> Page[CreditUsage]:
    """Per organization that used credits in [start, end): how many, in how many uses; most used first."""
    return await fetch_page(
        db, matching="""SELECT o.id AS organization_id, o.name AS organization_name, sum(u.amount)::bigint AS used,
                               count(*)::int AS uses
                        FROM credit_usage u JOIN organizations o ON o.id = u.organization_id
                        WHERE u.used_at >= $1 AND u.used_at < $2
                        GROUP BY o.id, o.name""",
        args=[start, end], key_columns=["used", "organization_id"], key_types=["bigint", "uuid"], descending=True,
        slice=slice, row=partial(_record, CreditUsage), sort_key=lambda c: (c.used, c.organization_id))
