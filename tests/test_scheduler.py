"""The scheduler: expiries, expired invitations and a low credit pool reported once each, by one
process at a time, across restarts and racing processes; the event log pruned.

Seeded per organization (gateway/demo.py): Atlas Scatter expires in 20 days and Scene Cloud
Viewer in 14 (both within the 30-day warning), Vapor FX expired 40 days ago (older than the
report window: history, not news), the pending invitation expires in 5 days.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from datasources.postgres import credits
from datasources.postgres.database import Database
from datasources.postgres.schedule import SCHEDULER_LOCK
from gateway.app import create_app
from gateway.demo import demo_id
from gateway.scheduler import Scheduler
from gateway.settings import Settings
from resolvers.credits import settle
from resolvers.events import publish
from resolvers.schedule import run_pass

NORTHWIND = demo_id("organization", "northwind")
PORTAL = "https://portal.scheduler.example"
DAY = 86400.0
# What the first pass over the seeded data reports: two licenses within 30 days, per organization.
SEEDED = Counter({"LICENSE_EXPIRING": 4})


@pytest.fixture
async def gateway_db(database_url: str) -> AsyncIterator[Database]:
    """The gateway's own pool on this test's database, as an app opens it."""
    db = await Database.connect(database_url, max_size=3, portal_url=PORTAL)
    yield db
    await db.close()


async def events(db: asyncpg.Connection, kind: str | None = None) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT type, organization_id, data::text AS data, dedupe_key FROM event_log"
                          " WHERE $1::text IS NULL OR type = $1 ORDER BY id", kind)
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows]


async def license_expiring_in(db: asyncpg.Connection, seconds: float, organization=NORTHWIND) -> uuid.UUID:
    """A new license of the organization expiring that long from now."""
    license_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO licenses (id, organization_id, product_id, kind, seat_model, quantity, expires_at)"
        " SELECT $1, $2, id, 'SUBSCRIPTION', 'NAMED', 1, now() + make_interval(secs => $3) FROM products"
        " WHERE sku = 'LUMEN-RENDER'", license_id, organization, seconds)
    return license_id


async def invitation_expired(db: asyncpg.Connection, *, accepted: bool = False, revoked: bool = False) -> uuid.UUID:
    invitation_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO invitations (id, organization_id, email, role, token_hash, created_at, expires_at, accepted_at,"
        " revoked_at) VALUES ($1, $2, $3, 'MEMBER', $4, now() - interval '8 days', now() - interval '1 hour',"
        " CASE WHEN $5 THEN now() - interval '2 hours' END, CASE WHEN $6 THEN now() - interval '2 hours' END)",
        invitation_id, NORTHWIND, f"late-{invitation_id.hex[:8]}@example.com", uuid.uuid4().bytes, accepted, revoked)
    return invitation_id


def of(found: list[dict[str, Any]], key: str, value: object) -> list[dict[str, Any]]:
    return [e for e in found if e["data"].get(key) == str(value)]


async def reported_by_kind(db: asyncpg.Connection) -> Counter[str]:
    return Counter(e["type"] for e in await events(db))


# --- what is reported --------------------------------------------------------------------------


async def test_each_license_gets_only_the_nearest_warning(db, gateway_db):
    far = await license_expiring_in(db, 40 * DAY)
    month = await license_expiring_in(db, 20 * DAY)
    week = await license_expiring_in(db, 5 * DAY)
    day = await license_expiring_in(db, 0.5 * DAY)
    reported = await run_pass(gateway_db, retention_days=7)
    assert reported["LICENSE_EXPIRING"] == SEEDED["LICENSE_EXPIRING"] + 3
    found = await events(db, "LICENSE_EXPIRING")
    assert of(found, "license_id", far) == []
    # First seen 5 days before: the 7-day warning only, never the 30-day one as well.
    for license_id, threshold, days_left in ((month, 30, 20), (week, 7, 5), (day, 1, 1)):
        [event] = of(found, "license_id", license_id)
        assert event["organization_id"] == NORTHWIND
        assert event["data"]["days_left"] == days_left
        assert event["dedupe_key"].startswith(f"LICENSE_EXPIRING:{license_id}:{threshold}:")


async def test_the_warnings_come_at_30_then_7_then_1_days(db, gateway_db):
    """One expiry, seen by passes as it comes closer (each pass judged at a later moment)."""
    license_id = await license_expiring_in(db, 40 * DAY)
    expiry = await db.fetchval("SELECT expires_at FROM licenses WHERE id = $1", license_id)
    days_before = (35, 29, 20, 6.5, 3, 0.9, 0.2, -0.5)
    for days in days_before:
        await run_pass(gateway_db, retention_days=7, at=expiry - timedelta(days=days))
    warnings = of(await events(db, "LICENSE_EXPIRING"), "license_id", license_id)
    assert [int(w["dedupe_key"].split(":")[2]) for w in warnings] == [30, 7, 1]
    assert [w["data"]["days_left"] for w in warnings] == [29, 7, 1]
    [expired] = of(await events(db, "LICENSE_EXPIRED"), "license_id", license_id)
    assert expired["data"]["expired_at"] == expiry.isoformat()


async def test_an_extended_license_warns_again_for_its_new_date(db, gateway_db):
    license_id = await license_expiring_in(db, 5 * DAY)
    await run_pass(gateway_db, retention_days=7)
    await run_pass(gateway_db, retention_days=7)
    assert len(of(await events(db, "LICENSE_EXPIRING"), "license_id", license_id)) == 1
    await db.execute("UPDATE licenses SET expires_at = expires_at + interval '1 day' WHERE id = $1", license_id)
    await run_pass(gateway_db, retention_days=7)
    warnings = of(await events(db, "LICENSE_EXPIRING"), "license_id", license_id)
    assert [w["data"]["days_left"] for w in warnings] == [5, 6]
    assert warnings[0]["data"]["expires_at"] != warnings[1]["data"]["expires_at"]
    # Extended out of the window: nothing more.
    await db.execute("UPDATE licenses SET expires_at = now() + interval '300 days' WHERE id = $1", license_id)
    await run_pass(gateway_db, retention_days=7)
    assert len(of(await events(db, "LICENSE_EXPIRING"), "license_id", license_id)) == 2


async def test_an_expired_license_and_an_unanswered_invitation_are_reported_once(db, gateway_db):
    license_id = await license_expiring_in(db, -3600)
    pending = await invitation_expired(db)
    await invitation_expired(db, accepted=True)
    await invitation_expired(db, revoked=True)
    await run_pass(gateway_db, retention_days=7)
    await run_pass(gateway_db, retention_days=7)
    [expired] = await events(db, "LICENSE_EXPIRED")  # Vapor FX (40 days ago) is history
    assert expired["data"]["license_id"] == str(license_id) and expired["organization_id"] == NORTHWIND
    [invitation] = await events(db, "INVITATION_EXPIRED")
    assert invitation["data"]["invitation_id"] == str(pending)
    assert invitation["data"]["email"].startswith("late-")


async def test_a_new_scheduler_reports_nothing_again_even_after_the_log_was_pruned(db, gateway_db, database_url):
    await license_expiring_in(db, -3600)
    await invitation_expired(db)
    first = await run_pass(gateway_db, retention_days=7)
    assert first == SEEDED + Counter({"LICENSE_EXPIRED": 1, "INVITATION_EXPIRED": 1})
    before = await reported_by_kind(db)
    restarted = await Database.connect(database_url, max_size=2)
    try:
        assert await run_pass(restarted, retention_days=7) == {}
        # The log forgets the events after EVENT_RETENTION_DAYS; the scheduler still remembers.
        await db.execute("UPDATE event_log SET occurred_at = now() - interval '8 days'")
        assert (await run_pass(restarted, retention_days=7))["PRUNED"] == sum(before.values())
        assert await events(db) == []
        assert await run_pass(restarted, retention_days=7) == {}
    finally:
        await restarted.close()


async def test_pruning_drops_only_events_past_the_retention(db, gateway_db):
    async with gateway_db.transaction() as conn:
        await publish(conn, "MEMBER_LEFT", organization_id=NORTHWIND, data={"account_id": "x", "email": "old@x"})
        await publish(conn, "MEMBER_LEFT", organization_id=NORTHWIND, data={"account_id": "y", "email": "new@x"})
    await db.execute("UPDATE event_log SET occurred_at = now() - interval '3 days' WHERE data->>'email' = 'old@x'")
    reported = await run_pass(gateway_db, retention_days=2)
    assert reported["PRUNED"] == 1
    assert [e["data"]["email"] for e in await events(db, "MEMBER_LEFT")] == ["new@x"]


# --- the credit pool ----------------------------------------------------------------------------


async def balance_of(gateway_db: Database, organization) -> int:
    grants = await credits.grants_of_organizations(gateway_db, [organization])
    periods = await credits.usage_periods_of_organizations(gateway_db, [organization])
    return settle(grants, periods, datetime.now(timezone.utc)).balance


async def use_credits(db: asyncpg.Connection, amount: int) -> None:
    await db.execute("INSERT INTO credit_usage (id, organization_id, amount, description) VALUES ($1, $2, $3,"
                     " 'render')", uuid.uuid4(), NORTHWIND, amount)


async def grant_credits(db: asyncpg.Connection, amount: int) -> None:
    await db.execute("INSERT INTO credit_grants (id, organization_id, amount, source) VALUES ($1, $2, $3,"
                     " 'PURCHASE')", uuid.uuid4(), NORTHWIND, amount)


async def test_a_low_credit_pool_is_reported_once_per_crossing(db, gateway_db):
    balance = await balance_of(gateway_db, NORTHWIND)
    await db.execute("UPDATE organizations SET credit_low_threshold = $2 WHERE id = $1", NORTHWIND, balance - 100)
    await run_pass(gateway_db, retention_days=7)
    assert await events(db, "CREDIT_POOL_LOW") == []  # above the threshold
    await use_credits(db, 100)  # exactly at the threshold: low
    for _ in range(2):
        await run_pass(gateway_db, retention_days=7)
    [low] = await events(db, "CREDIT_POOL_LOW")
    assert low["organization_id"] == NORTHWIND
    assert low["data"] == {"pool_id": str(NORTHWIND), "balance": balance - 100, "threshold": balance - 100}
    await use_credits(db, 50)  # lower still, the same crossing
    await run_pass(gateway_db, retention_days=7)
    assert len(await events(db, "CREDIT_POOL_LOW")) == 1
    await grant_credits(db, 1000)  # back above
    await run_pass(gateway_db, retention_days=7)
    assert len(await events(db, "CREDIT_POOL_LOW")) == 1
    await use_credits(db, 1000)  # the next crossing
    await run_pass(gateway_db, retention_days=7)
    await run_pass(gateway_db, retention_days=7)
    assert [e["data"]["balance"] for e in await events(db, "CREDIT_POOL_LOW")] == [balance - 100, balance - 150]
    # Managers are mailed; Globex, with no threshold, never.
    mail = await db.fetch("SELECT to_address, subject, body FROM mail_outbox WHERE subject LIKE 'Cloud credits%'"
                          " ORDER BY id")
    assert {m["to_address"] for m in mail} == {"owner@northwind.example", "admin@northwind.example"}
    assert len(mail) == 4 and f"{PORTAL}/organization" in mail[0]["body"]


# --- one process at a time ------------------------------------------------------------------------


async def test_racing_passes_report_each_event_once(db, database_url):
    """Two processes' passes at once, without the lock (a takeover mid-pass): the claims decide."""
    await license_expiring_in(db, 3 * DAY)
    await license_expiring_in(db, -60)
    await invitation_expired(db)
    await db.execute("UPDATE organizations SET credit_low_threshold = 1000000000 WHERE id = $1", NORTHWIND)
    one, two = [await Database.connect(database_url, max_size=3) for _ in range(2)]
    try:
        for _ in range(3):
            await asyncio.gather(run_pass(one, retention_days=7), run_pass(two, retention_days=7))
    finally:
        await one.close()
        await two.close()
    assert await reported_by_kind(db) == SEEDED + Counter(
        {"LICENSE_EXPIRING": 1, "LICENSE_EXPIRED": 1, "INVITATION_EXPIRED": 1, "CREDIT_POOL_LOW": 1})
    keys = [e["dedupe_key"] for e in await events(db)]
    assert len(keys) == len(set(keys))


async def test_one_scheduler_holds_the_lock_and_another_takes_over(db, resolver_settings, database_url):
    settings = resolver_settings.with_(run_scheduler=True)
    pools = [await Database.connect(database_url, max_size=2) for _ in range(3)]
    first, second, third = (Scheduler(p, settings) for p in pools)
    try:
        assert await first.tick() == SEEDED
        assert await second.tick() is None and await third.tick() is None
        assert (first.leader, second.leader, third.leader) == (True, False, False)
        assert await first.tick() == {}  # still the leader, nothing new
        # The holder's connection dies (its process is killed): the lock goes with it.
        terminated = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1"
            " AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            SCHEDULER_LOCK)
        assert terminated == 1
        assert await second.tick() == {}
        assert second.leader
        assert await first.tick() is None and not first.leader  # it lost the lock, and retries
        assert await first.tick() is None and not first.leader
        # The holder stops (its app shuts down): the next try takes over.
        await second.leadership.release()
        assert await third.tick() == {} and third.leader
    finally:
        for scheduler in (first, second, third):
            await scheduler.leadership.release()
        for pool in pools:
            await pool.close()
    assert await reported_by_kind(db) == SEEDED


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[Scheduler]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app.state.scheduler


async def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_two_gateway_apps_report_each_expiry_once_and_the_survivor_takes_over(db, resolver_settings):
    """Two apps on one database, each with the scheduler their lifespan starts, passes every 50 ms."""
    await license_expiring_in(db, 2 * DAY)
    await invitation_expired(db)
    settings = resolver_settings.with_(run_scheduler=True, scheduler_interval_seconds=0.05)
    async with running_app(settings) as one:
        async with running_app(settings) as two:
            await wait_for(lambda: one.passes + two.passes >= 5)
            assert one.leader != two.leader
            leader, other = (one, two) if one.leader else (two, one)
            assert other.passes == 0
            count = leader.passes
        # `two` stopped; if it was the leader, `one` takes over.
        await wait_for(lambda: one.passes >= (count + 3 if leader is one else 3))
        assert one.leader
    assert await reported_by_kind(db) == SEEDED + Counter({"LICENSE_EXPIRING": 1, "INVITATION_EXPIRED": 1})


LEADING = "this process now runs the scheduler"


async def test_two_serve_processes_report_each_expiry_once_and_one_takes_over_from_a_killed_one(
        services, database_url, db, tmp_path):
    """`account-gateway serve` twice on one database, a pass every 200 ms each: one runs the
    scheduler; killed (SIGKILL: no shutdown of its own), the other takes over."""
    from tests.test_serve import start, stop

    soon = await license_expiring_in(db, 2 * DAY)
    env = {"DATABASE_URL": database_url, "STRIPE_API_BASE": services.stripe_api_base,
           "SCHEDULER_INTERVAL_SECONDS": "0.2"}
    servers = [await asyncio.to_thread(start, tmp_path / f"data{n}", tmp_path / f"serve{n}.log", env)
               for n in (1, 2)]
    try:
        await wait_for_async(lambda: _reported(db, soon))
        await asyncio.sleep(1.0)  # five more intervals of both trying
        leaders = [s for s in servers if LEADING in s.output()]
        assert len(leaders) == 1, [s.output() for s in servers]
        [leader], [other] = leaders, [s for s in servers if s is not leaders[0]]
        leader.process.kill()
        await asyncio.to_thread(leader.process.wait, 10)
        later = await license_expiring_in(db, 0.5 * DAY)
        await wait_for_async(lambda: _reported(db, later))
        assert LEADING in other.output()
        await asyncio.sleep(1.0)
    finally:
        for served in servers:
            if served.process.poll() is None:
                await asyncio.to_thread(stop, served)
    found = await events(db)
    assert len(of(found, "license_id", soon)) == 1 and len(of(found, "license_id", later)) == 1
    assert Counter(e["type"] for e in found) == SEEDED + Counter({"LICENSE_EXPIRING": 2})


async def _reported(db: asyncpg.Connection, license_id: uuid.UUID) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM event_log WHERE data->>'license_id' = $1", str(license_id)))


async def wait_for_async(condition, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)
