"""Billing changes over HTTP: paying invoices and the balance, payment methods, billing details.

The provider (one localstripe for the session) is shared by every test, while each test has
its own database: every test here makes a fresh provider customer and points Northwind's
`payment_customer_id` at it in its own database, so that nothing here pays or changes the
demo customers other tests read.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from strawberry import relay

from datasources.errors import ProviderUnavailable
from datasources.payments.client import PaymentsClient, declined
from gateway.app import EMULATOR_API_KEY
from gateway.demo import demo_id

NORTHWIND = demo_id("organization", "northwind")
ADMIN = "admin@northwind.example"
OWNER = "owner@northwind.example"
MEMBER = "member1@northwind.example"
GLOBEX_ADMIN = "admin@globex.example"
VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
DECLINES_AT_CHARGE = "4000000000000341"  # attaches fine; every charge on it is refused
DECLINES_AT_ATTACH = "4000000000000002"

PAY_INVOICE = """
mutation PayInvoice($input: PayInvoiceInput!) {
  payInvoice(input: $input) {
    invoice { id status amountDue { amount currency } }
    declineReason
    userErrors { field message code }
  }
}
"""
PAY_BALANCE = """
mutation PayBalance($input: PayOutstandingBalanceInput!) {
  payOutstandingBalance(input: $input) {
    invoices { id status amountDue { amount } currency }
    declinedInvoice { id status }
    declineReason
    userErrors { field message code }
  }
}
"""
ADD_METHOD = """
mutation AddMethod($input: AddPaymentMethodInput!) {
  addPaymentMethod(input: $input) {
    paymentMethod { id brand last4 expMonth expYear isDefault }
    declineReason
    userErrors { field message code }
  }
}
"""
SET_DEFAULT = """
mutation SetDefault($input: SetDefaultPaymentMethodInput!) {
  setDefaultPaymentMethod(input: $input) {
    paymentMethod { id last4 isDefault }
    userErrors { field message code }
  }
}
"""
REMOVE_METHOD = """
mutation RemoveMethod($input: RemovePaymentMethodInput!) {
  removePaymentMethod(input: $input) {
    removedPaymentMethodId
    paymentMethods { id last4 isDefault }
    userErrors { field message code }
  }
}
"""
UPDATE_INFO = """
mutation UpdateInfo($input: UpdateBillingInfoInput!) {
  updateBillingInfo(input: $input) {
    billingInfo { company billingEmail vatId
                  address { line1 line2 city postalCode state country } }
    userErrors { field message code }
  }
}
"""
BILLING = """
{ viewer { organization {
    outstandingBalance { amount currency }
    paymentMethods { id last4 isDefault }
    billingInfo { company billingEmail vatId address { line1 line2 city postalCode state country } }
} } }
"""


# --- a fresh provider customer per test ----------------------------------------------------------


@dataclass(frozen=True)
class Fresh:
    """Northwind's provider customer for this test alone."""

    customer_id: str
    card_id: str  # the default card
    usd_open: tuple[str, str]  # oldest first
    eur_open: str
    usd_paid: str


def gid(type_name: str, provider_id: str) -> str:
    return relay.to_base64(type_name, provider_id)


def key() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture
async def provider(services) -> AsyncIterator[PaymentsClient]:
    client = PaymentsClient(EMULATOR_API_KEY, api_base=services.stripe_api_base, timeout_seconds=5)
    yield client
    await client.close()


@pytest.fixture
async def emulator(services) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the emulator, for what a browser or an auditor does (tokenize a card, list charges)."""
    async with httpx.AsyncClient(base_url=services.stripe_api_base,
                                 headers={"authorization": f"Bearer {EMULATOR_API_KEY}"}) as http:
        yield http


async def make_customer(provider: PaymentsClient, db, *, card: str = VISA, invoices: bool = True) -> Fresh:
    """A customer with `card` as its only (default) card and, unless told not to, two OPEN invoices
    in USD, one in EUR and a PAID one in USD (paid with a card since removed, if `card` declines)."""
    customer = await provider.create_customer(name="Northwind Studio", email="billing@northwind.example",
                                              metadata={"test": "billing-mutations"}, idempotency_key=key())
    default = await provider.add_card(customer.id, card_number=VISA, exp_month=12, exp_year=2031, cvc="123",
                                      make_default=True, idempotency_key=key())
    made = []
    if invoices:
        # Sequentially: an invoice sweeps in all of the customer's pending items.
        for currency, amount, pay in (("USD", 10_000, False), ("USD", 2_500, False), ("EUR", 7_000, False),
                                      ("USD", 1_000, True)):
            made.append(await provider.create_invoice(customer.id, currency=currency,
                                                      lines=[("Render seats", 2, amount)], tax_percent=None,
                                                      pay=pay, idempotency_key=key()))
    if card != VISA:
        replaced = default
        default = await provider.add_card(customer.id, card_number=card, exp_month=12, exp_year=2031, cvc="123",
                                          make_default=True, idempotency_key=key())
        await provider.detach_payment_method(replaced.id)
    await db.execute("UPDATE organizations SET payment_customer_id = $1 WHERE id = $2", customer.id, NORTHWIND)
    ids = [i.id for i in made] or ["", "", "", ""]
    return Fresh(customer.id, default.id, (ids[0], ids[1]), ids[2], ids[3])


@pytest.fixture
async def fresh(provider, db) -> Fresh:
    return await make_customer(provider, db)


async def tokenize(emulator: httpx.AsyncClient, number: str = MASTERCARD, exp_month: int = 9,
                   exp_year: int = 2032) -> str:
    """What the provider's client library does in the browser: a `pm_...` for a card."""
    response = await emulator.post("/v1/payment_methods", data={
        "type": "card", "card[number]": number, "card[exp_month]": str(exp_month),
        "card[exp_year]": str(exp_year), "card[cvc]": "123"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def charges(emulator: httpx.AsyncClient, customer_id: str) -> list[dict[str, Any]]:
    response = await emulator.get("/v1/charges", params={"customer": customer_id, "limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def audit_rows(db, action: str) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT action, outcome, target, details::text AS details FROM audit_log"
                          " WHERE organization_id = $1 AND action = $2 ORDER BY id", NORTHWIND, action)
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


@pytest.fixture
async def admin(gateway) -> str:
    return await gateway.login(ADMIN)


async def run(gateway, query: str, token: str | None, **input: Any) -> dict[str, Any]:
    """The mutation's payload; fails on any top-level error."""
    body = await gateway.execute(query, {"input": input}, token=token)
    assert "errors" not in body, json.dumps(body)
    [payload] = body["data"].values()
    return payload


async def error_code(gateway, query: str, token: str | None, **input: Any) -> str:
    body = await gateway.execute(query, {"input": input}, token=token)
    assert body["data"] is None, json.dumps(body)
    [error] = body["errors"]
    return error["extensions"]["code"]


async def billing(gateway, token: str) -> dict[str, Any]:
    body = await gateway.execute(BILLING, token=token)
    assert "errors" not in body, json.dumps(body)
    return body["data"]["viewer"]["organization"]


def codes(payload: dict[str, Any]) -> list[tuple[list[str] | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


# --- payInvoice ----------------------------------------------------------------------------------


async def test_admin_pays_an_open_invoice_with_the_default_card(gateway, admin, fresh, emulator, db):
    invoice = gid("Invoice", fresh.usd_open[0])
    paid = await run(gateway, PAY_INVOICE, admin, invoiceId=invoice, idempotencyKey=key())
    assert paid == {"invoice": {"id": invoice, "status": "PAID", "amountDue": {"amount": 0, "currency": "USD"}},
                    "declineReason": None, "userErrors": []}
    [charge] = [c for c in await charges(emulator, fresh.customer_id) if c["amount"] == 20_000]
    assert charge["payment_method"] == fresh.card_id and charge["status"] == "succeeded"
    # The rest of the balance is still owed.
    assert (await billing(gateway, admin))["outstandingBalance"] == [
        {"amount": 14_000, "currency": "EUR"}, {"amount": 5_000, "currency": "USD"}]
    [row] = await audit_rows(db, "billing.pay_invoice")
    assert (row["outcome"], row["target"]) == ("SUCCESS", f"Invoice:{fresh.usd_open[0]}")
    assert row["details"]["amount"] == 20_000 and row["details"]["currency"] == "USD"


async def test_admin_pays_with_a_chosen_card(gateway, admin, fresh, provider, emulator):
    other = await provider.add_card(fresh.customer_id, card_number=MASTERCARD, exp_month=9, exp_year=2032,
                                    cvc="123", make_default=False, idempotency_key=key())
    paid = await run(gateway, PAY_INVOICE, admin, invoiceId=gid("Invoice", fresh.eur_open),
                     paymentMethodId=gid("PaymentMethod", other.id), idempotencyKey=key())
    assert paid["invoice"]["status"] == "PAID" and paid["userErrors"] == []
    [charge] = [c for c in await charges(emulator, fresh.customer_id) if c["currency"] == "eur"]
    assert charge["payment_method"] == other.id
    # The default stays the default.
    methods = (await billing(gateway, admin))["paymentMethods"]
    assert [(m["last4"], m["isDefault"]) for m in methods] == [("4242", True), ("4444", False)]


async def test_a_paid_invoice_is_not_payable(gateway, admin, fresh, emulator, db):
    before = len(await charges(emulator, fresh.customer_id))
    refused = await run(gateway, PAY_INVOICE, admin, invoiceId=gid("Invoice", fresh.usd_paid), idempotencyKey=key())
    assert codes(refused) == [(["input", "invoiceId"], "NOT_PAYABLE")]
    assert refused["invoice"]["status"] == "PAID"
    assert len(await charges(emulator, fresh.customer_id)) == before
    [row] = await audit_rows(db, "billing.pay_invoice")
    assert row["outcome"] == "REFUSED"
    assert row["details"]["problems"] == [{"field": ["input", "invoiceId"], "code": "NOT_PAYABLE"}]


async def test_a_declined_card_leaves_the_invoice_open(gateway, admin, provider, db, emulator):
    fresh = await make_customer(provider, db, card=DECLINES_AT_CHARGE)
    invoice = gid("Invoice", fresh.usd_open[1])
    refused = await run(gateway, PAY_INVOICE, admin, invoiceId=invoice, idempotencyKey=key())
    assert refused["declineReason"] == "CARD_DECLINED"
    assert codes(refused) == [(None, "PAYMENT_DECLINED")]
    assert refused["userErrors"][0]["message"] == "The card was declined."  # ours, not the provider's text
    assert refused["invoice"] == {"id": invoice, "status": "OPEN", "amountDue": {"amount": 5_000, "currency": "USD"}}
    assert [c["status"] for c in await charges(emulator, fresh.customer_id) if c["amount"] == 5_000] == ["failed"]
    [row] = await audit_rows(db, "billing.pay_invoice")
    assert row["outcome"] == "REFUSED" and row["details"]["declineReason"] == "CARD_DECLINED"


async def test_a_chosen_card_that_declines_points_at_it(gateway, admin, fresh, provider):
    bad = await provider.add_card(fresh.customer_id, card_number=DECLINES_AT_CHARGE, exp_month=1, exp_year=2030,
                                  cvc="123", make_default=False, idempotency_key=key())
    refused = await run(gateway, PAY_INVOICE, admin, invoiceId=gid("Invoice", fresh.usd_open[0]),
                        paymentMethodId=gid("PaymentMethod", bad.id), idempotencyKey=key())
    assert refused["declineReason"] == "CARD_DECLINED"
    assert codes(refused) == [(["input", "paymentMethodId"], "PAYMENT_DECLINED")]
    assert refused["invoice"]["status"] == "OPEN"


async def test_the_same_key_pays_once_and_replays_the_first_result(gateway, admin, fresh, emulator, db):
    input = {"invoiceId": gid("Invoice", fresh.usd_open[0]), "idempotencyKey": key()}
    first = await run(gateway, PAY_INVOICE, admin, **input)
    second = await run(gateway, PAY_INVOICE, admin, **input)
    assert first == second and first["invoice"]["status"] == "PAID" and first["userErrors"] == []
    assert len(await charges(emulator, fresh.customer_id)) == 2  # the seeded paid invoice's, and this one
    assert len(await audit_rows(db, "billing.pay_invoice")) == 1


async def test_concurrent_requests_with_the_same_key_pay_once(gateway, admin, fresh, emulator, db):
    input = {"invoiceId": gid("Invoice", fresh.usd_open[0]), "idempotencyKey": key()}
    first, second = await asyncio.gather(run(gateway, PAY_INVOICE, admin, **input),
                                         run(gateway, PAY_INVOICE, admin, **input))
    assert first == second and first["invoice"]["status"] == "PAID" and first["userErrors"] == []
    assert [c["amount"] for c in await charges(emulator, fresh.customer_id)].count(20_000) == 1
    assert len(await audit_rows(db, "billing.pay_invoice")) == 1


async def test_concurrent_balance_payments_with_the_same_key_pay_once(gateway, admin, fresh, emulator):
    input = {"currency": "USD", "idempotencyKey": key()}
    first, second = await asyncio.gather(run(gateway, PAY_BALANCE, admin, **input),
                                         run(gateway, PAY_BALANCE, admin, **input))
    assert first == second and len(first["invoices"]) == 2
    amounts = sorted(c["amount"] for c in await charges(emulator, fresh.customer_id))
    assert amounts == [2_000, 5_000, 20_000]  # the seeded paid invoice, then one charge per invoice


async def test_the_same_key_with_another_input_is_refused(gateway, admin, fresh, emulator, db):
    reused = key()
    await run(gateway, PAY_INVOICE, admin, invoiceId=gid("Invoice", fresh.usd_open[0]), idempotencyKey=reused)
    refused = await run(gateway, PAY_INVOICE, admin, invoiceId=gid("Invoice", fresh.usd_open[1]),
                        idempotencyKey=reused)
    assert codes(refused) == [(["input", "idempotencyKey"], "IDEMPOTENCY_KEY_REUSED")]
    assert refused["invoice"]["status"] == "OPEN"
    assert len(await charges(emulator, fresh.customer_id)) == 2
    assert [r["outcome"] for r in await audit_rows(db, "billing.pay_invoice")] == ["SUCCESS", "REFUSED"]


async def test_a_malformed_key_is_invalid_and_a_key_is_required(gateway, admin, fresh):
    refused = await run(gateway, PAY_INVOICE, admin, invoiceId=gid("Invoice", fresh.usd_open[0]),
                        idempotencyKey="x" * 201)
    assert codes(refused) == [(["input", "idempotencyKey"], "INVALID")]
    body = await gateway.execute(PAY_INVOICE, {"input": {"invoiceId": gid("Invoice", fresh.usd_open[0])}},
                                 token=admin)
    assert body.get("data") is None and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_retry_after_a_lost_answer_does_not_pay_again(gateway, admin, fresh, emulator, monkeypatch):
    """The provider charged, but its answer never came back: the client retries with the same key."""
    original = PaymentsClient.pay_invoice
    lost: list[str] = []

    async def answer_lost_once(self, invoice_id, **kwargs):
        result = await original(self, invoice_id, **kwargs)
        if not lost:
            lost.append(invoice_id)
            raise ProviderUnavailable("The payment provider is unavailable; try again shortly.")
        return result

    monkeypatch.setattr(PaymentsClient, "pay_invoice", answer_lost_once)
    input = {"invoiceId": gid("Invoice", fresh.usd_open[0]), "idempotencyKey": key()}
    assert await error_code(gateway, PAY_INVOICE, admin, **input) == "PROVIDER_UNAVAILABLE"
    retried = await run(gateway, PAY_INVOICE, admin, **input)
    assert retried["invoice"]["status"] == "PAID" and retried["userErrors"] == []
    assert [c["amount"] for c in await charges(emulator, fresh.customer_id)].count(20_000) == 1
    # Anyone else asking to pay it now is told it is not payable.
    other = await run(gateway, PAY_INVOICE, admin, invoiceId=input["invoiceId"], idempotencyKey=key())
    assert codes(other) == [(["input", "invoiceId"], "NOT_PAYABLE")]


async def test_a_provider_failure_rolls_the_claim_back_for_a_retry(gateway, admin, fresh, emulator, monkeypatch):
    original = PaymentsClient.pay_invoice
    calls: list[str] = []

    async def down_once(self, invoice_id, **kwargs):
        calls.append(invoice_id)
        if len(calls) == 1:
            raise ProviderUnavailable("The payment provider is unavailable; try again shortly.")
        return await original(self, invoice_id, **kwargs)

    monkeypatch.setattr(PaymentsClient, "pay_invoice", down_once)
    input = {"invoiceId": gid("Invoice", fresh.usd_open[0]), "idempotencyKey": key()}
    assert await error_code(gateway, PAY_INVOICE, admin, **input) == "PROVIDER_UNAVAILABLE"
    retried = await run(gateway, PAY_INVOICE, admin, **input)
    assert retried["invoice"]["status"] == "PAID"
    assert len(calls) == 2
    assert [c["amount"] for c in await charges(emulator, fresh.customer_id)].count(20_000) == 1


async def test_an_unknown_payment_method_or_none_to_default_to_is_refused(gateway, admin, provider, db):
    fresh = await make_customer(provider, db)
    refused = await run(gateway, PAY_INVOICE, admin, invoiceId=gid("Invoice", fresh.usd_open[0]),
                        paymentMethodId=gid("PaymentMethod", "pm_unknown"), idempotencyKey=key())
    assert codes(refused) == [(["input", "paymentMethodId"], "NOT_FOUND")]
    await provider.set_default_payment_method(fresh.customer_id, None)
    refused = await run(gateway, PAY_INVOICE, admin, invoiceId=gid("Invoice", fresh.usd_open[0]),
                        idempotencyKey=key())
    assert codes(refused) == [(["input", "paymentMethodId"], "REQUIRED")]
    assert refused["invoice"]["status"] == "OPEN"


# --- payOutstandingBalance -----------------------------------------------------------------------


async def test_paying_the_balance_pays_every_open_invoice_of_the_currency(gateway, admin, fresh, db):
    paid = await run(gateway, PAY_BALANCE, admin, currency="usd", idempotencyKey=key())
    assert paid["userErrors"] == [] and paid["declineReason"] is None and paid["declinedInvoice"] is None
    assert [(i["id"], i["status"], i["amountDue"]["amount"]) for i in paid["invoices"]] == [
        (gid("Invoice", fresh.usd_open[0]), "PAID", 0), (gid("Invoice", fresh.usd_open[1]), "PAID", 0)]
    assert (await billing(gateway, admin))["outstandingBalance"] == [{"amount": 14_000, "currency": "EUR"}]
    [row] = await audit_rows(db, "billing.pay_balance")
    assert row["outcome"] == "SUCCESS" and row["details"]["paid"] == list(fresh.usd_open)


async def test_paying_the_balance_stops_at_the_first_decline(gateway, admin, fresh, db, monkeypatch):
    original = PaymentsClient.pay_invoice
    calls: list[str] = []

    async def second_declines(self, invoice_id, **kwargs):
        calls.append(invoice_id)
        if len(calls) == 2:
            raise declined("card_declined", "insufficient_funds")
        return await original(self, invoice_id, **kwargs)

    monkeypatch.setattr(PaymentsClient, "pay_invoice", second_declines)
    partly = await run(gateway, PAY_BALANCE, admin, currency="USD", idempotencyKey=key())
    assert [i["id"] for i in partly["invoices"]] == [gid("Invoice", fresh.usd_open[0])]
    assert partly["declinedInvoice"] == {"id": gid("Invoice", fresh.usd_open[1]), "status": "OPEN"}
    assert partly["declineReason"] == "INSUFFICIENT_FUNDS"
    assert codes(partly) == [(None, "PAYMENT_DECLINED")]
    [row] = await audit_rows(db, "billing.pay_balance")
    assert row["outcome"] == "PARTIAL" and row["details"]["paid"] == [fresh.usd_open[0]]


async def test_a_balance_with_a_declining_card_pays_nothing(gateway, admin, provider, db):
    fresh = await make_customer(provider, db, card=DECLINES_AT_CHARGE)
    refused = await run(gateway, PAY_BALANCE, admin, currency="EUR", idempotencyKey=key())
    assert refused["invoices"] == [] and refused["declineReason"] == "CARD_DECLINED"
    assert refused["declinedInvoice"]["id"] == gid("Invoice", fresh.eur_open)
    [row] = await audit_rows(db, "billing.pay_balance")
    assert row["outcome"] == "REFUSED"


async def test_a_balance_with_nothing_due_or_a_bad_currency_is_refused(gateway, admin, fresh):
    nothing = await run(gateway, PAY_BALANCE, admin, currency="GBP", idempotencyKey=key())
    assert codes(nothing) == [(["input", "currency"], "NOT_PAYABLE")] and nothing["invoices"] == []
    bad = await run(gateway, PAY_BALANCE, admin, currency="euro", idempotencyKey=key())
    assert codes(bad) == [(["input", "currency"], "INVALID")]


async def test_a_balance_retry_after_a_lost_answer_reports_every_invoice_once(gateway, admin, fresh, emulator,
                                                                            monkeypatch):
    original = PaymentsClient.pay_invoice
    calls: list[str] = []

    async def second_answer_lost(self, invoice_id, **kwargs):
        calls.append(invoice_id)
        result = await original(self, invoice_id, **kwargs)
        if len(calls) == 2:
            raise ProviderUnavailable("The payment provider is unavailable; try again shortly.")
        return result

    monkeypatch.setattr(PaymentsClient, "pay_invoice", second_answer_lost)
    input = {"currency": "USD", "idempotencyKey": key()}
    assert await error_code(gateway, PAY_BALANCE, admin, **input) == "PROVIDER_UNAVAILABLE"
    retried = await run(gateway, PAY_BALANCE, admin, **input)
    assert [i["id"] for i in retried["invoices"]] == [gid("Invoice", i) for i in fresh.usd_open]
    assert sorted(c["amount"] for c in await charges(emulator, fresh.customer_id)) == [2_000, 5_000, 20_000]


# --- payment methods -----------------------------------------------------------------------------


async def test_admin_adds_a_card_and_makes_it_the_default(gateway, admin, fresh, emulator, db):
    token = await tokenize(emulator)
    added = await run(gateway, ADD_METHOD, admin, paymentMethodToken=token)
    assert added["userErrors"] == [] and added["declineReason"] is None
    assert added["paymentMethod"] == {"id": gid("PaymentMethod", token), "brand": "visa", "last4": "4444",
                                      "expMonth": 9, "expYear": 2032, "isDefault": False}
    again = await run(gateway, ADD_METHOD, admin, paymentMethodToken=token, makeDefault=True)
    assert again["paymentMethod"]["isDefault"] is True
    methods = (await billing(gateway, admin))["paymentMethods"]
    assert [(m["last4"], m["isDefault"]) for m in methods] == [("4444", True), ("4242", False)]
    rows = await audit_rows(db, "billing.add_payment_method")
    assert [(r["outcome"], r["target"]) for r in rows] == [("SUCCESS", f"PaymentMethod:{token}")] * 2


async def test_the_first_card_becomes_the_default(gateway, admin, provider, db, emulator):
    fresh = await make_customer(provider, db, invoices=False)
    await provider.set_default_payment_method(fresh.customer_id, None)
    added = await run(gateway, ADD_METHOD, admin, paymentMethodToken=await tokenize(emulator))
    assert added["paymentMethod"]["isDefault"] is True


async def test_a_card_declined_at_attach_or_unknown_is_refused(gateway, admin, fresh, emulator, provider, db):
    declined_card = await run(gateway, ADD_METHOD, admin,
                              paymentMethodToken=await tokenize(emulator, DECLINES_AT_ATTACH))
    assert declined_card["declineReason"] == "CARD_DECLINED" and declined_card["paymentMethod"] is None
    assert codes(declined_card) == [(["input", "paymentMethodToken"], "PAYMENT_DECLINED")]
    unknown = await run(gateway, ADD_METHOD, admin, paymentMethodToken="pm_doesnotexist")
    assert codes(unknown) == [(["input", "paymentMethodToken"], "NOT_FOUND")]
    malformed = await run(gateway, ADD_METHOD, admin, paymentMethodToken="4242424242424242")
    assert codes(malformed) == [(["input", "paymentMethodToken"], "INVALID")]
    # A card already attached to another customer cannot be taken over.
    other = await provider.create_customer(name="Other", email="other@example.com", metadata={},
                                           idempotency_key=key())
    theirs = await provider.add_card(other.id, card_number=VISA, exp_month=1, exp_year=2033, cvc="123",
                                     make_default=True, idempotency_key=key())
    taken = await run(gateway, ADD_METHOD, admin, paymentMethodToken=theirs.id)
    assert codes(taken) == [(["input", "paymentMethodToken"], "NOT_FOUND")]
    assert [m.id for m in await provider.list_payment_methods(other.id)] == [theirs.id]
    assert len((await billing(gateway, admin))["paymentMethods"]) == 1
    rows = await audit_rows(db, "billing.add_payment_method")
    assert [r["outcome"] for r in rows] == ["REFUSED"] * 4


async def test_a_removed_card_cannot_be_added_again_by_anyone(gateway, admin, fresh, emulator):
    """Stripe spends a detached payment method for good: not this organization, not another."""
    token = await tokenize(emulator)
    assert (await run(gateway, ADD_METHOD, admin, paymentMethodToken=token))["userErrors"] == []
    removed = await run(gateway, REMOVE_METHOD, admin, paymentMethodId=gid("PaymentMethod", token))
    assert removed["userErrors"] == []
    other_admin = await gateway.login("admin@globex.example")
    for who in (other_admin, admin):
        again = await run(gateway, ADD_METHOD, who, paymentMethodToken=token)
        assert codes(again) == [(["input", "paymentMethodToken"], "INVALID")] and again["paymentMethod"] is None
        assert token not in {m["id"] for m in (await billing(gateway, who))["paymentMethods"]}
    # The emulator answers as Stripe does, to any client.
    direct = await emulator.post(f"/v1/payment_methods/{token}/attach", data={"customer": fresh.customer_id})
    assert direct.status_code == 400 and "may not be used again" in direct.json()["error"]["message"]
    detached_twice = await emulator.post(f"/v1/payment_methods/{token}/detach")
    assert detached_twice.status_code == 400


async def test_admin_sets_the_default_card(gateway, admin, fresh, provider, db):
    other = await provider.add_card(fresh.customer_id, card_number=MASTERCARD, exp_month=9, exp_year=2032,
                                    cvc="123", make_default=False, idempotency_key=key())
    result = await run(gateway, SET_DEFAULT, admin, paymentMethodId=gid("PaymentMethod", other.id))
    assert result == {"paymentMethod": {"id": gid("PaymentMethod", other.id), "last4": "4444", "isDefault": True},
                      "userErrors": []}
    assert (await provider.get_customer(fresh.customer_id)).default_payment_method_id == other.id
    [row] = await audit_rows(db, "billing.set_default_payment_method")
    assert (row["outcome"], row["target"]) == ("SUCCESS", f"PaymentMethod:{other.id}")


async def test_removing_the_default_card_makes_the_next_one_default(gateway, admin, fresh, provider, db):
    other = await provider.add_card(fresh.customer_id, card_number=MASTERCARD, exp_month=9, exp_year=2032,
                                    cvc="123", make_default=False, idempotency_key=key())
    removed = await run(gateway, REMOVE_METHOD, admin, paymentMethodId=gid("PaymentMethod", fresh.card_id))
    assert removed == {"removedPaymentMethodId": gid("PaymentMethod", fresh.card_id),
                       "paymentMethods": [{"id": gid("PaymentMethod", other.id), "last4": "4444",
                                           "isDefault": True}],
                       "userErrors": []}
    [row] = await audit_rows(db, "billing.remove_payment_method")
    assert row["outcome"] == "SUCCESS" and row["details"]["newDefault"] == other.id


async def test_the_last_card_stays_while_a_subscription_is_billed(gateway, admin, fresh, db, provider):
    only = gid("PaymentMethod", fresh.card_id)
    refused = await run(gateway, REMOVE_METHOD, admin, paymentMethodId=only)
    assert codes(refused) == [(["input", "paymentMethodId"], "LAST_PAYMENT_METHOD")]
    assert refused["removedPaymentMethodId"] is None and len(refused["paymentMethods"]) == 1
    await db.execute("UPDATE subscriptions SET status = 'EXPIRED' WHERE organization_id = $1", NORTHWIND)
    removed = await run(gateway, REMOVE_METHOD, admin, paymentMethodId=only)
    assert removed["userErrors"] == [] and removed["paymentMethods"] == []
    assert (await provider.get_customer(fresh.customer_id)).default_payment_method_id is None
    rows = await audit_rows(db, "billing.remove_payment_method")
    assert [r["outcome"] for r in rows] == ["REFUSED", "SUCCESS"]


# --- updateBillingInfo ---------------------------------------------------------------------------


ADDRESS = {"line1": "5 Harbour Road", "line2": "Floor 3", "city": "Dublin", "postalCode": "D02 X285",
           "state": "Leinster", "country": "ie"}


async def test_billing_info_round_trips_through_the_provider(gateway, admin, fresh, provider, db):
    updated = await run(gateway, UPDATE_INFO, admin, company="Northwind Studio Ltd",
                        billingEmail="ap@northwind.example", vatId="ie 1234567 wa", address=ADDRESS)
    expected = {"company": "Northwind Studio Ltd", "billingEmail": "ap@northwind.example", "vatId": "IE1234567WA",
                "address": {**ADDRESS, "country": "IE"}}
    assert updated == {"billingInfo": expected, "userErrors": []}
    assert (await billing(gateway, admin))["billingInfo"] == expected
    stored = await provider.get_customer(fresh.customer_id)
    assert (stored.name, stored.email, stored.vat_id, stored.address.city) == (
        "Northwind Studio Ltd", "ap@northwind.example", "IE1234567WA", "Dublin")

    # Left out: unchanged. Empty: removed. An address replaces the whole address.
    changed = await run(gateway, UPDATE_INFO, admin, vatId="",
                        address={"line1": "1 Main St", "city": "Cork", "country": "IE"})
    assert changed["billingInfo"] == {
        "company": "Northwind Studio Ltd", "billingEmail": "ap@northwind.example", "vatId": None,
        "address": {"line1": "1 Main St", "line2": None, "city": "Cork", "postalCode": None, "state": None,
                    "country": "IE"}}
    rows = await audit_rows(db, "billing.update_info")
    assert [(r["outcome"], r["details"]["changed"]) for r in rows] == [
        ("SUCCESS", ["company", "billingEmail", "vatId", "address"]), ("SUCCESS", ["vatId", "address"])]


async def test_billing_info_is_validated_field_by_field(gateway, admin, fresh, provider, db):
    before = await provider.get_customer(fresh.customer_id)
    refused = await run(gateway, UPDATE_INFO, admin, company="x" * 201, billingEmail="not-an-email",
                        vatId="123", address={**ADDRESS, "line1": " ", "country": "Germany"})
    assert codes(refused) == [(["input", "company"], "INVALID"), (["input", "billingEmail"], "INVALID"),
                              (["input", "vatId"], "INVALID"), (["input", "address", "line1"], "INVALID"),
                              (["input", "address", "country"], "INVALID")]
    assert await provider.get_customer(fresh.customer_id) == before
    for field, value in (("billingEmail", "a@b"), ("billingEmail", ""), ("vatId", "US123456789"),
                         ("vatId", "DE12")):
        assert codes(await run(gateway, UPDATE_INFO, admin, **{field: value})) == [(["input", field], "INVALID")]
    rows = await audit_rows(db, "billing.update_info")
    assert [r["outcome"] for r in rows] == ["REFUSED"] * 5


TAX_ID = """
mutation UpdateInfo($input: UpdateBillingInfoInput!) {
  updateBillingInfo(input: $input) {
    billingInfo { vatId taxId { type value country } }
    userErrors { field message code }
  }
}
"""


@pytest.mark.parametrize("tax_type, value, stored, country", [
    ("GB_VAT", "GB 123 4567 89", "GB 123 4567 89", "GB"),
    ("CH_VAT", "CHE-123.456.789 MWST", "CHE-123.456.789 MWST", "CH"),
    ("NO_VAT", "123456789MVA", "123456789MVA", "NO"),
    ("US_EIN", "12-3456789", "12-3456789", "US"),
    ("AU_ABN", "12345678912", "12345678912", "AU"),
    ("EU_VAT", "el 123456789", "EL123456789", "GR"),
    ("JP_TRN", "T1234567891234", "T1234567891234", "JP"),
    ("BW_VAT", "C01234567890", "C01234567890", "BW"),  # no shape known here: the provider checks it
])
async def test_a_tax_id_of_each_kind_is_stored_at_the_provider_with_its_type(gateway, admin, fresh, provider,
                                                                            tax_type, value, stored, country):
    payload = await run(gateway, TAX_ID, admin, taxId={"type": tax_type, "value": value})
    assert payload == {"billingInfo": {"vatId": stored, "taxId": {"type": tax_type, "value": stored,
                                                                   "country": country}}, "userErrors": []}
    customer = await provider.get_customer(fresh.customer_id)
    assert (customer.tax_id_type, customer.vat_id) == (tax_type.lower(), stored)


async def test_a_new_tax_id_replaces_the_old_and_an_empty_value_removes_it(gateway, admin, fresh, provider):
    await run(gateway, TAX_ID, admin, vatId="DE123456789")
    replaced = await run(gateway, TAX_ID, admin, taxId={"type": "GB_VAT", "value": "GB123456789"})
    assert replaced["billingInfo"]["taxId"] == {"type": "GB_VAT", "value": "GB123456789", "country": "GB"}
    raw = await provider._read(lambda: provider._v1.customers.retrieve_async(fresh.customer_id,
                                                                             {"expand": ["tax_ids"]}))
    assert [(t["type"], t["value"]) for t in raw["tax_ids"]["data"]] == [("gb_vat", "GB123456789")]
    removed = await run(gateway, TAX_ID, admin, taxId={"type": "GB_VAT", "value": " "})
    assert removed["billingInfo"] == {"vatId": None, "taxId": None}


@pytest.mark.parametrize("tax_id, field", [
    ({"type": "GB_VAT", "value": "DE123456789"}, "value"),  # another kind's number
    ({"type": "CH_VAT", "value": "CHE-123.456.789"}, "value"),  # the VAT suffix missing
    ({"type": "NO_VAT", "value": "12345678MVA"}, "value"),
    ({"type": "US_EIN", "value": "12-345678"}, "value"),
    ({"type": "AU_ABN", "value": "1234567891"}, "value"),
    ({"type": "EU_VAT", "value": "US123456789"}, "value"),
    ({"type": "BW_VAT", "value": "x" * 41}, "value"),
    ({"type": "GB_VAT", "value": "GB１２３４５６７８９"}, "value"),  # fullwidth digits: found by the outside attack
    ({"type": "US_EIN", "value": "١٢-٣٤٥٦٧٨٩"}, "value"),  # Arabic-Indic digits
    ({"type": "BW_VAT", "value": "C0123\u0000"}, "value"),
])
async def test_a_tax_id_not_of_its_kinds_format_is_refused_and_nothing_changes(gateway, admin, fresh, provider,
                                                                               tax_id, field):
    before = await provider.get_customer(fresh.customer_id)
    body = await gateway.execute(TAX_ID, {"input": {"taxId": tax_id}}, token=admin)
    if "errors" in body:  # NUL is refused for every string of a request, before any resolver runs
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    else:
        payload = body["data"]["updateBillingInfo"]
        assert codes(payload) == [(["input", "taxId", field], "INVALID")], payload
        assert tax_id["type"].lower() in payload["userErrors"][0]["message"]
    assert await provider.get_customer(fresh.customer_id) == before


async def test_tax_id_and_vat_id_together_are_refused_and_an_unknown_kind_is_a_bad_request(gateway, admin):
    both = await run(gateway, TAX_ID, admin, vatId="DE123456789", taxId={"type": "GB_VAT", "value": "GB123456789"})
    assert codes(both) == [(["input", "vatId"], "INVALID")]
    body = await gateway.execute(TAX_ID, {"input": {"taxId": {"type": "XX_VAT", "value": "1"}}}, token=admin)
    assert "data" not in body and "TaxIdType" in body["errors"][0]["message"]  # a variable error: not executed


# --- who may -------------------------------------------------------------------------------------


def mutations(fresh: Fresh) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each mutation with an input naming Northwind's objects."""
    card = gid("PaymentMethod", fresh.card_id)
    return {
        "payInvoice": (PAY_INVOICE, {"invoiceId": gid("Invoice", fresh.usd_open[0]), "idempotencyKey": key()}),
        "payOutstandingBalance": (PAY_BALANCE, {"currency": "USD", "paymentMethodId": card,
                                                "idempotencyKey": key()}),
        "addPaymentMethod": (ADD_METHOD, {"paymentMethodToken": "pm_doesnotexist"}),
        "setDefaultPaymentMethod": (SET_DEFAULT, {"paymentMethodId": card}),
        "removePaymentMethod": (REMOVE_METHOD, {"paymentMethodId": card}),
        "updateBillingInfo": (UPDATE_INFO, {"company": "Taken Over Ltd"}),
    }


NAMES = ("payInvoice", "payOutstandingBalance", "addPaymentMethod", "setDefaultPaymentMethod",
         "removePaymentMethod", "updateBillingInfo")


@pytest.mark.parametrize("name", NAMES)
async def test_anonymous_and_members_may_not(gateway, fresh, provider, emulator, name):
    query, input = mutations(fresh)[name]
    assert await error_code(gateway, query, None, **input) == "UNAUTHENTICATED"
    member = await gateway.login(MEMBER)
    assert await error_code(gateway, query, member, **input) == "FORBIDDEN"
    assert (await provider.get_customer(fresh.customer_id)).name == "Northwind Studio"
    assert len(await provider.list_payment_methods(fresh.customer_id)) == 1
    assert len(await charges(emulator, fresh.customer_id)) == 1


@pytest.mark.parametrize("name", ("payInvoice", "setDefaultPaymentMethod", "removePaymentMethod"))
async def test_another_organizations_objects_are_not_found(gateway, fresh, name):
    query, input = mutations(fresh)[name]
    globex = await gateway.login(GLOBEX_ADMIN)
    assert await error_code(gateway, query, globex, **input) == "NOT_FOUND"
    # Malformed, of another type, or unknown: the same answer.
    id_field = "invoiceId" if name == "payInvoice" else "paymentMethodId"
    admin = await gateway.login(ADMIN)
    type_name = "Invoice" if name == "payInvoice" else "PaymentMethod"
    for wrong in ("not-a-global-id", gid("Account", str(uuid.uuid4())), gid(type_name, "unknown_1")):
        assert await error_code(gateway, query, admin, **{**input, id_field: wrong}) == "NOT_FOUND"


async def test_another_organizations_card_cannot_pay_a_balance(gateway, fresh):
    query, input = mutations(fresh)["payOutstandingBalance"]
    # Globex's admin pays Globex's balance with Northwind's card: the card is not found.
    refused = await run(gateway, query, await gateway.login(GLOBEX_ADMIN), **{**input, "currency": "GBP"})
    assert codes(refused) == [(["input", "paymentMethodId"], "NOT_FOUND")]


async def test_the_owner_may_do_everything(gateway, fresh, emulator, db):
    owner = await gateway.login(OWNER)
    assert (await run(gateway, PAY_INVOICE, owner, invoiceId=gid("Invoice", fresh.usd_open[0]),
                      idempotencyKey=key()))["userErrors"] == []
    assert (await run(gateway, PAY_BALANCE, owner, currency="EUR", idempotencyKey=key()))["userErrors"] == []
    token = await tokenize(emulator)
    assert (await run(gateway, ADD_METHOD, owner, paymentMethodToken=token))["userErrors"] == []
    assert (await run(gateway, SET_DEFAULT, owner, paymentMethodId=gid("PaymentMethod", token)))["userErrors"] == []
    assert (await run(gateway, REMOVE_METHOD, owner,
                      paymentMethodId=gid("PaymentMethod", fresh.card_id)))["userErrors"] == []
    assert (await run(gateway, UPDATE_INFO, owner, company="Northwind Owner Co"))["userErrors"] == []
    actions = await db.fetch("SELECT action FROM audit_log WHERE organization_id = $1 AND action LIKE 'billing.%'"
                             " AND outcome = 'SUCCESS' ORDER BY id", NORTHWIND)
    assert [r["action"] for r in actions] == [
        "billing.pay_invoice", "billing.pay_balance", "billing.add_payment_method",
        "billing.set_default_payment_method", "billing.remove_payment_method", "billing.update_info"]
