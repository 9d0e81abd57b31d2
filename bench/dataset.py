"""The benchmark's dataset: generated in Python, bulk-loaded with COPY into a migrated database."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from auth.passwords import hash_password
from datasources.postgres.migrations import migrate
from gateway.demo import catalog_rows

PASSWORD = "bench-password"
COUNTRIES = ("US", "DE", "FR", "GB", "JP", "CA", "SE", "IT")
UNIT_PRICES = (69900, 19900, 2900, 39900, 0)
# One license per demo product: (kind, seat model, days to expiry (None: perpetual), subscription)
LICENSES = (
    ("SUBSCRIPTION", "NAMED", 200, ("YEAR", "ACTIVE")),
    ("PERPETUAL", "FLOATING", None, None),
    ("SUBSCRIPTION", "NAMED", 20, ("MONTH", "ACTIVE")),
    ("SUBSCRIPTION", "NAMED", -10, ("YEAR", "EXPIRED")),
    ("TRIAL", "NAMED", 14, None),
)


@dataclass(frozen=True)
class Sizes:
    organizations: int  # normal tenants
    members_per_org: int
    big_organizations: int  # the big-tenant case
    big_members: int
    usage_per_org: int = 12

    @property
    def accounts(self) -> int:
        return self.organizations * self.members_per_org + self.big_organizations * self.big_members


QUICK = Sizes(organizations=200, members_per_org=30, big_organizations=2, big_members=5_000)
FULL = Sizes(organizations=2_000, members_per_org=30, big_organizations=4, big_members=5_000)


@dataclass(frozen=True)
class Tenant:
    """An organization the benchmark signs in to, as one of its ADMINs."""
    label: str  # "normal" or "large"
    organization_id: uuid.UUID
    admin_id: uuid.UUID
    admin_email: str
    members: int


@dataclass
class Loaded:
    tenants: dict[str, Tenant]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class _Ids:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def __call__(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)


COLUMNS = {
    "organizations": ("id", "name", "created_at"),
    "accounts": ("id", "email", "name", "country", "password_hash", "created_at"),
    "memberships": ("account_id", "organization_id", "role", "joined_at"),
    "invitations": ("id", "organization_id", "email", "role", "token_hash", "invited_by", "created_at",
                    "expires_at"),
    "subscriptions": ("id", "organization_id", "product_id", "plan_interval", "seats", "status", "auto_renew",
                      "current_period_start", "current_period_end", "unit_price", "currency"),
    "licenses": ("id", "organization_id", "product_id", "subscription_id", "kind", "seat_model", "quantity",
                 "expires_at"),
    "allocations": ("license_id", "account_id", "allocated_at", "allocated_by"),
    "credit_grants": ("id", "organization_id", "amount", "source", "granted_at", "expires_at"),
    "credit_usage": ("id", "organization_id", "account_id", "amount", "description", "used_at"),
    "credit_access": ("account_id", "organization_id", "mode", "quota"),
    "credit_requests": ("id", "organization_id", "account_id", "amount", "note", "created_at"),
}


def _organizations(sizes: Sizes) -> Iterator[tuple[str, int, int]]:
    """(domain label, number of members, index) of every organization, the big ones first."""
    for k in range(sizes.big_organizations):
        yield f"big{k}", sizes.big_members, k
    for i in range(sizes.organizations):
        yield f"org{i:05d}", sizes.members_per_org, i


def generate(sizes: Sizes, password_hash: str, product_ids: list[uuid.UUID]) -> tuple[dict[str, list[tuple]], dict[str, Tenant]]:
    new_id = _Ids(20260101)
    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    rows: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
    tenants: dict[str, Tenant] = {}
    for domain, n, index in _organizations(sizes):
        org_id = new_id()
        big = domain.startswith("big")
        rows["organizations"].append((org_id, f"Bench {domain.capitalize()}", now - timedelta(days=400)))
        accounts = []
        for j in range(n):
            account_id = new_id()
            accounts.append(account_id)
            email = f"user{j:05d}@{domain}.bench.example"
            rows["accounts"].append((account_id, email, f"Bench User {domain} {j}", COUNTRIES[(index + j) % 8],
                                     password_hash, now - timedelta(days=400)))
            role = "OWNER" if j == 0 else "ADMIN" if j in (1, 2) else "MEMBER"
            rows["memberships"].append((account_id, org_id, role, now - timedelta(days=365 - j % 300,
                                                                                   minutes=j)))
        admin = accounts[1]
        if big and "large" not in tenants:
            tenants["large"] = Tenant("large", org_id, admin, f"user00001@{domain}.bench.example", n)
        if not big and "normal" not in tenants:
            tenants["normal"] = Tenant("normal", org_id, admin, f"user00001@{domain}.bench.example", n)
        rows["invitations"].append((new_id(), org_id, f"invitee@{domain}.bench.example", "MEMBER",
                                    os.urandom(32), admin, now - timedelta(days=1), now + timedelta(days=6)))
        licenses = []
        for k, (kind, seat_model, days, subscription) in enumerate(LICENSES):
            product_id = product_ids[k]
            expires = None if days is None else now + timedelta(days=days)
            subscription_id = None
            if subscription:
                interval, status = subscription
                subscription_id = new_id()
                period = timedelta(days=30 if interval == "MONTH" else 365)
                rows["subscriptions"].append((subscription_id, org_id, product_id, interval, n + 5, status,
                                              status == "ACTIVE", expires - period, expires, UNIT_PRICES[k], "USD"))
            license_id = new_id()
            licenses.append(license_id)
            rows["licenses"].append((license_id, org_id, product_id, subscription_id, kind, seat_model, n + 5,
                                     expires))
        allocated_at = now - timedelta(days=60)
        for j, account_id in enumerate(accounts):
            for k, license_id in enumerate(licenses):
                if (j + k) % 5:  # four of the five licenses per member
                    rows["allocations"].append((license_id, account_id, allocated_at, admin))
        rows["credit_grants"] += [
            (new_id(), org_id, 10_000, "PURCHASE", now - timedelta(days=90), now + timedelta(days=275)),
            (new_id(), org_id, 2_000, "PROMOTION", now - timedelta(days=30), now + timedelta(days=30)),
        ]
        usage = sizes.usage_per_org * (20 if big else 1)
        for u in range(usage):
            rows["credit_usage"].append((new_id(), org_id, accounts[3 + u % min(n - 3, 8)], 50 + rng.randrange(400),
                                         f"Cloud render job #{u}", now - timedelta(days=u % 28, hours=u % 24)))
        rows["credit_access"] += [(accounts[3], org_id, "QUOTA", 500), (accounts[4], org_id, "DISABLED", None)]
        rows["credit_requests"].append((new_id(), org_id, accounts[3], 1_000, "Final renders.",
                                        now - timedelta(days=2)))
    return rows, tenants


async def create(conn: asyncpg.Connection, sizes: Sizes) -> Loaded:
    """Migrates the (empty) database `conn` is on and loads the dataset; returns the tenants to use."""
    started = time.monotonic()
    await migrate(conn)
    catalog = catalog_rows()
    for table, table_rows in catalog.items():
        columns = list(table_rows[0])
        await conn.copy_records_to_table(table, records=[tuple(r[c] for c in columns) for r in table_rows],
                                         columns=columns)
    product_ids = [p["id"] for p in catalog["products"]]
    rows, tenants = generate(sizes, hash_password(PASSWORD), product_ids)  # hashed once: a benchmark
    counts = {}
    for table, columns in COLUMNS.items():
        await conn.copy_records_to_table(table, records=rows[table], columns=list(columns))
        counts[table] = len(rows[table])
    del rows
    # Every page all-visible, as autovacuum leaves old rows: the planner costs index-only scans
    # by it. Right after the load, VACUUM freezes the pages but sets none all-visible (VERBOSE:
    # "frozen: 660 pages ... visibility map: 0 pages set all-visible"); a second pass sets them.
    await conn.execute("VACUUM (FREEZE, ANALYZE)")
    await conn.execute("VACUUM")
    return Loaded(tenants, counts, time.monotonic() - started)
