"""Setting members' credit access and requesting credits: rules, mail, audit, and who may.

Seeded per organization (gateway/demo.py): member3 has a QUOTA of 500, member6 is DISABLED, the
others have the default, UNLIMITED; member3 has one pending request.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest

NORTHWIND, GLOBEX = "northwind.example", "globex.example"

MEMBER_IDS = "{ viewer { organization { members(first: 100) { nodes { account { id email } } } } } }"
SET_ACCESS = """
mutation SetAccess($input: SetCreditAccessInput!) {
  setCreditAccess(input: $input) {
    members { account { email } access { mode limit used remaining } }
    userErrors { field message code }
  }
}
"""
REQUEST = """
mutation Request($input: RequestCreditsInput!) {
  requestCredits(input: $input) {
    request { id amount note requestedAt resolvedAt account { email } }
    userErrors { field message code }
  }
}
"""
PENDING = "{ viewer { organization { creditPool { pendingRequests { amount account { email } } } } } }"


def m(n: int, domain: str = NORTHWIND) -> str:
    return f"member{n}@{domain}"


async def account_ids(gateway, domain: str = NORTHWIND) -> dict[str, str]:
    token = await gateway.login(f"admin@{domain}")
    body = await gateway.execute(MEMBER_IDS, token=token)
    nodes = body["data"]["viewer"]["organization"]["members"]["nodes"]
    return {n["account"]["email"]: n["account"]["id"] for n in nodes if n["account"]}


def codes(payload) -> list[tuple[list[str] | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


async def access_in_db(db, email: str) -> tuple[str, int | None] | None:
    row = await db.fetchrow("SELECT c.mode, c.quota FROM credit_access c JOIN accounts a ON a.id = c.account_id"
                            " WHERE a.email = $1", email)
    return (row["mode"], row["quota"]) if row else None


async def mail_to(db, address: str) -> list[dict]:
    rows = await db.fetch("SELECT subject, body FROM mail_outbox WHERE to_address = $1 ORDER BY id", address)
    return [dict(r) for r in rows]


async def audit_rows(db, action: str) -> list[dict]:
    rows = await db.fetch("SELECT l.outcome, l.target, l.details::text AS details, a.email AS actor"
                          " FROM audit_log l LEFT JOIN accounts a ON a.id = l.actor_account_id"
                          " WHERE l.action = $1 ORDER BY l.id", action)
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def set_access(gateway, token, ids, mode, quota=None):
    body = await gateway.execute(SET_ACCESS, {"input": {"accountIds": ids, "mode": mode, "quota": quota}},
                                 token=token)
    return body


async def request_credits(gateway, token, amount, note=None):
    variables = {"input": {"amount": amount, **({"note": note} if note is not None else {})}}
    return await gateway.execute(REQUEST, variables, token=token)


async def add_account_without_organization(db, email: str) -> None:
    """An account with the demo password that belongs to no organization."""
    await db.execute("INSERT INTO accounts (id, email, name, password_hash) SELECT $1, $2, 'Loner', password_hash"
                     " FROM accounts WHERE email = $3", uuid.uuid4(), email, f"owner@{NORTHWIND}")


# --- setCreditAccess ----------------------------------------------------------------------------

async def test_admin_puts_members_on_a_quota_and_each_is_emailed(gateway, db):
    ids = await account_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    body = await set_access(gateway, token, [ids[m(1)], ids[m(2)]], "QUOTA", 300)
    assert "errors" not in body, body
    payload = body["data"]["setCreditAccess"]
    assert payload["userErrors"] == []
    assert [(x["account"]["email"], x["access"]["mode"], x["access"]["limit"]) for x in payload["members"]] == [
        (m(1), "QUOTA", 300), (m(2), "QUOTA", 300)]
    # member1 used 150 + 160 + 170 = 480 already: nothing left under a quota of 300.
    assert payload["members"][0]["access"]["remaining"] == 0
    assert await access_in_db(db, m(1)) == await access_in_db(db, m(2)) == ("QUOTA", 300)
    for email in (m(1), m(2)):
        [mail] = await mail_to(db, email)
        assert "QUOTA" in mail["body"] and "300" in mail["body"] and "Northwind" in mail["subject"]
    [entry] = await audit_rows(db, "credits.set_access")
    assert entry["outcome"] == "SUCCESS" and entry["actor"] == f"admin@{NORTHWIND}"
    assert entry["details"]["mode"] == "QUOTA" and entry["details"]["quota"] == 300
    assert len(entry["details"]["accounts"]) == 2


@pytest.mark.parametrize("mode, member, expected", [
    ("DISABLED", 1, ("DISABLED", None)),
    ("UNLIMITED", 6, ("UNLIMITED", None)),  # member6 was DISABLED
    ("QUOTA", 3, ("QUOTA", 0)),  # a quota of 0 is allowed
])
async def test_every_mode_can_be_set(gateway, db, mode, member, expected):
    ids = await account_ids(gateway)
    token = await gateway.login(f"owner@{NORTHWIND}")
    payload = (await set_access(gateway, token, [ids[m(member)]], mode, 0 if mode == "QUOTA" else None)
               )["data"]["setCreditAccess"]
    assert payload["userErrors"] == []
    assert (payload["members"][0]["access"]["mode"], payload["members"][0]["access"]["limit"]) == expected
    assert await access_in_db(db, m(member)) == expected
    assert len(await mail_to(db, m(member))) == 1


async def test_the_member_sees_their_new_access(gateway):
    ids = await account_ids(gateway)
    admin = await gateway.login(f"admin@{NORTHWIND}")
    await set_access(gateway, admin, [ids[m(4)]], "DISABLED")
    member = await gateway.login(m(4))
    body = await gateway.execute("{ viewer { creditAccess { mode remaining } } }", token=member)
    assert body["data"]["viewer"]["creditAccess"] == {"mode": "DISABLED", "remaining": 0}


async def test_setting_the_access_a_member_already_has_sends_no_mail_and_writes_no_audit(gateway, db):
    ids = await account_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    # member3 already has a quota of 500; member1 has the default (no row), UNLIMITED.
    same_quota = (await set_access(gateway, token, [ids[m(3)]], "QUOTA", 500))["data"]["setCreditAccess"]
    same_default = (await set_access(gateway, token, [ids[m(1)]], "UNLIMITED"))["data"]["setCreditAccess"]
    assert same_quota["userErrors"] == same_default["userErrors"] == []
    assert same_quota["members"][0]["access"]["limit"] == 500
    assert same_default["members"][0]["access"]["mode"] == "UNLIMITED"
    assert await mail_to(db, m(3)) == await mail_to(db, m(1)) == []
    assert await audit_rows(db, "credits.set_access") == []


@pytest.mark.parametrize("mode, quota", [("QUOTA", None), ("QUOTA", -1), ("DISABLED", 10), ("UNLIMITED", 0)])
async def test_a_quota_goes_with_quota_mode_only_and_is_not_negative(gateway, db, mode, quota):
    ids = await account_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await set_access(gateway, token, [ids[m(1)]], mode, quota))["data"]["setCreditAccess"]
    assert codes(payload) == [(["input", "quota"], "INVALID")]
    assert payload["members"] == []
    assert await access_in_db(db, m(1)) is None
    assert await mail_to(db, m(1)) == []
    [entry] = await audit_rows(db, "credits.set_access")
    assert entry["outcome"] == "REFUSED"


@pytest.mark.parametrize("count", [0, 101])
async def test_set_access_names_1_to_100_accounts(gateway, count):
    ids = await account_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await set_access(gateway, token, [ids[m(1)]] * count, "DISABLED"))["data"]["setCreditAccess"]
    assert codes(payload) == [(["input", "accountIds"], "INVALID")]


async def test_accounts_outside_the_organization_are_refused_one_by_one(gateway, db):
    ids = await account_ids(gateway)
    globex = await account_ids(gateway, GLOBEX)
    token = await gateway.login(f"admin@{NORTHWIND}")
    unknown = base64.b64encode(f"Account:{uuid.uuid4()}".encode()).decode()
    payload = (await set_access(gateway, token, [globex[m(1, GLOBEX)], ids[m(2)], "nonsense", unknown, ids[m(2)]],
                                "DISABLED"))["data"]["setCreditAccess"]
    assert codes(payload) == [(["input", "accountIds", "0"], "NOT_IN_ORGANIZATION"),
                              (["input", "accountIds", "2"], "NOT_IN_ORGANIZATION"),
                              (["input", "accountIds", "3"], "NOT_IN_ORGANIZATION")]
    assert len({e["message"] for e in payload["userErrors"]}) == 1
    assert [x["account"]["email"] for x in payload["members"]] == [m(2)]  # listed twice, set once
    assert await access_in_db(db, m(1, GLOBEX)) is None
    assert await mail_to(db, m(1, GLOBEX)) == []
    assert len(await mail_to(db, m(2))) == 1
    [entry] = await audit_rows(db, "credits.set_access")
    assert entry["outcome"] == "PARTIAL"


@pytest.mark.parametrize("who, code", [
    (None, "UNAUTHENTICATED"),
    (f"member1@{NORTHWIND}", "FORBIDDEN"),
    (f"member3@{NORTHWIND}", "FORBIDDEN"),
    ("loner@example.com", "FORBIDDEN"),
])
async def test_only_owner_and_admins_set_credit_access(gateway, db, who, code):
    ids = await account_ids(gateway)
    if who == "loner@example.com":
        await add_account_without_organization(db, who)
    token = await gateway.login(who) if who else None
    body = await set_access(gateway, token, [ids[m(1)]], "DISABLED")
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert await access_in_db(db, m(1)) is None
    assert await db.fetchval("SELECT count(*) FROM mail_outbox") == 0


async def test_another_organizations_admin_cannot_touch_our_members(gateway, db):
    ids = await account_ids(gateway)
    token = await gateway.login(f"admin@{GLOBEX}")
    payload = (await set_access(gateway, token, [ids[m(1)], ids[m(3)]], "DISABLED"))["data"]["setCreditAccess"]
    assert [c for _, c in codes(payload)] == ["NOT_IN_ORGANIZATION", "NOT_IN_ORGANIZATION"]
    assert payload["members"] == []
    assert await access_in_db(db, m(1)) is None and await access_in_db(db, m(3)) == ("QUOTA", 500)
    assert await db.fetchval("SELECT count(*) FROM mail_outbox") == 0
    [entry] = await audit_rows(db, "credits.set_access")
    assert entry["outcome"] == "REFUSED" and entry["actor"] == f"admin@{GLOBEX}"


# --- requestCredits -------------------------------------------------------------------------------

async def test_a_member_requests_credits_and_every_owner_and_admin_is_emailed(gateway, db):
    token = await gateway.login(m(1))
    body = await request_credits(gateway, token, 2_500, "  Client deadline on Friday.  ")
    assert "errors" not in body, body
    payload = body["data"]["requestCredits"]
    assert payload["userErrors"] == []
    request = payload["request"]
    assert (request["amount"], request["note"], request["resolvedAt"]) == (2_500, "Client deadline on Friday.", None)
    assert request["account"] == {"email": m(1)}
    stored = await db.fetchrow("SELECT r.amount, r.note, a.email FROM credit_requests r"
                               " JOIN accounts a ON a.id = r.account_id WHERE r.resolved_at IS NULL"
                               " AND a.email = $1", m(1))
    assert (stored["amount"], stored["note"]) == (2_500, "Client deadline on Friday.")
    for manager in (f"owner@{NORTHWIND}", f"admin@{NORTHWIND}"):
        [mail] = await mail_to(db, manager)
        assert "2,500" in mail["subject"] and m(1) in mail["body"] and "Client deadline" in mail["body"]
    assert await db.fetchval("SELECT count(*) FROM mail_outbox") == 2  # no one else, no one at Globex
    [entry] = await audit_rows(db, "credits.request")
    assert entry["outcome"] == "SUCCESS" and entry["actor"] == m(1)
    assert entry["details"] == {"amount": 2_500}


async def test_admins_see_the_new_request_pending(gateway):
    member = await gateway.login(m(2))
    await request_credits(gateway, member, 40)
    admin = await gateway.login(f"admin@{NORTHWIND}")
    body = await gateway.execute(PENDING, token=admin)
    pending = body["data"]["viewer"]["organization"]["creditPool"]["pendingRequests"]
    assert {"amount": 40, "account": {"email": m(2)}} in pending


@pytest.mark.parametrize("who", [f"owner@{NORTHWIND}", f"admin@{NORTHWIND}", m(6)])
async def test_anyone_in_the_organization_may_request_credits(gateway, who):
    token = await gateway.login(who)
    payload = (await request_credits(gateway, token, 10))["data"]["requestCredits"]
    assert payload["userErrors"] == [] and payload["request"]["note"] == ""


async def test_a_globex_request_goes_to_globex_admins_only(gateway, db):
    token = await gateway.login(m(1, GLOBEX))
    await request_credits(gateway, token, 10)
    recipients = {r["to_address"] for r in await db.fetch("SELECT to_address FROM mail_outbox")}
    assert recipients == {f"owner@{GLOBEX}", f"admin@{GLOBEX}"}


@pytest.mark.parametrize("amount, ok", [(0, False), (1, True), (1_000_000, True), (1_000_001, False), (-5, False)])
async def test_a_request_is_for_1_to_a_million_credits(gateway, db, amount, ok):
    token = await gateway.login(m(1))
    payload = (await request_credits(gateway, token, amount))["data"]["requestCredits"]
    if ok:
        assert payload["userErrors"] == [] and payload["request"]["amount"] == amount
    else:
        assert codes(payload) == [(["input", "amount"], "INVALID")] and payload["request"] is None
        assert await db.fetchval("SELECT count(*) FROM mail_outbox") == 0
        [entry] = await audit_rows(db, "credits.request")
        assert entry["outcome"] == "REFUSED" and entry["actor"] == m(1)


async def test_a_note_has_at_most_1000_characters(gateway):
    token = await gateway.login(m(1))
    payload = (await request_credits(gateway, token, 10, "x" * 1001))["data"]["requestCredits"]
    assert codes(payload) == [(["input", "note"], "INVALID")]


@pytest.mark.parametrize("who, code", [(None, "UNAUTHENTICATED"), ("loner@example.com", "FORBIDDEN")])
async def test_requesting_credits_needs_an_organization(gateway, db, who, code):
    if who:
        await add_account_without_organization(db, who)
    token = await gateway.login(who) if who else None
    body = await request_credits(gateway, token, 10)
    assert body["data"] is None and [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert await db.fetchval("SELECT count(*) FROM mail_outbox") == 0
