"""What `serve`, `migrate` and `seed` do before the app runs: schema, demo data, provider side."""

from __future__ import annotations

import logging
from datetime import date

from datasources.payments.client import PaymentsClient
from datasources.payments.demo import DemoBillingOrg, ensure_demo_billing
from datasources.payments.records import Address
from datasources.postgres import seed
from datasources.postgres.database import Database
from datasources.postgres.migrations import Migration, migrate
from gateway import demo
from resolvers import subscription_sync

log = logging.getLogger("gateway.startup")

_ADDRESSES = {
    "northwind": Address(line1="500 Harbor Blvd", city="Seattle", postal_code="98101", state="WA", country="US"),
    "globex": Address(line1="Friedrichstraße 68", city="Berlin", postal_code="10117", country="DE"),
}
_VAT_IDS = {"northwind": None, "globex": "DE811907980"}


async def apply_migrations(db: Database) -> list[Migration]:
    async with db.connection() as conn:
        applied = await migrate(conn)
    for migration in applied:
        log.info("applied migration %04d_%s", migration.version, migration.name)
    return applied


async def seed_demo(db: Database, payments: PaymentsClient, *, today: date | None = None) -> bool:
    """Seeds an empty database, then makes sure each demo organization exists at the provider.

    The second step also runs on a seeded database: the local emulator's store may be gone
    (a new data directory for it, a deleted file), and the demo must still show billing.
    """
    seeded = await seed.load_if_empty(db, lambda: demo.demo_rows(today or date.today()))
    if seeded:
        log.info("seeded the demo organizations: %s", ", ".join(o.name for o in demo.ORGS))
    await ensure_demo_provider(db, payments)
    await subscription_sync.sync_all(db, payments)
    return seeded


async def ensure_demo_provider(db: Database, payments: PaymentsClient) -> None:
    org_ids = {demo.demo_id("organization", org.key): org for org in demo.ORGS}
    customers = await seed.payment_customers(db, list(org_ids))
    for org_id, customer_id in customers.items():
        if customer_id and await payments.get_customer(customer_id):
            continue
        org = org_ids[org_id]
        customer_id = await ensure_demo_billing(payments, DemoBillingOrg(
            key=org.key, name=org.name, billing_email=f"billing@{org.domain}", currency=org.currency,
            second_currency="EUR" if org.currency != "EUR" else "USD",
            address=_ADDRESSES[org.key], vat_id=_VAT_IDS[org.key]))
        await seed.set_payment_customer(db, org_id, customer_id)
        log.info("created the provider side of %s (%s)", org.name, customer_id)
