"""The event log as the changes write it: each change the issue lists, run for real (a mutation
over HTTP, a signed provider webhook), leaves exactly its events, with the organization, the
account, the actor and the data that resolvers/events.py documents; a refused change, one that
fails half-way and an idempotent replay leave none; and ids come in commit order under
concurrency, so a reader past a high-water mark never misses one.

One executor: what is written does not depend on how queries are executed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import asyncpg
import jwt
import pytest

from datasources.errors import ProviderUnavailable
from datasources.payments.client import PaymentsClient
from datasources.postgres import events as event_log
from gateway.demo import demo_id
from tests.provider_subscriptions import billed  # noqa: F401  (a fixture)
from tests.conftest import production_executor_only
from tests.test_billing_mutations import DECLINES_AT_CHARGE, PAY_BALANCE, PAY_INVOICE, key, make_customer, provider
from tests.test_people_mutations import ACCEPT, CHANGE_ROLE, INVITE, REMOVE, RESEND, gid, invite_input, mailed_token
from tests.test_refresh_tokens import LOGOUT, REFRESH, rotated, sign_in
from tests.test_seat_mutations import ALLOCATE, REVOKE
from tests.test_staff import ADJUST, CHANGE_EMAIL, EXTEND, GRANT, make_staff
from tests.test_staff import RESEND as STAFF_RESEND
from tests.test_subscription_mutations import SET_AUTO_RENEW, renews_in
from tests.test_webhooks import SECRET, deliver, event, provider_object

pytestmark = production_executor_only
__all__ = ["provider"]  # a fixture used here, defined with the billing tests

NORTHWIND = demo_id("organization", "northwind")
LUMEN = demo_id("license", "northwind", "LUMEN-RENDER")
ATLAS = demo_id("license", "northwind", "ATLAS-SCATTER")
VAPOR = demo_id("license", "northwind", "VAPOR-FX")
LUMEN_SUBSCRIPTION = demo_id("subscription", "northwind", "LUMEN-RENDER")
ATLAS_SUBSCRIPTION = demo_id("subscription", "northwind", "ATLAS-SCATTER")
DEMO_INVITATION = demo_id("invitation", "northwind")
ADMIN = "admin@northwind.example"
CHANGE_PASSWORD = """
mutation Change($input: ChangePasswordInput!) {
  changePassword(input: $input) { otherSessionsEnded userErrors { code } }
}
"""
SET_ACCESS = """
mutation SetAccess($input: SetCreditAccessInput!) {
  setCreditAccess(input: $input) { userErrors { field code } }
}
"""
REQUEST = """
mutation Request($input: RequestCreditsInput!) {
  requestCredits(input: $input) { request { id } userErrors { field code } }
}
"""


def account(email: str) -> UUID:
    return demo_id("account", email)


async def written(db, after: int = 0) -> list[dict[str, Any]]:
    """The log past `after`, in id order: what each row says (ids of the log left out)."""
    rows = await db.fetch("SELECT id, type, organization_id, account_id, actor_account_id, data::text AS data"
                          " FROM event_log WHERE id > $1 ORDER BY id", after)
    return [{"type": r["type"], "organization_id": r["organization_id"], "account_id": r["account_id"],
             "actor": r["actor_account_id"], "data": json.loads(r["data"])} for r in rows]


async def mark(db) -> int:
    return await event_log.last_id(db)


def row(type_: str, data: dict[str, Any], *, actor: UUID | None, account_id: UUID | None = None,
        organization_id: UUID | None = NORTHWIND) -> dict[str, Any]:
    return {"type": type_, "organization_id": organization_id, "account_id": account_id, "actor": actor,
            "data": data}


async def payload(gateway, query: str, variables: dict[str, Any], token: str | None) -> dict[str, Any]:
    body = await gateway.execute(query, variables, token=token)
    assert "errors" not in body, json.dumps(body)
    [found] = body["data"].values()
    return found


# --- members and invitations ---------------------------------------------------------------------


async def test_inviting_reports_one_invitation_sent_per_invitation_and_a_replay_none(gateway, db):
    token = await gateway.login(ADMIN)
    before = await mark(db)
    variables = invite_input("a@example.com", ("b@example.com", "ADMIN"), "c@example.com",
                             "member1@northwind.example", key="invite-1")
    sent = await payload(gateway, INVITE, variables, token)
    ids = {r["email"]: r["invitation"]["id"] for r in sent["results"] if r["invitation"]}
    assert [r["userErrors"][0]["code"] for r in sent["results"] if not r["invitation"]] == ["ALREADY_MEMBER"]
    invitation_ids = await db.fetch("SELECT id, email FROM invitations WHERE email = ANY($1::text[])", list(ids))
    by_email = {r["email"]: str(r["id"]) for r in invitation_ids}
    assert await written(db, before) == [
        row("INVITATION_SENT", {"invitation_id": by_email[email], "email": email, "role": role, "resent": False},
            actor=account(ADMIN))
        for email, role in (("a@example.com", "MEMBER"), ("b@example.com", "ADMIN"), ("c@example.com", "MEMBER"))]

    after_first = await mark(db)
    assert (await payload(gateway, INVITE, variables, token))["results"] == sent["results"]  # the replay
    refused = await payload(gateway, INVITE, invite_input(key=""), token)  # no one, and a bad key
    assert {e["code"] for e in refused["userErrors"]} == {"REQUIRED", "INVALID"}
    assert await written(db, after_first) == []


async def test_resending_reports_the_invitation_sent_again(gateway, db):
    token = await gateway.login(ADMIN)
    before = await mark(db)
    resent = await payload(gateway, RESEND, {"input": {"invitationId": gid("Invitation", DEMO_INVITATION)}}, token)
    assert resent["userErrors"] == []
    assert await written(db, before) == [row("INVITATION_SENT", {
        "invitation_id": str(DEMO_INVITATION), "email": "invitee@northwind.example", "role": "MEMBER",
        "resent": True}, actor=account(ADMIN))]


async def test_accepting_reports_the_invitation_accepted_and_the_member_joined_by_the_joiner(gateway, db):
    token = await gateway.login(ADMIN)
    await payload(gateway, INVITE, invite_input(("newcomer@example.com", "ADMIN")), token)
    link = await mailed_token(db, "newcomer@example.com")
    invitation = await db.fetchval("SELECT id FROM invitations WHERE email = 'newcomer@example.com'")
    before = await mark(db)
    wrong = {"input": {"token": link + "x", "name": "New Comer", "password": "correct horse battery"}}
    refused = await payload(gateway, ACCEPT, wrong, None)
    assert [e["code"] for e in refused["userErrors"]] == ["INVITATION_NOT_PENDING"]
    assert await written(db, before) == []

    accepted = await payload(gateway, ACCEPT, {"input": {**wrong["input"], "token": link}}, None)
    joined = UUID(await db.fetchval("SELECT id::text FROM accounts WHERE email = 'newcomer@example.com'"))
    assert accepted["userErrors"] == []
    assert await written(db, before) == [
        row("INVITATION_ACCEPTED", {"invitation_id": str(invitation), "account_id": str(joined)}, actor=joined),
        row("MEMBER_JOINED", {"account_id": str(joined), "role": "ADMIN"}, actor=joined)]


async def test_role_changes_and_removals_report_their_events_and_refusals_none(gateway, db):
    token = await gateway.login("owner@northwind.example")
    member3, member1 = account("member3@northwind.example"), account("member1@northwind.example")
    owner = account("owner@northwind.example")
    before = await mark(db)

    def change(who: UUID, role: str) -> dict[str, Any]:
        return {"input": {"accountId": gid("Account", who), "role": role}}

    assert (await payload(gateway, CHANGE_ROLE, change(member3, "ADMIN"), token))["userErrors"] == []
    assert (await payload(gateway, CHANGE_ROLE, change(member3, "ADMIN"), token))["userErrors"] == []  # no change
    protected = await payload(gateway, CHANGE_ROLE, change(owner, "MEMBER"), token)
    assert [e["code"] for e in protected["userErrors"]] == ["OWNER_PROTECTED"]
    holds = await payload(gateway, REMOVE, {"input": {"accountId": gid("Account", member1)}}, token)
    assert [e["code"] for e in holds["userErrors"]] == ["HOLDS_SEATS"]  # seats, and no revokeSeats
    assert await written(db, before) == [row("MEMBER_ROLE_CHANGED", {
        "account_id": str(member3), "old_role": "MEMBER", "new_role": "ADMIN"}, actor=owner)]

    middle = await mark(db)
    removed = await payload(gateway, REMOVE, {"input": {"accountId": gid("Account", member1), "revokeSeats": True}},
                            token)
    assert removed["userErrors"] == [] and removed["revokedSeatCount"] == 2
    revoked = [row("SEAT_REVOKED", {"license_id": str(lic), "account_id": str(member1)}, actor=owner,
                   account_id=member1) for lic in (LUMEN, ATLAS)]
    found = await written(db, middle)
    assert sorted(found[:2], key=lambda r: r["data"]["license_id"]) == sorted(
        revoked, key=lambda r: r["data"]["license_id"])
    assert found[2:] == [row("MEMBER_LEFT", {"account_id": str(member1), "email": "member1@northwind.example",
                                             "role": "MEMBER"}, actor=owner)]


# --- seats ---------------------------------------------------------------------------------------


async def test_seats_allocated_and_revoked_are_the_holders_events_too_and_a_replay_reports_none(gateway, db):
    token = await gateway.login(ADMIN)
    member3, member4, member1 = (account(f"member{n}@northwind.example") for n in (3, 4, 1))
    before = await mark(db)
    variables = {"input": {"licenseId": gid("License", LUMEN), "idempotencyKey": "seats-1",
                           "accountIds": [gid("Account", a) for a in (member3, member1, member4)]}}
    allocated = await payload(gateway, ALLOCATE, variables, token)
    assert [e["code"] for e in allocated["userErrors"]] == ["ALREADY_ALLOCATED"]  # member1: partly done
    assert await written(db, before) == [
        row("SEAT_ALLOCATED", {"license_id": str(LUMEN), "account_id": str(a)}, actor=account(ADMIN), account_id=a)
        for a in (member3, member4)]
    # The holder's own events, as viewerEvents reads them.
    assert [e.type for e in await event_log.for_account(db, member3, before, ["SEAT_ALLOCATED"])] == ["SEAT_ALLOCATED"]

    middle = await mark(db)
    assert (await payload(gateway, ALLOCATE, variables, token)) == allocated  # the replay
    expired = {"input": {"licenseId": gid("License", VAPOR), "accountIds": [gid("Account", member3)]}}
    assert [e["code"] for e in (await payload(gateway, ALLOCATE, expired, token))["userErrors"]] == ["LICENSE_EXPIRED"]
    assert await written(db, middle) == []

    revoked = await payload(gateway, REVOKE, {"input": {"licenseId": gid("License", LUMEN),
                                                        "accountIds": [gid("Account", member4)]}}, token)
    assert revoked["userErrors"] == []
    assert await written(db, middle) == [row("SEAT_REVOKED", {"license_id": str(LUMEN), "account_id": str(member4)},
                                             actor=account(ADMIN), account_id=member4)]


async def test_ids_follow_commit_order_so_a_reader_past_its_high_water_mark_misses_nothing(gateway, db, database_url):
    """20 admins' allocations at once, each of six seats of its own license (so that nothing but the
    log orders them), while a reader follows the log the way a gateway process does: woken by
    NOTIFY (and polling besides), it asks for ids past the highest it has seen. Were an id handed
    out before another but committed after it, the reader would step past it and never see it."""
    licenses = [uuid.uuid4() for _ in range(20)]
    await db.executemany("INSERT INTO licenses (id, organization_id, product_id, kind, seat_model, quantity,"
                         " expires_at) SELECT $1, organization_id, product_id, kind, seat_model, 10, expires_at"
                         " FROM licenses WHERE id = $2", [(lic, LUMEN) for lic in licenses])
    members = [gid("Account", account(f"member{n}@northwind.example")) for n in range(1, 7)]
    token = await gateway.login(ADMIN)
    start = await mark(db)
    seen: list[int] = []
    woken = asyncio.Event()
    reader = await asyncpg.connect(database_url)
    await reader.add_listener(event_log.CHANNEL, lambda *_: woken.set())
    done = False

    async def follow() -> None:
        high = start
        while True:
            finished = done  # read once more after the last commit
            for found in await event_log.after(reader, high):
                seen.append(found.id)
                high = max(high, found.id)
            if finished:
                return
            woken.clear()
            try:
                await asyncio.wait_for(woken.wait(), 0.002)
            except TimeoutError:
                pass

    following = asyncio.create_task(follow())
    try:
        answers = await asyncio.gather(*(
            payload(gateway, ALLOCATE, {"input": {"licenseId": gid("License", lic), "accountIds": members}}, token)
            for lic in licenses))
        done = True
        await following
    finally:
        await reader.close()
    assert all(a["userErrors"] == [] for a in answers)
    ids = [r["id"] for r in await db.fetch("SELECT id FROM event_log WHERE id > $1 ORDER BY id", start)]
    assert len(ids) == 20 * 6
    assert seen == ids  # every one, each once, in id order


# --- staff on a customer's behalf ----------------------------------------------------------------


async def test_staff_changes_report_their_event_and_the_staff_action_with_scope_and_reason(gateway, db, billed):
    await make_staff(db, "BILLING", "billing@vendor.example")
    agent = await db.fetchval("SELECT id FROM accounts WHERE email = 'billing@vendor.example'")
    token = await gateway.login("billing@vendor.example")
    before = await mark(db)

    def staff_action(action: str, target: str, reason: str) -> dict[str, Any]:
        return row("STAFF_ACTION_TAKEN", {"action": action, "target": target, "scope": "BILLING", "reason": reason},
                   actor=agent)

    below = {"input": {"licenseId": gid("License", LUMEN), "quantity": 3, "reason": "downsized"}}
    assert [e["code"] for e in (await payload(gateway, ADJUST, below, token))["userErrors"]] == ["SEATS_ALLOCATED"]
    blank = {"input": {"licenseId": gid("License", LUMEN), "quantity": 12, "reason": " "}}
    assert [e["code"] for e in (await payload(gateway, ADJUST, blank, token))["userErrors"]] == ["REQUIRED"]
    assert await written(db, before) == []

    adjusted = {"input": {"licenseId": gid("License", LUMEN), "quantity": 12, "reason": "two more seats"}}
    assert (await payload(gateway, ADJUST, adjusted, token))["userErrors"] == []
    later = datetime.now(timezone.utc) + timedelta(days=400)
    extended = {"input": {"licenseId": gid("License", ATLAS), "expiresAt": later.isoformat(),
                          "reason": "renewal agreed by phone"}}
    assert (await payload(gateway, EXTEND, extended, token))["userErrors"] == []
    grant = {"input": {"organizationId": gid("Organization", NORTHWIND), "amount": 500, "reason": "goodwill",
                       "idempotencyKey": "g-1"}}
    assert (await payload(gateway, GRANT, grant, token))["userErrors"] == []
    assert (await payload(gateway, GRANT, grant, token))["userErrors"] == []  # the replay
    grant_id = await db.fetchval("SELECT id::text FROM credit_grants WHERE source = 'VENDOR'")
    found = await written(db, before)
    renewed_at = found[3]["data"].pop("renews_at")
    assert datetime.fromisoformat(renewed_at) == later
    assert found == [
        # The provider bills the subscription's seats: the customer's own path (resolvers/seat_quantity.py).
        staff_action("subscription.seats", f"Subscription:{LUMEN_SUBSCRIPTION}", "two more seats"),
        row("LICENSE_QUANTITY_CHANGED", {"license_id": str(LUMEN), "old_quantity": 10, "new_quantity": 12},
            actor=agent),
        staff_action("license.extend", str(ATLAS), "renewal agreed by phone"),
        row("SUBSCRIPTION_RENEWED", {"subscription_id": str(ATLAS_SUBSCRIPTION), "license_id": str(ATLAS)},
            actor=agent),
        staff_action("credits.grant", grant_id, "goodwill")]


async def test_support_resends_and_changes_an_email_with_the_sessions_it_ends(gateway, db):
    await make_staff(db, "SUPPORT", "agent@vendor.example")
    agent = await db.fetchval("SELECT id FROM accounts WHERE email = 'agent@vendor.example'")
    token = await gateway.login("agent@vendor.example")
    member2 = account("member2@northwind.example")
    sessions = [jwt.decode(t, options={"verify_signature": False})["sid"]
                for t, _ in [await sign_in(gateway, "member2@northwind.example") for _ in range(2)]]
    before = await mark(db)
    resent = {"input": {"invitationId": gid("Invitation", DEMO_INVITATION), "reason": "lost the mail"}}
    assert (await payload(gateway, STAFF_RESEND, resent, token))["userErrors"] == []
    changed = {"input": {"accountId": gid("Account", member2), "email": "m2@example.com", "reason": "married"}}
    assert (await payload(gateway, CHANGE_EMAIL, changed, token))["sessionsEnded"] == 2

    def staff_action(action: str, target: str, reason: str) -> dict[str, Any]:
        return row("STAFF_ACTION_TAKEN", {"action": action, "target": target, "scope": "SUPPORT", "reason": reason},
                   actor=agent)

    found = await written(db, before)
    assert found[:3] == [
        staff_action("invitation.resend", "invitee@northwind.example", "lost the mail"),
        row("INVITATION_SENT", {"invitation_id": str(DEMO_INVITATION), "email": "invitee@northwind.example",
                                "role": "MEMBER", "resent": True}, actor=agent),
        staff_action("account.email_change", "m2@example.com", "married")]
    assert sorted(found[3:], key=lambda r: r["data"]["session_id"]) == [
        row("SESSION_ENDED", {"session_id": s, "reason": "EMAIL_CHANGED"}, actor=agent, account_id=member2,
            organization_id=None) for s in sorted(sessions)]


# --- subscriptions and credits -------------------------------------------------------------------


async def test_auto_renew_off_reports_the_subscription_ending_and_back_on_renewed(gateway, db):
    token = await gateway.login(ADMIN)
    end = await renews_in(db, gid("Subscription", LUMEN_SUBSCRIPTION), timedelta(days=90))
    before = await mark(db)

    def switch(on: bool) -> dict[str, Any]:
        return {"input": {"subscriptionId": gid("Subscription", LUMEN_SUBSCRIPTION), "autoRenew": on}}

    assert (await payload(gateway, SET_AUTO_RENEW, switch(False), token))["userErrors"] == []
    assert (await payload(gateway, SET_AUTO_RENEW, switch(False), token))["userErrors"] == []  # already off
    assert (await payload(gateway, SET_AUTO_RENEW, switch(True), token))["userErrors"] == []
    await renews_in(db, gid("Subscription", LUMEN_SUBSCRIPTION), timedelta(days=3))
    late = await payload(gateway, SET_AUTO_RENEW, switch(False), token)
    assert [e["code"] for e in late["userErrors"]] == ["CUTOFF_PASSED"]
    found = await written(db, before)
    assert [datetime.fromisoformat(r["data"].pop(k)) for r, k in zip(found, ("ends_at", "renews_at"))] == [end, end]
    assert found == [row(kind, {"subscription_id": str(LUMEN_SUBSCRIPTION)}, actor=account(ADMIN))
                     for kind in ("SUBSCRIPTION_ENDING", "SUBSCRIPTION_RENEWED")]


async def test_credit_access_changes_are_each_members_events_and_requests_the_organizations(gateway, db):
    token = await gateway.login(ADMIN)
    member1, member3 = account("member1@northwind.example"), account("member3@northwind.example")
    before = await mark(db)
    quota = {"input": {"accountIds": [gid("Account", member1), gid("Account", member3)], "mode": "QUOTA",
                       "quota": 250}}
    assert (await payload(gateway, SET_ACCESS, quota, token))["userErrors"] == []
    assert (await payload(gateway, SET_ACCESS, quota, token))["userErrors"] == []  # nothing changes
    bad = {"input": {"accountIds": [gid("Account", member1)], "mode": "QUOTA"}}
    assert [e["code"] for e in (await payload(gateway, SET_ACCESS, bad, token))["userErrors"]] == ["INVALID"]
    # member1 had the default (UNLIMITED), member3 a QUOTA of 500: both change, in input order.
    assert await written(db, before) == [
        row("CREDIT_ACCESS_CHANGED", {"account_id": str(a), "mode": "QUOTA", "quota": 250}, actor=account(ADMIN),
            account_id=a) for a in (member1, member3)]

    middle = await mark(db)
    member_token = await gateway.login("member1@northwind.example")
    refused = await payload(gateway, REQUEST, {"input": {"amount": 0, "note": ""}}, member_token)
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID"]
    made = await payload(gateway, REQUEST, {"input": {"amount": 300, "note": "a big render"}}, member_token)
    request_id = await db.fetchval("SELECT id::text FROM credit_requests WHERE amount = 300")
    assert made["userErrors"] == []
    assert await written(db, middle) == [row("CREDIT_REQUEST_MADE", {
        "request_id": request_id, "account_id": str(member1), "amount": 300}, actor=member1)]


# --- sessions ------------------------------------------------------------------------------------


def session_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sid"]


async def test_every_session_ended_other_than_by_expiry_is_the_accounts_event(gateway, db):
    member1 = account("member1@northwind.example")
    first, first_refresh = await sign_in(gateway)
    second, _ = await sign_in(gateway)
    third, _ = await sign_in(gateway)
    before = await mark(db)

    def ended(token: str, reason: str) -> dict[str, Any]:  # each ended by the account itself
        return row("SESSION_ENDED", {"session_id": session_of(token), "reason": reason}, actor=member1,
                   account_id=member1, organization_id=None)

    assert (await payload(gateway, LOGOUT, {"all": False}, third))["revoked"] == 1
    assert await written(db, before) == [ended(third, "SIGNED_OUT")]

    middle = await mark(db)
    wrong = {"input": {"currentPassword": "not-it", "newPassword": "a-much-better-passphrase"}}
    assert [e["code"] for e in (await payload(gateway, CHANGE_PASSWORD, wrong, second))["userErrors"]] == [
        "WRONG_PASSWORD"]
    assert await written(db, middle) == []
    changed = {"input": {"currentPassword": "demo-password", "newPassword": "a-much-better-passphrase"}}
    assert (await payload(gateway, CHANGE_PASSWORD, changed, second))["otherSessionsEnded"] == 1
    assert await written(db, middle) == [ended(first, "PASSWORD_CHANGED")]

    # The first session's refresh token after its session ended: refused, and nothing more ends.
    middle = await mark(db)
    assert (await gateway.execute(REFRESH, {"refreshToken": first_refresh}))["data"]["refreshToken"]["token"] is None
    assert await written(db, middle) == []

    fourth = await gateway.login("member1@northwind.example", "a-much-better-passphrase")
    assert (await payload(gateway, LOGOUT, {"all": True}, second))["revoked"] == 2
    found = await written(db, middle)
    assert sorted(found, key=lambda r: r["data"]["session_id"]) == sorted(
        [ended(second, "SIGNED_OUT_EVERYWHERE"), ended(fourth, "SIGNED_OUT_EVERYWHERE")],
        key=lambda r: r["data"]["session_id"])


async def test_a_reused_refresh_token_ends_its_session_with_no_actor(gateway, db):
    token, first = await sign_in(gateway)
    _, second = await rotated(gateway, first)
    await rotated(gateway, second)
    before = await mark(db)
    assert (await gateway.execute(REFRESH, {"refreshToken": first}))["data"]["refreshToken"]["token"] is None
    assert await written(db, before) == [row("SESSION_ENDED", {"session_id": session_of(token),
                                                               "reason": "REFRESH_TOKEN_REUSED"},
                                             actor=None, account_id=account("member1@northwind.example"),
                                             organization_id=None)]


# --- invoices ------------------------------------------------------------------------------------


def paid(invoice_id: str, amount: int, currency: str = "USD") -> dict[str, Any]:
    return row("INVOICE_PAID", {"invoice_id": invoice_id, "amount_paid": amount, "currency": currency},
               actor=account(ADMIN))


async def test_paying_reports_each_invoice_paid_once_and_a_replay_or_a_user_error_nothing(gateway, provider, db):
    fresh = await make_customer(provider, db)
    token = await gateway.login(ADMIN)
    before = await mark(db)
    no_key = await gateway.execute(PAY_INVOICE, {"input": {"invoiceId": gid("Invoice", fresh.usd_open[0]),
                                                           "idempotencyKey": ""}}, token=token)
    assert [e["code"] for e in no_key["data"]["payInvoice"]["userErrors"]] == ["INVALID"]
    variables = {"input": {"invoiceId": gid("Invoice", fresh.usd_open[0]), "idempotencyKey": key()}}
    assert (await payload(gateway, PAY_INVOICE, variables, token))["userErrors"] == []
    assert (await payload(gateway, PAY_INVOICE, variables, token))["userErrors"] == []  # the replay
    assert await written(db, before) == [paid(fresh.usd_open[0], 20_000)]

    middle = await mark(db)
    balance = await payload(gateway, PAY_BALANCE, {"input": {"currency": "USD", "idempotencyKey": key()}}, token)
    assert balance["userErrors"] == []
    assert await written(db, middle) == [paid(fresh.usd_open[1], 5_000)]


async def test_a_declined_payment_reports_the_failure_and_no_payment(gateway, provider, db):
    fresh = await make_customer(provider, db, card=DECLINES_AT_CHARGE)
    token = await gateway.login(ADMIN)
    before = await mark(db)
    declined = await payload(gateway, PAY_INVOICE, {"input": {"invoiceId": gid("Invoice", fresh.eur_open),
                                                              "idempotencyKey": key()}}, token)
    assert declined["declineReason"] == "CARD_DECLINED"
    assert await written(db, before) == [row("INVOICE_PAYMENT_FAILED", {
        "invoice_id": fresh.eur_open, "amount_due": 14_000, "currency": "EUR", "reason": "CARD_DECLINED"},
        actor=account(ADMIN))]


async def test_a_payment_that_fails_half_way_reports_nothing_until_its_retry_succeeds(gateway, provider, db,
                                                                                      monkeypatch):
    """The balance's second invoice meets a provider failure after the first was paid: the
    request answers PROVIDER_UNAVAILABLE and its transaction, events included, rolls back. The
    retry with the same key reports both invoices paid."""
    fresh = await make_customer(provider, db)
    token = await gateway.login(ADMIN)
    original = PaymentsClient.pay_invoice
    calls: list[str] = []

    async def down_at_the_second(self, invoice_id, **kwargs):
        calls.append(invoice_id)
        if len(calls) == 2:
            raise ProviderUnavailable("The payment provider is unavailable; try again shortly.")
        return await original(self, invoice_id, **kwargs)

    monkeypatch.setattr(PaymentsClient, "pay_invoice", down_at_the_second)
    before = await mark(db)
    variables = {"input": {"currency": "USD", "idempotencyKey": key()}}
    body = await gateway.execute(PAY_BALANCE, variables, token=token)
    assert body["errors"][0]["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
    assert await written(db, before) == []

    assert (await payload(gateway, PAY_BALANCE, variables, token))["userErrors"] == []
    assert await written(db, before) == [paid(fresh.usd_open[0], 20_000), paid(fresh.usd_open[1], 5_000)]


@pytest.fixture
async def hooked(app_for, settings):
    return await app_for(settings.with_(stripe_webhook_secret=SECRET))


async def test_provider_events_report_invoices_created_paid_and_failed_once_each(hooked, services, provider, db):
    fresh = await make_customer(provider, db)
    api = services.stripe_api_base
    before = await mark(db)
    created = await provider.create_invoice(fresh.customer_id, currency="EUR", lines=[("Render seats", 1, 4_000)],
                                            tax_percent=None, pay=False, idempotency_key=key())
    raw = await provider_object(api, f"/v1/invoices/{created.id}")
    created_event = event("invoice.created", raw)
    for body in (created_event, created_event):  # and its redelivery
        assert (await deliver(hooked, body)).status_code == 200
    unknown = event("invoice.created", {**raw, "id": "in_elsewhere", "customer": "cus_unknown"})
    assert (await deliver(hooked, unknown)).json()["applied"] is False

    await provider.pay_invoice(fresh.usd_open[0], idempotency_key=key())  # paid outside the gateway
    invoice = await provider_object(api, f"/v1/invoices/{fresh.usd_open[0]}")
    intent = await provider_object(api, f"/v1/payment_intents/{invoice['payment_intent']}")
    for body in (event("invoice.paid", invoice), event("payment_intent.succeeded", intent)):
        assert (await deliver(hooked, body)).json()["applied"] is True
    # The gateway's own payment of an invoice the provider then reports paid: one event.
    token = await hooked.login(ADMIN)
    assert (await payload(hooked, PAY_INVOICE, {"input": {"invoiceId": gid("Invoice", fresh.usd_open[1]),
                                                          "idempotencyKey": key()}}, token))["userErrors"] == []
    assert (await deliver(hooked, event("invoice.paid", await provider_object(
        api, f"/v1/invoices/{fresh.usd_open[1]}")))).json()["applied"] is True

    assert await written(db, before) == [
        row("INVOICE_CREATED", {"invoice_id": created.id, "amount_due": 4_000, "currency": "EUR"}, actor=None),
        row("INVOICE_PAID", {"invoice_id": fresh.usd_open[0], "amount_paid": 20_000, "currency": "USD"}, actor=None),
        paid(fresh.usd_open[1], 5_000)]


async def test_a_failed_payment_event_reports_the_failure_with_the_gateways_reason(hooked, services, provider, db):
    fresh = await make_customer(provider, db, card=DECLINES_AT_CHARGE)
    with pytest.raises(Exception):
        await provider.pay_invoice(fresh.eur_open, idempotency_key=key())
    raw = await provider_object(services.stripe_api_base, f"/v1/invoices/{fresh.eur_open}")
    intent = await provider_object(services.stripe_api_base, f"/v1/payment_intents/{raw['payment_intent']}")
    before = await mark(db)
    assert (await deliver(hooked, event("payment_intent.payment_failed", intent))).json()["applied"] is True
    assert await written(db, before) == [row("INVOICE_PAYMENT_FAILED", {
        "invoice_id": fresh.eur_open, "amount_due": 14_000, "currency": "EUR", "reason": "CARD_DECLINED"},
        actor=None)]
