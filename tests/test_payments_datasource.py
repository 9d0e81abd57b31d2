"""The payments datasource against a real localstripe (our emulator wrapper); no mocks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from datasources.errors import PaymentDeclined, ProviderUnavailable
from datasources.payments.client import PaymentsClient
from datasources.payments.demo import DemoBillingOrg, ensure_demo_billing
from datasources.payments.emulator import Emulator
from datasources.payments.records import Address

API_KEY = "sk_test_gateway"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    em = Emulator.start(tmp_path_factory.mktemp("stripe") / "store.pickle")
    try:
        yield em
    finally:
        em.stop()


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[PaymentsClient]:
    c = PaymentsClient(API_KEY, emulator.api_base, timeout_seconds=5)
    try:
        yield c
    finally:
        await c.close()


def key() -> str:
    return f"test-{uuid.uuid4()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # our own child, reaped by stop(): no zombie to mistake for life
    except ProcessLookupError:
        return False
    return True


async def new_customer(client: PaymentsClient, email: str = "billing@example.com") -> str:
    customer = await client.create_customer(
        name="Example GmbH", email=email, metadata={"org": "example"}, idempotency_key=key()
    )
    return customer.id


async def test_create_customer_and_read_it_back(client: PaymentsClient) -> None:
    created = await client.create_customer(
        name="Acme Rendering Ltd", email="ap@acme.example", metadata={"org": "acme"},
        address=Address(line1="5 Main St", city="Dublin", postal_code="D02", country="IE"),
        vat_id="IE1234567WA", idempotency_key=key(),
    )
    read = await client.get_customer(created.id)
    assert read == created
    assert read.name == "Acme Rendering Ltd" and read.email == "ap@acme.example"
    assert read.address == Address(line1="5 Main St", city="Dublin", postal_code="D02", country="IE")
    assert read.vat_id == "IE1234567WA"
    assert read.metadata == {"org": "acme"}
    assert read.default_payment_method_id is None


async def test_unknown_customer_is_none(client: PaymentsClient) -> None:
    assert await client.get_customer("cus_doesnotexist") is None


async def test_card_becomes_default_and_is_listed(client: PaymentsClient) -> None:
    customer_id = await new_customer(client)
    first = await client.add_card(customer_id, card_number="4242424242424242", exp_month=4,
                                  exp_year=2031, cvc="123", make_default=True, idempotency_key=key())
    second = await client.add_card(customer_id, card_number="5555555555554444", exp_month=9,
                                   exp_year=2032, cvc="321", make_default=False, idempotency_key=key())
    methods = {m.id: m for m in await client.list_payment_methods(customer_id)}
    assert set(methods) == {first.id, second.id}
    assert methods[first.id].is_default and not methods[second.id].is_default
    assert (methods[first.id].last4, methods[first.id].exp_month, methods[first.id].exp_year) == ("4242", 4, 2031)
    assert (await client.get_customer(customer_id)).default_payment_method_id == first.id


async def test_declined_card_cannot_be_added(client: PaymentsClient) -> None:
    # localstripe refuses 4000000000000002 when it is attached, as Stripe does when it
    # verifies a card: the user notices at "add payment method", not at payment time.
    customer_id = await new_customer(client)
    with pytest.raises(PaymentDeclined) as info:
        await client.add_card(customer_id, card_number="4000000000000002", exp_month=12,
                              exp_year=2030, cvc="123", make_default=True, idempotency_key=key())
    assert info.value.extensions == {"reason": "CARD_DECLINED"}
    assert "declined" in info.value.message
    assert await client.list_payment_methods(customer_id) == []


async def test_declined_charge_leaves_invoice_open(client: PaymentsClient) -> None:
    # 4000000000000341 attaches fine but every charge on it is refused.
    customer_id = await new_customer(client)
    await client.add_card(customer_id, card_number="4000000000000341", exp_month=12,
                          exp_year=2030, cvc="123", make_default=True, idempotency_key=key())
    with pytest.raises(PaymentDeclined) as info:
        await client.create_invoice(customer_id, currency="EUR", lines=[("Seat", 2, 1_000)],
                                    tax_percent=None, pay=True, idempotency_key=key())
    assert info.value.extensions == {"reason": "CARD_DECLINED"}
    [invoice] = await client.list_invoices(customer_id)
    assert (invoice.status, invoice.amount_due, invoice.total) == ("OPEN", 2_000, 2_000)


async def test_invoice_lines_tax_and_status(client: PaymentsClient) -> None:
    customer_id = await new_customer(client)
    await client.add_card(customer_id, card_number="4242424242424242", exp_month=12,
                          exp_year=2030, cvc="123", make_default=True, idempotency_key=key())
    paid = await client.create_invoice(
        customer_id, currency="usd", lines=[("Seat", 3, 1_500), ("Support", 1, 999)],
        tax_percent=20, pay=True, idempotency_key=key(),
    )
    assert paid.status == "PAID" and paid.amount_due == 0
    assert (paid.subtotal, paid.tax, paid.total, paid.currency) == (5_499, 1_100, 6_599, "USD")
    assert [(ln.description, ln.quantity, ln.amount, ln.currency) for ln in paid.lines] == [
        ("Seat", 3, 4_500, "USD"), ("Support", 1, 999, "USD")]
    assert paid.number and paid.created.tzinfo is not None
    open_ = await client.create_invoice(customer_id, currency="EUR", lines=[("Credits", 1, 700)],
                                        tax_percent=None, pay=False, idempotency_key=key())
    assert (open_.status, open_.amount_due, open_.currency, open_.tax) == ("OPEN", 700, "EUR", 0)
    assert {i.id for i in await client.list_invoices(customer_id)} == {paid.id, open_.id}


async def test_demo_billing(client: PaymentsClient) -> None:
    org = DemoBillingOrg(key="demo-acme", name="Acme Demo", billing_email="billing@acme-demo.example")
    customer_id = await ensure_demo_billing(client, org)

    customer = await client.get_customer(customer_id)
    assert customer.name == "Acme Demo" and customer.vat_id == "DE123456789"
    [card] = await client.list_payment_methods(customer_id)
    assert card.is_default and card.last4 == "4242"

    invoices = await client.list_invoices(customer_id)
    assert len(invoices) == len(org.invoices)
    by_status = {s: [i for i in invoices if i.status == s] for s in ("PAID", "OPEN")}
    assert len(by_status["PAID"]) >= 2 and len(by_status["OPEN"]) >= 3
    assert {i.currency for i in by_status["OPEN"]} == {"USD", "EUR"}
    # Totals: each spec's subtotal plus its tax, and only the open ones still owed.
    expected = sorted(
        (sum(q * a for _, q, a in spec.lines) * (100 + (spec.tax_percent or 0)) // 100, spec.paid)
        for spec in org.invoices
    )
    assert sorted((i.total, i.status == "PAID") for i in invoices) == expected
    assert all(i.amount_due == (0 if i.status == "PAID" else i.total) for i in invoices)

    # Seeding again finds the same customer instead of creating a second one.
    assert await ensure_demo_billing(client, org) == customer_id
    assert len(await client.list_invoices(customer_id)) == len(org.invoices)


async def test_store_survives_restart_and_stop_leaves_no_process(tmp_path: Path) -> None:
    store = tmp_path / "own" / "store.pickle"
    with Emulator.start(store) as em:
        client = PaymentsClient(API_KEY, em.api_base, timeout_seconds=5)
        customer_id = await new_customer(client, email="persist@example.com")
        await client.close()
        pid = em.pid
    assert not pid_alive(pid)
    em.stop()  # idempotent
    assert store.is_file() and store.stat().st_size > 0
    assert not list(store.parent.glob(".*.tmp"))  # atomic writes leave no temp files

    again = Emulator.start(store)
    try:
        assert again.api_base != ""
        client = PaymentsClient(API_KEY, again.api_base, timeout_seconds=5)
        customer = await client.get_customer(customer_id)
        await client.close()
        assert customer is not None and customer.email == "persist@example.com"
    finally:
        again.stop()
    assert not pid_alive(again.pid)


def test_emulator_exits_when_its_parent_dies(tmp_path: Path) -> None:
    # A parent killed without stop() must not leave an orphan emulator behind.
    script = (
        "import os, sys; from pathlib import Path;"
        "from datasources.payments.emulator import Emulator;"
        f"em = Emulator.start(Path({str(tmp_path / 'store.pickle')!r}));"
        "print(em.pid, flush=True); os.kill(os.getpid(), 9)"
    )
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    child_pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 5
    while gone(child_pid) is False and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child_pid)


def gone(pid: int) -> bool:
    # Orphans are reparented; in a container nobody may reap them, so a zombie is gone too.
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_emulator_that_cannot_start_says_so(tmp_path: Path) -> None:
    store = tmp_path / "store.pickle"
    store.mkdir()  # a directory where the store file should be: the child fails to load it
    with pytest.raises(RuntimeError, match="payment emulator did not start"):
        Emulator.start(store, timeout=10)


async def test_unreachable_provider_is_unavailable() -> None:
    client = PaymentsClient(API_KEY, "http://127.0.0.1:9", timeout_seconds=1)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailable) as info:
            await client.get_customer("cus_x")
    finally:
        await client.close()
    assert time.monotonic() - started < 3
    assert info.value.message == "The payment provider is unavailable; try again shortly."


async def test_rejected_api_key_is_unavailable(emulator: Emulator) -> None:
    client = PaymentsClient("not-a-key", emulator.api_base, timeout_seconds=5)
    try:
        with pytest.raises(ProviderUnavailable):
            await client.list_invoices("cus_x")
    finally:
        await client.close()
