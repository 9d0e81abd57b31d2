"""The demo data: two organizations, so that tenant isolation can be shown.

Deterministic: ids are uuid5 of stable names and dates are whole days relative to the
day of seeding, so the same statuses (active, expiring, expired) hold whenever it runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from uuid import UUID, uuid5

from auth.passwords import hash_password

DEMO_PASSWORD = "demo-password"
_NS = UUID("6d1f3f6e-3c1a-4e0b-9a53-0d6f1f0b7a11")


def demo_id(*parts: str) -> UUID:
    return uuid5(_NS, ":".join(parts))


@dataclass(frozen=True)
class DemoOrg:
    key: str
    name: str
    domain: str
    currency: str
    country: str
    people: tuple[str, ...]  # owner, admin, then members, as full names


ORGS = (
    DemoOrg("northwind", "Northwind Studio", "northwind.example", "USD", "US",
            ("Nadia Owens", "Arjun Mehta", "Lena Fischer", "Tom Okafor", "Mia Rossi",
             "Kenji Sato", "Sofia Almeida", "Piotr Nowak")),
    DemoOrg("globex", "Globex Visuals", "globex.example", "EUR", "DE",
            ("Greta Hoffmann", "Marco Bianchi", "Ines Duarte", "Yusuf Demir", "Hanna Berg",
             "Luca Moretti", "Emma Laurent", "Jonas Weber")),
)

# sku, name, family, description
PRODUCTS = (
    ("LUMEN-RENDER", "Lumen Render", "Lumen", "Photoreal rendering for 3D scenes."),
    ("LUMEN-BATCH", "Lumen Render Batch", "Lumen", "Network rendering nodes for Lumen Render."),
    ("ATLAS-SCATTER", "Atlas Scatter", "Atlas", "Scatter millions of objects over any surface."),
    ("VAPOR-FX", "Vapor FX", "Vapor", "Fire, smoke and liquid simulation."),
    ("SCENE-VIEWER", "Scene Cloud Viewer", "Cloud", "Share interactive scenes in the browser."),
)

# Per organization: sku, kind, seat model, quantity, days to expiry (None: perpetual),
# how many members hold a seat, and the subscription it comes from (interval, status).
LICENSES = (
    ("LUMEN-RENDER", "SUBSCRIPTION", "NAMED", 10, 200, 4, ("YEAR", "ACTIVE")),      # free seats
    ("ATLAS-SCATTER", "SUBSCRIPTION", "NAMED", 3, 20, 3, ("MONTH", "ACTIVE")),      # full, expiring
    ("VAPOR-FX", "SUBSCRIPTION", "NAMED", 2, -40, 1, ("YEAR", "EXPIRED")),          # expired
    ("LUMEN-BATCH", "PERPETUAL", "FLOATING", 5, None, 0, None),                     # floating pool
    ("SCENE-VIEWER", "TRIAL", "NAMED", 2, 14, 1, None),                             # trial
)
UNIT_PRICES = {"LUMEN-RENDER": 69900, "ATLAS-SCATTER": 2900, "VAPOR-FX": 39900}
PLATFORMS = ("WINDOWS", "MACOS", "LINUX")
LEARNING = (
    ("VIDEO", "Getting started with {name}"),
    ("SAMPLE_PROJECT", "{name} sample scenes"),
    ("DOCS", "{name} documentation"),
    ("KNOWLEDGE_BASE", "{name} knowledge base"),
)


def emails(org: DemoOrg) -> list[str]:
    members = [f"member{i}@{org.domain}" for i in range(1, len(org.people) - 1)]
    return [f"owner@{org.domain}", f"admin@{org.domain}", *members]


def _at(day: date, days: int) -> datetime:
    return datetime.combine(day + timedelta(days=days), time(12), tzinfo=timezone.utc)


def catalog_rows() -> dict[str, list[dict[str, object]]]:
    products, downloads, learning = [], [], []
    for sku, name, family, description in PRODUCTS:
        product_id = demo_id("product", sku)
        products.append(dict(id=product_id, sku=sku, name=name, family=family, description=description))
        for major, released in ((7, date(2026, 3, 2)), (6, date(2025, 6, 16))):
            version = f"{major}.0.{len(sku) % 5}"
            for platform in PLATFORMS:
                slug = f"{sku.lower()}-{version}-{platform.lower()}"
                downloads.append(dict(
                    id=demo_id("download", slug), product_id=product_id, version=version,
                    platform=platform, url=f"https://downloads.example.com/{slug}.zip",
                    size_bytes=400_000_000 + 1_000_000 * len(slug) * major,
                    sha256=hashlib.sha256(slug.encode()).hexdigest(), released_on=released))
        for position, (kind, title) in enumerate(LEARNING):
            learning.append(dict(
                id=demo_id("learning", sku, kind), product_id=product_id, kind=kind,
                title=title.format(name=name), position=position,
                url=f"https://learn.example.com/{sku.lower()}/{kind.lower().replace('_', '-')}"))
    return {"products": products, "downloads": downloads, "learning_resources": learning}


def organization_rows(org: DemoOrg, today: date, password_hashes: list[str]) -> dict[str, list[dict[str, object]]]:
    org_id = demo_id("organization", org.key)
    rows: dict[str, list[dict[str, object]]] = {name: [] for name in (
        "organizations", "accounts", "memberships", "invitations", "subscriptions", "licenses",
        "allocations", "credit_grants", "credit_usage", "credit_access", "credit_requests")}
    rows["organizations"].append(dict(id=org_id, name=org.name))
    account_ids = []
    for i, (email, name) in enumerate(zip(emails(org), org.people)):
        account_id = demo_id("account", email)
        account_ids.append(account_id)
        rows["accounts"].append(dict(id=account_id, email=email, name=name, country=org.country,
                                     password_hash=password_hashes[i]))
        role = "OWNER" if i == 0 else "ADMIN" if i == 1 else "MEMBER"
        rows["memberships"].append(dict(account_id=account_id, organization_id=org_id, role=role))
    owner, admin, members = account_ids[0], account_ids[1], account_ids[2:]
    rows["invitations"].append(dict(
        id=demo_id("invitation", org.key), organization_id=org_id, email=f"invitee@{org.domain}",
        role="MEMBER", invited_by=admin, expires_at=_at(today, 5),
        # The demo token is never handed out; only its hash is stored, as for real ones.
        token_hash=hashlib.sha256(f"demo-invitation-{org.key}".encode()).digest()))

    for sku, kind, seat_model, quantity, days, holders, subscription in LICENSES:
        product_id = demo_id("product", sku)
        subscription_id = None
        if subscription:
            interval, status = subscription
            subscription_id = demo_id("subscription", org.key, sku)
            period = 30 if interval == "MONTH" else 365
            rows["subscriptions"].append(dict(
                id=subscription_id, organization_id=org_id, product_id=product_id,
                plan_interval=interval, seats=quantity, status=status, auto_renew=status == "ACTIVE",
                current_period_start=_at(today, days - period), current_period_end=_at(today, days),
                unit_price=UNIT_PRICES[sku], currency=org.currency))
        license_id = demo_id("license", org.key, sku)
        rows["licenses"].append(dict(
            id=license_id, organization_id=org_id, product_id=product_id, subscription_id=subscription_id,
            kind=kind, seat_model=seat_model, quantity=quantity,
            expires_at=None if days is None else _at(today, days)))
        for holder in ([owner, admin, *members][:holders]):
            rows["allocations"].append(dict(license_id=license_id, account_id=holder,
                                            allocated_at=_at(today, -60), allocated_by=admin))

    rows["credit_grants"] += [
        dict(id=demo_id("grant", org.key, "annual"), organization_id=org_id, amount=10_000,
             source="PURCHASE", granted_at=_at(today, -90), expires_at=_at(today, 275)),
        dict(id=demo_id("grant", org.key, "promo"), organization_id=org_id, amount=2_000,
             source="PROMOTION", granted_at=_at(today, -30), expires_at=_at(today, 30)),
    ]
    for n, member in enumerate(members[:4]):
        for week in range(3):
            rows["credit_usage"].append(dict(
                id=demo_id("usage", org.key, str(n), str(week)), organization_id=org_id, account_id=member,
                amount=150 + 75 * n + 10 * week, description=f"Cloud render job #{1000 + 10 * n + week}",
                used_at=_at(today, -7 * (week + 1))))
    rows["credit_access"] += [
        dict(account_id=members[2], organization_id=org_id, mode="QUOTA", quota=500),
        dict(account_id=members[5], organization_id=org_id, mode="DISABLED", quota=None),
    ]
    rows["credit_requests"].append(dict(
        id=demo_id("credit-request", org.key), organization_id=org_id, account_id=members[2],
        amount=1_000, note="Final renders for the client review.", created_at=_at(today, -2)))
    return rows


def demo_rows(today: date) -> dict[str, list[dict[str, object]]]:
    """Every table's rows for the whole demo; hashing the passwords is the slow part (~1 s)."""
    rows = catalog_rows()
    for org in ORGS:
        hashes = [hash_password(DEMO_PASSWORD) for _ in org.people]
        for table, more in organization_rows(org, today, hashes).items():
            rows.setdefault(table, []).extend(more)
    return rows
