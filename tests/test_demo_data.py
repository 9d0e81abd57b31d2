"""The demo data and the migrations it stands on."""

from __future__ import annotations

from datetime import date

import asyncpg

from datasources.postgres.database import Database
from datasources.postgres.migrations import available, migrate
from gateway import demo, startup


async def test_migrations_are_recorded_and_rerunnable(db):
    versions = [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in available()]
    assert await migrate(db) == []


async def test_a_failing_migration_leaves_nothing_behind(db):
    # Each migration runs in its own transaction: a statement that fails undoes the ones before it.
    try:
        async with db.transaction():
            await db.execute("CREATE TABLE half_done (id int)")
            await db.execute("CREATE TABLE accounts (id int)")  # already exists
    except asyncpg.DuplicateTableError:
        pass
    assert await db.fetchval("SELECT to_regclass('half_done')") is None


async def test_two_organizations_with_owner_admin_and_six_members(db):
    rows = await db.fetch("""
        SELECT o.name, m.role, count(*) AS n
        FROM memberships m JOIN organizations o ON o.id = m.organization_id
        GROUP BY o.name, m.role ORDER BY o.name, m.role""")
    assert [(r["name"], r["role"], r["n"]) for r in rows] == [
        ("Globex Visuals", "OWNER", 1), ("Globex Visuals", "ADMIN", 1), ("Globex Visuals", "MEMBER", 6),
        ("Northwind Studio", "OWNER", 1), ("Northwind Studio", "ADMIN", 1), ("Northwind Studio", "MEMBER", 6),
    ]
    emails = {r["email"] for r in await db.fetch("SELECT email FROM accounts")}
    assert {"owner@northwind.example", "admin@globex.example", "member6@northwind.example"} <= emails


async def test_licenses_cover_free_full_expired_floating_and_trial(db):
    rows = await db.fetch("""
        SELECT l.kind, l.seat_model, l.quantity, l.expires_at, count(a.account_id) AS allocated
        FROM licenses l JOIN organizations o ON o.id = l.organization_id
        LEFT JOIN allocations a ON a.license_id = l.id
        WHERE o.name = 'Northwind Studio' GROUP BY l.id""")
    named = [r for r in rows if r["seat_model"] == "NAMED" and r["kind"] != "TRIAL"]
    assert any(r["allocated"] < r["quantity"] and r["expires_at"] > _now() for r in named)  # free seats
    assert any(r["allocated"] == r["quantity"] and r["expires_at"] > _now() for r in named)  # full
    assert any(r["expires_at"] < _now() for r in named)  # expired
    assert any(r["seat_model"] == "FLOATING" for r in rows)
    assert any(r["kind"] == "TRIAL" for r in rows)
    products = await db.fetchval("SELECT count(DISTINCT product_id) FROM licenses")
    assert products >= 3


async def test_subscriptions_credits_downloads_and_learning(db):
    statuses = {r["status"] for r in await db.fetch("SELECT status FROM subscriptions")}
    assert {"ACTIVE", "EXPIRED"} <= statuses
    pools = await db.fetch("""
        SELECT o.name, (SELECT sum(amount) FROM credit_grants g WHERE g.organization_id = o.id) AS granted,
               (SELECT sum(amount) FROM credit_usage u WHERE u.organization_id = o.id) AS used
        FROM organizations o""")
    assert all(0 < r["used"] < r["granted"] for r in pools)
    assert await db.fetchval("SELECT count(*) FROM products p WHERE NOT EXISTS "
                             "(SELECT 1 FROM downloads d WHERE d.product_id = p.id)") == 0
    assert await db.fetchval("SELECT count(*) FROM products p WHERE NOT EXISTS "
                             "(SELECT 1 FROM learning_resources r WHERE r.product_id = p.id)") == 0


async def test_each_organization_has_a_provider_customer_with_card_and_invoices(db, services):
    from datasources.payments.client import PaymentsClient
    from gateway.app import EMULATOR_API_KEY

    customers = [r["payment_customer_id"] for r in await db.fetch("SELECT payment_customer_id FROM organizations")]
    assert len(customers) == 2 and all(customers)
    payments = PaymentsClient(EMULATOR_API_KEY, api_base=services.stripe_api_base, timeout_seconds=5)
    try:
        for customer_id in customers:
            methods = await payments.list_payment_methods(customer_id)
            assert [m.is_default for m in methods] == [True]
            invoices = await payments.list_invoices(customer_id)
            assert sum(i.status == "PAID" for i in invoices) >= 2
            assert sum(i.is_outstanding for i in invoices) >= 2
    finally:
        await payments.close()


async def test_seeding_is_deterministic_and_happens_once(database_url):
    db = await Database.connect(database_url, max_size=2)
    try:
        from datasources.postgres.seed import load_if_empty
        assert await load_if_empty(db, lambda: demo.demo_rows(date.today())) is False
    finally:
        await db.close()
    first = demo.demo_rows(date(2026, 1, 1))
    second = demo.demo_rows(date(2026, 1, 1))
    strip = lambda rows: {t: [{k: v for k, v in r.items() if k != "password_hash"} for r in rs]  # noqa: E731
                          for t, rs in rows.items()}
    assert strip(first) == strip(second)


async def test_provider_side_is_rebuilt_when_the_emulator_store_is_gone(database_url, tmp_path, db):
    from datasources.payments.client import PaymentsClient
    from datasources.payments.emulator import Emulator
    from gateway.app import EMULATOR_API_KEY

    before = {r["payment_customer_id"] for r in await db.fetch("SELECT payment_customer_id FROM organizations")}
    with Emulator.start(tmp_path / "fresh-store.pickle") as fresh:  # an empty provider
        gateway_db = await Database.connect(database_url, max_size=2)
        payments = PaymentsClient(EMULATOR_API_KEY, api_base=fresh.api_base, timeout_seconds=5)
        try:
            assert await startup.seed_demo(gateway_db, payments) is False  # database already seeded
            after = {r["payment_customer_id"] for r in await db.fetch("SELECT payment_customer_id FROM organizations")}
            assert after.isdisjoint(before) and len(after) == 2
            for customer_id in after:
                assert await payments.get_customer(customer_id) is not None
        finally:
            await payments.close()
            await gateway_db.close()


def _now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)
