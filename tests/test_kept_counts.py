"""A member list's totalCount and a license's allocatedCount read the counts migration 0019's
triggers keep, not count(*) over every member or seat: they must still equal count(*) after any
write, from any path, in any interleaving, and stay a handful of rows however many changes came
before."""

from __future__ import annotations

import asyncio
import base64
import uuid

import asyncpg

from gateway.demo import demo_id

from tests.test_people_mutations import REMOVE, account_gid, data_of

NORTHWIND = demo_id("organization", "northwind")
GLOBEX = demo_id("organization", "globex")
# The maintained count (no filter) and a counted one (a search every address matches).
TOTALS = """{ viewer { organization {
  kept: members(first: 2) { totalCount pageInfo { hasNextPage } }
  counted: members(first: 2, search: "@") { totalCount }
} } }"""
SEATS = "{ viewer { organization { licenses { id allocatedCount allocations(first: 1) { totalCount } } } } }"
FOLD_AFTER = 32  # rows per key before they are folded into one (the migration)
# (the deltas table, its key column, the counted table)
MEMBERS = ("member_count_deltas", "organization_id", "memberships")
SEATS_KEPT = ("seat_count_deltas", "license_id", "allocations")


async def mismatches(db: asyncpg.Connection, kept: tuple[str, str, str] = MEMBERS) -> list[asyncpg.Record]:
    """Keys whose kept count differs from count(*) (none is the rule)."""
    deltas, key, counted = kept
    return await db.fetch(f"""
        SELECT coalesce(k.key, c.key) AS key, k.kept, c.counted
        FROM (SELECT {key} AS key, sum(delta) AS kept FROM {deltas} GROUP BY 1) k
        FULL JOIN (SELECT {key} AS key, count(*) AS counted FROM {counted} GROUP BY 1) c ON c.key = k.key
        WHERE k.kept IS DISTINCT FROM c.counted AND coalesce(k.kept, 0) + coalesce(c.counted, 0) > 0""")


async def most_rows(db: asyncpg.Connection, kept: tuple[str, str, str] = MEMBERS) -> int:
    deltas, key, _ = kept
    return await db.fetchval(f"SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM {deltas} GROUP BY {key}) AS r")


async def shown(gateway, token: str) -> tuple[int, int, bool]:
    body = await gateway.execute(TOTALS, token=token)
    assert "errors" not in body, body
    organization = body["data"]["viewer"]["organization"]
    kept = organization["kept"]
    return kept["totalCount"], organization["counted"]["totalCount"], kept["pageInfo"]["hasNextPage"]


async def new_accounts(db: asyncpg.Connection, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    await db.executemany("INSERT INTO accounts (id, email, name) VALUES ($1, $2, 'Counted Person')",
                         [(i, f"counted-{i}@northwind.example") for i in ids])
    return ids


async def join(db: asyncpg.Connection, accounts: list[uuid.UUID], organization: uuid.UUID = NORTHWIND) -> None:
    await db.execute("INSERT INTO memberships (account_id, organization_id, role)"
                     " SELECT unnest($1::uuid[]), $2, 'MEMBER'", accounts, organization)


async def test_every_kind_of_membership_write_keeps_the_shown_count_exact(gateway, db):
    token = await gateway.login("admin@northwind.example")
    pending = await db.fetchval("SELECT count(*) FROM invitations WHERE organization_id = $1"
                                " AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()", NORTHWIND)

    async def check(step: str) -> None:
        members = await db.fetchval("SELECT count(*) FROM memberships WHERE organization_id = $1", NORTHWIND)
        assert await shown(gateway, token) == (members + pending, members + pending, members + pending > 2), step
        assert await mismatches(db) == [], step
        assert await most_rows(db) <= FOLD_AFTER + 1, step

    await check("the demo data")
    accounts = await new_accounts(db, 120)
    await join(db, accounts[:1])
    await check("one member joins")
    await join(db, accounts[1:41])
    await check("40 join in one statement")
    for account in accounts[41:100]:  # past the fold, more than once
        await join(db, [account])
    await check("59 join one by one")
    await db.execute("UPDATE memberships SET organization_id = $2 WHERE account_id = ANY($1::uuid[])",
                     accounts[:5], GLOBEX)
    await check("5 move to another organization")
    await db.execute("UPDATE memberships SET role = 'ADMIN' WHERE account_id = ANY($1::uuid[])", accounts[5:10])
    await check("5 change role")
    await db.execute("DELETE FROM memberships WHERE account_id = ANY($1::uuid[])", accounts[10:13])
    await check("3 leave")
    await db.execute("DELETE FROM accounts WHERE id = ANY($1::uuid[])", accounts[13:20])
    await check("7 accounts deleted (their memberships by cascade)")
    async with db.transaction():
        await join(db, accounts[100:110])
        await db.execute("DELETE FROM memberships WHERE account_id = ANY($1::uuid[])", accounts[20:30])
        await db.execute("UPDATE memberships SET organization_id = $2 WHERE account_id = ANY($1::uuid[])",
                         accounts[30:35], GLOBEX)
    await check("one transaction: 10 join, 10 leave, 5 move")
    try:
        async with db.transaction():
            await join(db, accounts[110:120])
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    await check("10 joined in a transaction rolled back")


async def test_the_members_page_follows_a_removal_through_the_api(gateway, db):
    admin = await gateway.login("admin@northwind.example")
    total, counted, _ = await shown(gateway, admin)
    assert total == counted
    variables = {"input": {"accountId": account_gid("member1@northwind.example"), "revokeSeats": True}}
    payload = data_of(await gateway.execute(REMOVE, variables, token=admin), "removeMember")
    assert payload["userErrors"] == [] and payload["removedAccountId"] == variables["input"]["accountId"]
    assert (await shown(gateway, admin))[:2] == (total - 1, total - 1)
    assert await mismatches(db) == []


async def test_joins_and_departures_in_flight_together_keep_the_count_exact(gateway, db, database_url):
    """40 transactions at once, each holding its change open a moment so that they overlap (and
    fold while others hold rows): none waits on another's count, and the sum stays count(*)."""
    accounts = await new_accounts(db, 200)
    await join(db, accounts[:100])  # the ones that will leave
    pool = await asyncpg.create_pool(database_url, min_size=10, max_size=20)

    async def change(i: int) -> None:
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    if i % 2:
                        await join(conn, accounts[100 + 2 * i: 102 + 2 * i])
                    else:
                        for account in accounts[2 * i: 2 * i + 2]:
                            await conn.execute("DELETE FROM memberships WHERE account_id = $1", account)
                    await asyncio.sleep(0.05)
                    if i % 10 == 3:
                        raise RuntimeError("rolled back")
            except RuntimeError:
                pass

    try:
        await asyncio.wait_for(asyncio.gather(*(change(i) for i in range(40))), timeout=30)
    finally:
        await pool.close()
    assert await mismatches(db) == []
    # A fold sees only rows committed before it, so a burst can leave up to one row per writer
    # past the fold; the next change folds them.
    assert await most_rows(db) <= FOLD_AFTER + 40
    await join(db, accounts[199:])
    assert await most_rows(db) <= FOLD_AFTER + 1
    assert await mismatches(db) == []
    admin = await gateway.login("admin@northwind.example")
    total, counted, _ = await shown(gateway, admin)
    assert total == counted


async def test_a_deleted_organization_or_emptied_tables_leave_no_count_behind(db):
    await db.execute("DELETE FROM organizations WHERE id = $1", GLOBEX)
    assert await db.fetchval("SELECT count(*) FROM member_count_deltas WHERE organization_id = $1", GLOBEX) == 0
    assert await mismatches(db) == []
    await db.execute("TRUNCATE memberships CASCADE")
    assert await db.fetchval("SELECT count(*) FROM member_count_deltas") == 0
    await db.execute("TRUNCATE allocations")
    assert await db.fetchval("SELECT count(*) FROM seat_count_deltas") == 0


async def test_every_kind_of_seat_write_keeps_the_shown_seat_counts_exact(gateway, db):
    token = await gateway.login("admin@northwind.example")
    licenses = [r["id"] for r in await db.fetch("SELECT id FROM licenses WHERE organization_id = $1 ORDER BY id",
                                                NORTHWIND)]

    async def check(step: str) -> None:
        body = await gateway.execute(SEATS, token=token)
        assert "errors" not in body, body
        counted = dict(await db.fetch("SELECT l.id, (SELECT count(*) FROM allocations a WHERE a.license_id = l.id)"
                                      " FROM licenses l WHERE l.organization_id = $1", NORTHWIND))
        shown = {uuid.UUID(base64.b64decode(item["id"]).decode().split(":", 1)[1]): item
                 for item in body["data"]["viewer"]["organization"]["licenses"]}
        assert {k: (v["allocatedCount"], v["allocations"]["totalCount"]) for k, v in shown.items()} == \
            {k: (n, n) for k, n in counted.items()}, step
        assert await mismatches(db, SEATS_KEPT) == [], step
        assert await most_rows(db, SEATS_KEPT) <= FOLD_AFTER + 1, step

    await check("the demo data")
    accounts = await new_accounts(db, 80)
    await join(db, accounts)
    await db.execute("INSERT INTO allocations (license_id, account_id) SELECT $1, unnest($2::uuid[])",
                     licenses[0], accounts[:40])
    await check("40 seats in one statement")
    for account in accounts[40:80]:  # past the fold
        await db.execute("INSERT INTO allocations (license_id, account_id) VALUES ($1, $2)", licenses[1], account)
    await check("40 seats one by one")
    await db.execute("UPDATE allocations SET license_id = $1 WHERE license_id = $2 AND account_id = ANY($3::uuid[])",
                     licenses[2], licenses[0], accounts[:10])
    await check("10 seats moved to another license")
    await db.execute("DELETE FROM allocations WHERE account_id = ANY($1::uuid[])", accounts[10:20])
    await check("10 seats revoked")
    await db.execute("DELETE FROM accounts WHERE id = ANY($1::uuid[])", accounts[40:50])
    await check("10 accounts deleted (their seats by cascade)")
    try:
        async with db.transaction():
            await db.execute("INSERT INTO allocations (license_id, account_id) SELECT $1, unnest($2::uuid[])",
                             licenses[3], accounts[50:60])
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    await check("10 seats in a transaction rolled back")
    await db.execute("DELETE FROM licenses WHERE id = $1", licenses[1])
    await check("a license deleted (its seats by cascade)")
    assert await db.fetchval("SELECT count(*) FROM seat_count_deltas WHERE license_id = $1", licenses[1]) == 0
