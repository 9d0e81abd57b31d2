"""Notification mail: each account's preferences (defaults per role, changes, refusals), the
mail an event queues for those who want it, and the credit pool's alert threshold.

Seeded per organization (gateway/demo.py): an OWNER, an ADMIN and member1..6; member3 has a
pending credit request; Atlas Scatter expires in 20 days.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from datasources.postgres.database import Database
from gateway.demo import demo_id
from resolvers.events import publish
from resolvers.notifications import MAIL_KINDS

NORTHWIND, GLOBEX = demo_id("organization", "northwind"), demo_id("organization", "globex")
ATLAS = demo_id("license", "northwind", "ATLAS-SCATTER")
OWNER, ADMIN = "owner@northwind.example", "admin@northwind.example"
MEMBER1, MEMBER2, MEMBER3 = (f"member{n}@northwind.example" for n in (1, 2, 3))
PORTAL = "https://portal.notifications.example"

PREFERENCES = "query Preferences { notificationPreferences { kind mail mailByDefault applies } }"
UPDATE = """
mutation Update($input: UpdateNotificationPreferencesInput!) {
  updateNotificationPreferences(input: $input) {
    preferences { kind mail mailByDefault applies }
    userErrors { field code message }
  }
}
"""
SET_ALERT = """
mutation Alert($input: SetCreditPoolAlertInput!) {
  setCreditPoolAlert(input: $input) {
    pool { balance lowBalanceThreshold }
    userErrors { field code message }
  }
}
"""
THRESHOLD = "query Threshold { viewer { organization { creditPool { lowBalanceThreshold } } } }"


def mail_on(preferences: list[dict]) -> dict[str, bool]:
    return {p["kind"]: p["mail"] for p in preferences}


async def preferences_of(gateway, token: str) -> list[dict]:
    body = await gateway.execute(PREFERENCES, token=token)
    assert "errors" not in body, body
    return body["data"]["notificationPreferences"]


async def update(gateway, token: str, *choices: tuple[str, bool]) -> dict:
    body = await gateway.execute(UPDATE, {"input": {"mail": [{"kind": k, "mail": m} for k, m in choices]}},
                                 token=token)
    assert "errors" not in body, body
    return body["data"]["updateNotificationPreferences"]


async def stored(db: asyncpg.Connection, email: str) -> dict[str, bool]:
    rows = await db.fetch("SELECT p.kind, p.mail FROM notification_preferences p JOIN accounts a"
                          " ON a.id = p.account_id WHERE a.email = $1", email)
    return {r["kind"]: r["mail"] for r in rows}


# --- preferences -----------------------------------------------------------------------------------


async def test_managers_get_every_organization_mail_and_members_only_their_own(gateway):
    for email in (OWNER, ADMIN):
        found = await preferences_of(gateway, await gateway.login(email))
        assert [p["kind"] for p in found] == list(MAIL_KINDS)
        assert all(p["mail"] and p["mailByDefault"] and p["applies"] for p in found)
    member = await preferences_of(gateway, await gateway.login(MEMBER1))
    assert mail_on(member) == {kind: kind == "CREDIT_REQUEST_RESOLVED" for kind in MAIL_KINDS}
    assert {p["kind"] for p in member if p["applies"]} == {"CREDIT_REQUEST_RESOLVED"}


async def test_an_account_changes_its_own_choices_and_only_departures_from_the_default_are_stored(gateway, db):
    admin, member = await gateway.login(ADMIN), await gateway.login(MEMBER1)
    payload = await update(gateway, admin, ("LICENSE_EXPIRING", False), ("CREDIT_POOL_LOW", True))
    assert payload["userErrors"] == []
    assert mail_on(payload["preferences"]) == {**{k: True for k in MAIL_KINDS}, "LICENSE_EXPIRING": False}
    assert await stored(db, ADMIN) == {"LICENSE_EXPIRING": False}  # CREDIT_POOL_LOW on is the default
    assert mail_on(await preferences_of(gateway, admin))["LICENSE_EXPIRING"] is False
    # Nobody else's changed.
    assert all(mail_on(await preferences_of(gateway, await gateway.login(OWNER))).values())
    payload = await update(gateway, member, ("CREDIT_REQUEST_RESOLVED", False))
    assert mail_on(payload["preferences"])["CREDIT_REQUEST_RESOLVED"] is False
    assert await stored(db, MEMBER1) == {"CREDIT_REQUEST_RESOLVED": False}
    assert mail_on(await preferences_of(gateway, await gateway.login(MEMBER2)))["CREDIT_REQUEST_RESOLVED"] is True
    # Back to the default: nothing stored, so the account follows its role's default again.
    await update(gateway, admin, ("LICENSE_EXPIRING", True))
    assert await stored(db, ADMIN) == {}


async def test_a_bad_choice_is_a_user_error_and_changes_nothing(gateway, db):
    admin, member = await gateway.login(ADMIN), await gateway.login(MEMBER1)
    payload = await update(gateway, admin, ("LICENSE_EXPIRED", False), ("LICENSE_EXPIRED", True))
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["input", "mail", "1", "kind"], "INVALID")]
    assert all(mail_on(payload["preferences"]).values())
    # A member never receives the organization's mail: turning it on is refused, whole.
    payload = await update(gateway, member, ("CREDIT_REQUEST_RESOLVED", False), ("LICENSE_EXPIRING", True))
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "mail", "1", "kind"], "NOT_ALLOWED")]
    assert "OWNER and ADMINs" in payload["userErrors"][0]["message"]
    assert mail_on(payload["preferences"])["CREDIT_REQUEST_RESOLVED"] is True
    assert await stored(db, ADMIN) == {} and await stored(db, MEMBER1) == {}
    # A kind that is not one: the variables are refused before anything runs.
    body = await gateway.execute(UPDATE, {"input": {"mail": [{"kind": "MEMBER_JOINED", "mail": True}]}},
                                 token=member)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_no_one_changes_or_reads_another_accounts_choices(gateway, db):
    member = await gateway.login(MEMBER1)
    owner_id = str(demo_id("account", OWNER))
    body = await gateway.execute(
        "mutation { updateNotificationPreferences(input: {accountId: \"%s\", mail: []}) { userErrors { code } } }"
        % owner_id, token=member)
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert await stored(db, OWNER) == {}
    for query in (PREFERENCES, UPDATE):
        body = await gateway.execute(query, {"input": {"mail": []}} if query is UPDATE else None)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


# --- mail ------------------------------------------------------------------------------------------


@pytest.fixture
async def gateway_db(database_url: str) -> AsyncIterator[Database]:
    db = await Database.connect(database_url, max_size=2, portal_url=PORTAL)
    yield db
    await db.close()


async def outbox(db: asyncpg.Connection) -> list[dict]:
    return [dict(r) for r in await db.fetch("SELECT to_address, subject, body FROM mail_outbox ORDER BY id")]


async def set_preference(db: asyncpg.Connection, email: str, kind: str, mail: bool) -> None:
    await db.execute("INSERT INTO notification_preferences (account_id, kind, mail) SELECT id, $2, $3 FROM accounts"
                     " WHERE email = $1", email, kind, mail)


async def test_an_organization_event_mails_the_managers_who_want_it(db, gateway_db):
    await set_preference(db, ADMIN, "LICENSE_EXPIRING", False)
    before = len(await outbox(db))
    async with gateway_db.transaction() as conn:
        await publish(conn, "LICENSE_EXPIRING", organization_id=NORTHWIND,
                      data={"license_id": str(ATLAS), "days_left": 7, "expires_at": "2030-01-31T12:00:00+00:00"})
    [mail] = (await outbox(db))[before:]
    assert mail["to_address"] == OWNER
    assert mail["subject"] == "Atlas Scatter at Northwind Studio expires in 7 days"
    assert "expires on 2030-01-31 (UTC), in 7 days" in mail["body"]
    assert f"{PORTAL}/licensing" in mail["body"] and f"{PORTAL}/account/notifications" in mail["body"]
    assert mail["body"].startswith("Hello ")


async def test_each_mailable_kind_reaches_whom_it_is_for(db, gateway_db):
    joiner = demo_id("account", MEMBER2)
    request = await db.fetchval("SELECT r.id FROM credit_requests r JOIN accounts a ON a.id = r.account_id"
                                " WHERE a.email = $1", MEMBER3)
    amount = await db.fetchval("SELECT amount FROM credit_requests WHERE id = $1", request)
    cases = [
        ("INVITATION_ACCEPTED", {"organization_id": NORTHWIND, "data": {"invitation_id": str(uuid.uuid4()),
                                                                       "account_id": str(joiner)}},
         {OWNER, ADMIN}, f"({MEMBER2}) joined Northwind Studio"),
        ("INVOICE_PAYMENT_FAILED", {"organization_id": NORTHWIND, "data": {
            "invoice_id": "in_1", "amount_due": 123456, "currency": "eur", "reason": "card_declined"}},
         {OWNER, ADMIN}, "A payment of 1234.56 EUR for Northwind Studio failed"),
        ("LICENSE_EXPIRED", {"organization_id": GLOBEX, "data": {"license_id": str(demo_id(
            "license", "globex", "VAPOR-FX")), "expired_at": "2030-01-01T12:00:00+00:00"}},
         {"owner@globex.example", "admin@globex.example"}, "Vapor FX at Globex Visuals has expired"),
        ("CREDIT_REQUEST_RESOLVED", {"organization_id": NORTHWIND, "account_id": demo_id("account", MEMBER3),
                                     "data": {"request_id": str(request), "account_id": str(demo_id(
                                         "account", MEMBER3)), "outcome": "APPROVED"}},
         {MEMBER3}, f"Your request for {amount:,} cloud credits was approved"),
        # Not a mailable kind: nobody.
        ("MEMBER_LEFT", {"organization_id": NORTHWIND, "data": {"account_id": str(joiner), "email": MEMBER2}},
         set(), None),
    ]
    for kind, arguments, recipients, subject in cases:
        before = len(await outbox(db))
        async with gateway_db.transaction() as conn:
            await publish(conn, kind, **arguments)
        sent = (await outbox(db))[before:]
        assert {m["to_address"] for m in sent} == recipients, kind
        assert len(sent) == len(recipients)
        assert all(subject in m["subject"] for m in sent), (kind, sent)
    # The requester who opted out is not mailed.
    await set_preference(db, MEMBER3, "CREDIT_REQUEST_RESOLVED", False)
    before = len(await outbox(db))
    async with gateway_db.transaction() as conn:
        await publish(conn, "CREDIT_REQUEST_RESOLVED", organization_id=NORTHWIND,
                      account_id=demo_id("account", MEMBER3), data={"request_id": str(request), "outcome": "DENIED"})
    assert (await outbox(db))[before:] == []


async def test_a_rolled_back_change_queues_no_mail(db, gateway_db):
    before = await outbox(db)
    with pytest.raises(RuntimeError):
        async with gateway_db.transaction() as conn:
            await publish(conn, "CREDIT_POOL_LOW", organization_id=NORTHWIND,
                          data={"pool_id": str(NORTHWIND), "balance": 10, "threshold": 100})
            assert len(await conn.fetch("SELECT 1 FROM mail_outbox")) == len(before) + 2  # queued, in the transaction
            raise RuntimeError("the change fails after its event")
    assert await outbox(db) == before
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'CREDIT_POOL_LOW'") == 0


# --- the credit pool's alert threshold -------------------------------------------------------------


async def set_alert(gateway, token: str, threshold, organization_id: str | None = None) -> dict:
    variables = {"input": {"threshold": threshold, **({"organizationId": organization_id} if organization_id else {})}}
    return await gateway.execute(SET_ALERT, variables, token=token)


async def test_managers_set_and_clear_the_credit_pool_alert(gateway, db):
    admin = await gateway.login(ADMIN)
    body = await set_alert(gateway, admin, 5000)
    payload = body["data"]["setCreditPoolAlert"]
    assert payload["userErrors"] == [] and payload["pool"]["lowBalanceThreshold"] == 5000
    body = await gateway.execute(THRESHOLD, token=await gateway.login(OWNER))
    assert body["data"]["viewer"]["organization"]["creditPool"]["lowBalanceThreshold"] == 5000
    audit = await db.fetch("SELECT outcome, details::text FROM audit_log WHERE action = 'credits.set_alert'")
    assert [r["outcome"] for r in audit] == ["SUCCESS"]
    # The same value again changes nothing and audits nothing.
    await set_alert(gateway, admin, 5000)
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'credits.set_alert'") == 1
    payload = (await set_alert(gateway, admin, None))["data"]["setCreditPoolAlert"]
    assert payload["pool"]["lowBalanceThreshold"] is None
    assert await db.fetchval("SELECT credit_low_threshold FROM organizations WHERE id = $1", NORTHWIND) is None


@pytest.mark.parametrize("threshold", [-1, 1_000_000_001, 2_147_483_647])
async def test_a_bad_threshold_is_a_user_error_and_changes_nothing(gateway, db, threshold):
    admin = await gateway.login(ADMIN)
    await set_alert(gateway, admin, 100)
    payload = (await set_alert(gateway, admin, threshold))["data"]["setCreditPoolAlert"]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["input", "threshold"], "INVALID")]
    assert payload["pool"]["lowBalanceThreshold"] == 100
    assert await db.fetchval("SELECT credit_low_threshold FROM organizations WHERE id = $1", NORTHWIND) == 100


async def test_a_fraction_of_a_credit_is_refused_before_anything_runs(gateway):
    body = await set_alert(gateway, await gateway.login(ADMIN), 10.5)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_only_managers_set_their_own_organizations_alert(gateway, db):
    body = await set_alert(gateway, await gateway.login(MEMBER1), 100)
    assert body["data"] is None or body["data"]["setCreditPoolAlert"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    from strawberry import relay

    body = await set_alert(gateway, await gateway.login(ADMIN), 100, relay.to_base64("Organization", str(GLOBEX)))
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    assert await db.fetchval("SELECT count(*) FROM organizations WHERE credit_low_threshold IS NOT NULL") == 0


ACCEPT = """
mutation Accept($input: AcceptInvitationInput!) {
  acceptInvitation(input: $input) { account { email } userErrors { code } }
}
"""


async def test_an_accepted_invitation_mails_the_managers_who_want_it(gateway, db):
    """End to end: the mutation reports INVITATION_ACCEPTED, and its transaction queues the mail."""
    await set_preference(db, ADMIN, "INVITATION_ACCEPTED", False)
    before = len(await outbox(db))
    body = await gateway.execute(ACCEPT, {"input": {"token": "demo-invitation-northwind", "name": "Ina Vitee",
                                                    "password": "a-long-new-password-1"}})
    assert body["data"]["acceptInvitation"]["userErrors"] == [], body
    sent = [m for m in (await outbox(db))[before:] if "joined" in m["subject"]]
    assert [(m["to_address"], m["subject"]) for m in sent] == [
        (OWNER, "Ina Vitee (invitee@northwind.example) joined Northwind Studio")]
    assert "https://portal.account-gateway.example/organization" in sent[0]["body"]  # the app's PORTAL_URL
