"""The billing mirror: provider lists read from PostgreSQL, against a real localstripe.

What the portal sees: a screen shown once reads its invoices, cards and billing details from the
mirror after that (no provider call); a verified webhook about the customer brings the
provider's change to the next screen; a billing mutation works on what the provider holds, and
its result shows at once; the scheduler's reconcile pass catches a change whose webhook never
came; an answer older than a drop is never written back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from datasources.payments.client import PaymentsClient
from datasources.postgres import billing_mirror
from datasources.postgres.database import Database
from gateway.app import EMULATOR_API_KEY
from gateway.scheduler import Scheduler
from loaders import billing
from tests.test_billing_mutations import SET_DEFAULT
from tests.test_provider_faults import ADMIN, gid, key, make_customer
from tests.test_webhooks import SECRET, deliver, event, hooked, provider, provider_object  # noqa: F401 (fixtures)

SCREEN = """
{ viewer { organization {
    invoices(first: 10) { nodes { id status amountDue { amount } } }
    paymentMethods { id last4 isDefault }
    billingInfo { company }
} } }
"""
MASTERCARD = "5555555555554444"


async def screen(gateway, token: str) -> tuple[dict[str, Any], int]:
    """The billing screen as the admin sees it, and the provider calls it cost."""
    body = await gateway.execute(SCREEN, token=token)
    assert "errors" not in body, body
    return body["data"]["viewer"]["organization"], body["extensions"]["io"]["providerCalls"]


def statuses(org: dict[str, Any]) -> dict[str, str]:
    return {n["id"]: n["status"] for n in org["invoices"]["nodes"]}


async def test_a_screen_shown_once_reads_the_mirror_and_a_webhook_brings_the_providers_change(
        hooked, services, provider, db):
    billed = await make_customer(services.stripe_api_base, db)
    token = await hooked.login(ADMIN)
    first, calls = await screen(hooked, token)
    assert calls >= 3 and set(statuses(first).values()) == {"OPEN"}  # at least one per list
    again, calls = await screen(hooked, token)
    assert calls == 0 and again == first
    assert await db.fetchval("SELECT count(*) FROM billing_mirror WHERE customer_id = $1 AND body IS NOT NULL",
                             billed.customer_id) == 3

    # Paid at the provider's hosted page: until its event arrives the mirror still shows what
    # the provider last answered ...
    paid_id = billed.open_invoices[0]
    await provider.pay_invoice(paid_id, idempotency_key=key())
    assert statuses((await screen(hooked, token))[0])[gid("Invoice", paid_id)] == "OPEN"
    # ... and the verified event makes the next screen show it PAID, already fetched again
    # after the webhook's answer, so that screen waits for no provider call either.
    paid = event("invoice.paid", await provider_object(services.stripe_api_base, f"/v1/invoices/{paid_id}"))
    assert (await deliver(hooked, paid)).status_code == 200
    after, calls = await screen(hooked, token)
    assert calls == 0
    assert statuses(after) == {**statuses(first), gid("Invoice", paid_id): "PAID"}


async def test_an_unverified_event_changes_nothing_in_the_mirror(hooked, services, provider, db):
    billed = await make_customer(services.stripe_api_base, db)
    token = await hooked.login(ADMIN)
    await screen(hooked, token)
    kept = await db.fetch("SELECT kind, generation, body::text FROM billing_mirror WHERE customer_id = $1 ORDER BY kind",
                          billed.customer_id)
    forged = event("customer.updated", {"id": billed.customer_id, "object": "customer"})
    assert (await deliver(hooked, forged, "t=1,v1=" + "0" * 64)).status_code == 400
    assert await db.fetch("SELECT kind, generation, body::text FROM billing_mirror WHERE customer_id = $1"
                          " ORDER BY kind", billed.customer_id) == kept
    assert (await screen(hooked, token))[1] == 0


async def test_customer_and_card_events_drop_their_customers_lists(hooked, services, provider, db):
    billed = await make_customer(services.stripe_api_base, db)
    token = await hooked.login(ADMIN)
    before, _ = await screen(hooked, token)
    assert before["billingInfo"] == {"company": "Northwind Studio"}

    # Details changed in the provider's dashboard: `customer.updated` carries the customer itself.
    await provider.update_billing_details(billed.customer_id, name="Northwind Studio GmbH",
                                          email="billing@northwind.example", address=None, vat_id=None)
    customer = await provider_object(services.stripe_api_base, f"/v1/customers/{billed.customer_id}")
    assert (await deliver(hooked, event("customer.updated", customer))).status_code == 200
    assert (await screen(hooked, token))[0]["billingInfo"] == {"company": "Northwind Studio GmbH"}

    # A second card, added and then detached there: the detached card's event names the customer
    # only under `previous_attributes` (its `customer` is null by then).
    card = await provider.add_card(billed.customer_id, card_number=MASTERCARD, exp_month=10, exp_year=2030,
                                   cvc="123", make_default=False, idempotency_key=key())
    attached = await provider_object(services.stripe_api_base, f"/v1/payment_methods/{card.id}")
    assert (await deliver(hooked, event("payment_method.attached", attached))).status_code == 200
    assert [m["last4"] for m in (await screen(hooked, token))[0]["paymentMethods"]] == ["4242", "4444"]
    await provider.detach_payment_method(card.id)
    body = json.loads(event("payment_method.detached", {**attached, "customer": None}))
    body["data"]["previous_attributes"] = {"customer": billed.customer_id}
    assert (await deliver(hooked, json.dumps(body).encode())).status_code == 200
    assert [m["last4"] for m in (await screen(hooked, token))[0]["paymentMethods"]] == ["4242"]


async def test_a_billing_mutation_works_on_what_the_provider_holds_and_shows_its_result_at_once(
        hooked, services, provider, db):
    billed = await make_customer(services.stripe_api_base, db)
    token = await hooked.login(ADMIN)
    await screen(hooked, token)
    # A card added at the provider whose event has not arrived: the mirror does not know it yet,
    # the mutation (which reads the provider) does.
    card = await provider.add_card(billed.customer_id, card_number=MASTERCARD, exp_month=10, exp_year=2030,
                                   cvc="123", make_default=False, idempotency_key=key())
    assert [m["last4"] for m in (await screen(hooked, token))[0]["paymentMethods"]] == ["4242"]
    result = await hooked.execute(SET_DEFAULT, {"input": {"paymentMethodId": gid("PaymentMethod", card.id)}},
                                  token=token)
    assert result["data"]["setDefaultPaymentMethod"] == {
        "paymentMethod": {"id": gid("PaymentMethod", card.id), "last4": "4444", "isDefault": True},
        "userErrors": []}
    shown, _ = await screen(hooked, token)
    assert [(m["last4"], m["isDefault"]) for m in shown["paymentMethods"]] == [("4444", True), ("4242", False)]
    assert (await screen(hooked, token))[1] == 0  # read from the provider after the write, then mirrored


async def test_an_answer_that_left_the_provider_before_a_drop_is_not_written_back(services, provider, db,
                                                                                    database_url):
    billed = await make_customer(services.stripe_api_base, db)
    pool = await Database.connect(database_url, max_size=2)
    try:
        [row] = await billing_mirror.read(pool, [(billed.customer_id, "invoices")])
        assert (row.generation, row.body) == (0, None)
        # A webhook drops the customer's lists while this fetch is on its way.
        await billing_mirror.drop(pool, [billed.customer_id])
        answer = await billing.fetch(pool, provider, row)
        assert {i.id for i in answer} == set(billed.open_invoices)
        [kept] = await billing_mirror.read(pool, [(billed.customer_id, "invoices")])
        assert (kept.generation, kept.body) == (1, None)  # the next read asks the provider
        # A fetch that starts after the drop is kept.
        await billing.fetch(pool, provider, kept)
        [filled] = await billing_mirror.read(pool, [(billed.customer_id, "invoices")])
        assert filled.generation == 1 and {i["id"] for i in json.loads(filled.body)} == set(billed.open_invoices)
    finally:
        await pool.close()


async def test_the_reconcile_pass_fetches_again_lists_older_than_the_max_age(
        hooked, services, provider, db, database_url, resolver_settings):
    billed = await make_customer(services.stripe_api_base, db)
    token = await hooked.login(ADMIN)
    await screen(hooked, token)
    await provider.pay_invoice(billed.open_invoices[1], idempotency_key=key())  # its webhook is lost
    pool = await Database.connect(database_url, max_size=2)
    payments = PaymentsClient(EMULATOR_API_KEY, api_base=services.stripe_api_base, timeout_seconds=5)
    scheduler = Scheduler(pool, resolver_settings.with_(run_scheduler=True, billing_mirror_max_age_seconds=3600),
                          payments)
    try:
        assert await billing.reconcile(pool, payments, 3600) == 0  # nothing is an hour old yet
        await db.execute("UPDATE billing_mirror SET fetched_at = now() - interval '61 minutes'"
                         " WHERE customer_id = $1", billed.customer_id)
        assert await scheduler.tick() is not None  # the pass ran, the reconcile with it
        assert await db.fetchval("SELECT count(*) FROM billing_mirror WHERE customer_id = $1"
                                 " AND fetched_at > now() - interval '1 minute'", billed.customer_id) == 3
        shown, calls = await screen(hooked, token)
        assert calls == 0 and statuses(shown)[gid("Invoice", billed.open_invoices[1])] == "PAID"
    finally:
        await scheduler.leadership.release()
        await payments.close()
        await pool.close()


async def test_a_burst_of_first_screens_shows_one_answer_and_keeps_one_row_per_list(hooked, services, db):
    billed = await make_customer(services.stripe_api_base, db)
    token = await hooked.login(ADMIN)
    seen = await asyncio.gather(*(screen(hooked, token) for _ in range(12)))
    assert all(org == seen[0][0] for org, _ in seen)
    rows = await db.fetch("SELECT kind, generation FROM billing_mirror WHERE customer_id = $1 AND body IS NOT NULL"
                          " ORDER BY kind", billed.customer_id)
    assert [tuple(r) for r in rows] == [("customer", 0), ("invoices", 0), ("payment_methods", 0)]


@pytest.mark.parametrize("customer", ["cus_" + "x" * 200, "cus_" + "x" * 5000, "cus_'; DROP TABLE billing_mirror; --", "cus_\u00e9\u4e2d"])
async def test_events_about_crafted_or_unknown_customers_are_recorded_and_harm_no_ones_lists(
        hooked, services, db, customer):
    billed = await make_customer(services.stripe_api_base, db)
    token = await hooked.login(ADMIN)
    await screen(hooked, token)
    answer = await deliver(hooked, event("customer.updated", {"id": customer, "object": "customer"}))
    assert answer.status_code == 200 and answer.json()["applied"] is False
    assert (await screen(hooked, token))[1] == 0  # Northwind's lists untouched
    assert await db.fetchval("SELECT count(*) FROM billing_mirror WHERE customer_id <> $1",
                             billed.customer_id) == 0  # no rows for customers of no organization
