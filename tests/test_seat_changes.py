"""Seats and billing as one picture (issue 18), against the real emulator and PostgreSQL.

Each test gives Northwind a provider customer of its own (tests/provider_subscriptions.py: a Visa
as default card, or a card that is refused). Time passing at the
provider is the emulator's `/_config/subscriptions/{id}/renew`; its events reach the gateway as
the provider delivers them (signed, to `/webhooks/payments`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from datasources.payments.client import PaymentsClient
from datasources.payments.emulator import EMULATOR_API_KEY
from datasources.postgres.database import Database
from gateway.demo import demo_id
from gateway.scheduler import Scheduler
from gateway.settings import Settings
from tests.conftest import Gateway
from tests.provider_subscriptions import LUMEN_SUBSCRIPTION, NORTHWIND, VISA, Billed, billed, refusing  # noqa: F401
from tests.test_provider_faults import ADMIN, TIMEOUT, Proxy, gid, key
from tests.test_staff import make_staff
from tests.test_webhooks import SECRET, deliver, signature

LUMEN = demo_id("license", "northwind", "LUMEN-RENDER")
MEMBER = demo_id("account", "member5@northwind.example")  # holds no Lumen seat
CHANGE = """
mutation Change($input: ChangeSeatQuantityInput!) {
  changeSeatQuantity(input: $input) {
    subscription { seats scheduledSeats scheduledSeatsAt autoRenew status }
    preview { seats amountDueNow { amount currency } nextInvoiceTotal { amount } nextInvoiceAt effectiveAt }
    invoice { status total { amount } lines { description } }
    userErrors { field message code }
  }
}
"""
ALLOCATE = """
mutation A($input: AllocateLicenseInput!) { allocateLicense(input: $input) { userErrors { code } } }
"""
LICENSE = "query L($id: ID!) { node(id: $id) { ... on License { quantity status graceUntil allocatedCount } } }"
PAY = """
mutation Pay($input: PayInvoiceInput!) {
  payInvoice(input: $input) {
    preview { amount { amount currency } paymentMethod { last4 } invoices { id } }
    invoice { status } userErrors { code }
  }
}
"""


@pytest.fixture
async def hooked(app_for, settings: Settings) -> Gateway:
    return await app_for(settings.with_(stripe_webhook_secret=SECRET))


async def change(gateway: Gateway, quantity: int, *, dry_run: bool = False, idempotency_key: str | None = None,
                 token: str | None = None) -> dict[str, Any]:
    body = await gateway.execute(CHANGE, {"input": {
        "subscriptionId": gid("Subscription", str(LUMEN_SUBSCRIPTION)), "quantity": quantity, "dryRun": dry_run,
        "idempotencyKey": idempotency_key}}, token=token or await gateway.login(ADMIN))
    assert "errors" not in body, body
    return body["data"]["changeSeatQuantity"]


async def rows(db) -> tuple[Any, ...]:
    """What PostgreSQL holds of the Lumen subscription and license."""
    s = await db.fetchrow("SELECT seats, scheduled_seats, status, auto_renew, past_due_since IS NOT NULL AS past_due"
                          " FROM subscriptions WHERE id = $1", LUMEN_SUBSCRIPTION)
    quantity, grace = await db.fetchrow("SELECT quantity, grace_until FROM licenses WHERE id = $1", LUMEN)
    return (*s.values(), quantity, grace)


async def writes(db) -> tuple[int, int, int]:
    """Audit entries, idempotency records and events: a dry run adds none."""
    return (await db.fetchval("SELECT count(*) FROM audit_log"), await db.fetchval("SELECT count(*) FROM idempotency_records"),
            await db.fetchval("SELECT count(*) FROM event_log"))


async def deliver_events(gateway: Gateway, billed: Billed, type_: str) -> list[dict[str, Any]]:
    """Delivers the provider's events of this type, signed as the provider signs them."""
    answers = []
    for found in await billed.events(type_):
        body = json.dumps(found).encode()
        answer = await deliver(gateway, body, signature(body))
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    return answers


# --- the dry run first ---------------------------------------------------------------------------


async def test_a_dry_run_shows_the_providers_prices_and_changes_nothing(gateway, billed, db):
    await change(gateway, 10, dry_run=True)  # creates the provider side (no charge), like the startup sync
    before_provider, before_rows, before_writes = await billed.subscription(db), await rows(db), await writes(db)
    assert before_provider.quantity == 10 and await billed.invoices() == []

    more = await change(gateway, 12, dry_run=True)
    assert more["userErrors"] == [] and more["invoice"] is None
    preview = more["preview"]
    assert preview["seats"] == 12 and preview["amountDueNow"]["currency"] == "USD"
    # Two seats at 699.00 a year for the ~200 days left of the period: the provider's proration.
    assert 2 * 69_900 * 190 / 365 < preview["amountDueNow"]["amount"] < 2 * 69_900 * 210 / 365
    assert preview["nextInvoiceTotal"]["amount"] == 12 * 69_900
    fewer = (await change(gateway, 6, dry_run=True))["preview"]
    assert fewer["amountDueNow"]["amount"] == 0 and fewer["nextInvoiceTotal"]["amount"] == 6 * 69_900
    assert fewer["effectiveAt"] == fewer["nextInvoiceAt"] != preview["effectiveAt"]

    assert await billed.subscription(db) == before_provider
    assert await billed.invoices() == []
    assert await rows(db) == before_rows and await writes(db) == before_writes

    # The charge the preview announced is the charge made.
    done = await change(gateway, 12, idempotency_key="buy-2")
    assert abs(done["invoice"]["total"]["amount"] - preview["amountDueNow"]["amount"]) <= 2  # seconds later


# --- more seats ----------------------------------------------------------------------------------


async def test_more_seats_are_there_at_once_with_one_prorated_invoice_paid(gateway, billed, db):
    done = await change(gateway, 13, idempotency_key=key())
    assert done["userErrors"] == []
    assert done["subscription"]["seats"] == 13
    assert done["invoice"]["status"] == "PAID" and "3 more seat" in done["invoice"]["lines"][0]["description"]
    invoices = await billed.invoices()
    assert [(i.status, i.total) for i in invoices] == [("PAID", done["invoice"]["total"]["amount"])]
    assert (await billed.subscription(db)).quantity == 13
    assert (await rows(db))[0] == 13 and (await rows(db))[5] == 13  # subscription seats = license quantity
    events = await db.fetch("SELECT type, data FROM event_log WHERE type = 'LICENSE_QUANTITY_CHANGED'")
    assert [(e["type"], json.loads(e["data"])["new_quantity"]) for e in events] == [("LICENSE_QUANTITY_CHANGED", 13)]


async def test_a_refused_card_leaves_everything_as_it_was(gateway, refusing, db):
    await change(gateway, 10, dry_run=True)
    before = await refusing.subscription(db), await rows(db)
    refused = await change(gateway, 11, idempotency_key="k-refused")
    assert [e["code"] for e in refused["userErrors"]] == ["PAYMENT_DECLINED"]
    assert refused["subscription"]["seats"] == 10 and refused["invoice"] is None
    assert (await refusing.subscription(db), await rows(db)) == before
    assert await refusing.invoices() == []  # no invoice left behind at the provider
    assert await db.fetchval("SELECT outcome FROM audit_log WHERE action = 'subscription.seats'") == "REFUSED"


async def test_one_idempotency_key_never_charges_twice_even_in_a_burst(gateway, billed, db):
    token = await gateway.login(ADMIN)
    answers = await asyncio.gather(*(change(gateway, 11, idempotency_key="same-key", token=token) for _ in range(6)))
    assert all(a["userErrors"] == [] for a in answers), answers
    assert len(await billed.invoices()) == 1
    assert (await billed.subscription(db)).quantity == 11
    other = await change(gateway, 12, idempotency_key="same-key", token=token)
    assert [e["code"] for e in other["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]


# --- fewer seats ---------------------------------------------------------------------------------


async def test_fewer_seats_than_allocated_is_refused_with_the_number_to_revoke(gateway, billed, db):
    refused = await change(gateway, 1, idempotency_key=key())
    [error] = refused["userErrors"]
    assert error["code"] == "SEATS_ALLOCATED" and "revoke 3" in error["message"]
    assert (await rows(db))[:2] == (10, None)


async def test_fewer_seats_apply_at_the_period_end_and_cap_allocations_meanwhile(hooked, billed, db):
    done = await change(hooked, 5, idempotency_key=key())
    assert done["userErrors"] == [] and done["invoice"] is None
    assert done["subscription"]["seats"] == 10 and done["subscription"]["scheduledSeats"] == 5
    provider = await billed.subscription(db)
    assert (provider.quantity, provider.scheduled_quantity) == (10, 5)
    assert await billed.invoices() == []  # no refund, no invoice

    # 4 seats allocated, 5 from the period's end: one more fits, the next does not.
    token = await hooked.login(ADMIN)
    members = [demo_id("account", f"member{n}@northwind.example") for n in (5, 6)]
    answers = await asyncio.gather(*(hooked.execute(ALLOCATE, {"input": {
        "licenseId": gid("License", str(LUMEN)), "accountIds": [gid("Account", str(m))]}}, token=token)
        for m in members))
    codes = sorted([e["code"] for e in a["data"]["allocateLicense"]["userErrors"]] for a in answers)
    assert codes == [[], ["NO_SEATS_AVAILABLE"]], answers
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE license_id = $1", LUMEN) == 5

    # The period ends: the provider bills 5 seats and the rows follow its event.
    await billed.renew(db)
    await deliver_events(hooked, billed, "customer.subscription.updated")
    provider = await billed.subscription(db)
    assert (provider.quantity, provider.scheduled_quantity) == (5, None)
    seats, scheduled, status, _, _, quantity, _ = await rows(db)
    assert (seats, scheduled, status, quantity) == (5, None, "ACTIVE", 5)
    assert [(i.status, i.total) for i in await billed.invoices()] == [("PAID", 5 * 69_900)]


async def test_a_decrease_racing_allocations_never_leaves_more_allocated_than_allowed(gateway, billed, db):
    token = await gateway.login(ADMIN)
    members = [demo_id("account", f"member{n}@northwind.example") for n in (5, 6, 7)]
    allocations = [gateway.execute(ALLOCATE, {"input": {"licenseId": gid("License", str(LUMEN)),
                                                        "accountIds": [gid("Account", str(m))]}}, token=token)
                   for m in members]
    answers = await asyncio.gather(change(gateway, 5, idempotency_key=key(), token=token), *allocations)
    allocated = await db.fetchval("SELECT count(*) FROM allocations WHERE license_id = $1", LUMEN)
    seats, scheduled = (await rows(db))[:2]
    assert allocated <= min(seats, scheduled or seats), (answers, allocated, seats, scheduled)


# --- auto-renew, staff -----------------------------------------------------------------------------


SET_AUTO_RENEW = """
mutation S($input: SetSubscriptionAutoRenewInput!) {
  setSubscriptionAutoRenew(input: $input) { subscription { autoRenew } userErrors { code } }
}
"""
STAFF_ADJUST = """
mutation A($input: AdjustLicenseQuantityInput!) {
  adjustLicenseQuantity(input: $input) { license { quantity } userErrors { code message } }
}
"""
STAFF_EXTEND = """
mutation E($input: ExtendLicenseInput!) {
  extendLicense(input: $input) { license { expiresAt status } userErrors { code } }
}
"""


async def test_auto_renew_off_is_cancel_at_period_end_at_the_provider(gateway, billed, db):
    subscription = gid("Subscription", str(LUMEN_SUBSCRIPTION))
    off = await gateway.execute(SET_AUTO_RENEW, {"input": {"subscriptionId": subscription, "autoRenew": False}},
                                token=await gateway.login(ADMIN))
    assert off["data"]["setSubscriptionAutoRenew"] == {"subscription": {"autoRenew": False}, "userErrors": []}
    assert (await billed.subscription(db)).cancel_at_period_end is True
    on = await gateway.execute(SET_AUTO_RENEW, {"input": {"subscriptionId": subscription, "autoRenew": True}},
                               token=await gateway.login(ADMIN))
    assert on["data"]["setSubscriptionAutoRenew"]["subscription"] == {"autoRenew": True}
    assert (await billed.subscription(db)).cancel_at_period_end is False


async def staff_token(gateway: Gateway, db) -> str:
    await make_staff(db, "BILLING", "billing@vendor.example")
    return await gateway.login("billing@vendor.example")


async def test_staff_adjustments_keep_license_subscription_and_provider_equal(gateway, billed, db):
    token = await staff_token(gateway, db)
    more = await gateway.execute(STAFF_ADJUST, {"input": {"licenseId": gid("License", str(LUMEN)), "quantity": 12,
                                                          "reason": "two more seats by phone"}}, token=token)
    assert more["data"]["adjustLicenseQuantity"] == {"license": {"quantity": 12}, "userErrors": []}, more
    provider = await billed.subscription(db)
    assert provider.quantity == 12 == (await rows(db))[0] == (await rows(db))[5]
    assert len(await billed.invoices()) == 1  # billed like the customer's own change

    later = (provider.current_period_end + timedelta(days=30)).replace(microsecond=0)
    extended = await gateway.execute(STAFF_EXTEND, {"input": {"licenseId": gid("License", str(LUMEN)),
                                                              "expiresAt": later.isoformat(),
                                                              "reason": "goodwill month"}}, token=token)
    assert extended["data"]["extendLicense"]["userErrors"] == [], extended
    provider = await billed.subscription(db)
    assert provider.current_period_end == later and provider.status == "ACTIVE"
    assert await db.fetchval("SELECT current_period_end FROM subscriptions WHERE id = $1", LUMEN_SUBSCRIPTION) == later
    assert await db.fetchval("SELECT expires_at FROM licenses WHERE id = $1", LUMEN) == later

    fewer = await gateway.execute(STAFF_ADJUST, {"input": {"licenseId": gid("License", str(LUMEN)), "quantity": 2,
                                                           "reason": "downsized"}}, token=token)
    assert [e["code"] for e in fewer["data"]["adjustLicenseQuantity"]["userErrors"]] == ["SEATS_ALLOCATED"]


# --- a failed renewal: past due, grace, suspended, paid -------------------------------------------


async def test_a_failed_renewal_is_past_due_with_a_grace_and_paying_restores(hooked, refusing, db):
    await change(hooked, 10, dry_run=True)  # the provider side exists
    await refusing.renew(db)  # the renewal charge is refused
    answers = await deliver_events(hooked, refusing, "invoice.payment_failed")
    assert [a["applied"] for a in answers] == [True]
    seats, _, status, _, past_due, _, grace = await rows(db)
    assert status == "PAST_DUE" and past_due and grace > datetime.now(timezone.utc) + timedelta(days=13)
    token = await hooked.login(ADMIN)
    license = (await hooked.execute(LICENSE, {"id": gid("License", str(LUMEN))}, token=token))["data"]["node"]
    assert license["status"] == "GRACE"
    kinds = [r["type"] for r in await db.fetch("SELECT type FROM event_log ORDER BY id")]
    assert "SUBSCRIPTION_PAST_DUE" in kinds
    assert await db.fetchval("SELECT count(*) FROM mail_outbox WHERE subject LIKE 'Renewal payment%'") >= 1
    # A redelivery changes nothing; neither does a second failure.
    await deliver_events(hooked, refusing, "invoice.payment_failed")
    assert (await rows(db))[6] == grace

    # The grace ends: SUSPENDED, no new seats, no downloads.
    await db.execute("UPDATE licenses SET grace_until = now() - interval '1 minute' WHERE id = $1", LUMEN)
    license = (await hooked.execute(LICENSE, {"id": gid("License", str(LUMEN))}, token=token))["data"]["node"]
    assert license["status"] == "SUSPENDED"
    refused = await hooked.execute(ALLOCATE, {"input": {"licenseId": gid("License", str(LUMEN)),
                                                        "accountIds": [gid("Account", str(MEMBER))]}}, token=token)
    assert refused["data"]["allocateLicense"]["userErrors"] == [{"code": "LICENSE_SUSPENDED"}]

    # Pay the open renewal invoice with a good card: dry run first, then for real.
    [open_invoice] = [i for i in await refusing.invoices() if i.status == "OPEN"]
    good = await refusing.provider.add_card(refusing.customer_id, card_number=VISA, exp_month=12, exp_year=2031,
                                            cvc="123", make_default=False, idempotency_key=key())
    pay = {"invoiceId": gid("Invoice", open_invoice.id), "paymentMethodId": gid("PaymentMethod", good.id),
           "idempotencyKey": "pay-renewal"}
    dry = (await hooked.execute(PAY, {"input": {**pay, "dryRun": True}}, token=token))["data"]["payInvoice"]
    assert dry["userErrors"] == [] and dry["invoice"]["status"] == "OPEN"
    assert dry["preview"]["amount"]["amount"] == open_invoice.amount_due
    assert dry["preview"]["paymentMethod"]["last4"] == "4242"
    assert (await rows(db))[2] == "PAST_DUE"
    paid = (await hooked.execute(PAY, {"input": pay}, token=token))["data"]["payInvoice"]
    assert paid["userErrors"] == [] and paid["invoice"]["status"] == "PAID" and paid["preview"] is None
    _, _, status, _, past_due, _, grace = await rows(db)
    assert (status, past_due, grace) == ("ACTIVE", False, None)
    license = (await hooked.execute(LICENSE, {"id": gid("License", str(LUMEN))}, token=token))["data"]["node"]
    assert license["status"] in ("ACTIVE", "EXPIRING")
    assert "SUBSCRIPTION_RESTORED" in [r["type"] for r in await db.fetch("SELECT type FROM event_log")]


async def test_a_seat_change_needs_a_manager(gateway, billed, db):
    member = await gateway.login("member1@northwind.example")
    body = await gateway.execute(CHANGE, {"input": {"subscriptionId": gid("Subscription", str(LUMEN_SUBSCRIPTION)),
                                                    "quantity": 11}}, token=member)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    other = await gateway.execute(CHANGE, {"input": {"subscriptionId": gid("Subscription", str(LUMEN_SUBSCRIPTION)),
                                                     "quantity": 11}}, token=await gateway.login("admin@globex.example"))
    assert [e["extensions"]["code"] for e in other["errors"]] == ["NOT_FOUND"]
    anonymous = await gateway.execute(CHANGE, {"input": {"subscriptionId": gid("Subscription", str(uuid.uuid4())),
                                                         "quantity": 11}})
    assert [e["extensions"]["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]
    assert await billed.invoices() == [] and (await rows(db))[0] == 10


# --- crafted input, a provider that loses its answer -----------------------------------------------


@pytest.mark.parametrize("quantity, key_, code", [(0, None, "INVALID"), (-3, None, "INVALID"),
                                                  (100_001, None, "INVALID"), (11, "", "INVALID"),
                                                  (11, "k" * 201, "INVALID")],
                         ids=["zero", "negative", "too-many", "empty-key", "long-key"])
async def test_bad_input_is_a_user_error_and_changes_nothing(gateway, billed, db, quantity, key_, code):
    before = await rows(db)
    for dry_run in (True, False):
        refused = await change(gateway, quantity, dry_run=dry_run, idempotency_key=key_)
        assert [(e["code"]) for e in refused["userErrors"]] == [code], refused
        assert refused["preview"] is None and refused["invoice"] is None
    assert await rows(db) == before and await billed.invoices() == []
    assert await billed.subscription(db) is None  # not even the provider side was made


@pytest.mark.parametrize("subscription_id", [gid("Subscription", str(uuid.uuid4())), gid("License", str(LUMEN)),
                                             "not-an-id", gid("Subscription", "x" * 300)],
                         ids=["unknown", "another-type", "garbage", "long"])
async def test_a_subscription_that_is_not_there_is_not_found(gateway, billed, subscription_id):
    body = await gateway.execute(CHANGE, {"input": {"subscriptionId": subscription_id, "quantity": 11}},
                                 token=await gateway.login(ADMIN))
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"], body


async def test_a_lost_answer_to_a_seat_increase_never_charges_twice(app_for, settings, services, billed, db):
    proxy = Proxy(services.stripe_api_base)
    await proxy.start()
    try:
        gateway = await app_for(settings.with_(stripe_api_base=proxy.api_base, provider_timeout_seconds=TIMEOUT))
        await change(gateway, 10, dry_run=True)  # the provider side exists
        lost: list[Any] = []

        def lose_the_first_update(seen: Any) -> str:
            if seen.method == "POST" and seen.path.startswith("/v1/subscriptions/sub_") and not lost:
                lost.append(seen)
                return "lose_answer"
            return "forward"

        proxy.policy = lose_the_first_update
        request = {"input": {"subscriptionId": gid("Subscription", str(LUMEN_SUBSCRIPTION)), "quantity": 12,
                             "idempotencyKey": "lost-answer"}}
        first = await gateway.execute(CHANGE, request, token=await gateway.login(ADMIN))
        assert lost and ("errors" not in first or [e["extensions"]["code"] for e in first["errors"]] ==
                         ["PROVIDER_UNAVAILABLE"]), first
        again = await gateway.execute(CHANGE, request, token=await gateway.login(ADMIN))
        assert again["data"]["changeSeatQuantity"]["userErrors"] == [], again
        assert again["data"]["changeSeatQuantity"]["subscription"]["seats"] == 12
    finally:
        await proxy.close()
    assert len(await billed.invoices()) == 1
    assert (await billed.subscription(db)).quantity == 12 == (await rows(db))[5]


async def test_the_scheduler_puts_running_rows_at_the_provider_once_and_waits_out_an_outage(
        billed, database_url, db, resolver_settings, caplog):
    async def provider_ids() -> dict[str, str | None]:
        return {r["sku"]: r["provider_subscription_id"] for r in await db.fetch(
            "SELECT p.sku, s.provider_subscription_id FROM subscriptions s JOIN products p ON p.id = s.product_id"
            " WHERE s.organization_id = $1", NORTHWIND)}

    database = await Database.connect(database_url)
    down = PaymentsClient(EMULATOR_API_KEY, api_base="http://127.0.0.1:9", timeout_seconds=1)  # nothing listens
    settings = resolver_settings.with_(run_scheduler=True)
    try:
        outage = Scheduler(database, settings, down)
        with caplog.at_level(logging.WARNING, logger="gateway.subscriptions"):
            assert await outage.tick() is not None  # the pass itself went on
        await outage.leadership.release()
        assert set((await provider_ids()).values()) == {None}
        assert [r.getMessage() for r in caplog.records if r.name == "gateway.subscriptions"] == [
            "subscriptions not yet at the payment provider are left to the next pass "
            "(The payment provider is unavailable; try again shortly.)"]

        scheduler = Scheduler(database, settings, billed.provider)
        assert await scheduler.tick() is not None
        created = await provider_ids()
        assert await scheduler.tick() is not None
        await scheduler.leadership.release()
    finally:
        await down.close()
        await database.close()
    # Northwind's Lumen and Atlas (running); Vapor FX is EXPIRED and stays here only.
    assert created["VAPOR-FX"] is None and created["LUMEN-RENDER"] and created["ATLAS-SCATTER"]
    assert await provider_ids() == created  # the second pass created nothing more
    lumen = await billed.subscription(db)
    period_end = await db.fetchval("SELECT current_period_end FROM subscriptions WHERE provider_subscription_id = $1",
                                   created["LUMEN-RENDER"])
    assert (lumen.quantity, lumen.current_period_end, lumen.status) == (10, period_end, "ACTIVE")
    assert await billed.invoices() == []  # the period was paid already: nothing charged


async def test_a_late_payment_failure_of_an_invoice_paid_since_changes_nothing(hooked, refusing, db):
    await change(hooked, 10, dry_run=True)
    await refusing.renew(db)
    [open_invoice] = [i for i in await refusing.invoices() if i.status == "OPEN"]
    good = await refusing.provider.add_card(refusing.customer_id, card_number=VISA, exp_month=12, exp_year=2031,
                                            cvc="123", make_default=False, idempotency_key=key())
    await refusing.provider.pay_invoice(open_invoice.id, idempotency_key=key(), payment_method_id=good.id)
    # The failure arrives after the payment (events come out of order): the provider shows it paid.
    answers = await deliver_events(hooked, refusing, "invoice.payment_failed")
    assert len(answers) == 1
    _, _, status, _, past_due, _, grace = await rows(db)
    assert (status, past_due, grace) == ("ACTIVE", False, None)
    assert "SUBSCRIPTION_PAST_DUE" not in [r["type"] for r in await db.fetch("SELECT type FROM event_log")]
