"""Provider webhooks over HTTP: `POST /webhooks/payments` against the real app and localstripe.

Deliveries are signed here exactly as Stripe signs them (`t=<ts>,v1=<hex HMAC-SHA256 of
"<ts>.<body>">`), independently of the SDK the gateway verifies with. The events carry the
provider's own objects, read from the session's localstripe after the payment happened there;
each test makes a fresh provider customer and points Northwind at it in its own database.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from datasources.errors import PaymentDeclined
from datasources.payments.client import PaymentsClient
from gateway.app import EMULATOR_API_KEY
from gateway.settings import Settings, SettingsError, resolve_webhook_secret
from tests.conftest import Gateway
from tests.test_provider_faults import (
    ADMIN,
    NORTHWIND,
    PAY_INVOICE,
    TIMEOUT,
    Proxy,
    charges,
    gid,
    key,
    make_customer,
)

SECRET = "whsec_test_" + "s" * 32
WEBHOOK = "/webhooks/payments"
DECLINES_AT_CHARGE = "4000000000000341"  # attaches fine; every charge on it is refused
SEEN = """
query Seen($invoice: ID!) {
  node(id: $invoice) { ... on Invoice { status amountDue { amount } } }
  viewer { organization { auditLog(first: 50) { nodes { action target actorService outcome details } } } }
}
"""


# --- delivering events the way the provider does ------------------------------------------------


def signature(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(type_: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": type_,
                       "created": int(time.time()), "livemode": False, "api_version": "2024-06-20",
                       "pending_webhooks": 1, "data": {"object": obj}}).encode()


async def deliver(gateway: Gateway, body: bytes, header: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    header = signature(body) if header is None else header
    if header:
        headers["stripe-signature"] = header
    return await gateway.http.post(WEBHOOK, content=body, headers=headers)


async def provider_object(api_base: str, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api_base,
                                 headers={"authorization": f"Bearer {EMULATOR_API_KEY}"}) as http:
        response = await http.get(path)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def provider(services) -> PaymentsClient:
    client = PaymentsClient(EMULATOR_API_KEY, api_base=services.stripe_api_base, timeout_seconds=5)
    yield client
    await client.close()


@pytest.fixture
async def hooked(app_for, settings: Settings) -> Gateway:
    return await app_for(settings.with_(stripe_webhook_secret=SECRET))


async def seen(gateway: Gateway, invoice_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The invoice as the admin reads it, and the audit entries the provider's events wrote."""
    body = await gateway.execute(SEEN, {"invoice": gid("Invoice", invoice_id)}, token=await gateway.login(ADMIN))
    assert "errors" not in body, body
    entries = body["data"]["viewer"]["organization"]["auditLog"]["nodes"]
    by_provider = [{**e, "details": json.loads(e["details"])} for e in entries if e["actorService"]]
    return body["data"]["node"], by_provider


async def recorded(db) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in await db.fetch("SELECT id, type, outcome FROM provider_events ORDER BY received_at")]


# --- events applied once -------------------------------------------------------------------------


async def test_an_invoice_paid_elsewhere_is_shown_paid_and_its_event_applies_once(hooked, services, provider, db):
    billed = await make_customer(services.stripe_api_base, db)
    invoice_id = billed.open_invoices[0]
    await provider.pay_invoice(invoice_id, idempotency_key=key())  # outside the gateway
    paid = event("invoice.paid", await provider_object(services.stripe_api_base, f"/v1/invoices/{invoice_id}"))
    evt = json.loads(paid)["id"]

    first = await deliver(hooked, paid)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "eventId": evt, "duplicate": False, "applied": True}
    invoice, entries = await seen(hooked, invoice_id)
    assert invoice == {"status": "PAID", "amountDue": {"amount": 0}}
    assert entries == [{"action": "billing.invoice_paid", "target": f"Invoice:{invoice_id}",
                        "actorService": "payment-provider", "outcome": "SUCCESS",
                        "details": {"event": evt, "invoice": invoice_id, "amount": 20_000, "currency": "USD",
                                    "settledPendingPayments": 0}}]

    # The provider delivers again (re-signed, later): answered 200, nothing changes.
    again = await deliver(hooked, paid, signature(paid, timestamp=int(time.time()) + 1))
    assert again.status_code == 200
    assert again.json() == {"received": True, "eventId": evt, "duplicate": True, "applied": False}
    assert (await seen(hooked, invoice_id))[1] == entries
    assert await recorded(db) == [(evt, "invoice.paid", "APPLIED")]


async def test_concurrent_deliveries_of_one_event_apply_it_once(hooked, services, provider, db):
    billed = await make_customer(services.stripe_api_base, db)
    invoice_id = billed.open_invoices[1]
    await provider.pay_invoice(invoice_id, idempotency_key=key())
    paid = event("invoice.paid", await provider_object(services.stripe_api_base, f"/v1/invoices/{invoice_id}"))
    answers = await asyncio.gather(*(deliver(hooked, paid) for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True]
    assert len((await seen(hooked, invoice_id))[1]) == 1


async def test_a_pending_payment_is_settled_by_the_providers_events(app_for, settings, services, db):
    """A payment whose answer was lost is pending; the provider's events settle it, once."""
    billed = await make_customer(services.stripe_api_base, db)
    invoice_id = billed.open_invoices[0]
    proxy = Proxy(services.stripe_api_base)
    await proxy.start()
    try:
        gateway = await app_for(settings.with_(stripe_webhook_secret=SECRET, stripe_api_base=proxy.api_base,
                                               provider_timeout_seconds=TIMEOUT))
        token = await gateway.login(ADMIN)
        pays = iter(["lose_answer"])
        proxy.policy = lambda r: next(pays, "forward") if r.method == "POST" and r.path.endswith("/pay") else "forward"
        input = {"invoiceId": gid("Invoice", invoice_id), "idempotencyKey": key()}
        pending = (await gateway.execute(PAY_INVOICE, {"input": input}, token=token))["data"]["payInvoice"]
        assert pending["paymentPending"] is True

        def attempt() -> Any:
            return db.fetchval("SELECT response::text FROM idempotency_records WHERE key = $1",
                               input["idempotencyKey"])

        assert json.loads(await attempt())["pending"] == [invoice_id]

        invoice = await provider_object(services.stripe_api_base, f"/v1/invoices/{invoice_id}")
        intent = await provider_object(services.stripe_api_base, f"/v1/payment_intents/{invoice['payment_intent']}")
        succeeded = event("payment_intent.succeeded", intent)
        evt = json.loads(succeeded)["id"]
        answer = await deliver(gateway, succeeded)
        assert answer.status_code == 200 and answer.json()["applied"] is True
        settled = json.loads(await attempt())
        assert "pending" not in settled and settled["plan"] == [invoice_id]
        assert settled["settledByProvider"] == {invoice_id: {"event": evt, "outcome": "PAID"}}
        shown, entries = await seen(gateway, invoice_id)
        assert shown["status"] == "PAID"
        assert [(e["action"], e["target"], e["details"]["settledPendingPayments"], e["details"]["paymentIntent"])
                for e in entries] == [("billing.payment_succeeded", f"Invoice:{invoice_id}", 1, intent["id"])]

        # The replay, and the invoice's own event after it, settle nothing more.
        assert (await deliver(gateway, succeeded)).json()["duplicate"] is True
        assert json.loads(await attempt()) == settled
        paid = await deliver(gateway, event("invoice.paid", invoice))
        assert paid.json()["applied"] is True
        entries = (await seen(gateway, invoice_id))[1]
        assert [(e["action"], e["details"]["settledPendingPayments"]) for e in entries] == [
            ("billing.invoice_paid", 0), ("billing.payment_succeeded", 1)]

        # The client's retry with its key answers settled, without paying again.
        retried = (await gateway.execute(PAY_INVOICE, {"input": input}, token=token))["data"]["payInvoice"]
        assert retried == {**pending, "paymentPending": False, "userErrors": []}
        assert len(proxy.requests("POST", "/pay")) == 1
        assert await charges(services.stripe_api_base, billed.customer_id) == [20_000]
    finally:
        await proxy.close()


async def test_a_failed_payment_is_recorded_with_the_gateways_decline_reason(hooked, services, provider, db):
    customer = await provider.create_customer(name="Northwind Studio", email="billing@northwind.example",
                                              metadata={"test": "webhooks"}, idempotency_key=key())
    await provider.add_card(customer.id, card_number=DECLINES_AT_CHARGE, exp_month=12, exp_year=2031, cvc="123",
                            make_default=True, idempotency_key=key())
    invoice = await provider.create_invoice(customer.id, currency="EUR", lines=[("Render seats", 1, 4_000)],
                                            tax_percent=None, pay=False, idempotency_key=key())
    await db.execute("UPDATE organizations SET payment_customer_id = $1 WHERE id = $2", customer.id, NORTHWIND)
    with pytest.raises(PaymentDeclined):
        await provider.pay_invoice(invoice.id, idempotency_key=key())
    raw = await provider_object(services.stripe_api_base, f"/v1/invoices/{invoice.id}")
    intent = await provider_object(services.stripe_api_base, f"/v1/payment_intents/{raw['payment_intent']}")
    failed = event("payment_intent.payment_failed", intent)

    assert (await deliver(hooked, failed)).json()["applied"] is True
    shown, entries = await seen(hooked, invoice.id)
    assert shown["status"] == "OPEN"
    [entry] = entries
    assert (entry["action"], entry["outcome"], entry["target"]) == (
        "billing.payment_failed", "REFUSED", f"Invoice:{invoice.id}")
    assert entry["details"]["declineReason"] == "CARD_DECLINED"
    assert entry["details"]["amount"] == 4_000 and entry["details"]["currency"] == "EUR"


async def test_events_the_gateway_does_not_handle_are_recorded_and_ignored(hooked, services, db):
    billed = await make_customer(services.stripe_api_base, db)
    customer = await provider_object(services.stripe_api_base, f"/v1/customers/{billed.customer_id}")
    for body in (event("customer.updated", customer),
                 # A handled type about a customer that is no organization's: nothing to apply it to.
                 event("invoice.paid", {"id": "in_elsewhere", "object": "invoice", "customer": "cus_unknown",
                                        "amount_paid": 100, "currency": "usd", "status": "paid"})):
        answer = await deliver(hooked, body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["applied"] is False and answer.json()["duplicate"] is False
        assert (await deliver(hooked, body)).json()["duplicate"] is True
    assert [(t, o) for _, t, o in await recorded(db)] == [("customer.updated", "IGNORED"), ("invoice.paid", "IGNORED")]
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE actor_service IS NOT NULL") == 0


# --- deliveries refused --------------------------------------------------------------------------


async def test_a_tampered_body_a_wrong_secret_or_no_signature_is_refused_and_records_nothing(
        hooked, services, provider, db):
    billed = await make_customer(services.stripe_api_base, db)
    invoice_id = billed.open_invoices[0]
    await provider.pay_invoice(invoice_id, idempotency_key=key())
    genuine = event("invoice.paid", await provider_object(services.stripe_api_base, f"/v1/invoices/{invoice_id}"))
    tampered = genuine.replace(b'"amount_paid": 20000', b'"amount_paid": 1')
    assert tampered != genuine
    for body, header in ((tampered, signature(genuine)),
                         (genuine, signature(genuine, secret="whsec_someone_else")),
                         (genuine, f"t={int(time.time())},v0=" + "0" * 64),
                         (genuine, "")):
        answer = await deliver(hooked, body, header)
        assert answer.status_code == 400, answer.text
        expected = "MISSING_SIGNATURE" if not header else "BAD_SIGNATURE"
        assert answer.json()["reason"] == expected, answer.json()
        assert answer.json()["error"]
    assert await recorded(db) == []
    assert (await seen(hooked, invoice_id))[1] == []
    # The genuine delivery of the same event id is still new.
    assert (await deliver(hooked, genuine)).json()["applied"] is True


async def test_a_stale_timestamp_is_refused(hooked, services, db):
    billed = await make_customer(services.stripe_api_base, db)
    body = event("invoice.paid", await provider_object(services.stripe_api_base,
                                                       f"/v1/invoices/{billed.open_invoices[0]}"))
    answer = await deliver(hooked, body, signature(body, timestamp=int(time.time()) - 301))
    assert answer.status_code == 400
    assert answer.json() == {"error": "The signature's timestamp is more than 300 seconds old.",
                             "reason": "STALE_TIMESTAMP"}
    # Stale and wrong: the signature is what is wrong.
    wrong = await deliver(hooked, body, signature(body, secret="whsec_x", timestamp=int(time.time()) - 3600))
    assert wrong.json()["reason"] == "BAD_SIGNATURE"
    assert await recorded(db) == []


async def test_a_timestamp_in_the_future_is_refused(hooked, db):
    # The SDK refuses only old timestamps: a delivery signed ahead could be replayed until then.
    body = event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_1"})
    answer = await deliver(hooked, body, signature(body, timestamp=int(time.time()) + 3600))
    assert answer.status_code == 400
    assert answer.json() == {"error": "The signature's timestamp is more than 300 seconds in the future.",
                             "reason": "FUTURE_TIMESTAMP"}
    assert (await deliver(hooked, body, signature(body, timestamp=int(time.time()) + 60))).status_code == 200
    assert [r[1] for r in await recorded(db)] == ["invoice.paid"]


@pytest.mark.parametrize("created", [10**12, 10**30, -(10**12), 0, 1_000_000_000, "future", None, 1.7e9, True,
                                     "1700000000"])
@pytest.mark.reads_only  # refused before anything is written
async def test_an_event_created_outside_any_real_time_is_refused(hooked, db, created):
    created = int(time.time()) + 3600 if created == "future" else created
    body = json.dumps({"id": "evt_when", "object": "event", "type": "invoice.paid", "created": created,
                       "data": {"object": {"id": "in_1", "object": "invoice"}}}).encode()
    answer = await deliver(hooked, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["reason"] == "MALFORMED_BODY" and "`created`" in answer.json()["error"]
    assert await recorded(db) == []


async def test_text_postgresql_cannot_hold_never_fails_a_delivery(hooked, db):
    # In the fields the gateway reads: refused. Elsewhere in the event: recorded, replaced by U+FFFD.
    for bad in ("evt_\ud800", "evt_\u0000"):
        body = json.dumps({**json.loads(event("invoice.paid", {"id": "in_1", "object": "invoice"})), "id": bad}).encode()
        answer = await deliver(hooked, body)
        assert answer.status_code == 400 and answer.json()["reason"] == "MALFORMED_BODY", answer.text
    kept = event("invoice.paid", {"id": "in_1", "object": "invoice", "description": "a\ud800b\u0000c",
                                  "metadata": {"\udfff": "x"}})
    answer = await deliver(hooked, kept)
    assert answer.status_code == 200, answer.text
    stored = json.loads(await db.fetchval("SELECT payload::text FROM provider_events"))
    assert stored["data"]["object"]["description"] == "a\ufffdb\ufffdc"
    assert stored["data"]["object"]["metadata"] == {"\ufffd": "x"}


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"object": "event", "type": "invoice.paid"}',
                                  b'{"id": "evt_1", "object": "event", "type": "invoice.paid", "created": 1}',
                                  b"\xff\xfe"])
@pytest.mark.reads_only  # refused before anything is written
async def test_a_signed_body_that_is_not_an_event_is_refused(hooked, db, body):
    answer = await deliver(hooked, body, signature(body) if body != b"\xff\xfe" else f"t={int(time.time())},v1=00")
    assert answer.status_code == 400
    assert answer.json()["reason"] == "MALFORMED_BODY", answer.json()
    assert await recorded(db) == []


async def test_without_a_signing_secret_every_delivery_is_refused(gateway, db):
    body = event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_1"})
    answer = await deliver(gateway, body, signature(body, secret=""))
    assert answer.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET" in answer.json()["error"]
    assert await recorded(db) == []


async def test_a_body_over_the_limit_is_refused(hooked, db):
    body = b'{"pad": "' + b"x" * (1 << 20) + b'"}'
    assert (await deliver(hooked, body)).status_code == 413
    assert await recorded(db) == []


# --- the signing secret --------------------------------------------------------------------------


def test_development_keeps_a_generated_webhook_secret_in_the_data_directory(tmp_path: Path):
    first = resolve_webhook_secret(Settings(data_dir=tmp_path))
    assert first.stripe_webhook_secret.startswith("whsec_") and len(first.stripe_webhook_secret) > 40
    assert resolve_webhook_secret(Settings(data_dir=tmp_path)).stripe_webhook_secret == first.stripe_webhook_secret
    assert (tmp_path / "stripe_webhook_secret").stat().st_mode & 0o077 == 0
    given = Settings(data_dir=tmp_path, stripe_webhook_secret="whsec_given")
    assert resolve_webhook_secret(given).stripe_webhook_secret == "whsec_given"


def test_production_with_a_provider_key_requires_the_webhook_secret(tmp_path: Path):
    with pytest.raises(SettingsError, match="STRIPE_WEBHOOK_SECRET is not set"):
        resolve_webhook_secret(Settings(env="production", data_dir=tmp_path, stripe_api_key="sk_live_x"))
    # Without a provider key there is no provider to send events: nothing is made up either.
    assert resolve_webhook_secret(Settings(env="production", data_dir=tmp_path)).stripe_webhook_secret == ""
    assert not (tmp_path / "stripe_webhook_secret").exists()
