"""Products (with downloads and learning resources), licenses, seats and subscriptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any
from uuid import UUID

from datasources.paging import Page, Slice
from datasources.postgres.database import Executor, in_key_order


@dataclass(frozen=True)
class Product:
    id: UUID
    sku: str
    name: str
    family: str
    description: str


@dataclass(frozen=True)
class Download:
    id: UUID
    product_id: UUID
    version: str
    platform: str
    url: str
    size_bytes: int
    sha256: str
    released_on: date


@dataclass(frozen=True)
class LearningResource:
    id: UUID
    product_id: UUID
    kind: str
    title: str
    url: str


@dataclass(frozen=True)
class License:
    id: UUID
    organization_id: UUID
    product_id: UUID
    subscription_id: UUID | None
    kind: str
    seat_model: str
    quantity: int
    expires_at: datetime | None
    grace_until: datetime | None = None  # a failed renewal's grace: GRACE until then, SUSPENDED after


@dataclass(frozen=True)
class Allocation:
    license_id: UUID
    account_id: UUID
    allocated_at: datetime
    allocated_by: UUID | None


@dataclass(frozen=True)
class Subscription:
    id: UUID
    organization_id: UUID
    product_id: UUID
    plan_interval: str
    seats: int
    status: str
    auto_renew: bool
    current_period_start: datetime
    current_period_end: datetime
    unit_price: int
    currency: str
    provider_subscription_id: str | None = None  # the provider's subscription this row follows
    scheduled_seats: int | None = None  # a decrease waiting for `scheduled_seats_at` (the period's end)
    scheduled_seats_at: datetime | None = None
    past_due_since: datetime | None = None  # when a renewal payment failed


@dataclass(frozen=True)
class SubscriptionQuery:
    """Filters and order of an organization's subscription list (hashable: a loader key)."""

    organization_id: UUID
    product_family: str | None = None
    statuses: tuple[str, ...] | None = None
    expires_after: datetime | None = None
    expires_before: datetime | None = None
    currency: str | None = None
    order_by: str = "EXPIRES_AT"  # or PRODUCT_NAME
    descending: bool = False


_PRODUCT = "SELECT id, sku, name, family, description FROM products"
_LICENSE = ("SELECT l.id, l.organization_id, l.product_id, l.subscription_id, l.kind, l.seat_model,"
            " l.quantity, l.expires_at, l.grace_until FROM licenses l")
# Every field of `Subscription`, in its order, of the table aliased `s`.
SUBSCRIPTION_COLUMNS = ("s.id, s.organization_id, s.product_id, s.plan_interval, s.seats, s.status, s.auto_renew,"
                        " s.current_period_start, s.current_period_end, s.unit_price, s.currency,"
                        " s.provider_subscription_id, s.scheduled_seats, s.scheduled_seats_at, s.past_due_since")
_SUBSCRIPTION = f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s"


async def products_by_ids(db: Executor, ids: Sequence[UUID]) -> list[Product | None]:
    rows = await db.fetch(f"{_PRODUCT} WHERE id = ANY($1::uuid[])", list(ids))
    return in_key_order(ids, {r["id"]: Product(**r) for r in rows})


async def catalog(db: Executor) -> list[Product]:
    return [Product(**r) for r in await db.fetch(f"{_PRODUCT} ORDER BY family, name")]


async def downloads_of_products(db: Executor, product_ids: Sequence[UUID]) -> list[Download]:
    rows = await db.fetch(
        "SELECT id, product_id, version, platform, url, size_bytes, sha256, released_on FROM downloads"
        " WHERE product_id = ANY($1::uuid[]) ORDER BY released_on DESC, platform", list(product_ids))
    return [Download(**r) for r in rows]


async def learning_of_products(db: Executor, product_ids: Sequence[UUID]) -> list[LearningResource]:
    rows = await db.fetch(
        "SELECT id, product_id, kind, title, url FROM learning_resources"
        " WHERE product_id = ANY($1::uuid[]) ORDER BY position, title", list(product_ids))
    return [LearningResource(**r) for r in rows]


async def downloads_by_ids(db: Executor, ids: Sequence[UUID]) -> list[Download | None]:
    rows = await db.fetch(
        "SELECT id, product_id, version, platform, url, size_bytes, sha256, released_on FROM downloads"
        " WHERE id = ANY($1::uuid[])", list(ids))
    return in_key_order(ids, {r["id"]: Download(**r) for r in rows})


async def learning_by_ids(db: Executor, ids: Sequence[UUID]) -> list[LearningResource | None]:
    rows = await db.fetch("SELECT id, product_id, kind, title, url FROM learning_resources"
                          " WHERE id = ANY($1::uuid[])", list(ids))
    return in_key_order(ids, {r["id"]: LearningResource(**r) for r in rows})


async def licenses_by_ids(db: Executor, ids: Sequence[UUID]) -> list[License | None]:
    rows = await db.fetch(f"{_LICENSE} WHERE l.id = ANY($1::uuid[])", list(ids))
    return in_key_order(ids, {r["id"]: License(**r) for r in rows})


async def licenses_held_by_accounts(db: Executor, account_ids: Sequence[UUID]) -> list[tuple[UUID, License]]:
    """(account id, license) for every seat the accounts hold."""
    rows = await db.fetch(
        f"""SELECT a.account_id AS holder, {_LICENSE.removeprefix('SELECT ')}
            JOIN allocations a ON a.license_id = l.id JOIN products p ON p.id = l.product_id
            WHERE a.account_id = ANY($1::uuid[]) ORDER BY p.name, l.id""", list(account_ids))
    return [(r["holder"], License(**{k: r[k] for k in r.keys() if k != "holder"})) for r in rows]


async def allocation_pages(db: Executor, license_ids: Sequence[UUID], slice: Slice, condition: str = "true",
                           parameters: Sequence[Any] = ()) -> list[Page[Allocation]]:
    """One page of allocations for each license, in one statement (oldest first), of those that
    pass `condition` (SQL over the allocation `a` and its license `l`, with `parameters` from $5),
    and their number."""
    key = slice.key(("timestamptz", "uuid"))
    op, order = (">", "ASC") if not slice.backward else ("<", "DESC")
    rows = await db.fetch(
        # The count is a lateral of its own: in the select list it would run once per row of
        # the page (505 counts of 4,000 rows for five full pages, 250 ms) instead of once a license.
        f"""SELECT wanted.id AS wanted, total.n AS total, page.*
            FROM unnest($1::uuid[]) AS wanted(id)
            JOIN licenses l ON l.id = wanted.id
            CROSS JOIN LATERAL (SELECT count(*) AS n FROM allocations a WHERE a.license_id = wanted.id
                                AND {condition}) AS total
            LEFT JOIN LATERAL (
                SELECT a.license_id, a.account_id, a.allocated_at, a.allocated_by FROM allocations a
                WHERE a.license_id = wanted.id AND {condition}
                  AND ($2::text IS NULL OR (a.allocated_at, a.account_id) {op} ($2::text::timestamptz, $3::text::uuid))
                ORDER BY a.allocated_at {order}, a.account_id {order} LIMIT $4) AS page ON true""",
        list(license_ids), None if key is None else key[0], None if key is None else key[1],
        slice.limit + 1, *parameters)
    found: dict[UUID, list[Allocation]] = {i: [] for i in license_ids}
    totals: dict[UUID, int] = {}
    for r in rows:
        totals[r["wanted"]] = r["total"]
        if r["account_id"] is not None:
            found[r["wanted"]].append(Allocation(r["license_id"], r["account_id"], r["allocated_at"], r["allocated_by"]))
    return [Page.of(found[i], slice, totals.get(i, 0), allocation_key) for i in license_ids]


def allocation_key(allocation: Allocation) -> tuple[object, ...]:
    return (allocation.allocated_at, allocation.account_id)


async def allocations_by_keys(db: Executor, keys: Sequence[tuple[UUID, UUID]]) -> list[Allocation | None]:
    rows = await db.fetch(
        """SELECT a.license_id, a.account_id, a.allocated_at, a.allocated_by
           FROM allocations a JOIN unnest($1::uuid[], $2::uuid[]) AS k(license_id, account_id)
             ON k.license_id = a.license_id AND k.account_id = a.account_id""",
        [k[0] for k in keys], [k[1] for k in keys])
    return in_key_order(keys, {(r["license_id"], r["account_id"]): Allocation(**r) for r in rows})


async def downloadable_products(db: Executor, account_ids: Sequence[UUID]) -> list[tuple[UUID, UUID]]:
    """(account id, product id) the account may download: it holds a seat of an unexpired, not
    suspended license of the product, or its organization has such a FLOATING license of it."""
    rows = await db.fetch(
        """SELECT DISTINCT x.account_id, l.product_id
           FROM unnest($1::uuid[]) AS x(account_id)
           JOIN memberships m ON m.account_id = x.account_id
           JOIN licenses l ON l.organization_id = m.organization_id
           WHERE (l.expires_at IS NULL OR l.expires_at > now())
             AND (l.grace_until IS NULL OR l.grace_until > now())
             AND (l.seat_model = 'FLOATING'
                  OR EXISTS (SELECT 1 FROM allocations a WHERE a.license_id = l.id AND a.account_id = x.account_id))""",
        list(account_ids))
    return [(r["account_id"], r["product_id"]) for r in rows]


async def subscriptions_by_ids(db: Executor, ids: Sequence[UUID]) -> list[Subscription | None]:
    rows = await db.fetch(f"{_SUBSCRIPTION} WHERE s.id = ANY($1::uuid[])", list(ids))
    return in_key_order(ids, {r["id"]: Subscription(**r) for r in rows})


_SUBSCRIPTION_FIELDS = tuple(f.name for f in fields(Subscription))
_SUBSCRIPTION_ORDER = {"EXPIRES_AT": "s.current_period_end", "PRODUCT_NAME": "p.name"}


async def subscriptions_matching(db: Executor, query: SubscriptionQuery) -> list[tuple[Subscription, Product]]:
    """The subscriptions with their products: the join is there for the filter and the order,
    and a screen listing subscriptions shows their products."""
    direction = "DESC" if query.descending else "ASC"
    rows = await db.fetch(
        f"""{_SUBSCRIPTION.replace(' FROM', ', p.sku, p.name, p.family, p.description FROM', 1)}
            JOIN products p ON p.id = s.product_id
            WHERE s.organization_id = $1
              AND ($2::text IS NULL OR p.family = $2)
              AND ($3::text[] IS NULL OR s.status = ANY($3::text[]))
              AND ($4::timestamptz IS NULL OR s.current_period_end >= $4)
              AND ($5::timestamptz IS NULL OR s.current_period_end < $5)
              AND ($6::text IS NULL OR s.currency = $6)
            ORDER BY {_SUBSCRIPTION_ORDER[query.order_by]} {direction}, s.id""",
        query.organization_id, query.product_family,
        list(query.statuses) if query.statuses is not None else None,
        query.expires_after, query.expires_before, query.currency)
    return [(Subscription(*(r[f] for f in _SUBSCRIPTION_FIELDS)),
             Product(r["product_id"], r["sku"], r["name"], r["family"], r["description"])) for r in rows]
