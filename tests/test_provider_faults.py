"""Payment provider faults with real processes: stopped, restarted, slow, and answers lost.

The module runs its own localstripe (not the session-wide one, which other tests share) and
points Northwind's `payment_customer_id` at a customer on it. Faults are real:
- the emulator process is stopped, then started again on the same port and store;
- a small TCP proxy (`Proxy`) between the gateway and the emulator forwards each HTTP
  request and, when told, never answers, drops a request, loses the provider's answer after
  the provider acted on it, or answers 503. It also records every request it sees, with its
  idempotency key, so retries can be checked on the wire.

The app is the product's own (`create_app`); only its PaymentsClient gets test-sized
fault settings (a short breaker cool-down), forced over whatever the app passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest
from strawberry import relay

import gateway.app as app_module
from datasources.errors import NotFound, PaymentDeclined, ProviderUnavailable
from datasources.payments.breaker import BreakerState, CircuitBreaker
from datasources.payments.client import OutcomeUnknown, PaymentsClient
from datasources.payments.emulator import Emulator
from gateway.app import EMULATOR_API_KEY
from gateway.demo import demo_id
from tests.conftest import Gateway, service_directory

NORTHWIND = demo_id("organization", "northwind")
ADMIN = "admin@northwind.example"
VISA = "4242424242424242"

TIMEOUT = 1.0  # provider_timeout_seconds of the apps under test
# Long enough for the emulator to restart inside it on a loaded machine (1.5 s was outlasted once
# on the 2 CI cores under the whole suite); the tests wait out what is left of it.
COOLDOWN = 4.0
THRESHOLD = 5
# Forced onto every PaymentsClient the app makes in these tests.
FAULT_SETTINGS = {"breaker_failure_threshold": THRESHOLD, "breaker_cooldown_seconds": COOLDOWN,
                  "max_retries": 2, "retry_backoff_seconds": 0.05}

BILLING = """
{ viewer { organization {
    name
    invoices(first: 10) { nodes { id status } }
    paymentMethods { last4 isDefault }
} } }
"""
PAY_INVOICE = """
mutation PayInvoice($input: PayInvoiceInput!) {
  payInvoice(input: $input) {
    invoice { id status amountDue { amount } }
    paymentPending
    declineReason
    userErrors { field message code }
  }
}
"""


# --- a proxy that loses things, and sees everything --------------------------------------------

Action = Literal["forward", "hang", "drop_request", "lose_answer", "cut_answer", "unavailable"]
UNAVAILABLE_503 = json.dumps({"error": {"type": "api_error", "message": "overloaded"}}).encode()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    idempotency_key: str | None


class Proxy:
    """HTTP/1.1 over TCP, one request at a time per connection. `policy` decides per request:

    forward       pass it on and pass the answer back
    hang          never forward, never answer (the client's time box ends it)
    drop_request  close the connection without forwarding (it left the client, never arrived)
    lose_answer   forward it (the provider acts), then never answer
    cut_answer    forward it (the provider acts), then close without answering
    unavailable   answer 503 without forwarding
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self._upstream = (host, int(port))
        self.seen: list[Seen] = []
        self.policy: Callable[[Seen], Action] = lambda _request: "forward"
        self._server: asyncio.Server | None = None
        self.api_base = ""  # where the gateway sends its requests, once started
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.api_base = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.api_base

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def requests(self, method: str, path_part: str) -> list[Seen]:
        return [r for r in self.seen if r.method == method and path_part in r.path]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (message := await _read_http(reader)) is not None:
                request = _parse_request(message)
                self.seen.append(request)
                action = self.policy(request)
                if action == "drop_request":
                    return
                if action == "hang":
                    await asyncio.Event().wait()
                if action == "unavailable":
                    writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(UNAVAILABLE_503), UNAVAILABLE_503))
                    await writer.drain()
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection(*self._upstream)
                upstream[1].write(message)
                await upstream[1].drain()
                answer = await _read_http(upstream[0])
                if answer is None or action == "cut_answer":
                    return
                if action == "lose_answer":
                    await asyncio.Event().wait()
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # closed by `close()`: the held connection just goes away
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()
            self._tasks.discard(task)  # type: ignore[arg-type]


async def _read_http(reader: asyncio.StreamReader) -> bytes | None:
    """One whole HTTP/1.1 message (head and body) as bytes; None at end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    headers = _headers(head)
    if "content-length" in headers:
        return head + await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0], 16)
            body += line + await reader.readexactly(size + 2)
            if size == 0:
                return head + body
    return head


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}


def _parse_request(message: bytes) -> Seen:
    head = message.split(b"\r\n\r\n", 1)[0]
    method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return Seen(method, path, _headers(head).get("idempotency-key"))


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_emulator() -> Iterator[Emulator]:
    """This module's provider: stopping it leaves the session's emulator alone."""
    with service_directory("provider-faults") as root:
        emulator = Emulator.start(root / "localstripe.pickle")
        try:
            yield emulator
        finally:
            emulator.stop()


@pytest.fixture
def emulator(own_emulator: Emulator) -> Emulator:
    if not own_emulator.running:  # a failed test may have left it stopped
        own_emulator.restart()
    return own_emulator


@pytest.fixture
async def proxy(emulator: Emulator) -> AsyncIterator[Proxy]:
    found = Proxy(emulator.api_base)
    await found.start()
    yield found
    await found.close()


@pytest.fixture
def app_clients(monkeypatch) -> list[PaymentsClient]:
    """Every PaymentsClient the app makes, with FAULT_SETTINGS forced on it."""
    made: list[PaymentsClient] = []

    def make(*args: Any, **kwargs: Any) -> PaymentsClient:
        client = PaymentsClient(*args, **{**kwargs, **FAULT_SETTINGS})
        made.append(client)
        return client

    monkeypatch.setattr(app_module, "PaymentsClient", make)
    return made


@dataclass(frozen=True)
class App:
    gateway: Gateway
    payments: PaymentsClient  # the app's own: its breaker is the process's view of the provider
    token: str  # Northwind's ADMIN
    db: Any

    async def billing(self, *, mirrored: bool = True) -> tuple[dict[str, Any], float]:
        """`mirrored=False`: with the billing mirror empty, as for a customer no screen showed yet."""
        if not mirrored:
            await self.db.execute("DELETE FROM billing_mirror")
        started = time.monotonic()
        body = await self.gateway.execute(BILLING, token=self.token)
        return body, time.monotonic() - started


@pytest.fixture
def start_app(app_for, settings, app_clients, db) -> Callable[[str], Any]:
    async def start(api_base: str) -> App:
        gateway = await app_for(settings.with_(stripe_api_base=api_base, provider_timeout_seconds=TIMEOUT))
        return App(gateway, app_clients[-1], await gateway.login(ADMIN), db)

    return start


@dataclass(frozen=True)
class Billed:
    customer_id: str
    open_invoices: tuple[str, str]  # USD 20_000 and 5_000


async def make_customer(api_base: str, db) -> Billed:
    """A customer on `api_base` with a default Visa and two OPEN invoices; Northwind's now."""
    provider = PaymentsClient(EMULATOR_API_KEY, api_base=api_base, timeout_seconds=5)
    try:
        customer = await provider.create_customer(name="Northwind Studio", email="billing@northwind.example",
                                                  metadata={"test": "provider-faults"}, idempotency_key=key())
        await provider.add_card(customer.id, card_number=VISA, exp_month=12, exp_year=2031, cvc="123",
                                make_default=True, idempotency_key=key())
        invoices = [await provider.create_invoice(customer.id, currency="USD", lines=[("Render seats", 2, amount)],
                                                  tax_percent=None, pay=False, idempotency_key=key())
                    for amount in (10_000, 2_500)]
    finally:
        await provider.close()
    await db.execute("UPDATE organizations SET payment_customer_id = $1 WHERE id = $2", customer.id, NORTHWIND)
    return Billed(customer.id, (invoices[0].id, invoices[1].id))


def key() -> str:
    return f"test-{uuid.uuid4()}"


def gid(type_name: str, provider_id: str) -> str:
    return relay.to_base64(type_name, provider_id)


async def charges(api_base: str, customer_id: str) -> list[int]:
    async with httpx.AsyncClient(base_url=api_base, headers={"authorization": f"Bearer {EMULATOR_API_KEY}"}) as http:
        response = await http.get("/v1/charges", params={"customer": customer_id, "limit": 100})
    assert response.status_code == 200, response.text
    return [c["amount"] for c in response.json()["data"] if c.get("status") == "succeeded"]


def assert_degraded(body: dict[str, Any]) -> None:
    """The name from PostgreSQL; the billing fields null with PROVIDER_UNAVAILABLE at their paths."""
    org = body["data"]["viewer"]["organization"]
    assert org["name"] == "Northwind Studio"
    assert org["invoices"] is None and org["paymentMethods"] is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"PROVIDER_UNAVAILABLE"}
    assert {tuple(e["path"]) for e in body["errors"]} == {
        ("viewer", "organization", "invoices"), ("viewer", "organization", "paymentMethods")}


def provider_calls(body: dict[str, Any]) -> int:
    return body["extensions"]["io"]["providerCalls"]


# --- (a)-(c): the provider stops, the breaker opens, the provider comes back ----------------------


async def test_a_stopped_provider_degrades_reads_opens_the_breaker_and_recovery_is_automatic(
        start_app, emulator, db):
    await make_customer(emulator.api_base, db)
    app = await start_app(emulator.api_base)
    healthy, _ = await app.billing()
    assert "errors" not in healthy, healthy
    org = healthy["data"]["viewer"]["organization"]
    assert [n["status"] for n in org["invoices"]["nodes"]] == ["OPEN", "OPEN"]
    assert org["paymentMethods"] == [{"last4": "4242", "isDefault": True}]

    emulator.stop()
    # The lists the healthy read put in the billing mirror are still shown, without the provider.
    mirrored, _ = await app.billing()
    assert "errors" not in mirrored and mirrored["data"] == healthy["data"], mirrored
    assert provider_calls(mirrored) == 0

    # From here on every read finds the mirror empty (as for a customer no screen showed yet).
    # (a) Partial data within the time box. Each request makes three provider requests (the
    # invoice list; the customer and its cards), each tried three times (refused at once).
    first, elapsed = await app.billing(mirrored=False)
    assert_degraded(first)
    assert elapsed < TIMEOUT
    assert provider_calls(first) == 3 * 3
    assert app.payments.breaker.state is BreakerState.CLOSED
    assert app.payments.breaker.consecutive_failures == 3

    # (b) The fifth failed request in a row opens the breaker ...
    second, _ = await app.billing(mirrored=False)
    assert_degraded(second)
    assert app.payments.breaker.state is BreakerState.OPEN
    # ... and from then on a request fails fast, without a single attempt at the provider.
    rejected = app.payments.breaker.rejected
    fast, elapsed = await app.billing(mirrored=False)
    assert_degraded(fast)
    assert elapsed < TIMEOUT / 4
    assert provider_calls(fast) == 0 and app.payments.breaker.rejected == rejected + 3

    # (c) The provider comes back on the same address. Until the cool-down ends the breaker
    # still answers for it; then one trial call closes it, with nobody resetting anything.
    emulator.restart()
    assert app.payments.breaker.retry_after() > 0, "the restart outlasted the cool-down"
    still_open, _ = await app.billing(mirrored=False)
    assert_degraded(still_open)
    assert provider_calls(still_open) == 0
    await asyncio.sleep(app.payments.breaker.retry_after() + 0.05)
    assert app.payments.breaker.state is BreakerState.HALF_OPEN
    trial, _ = await app.billing(mirrored=False)
    assert app.payments.breaker.state is BreakerState.CLOSED
    trial_org = trial["data"]["viewer"]["organization"]
    assert trial_org["invoices"] is not None or trial_org["paymentMethods"] is not None
    recovered, _ = await app.billing()
    assert "errors" not in recovered, recovered
    assert recovered["data"] == healthy["data"]


async def test_a_provider_that_never_answers_costs_the_time_box_until_the_breaker_opens(start_app, emulator,
                                                                                         proxy, db):
    await make_customer(emulator.api_base, db)
    app = await start_app(proxy.api_base)
    proxy.policy = lambda _request: "hang"
    for _ in range(2):  # 3 failures per request: the second opens the breaker (5)
        body, elapsed = await app.billing()
        assert_degraded(body)
        assert TIMEOUT * 0.9 < elapsed < TIMEOUT * 2
    assert app.payments.breaker.state is BreakerState.OPEN
    seen = len(proxy.seen)
    body, elapsed = await app.billing()
    assert_degraded(body)
    assert elapsed < TIMEOUT / 4
    assert len(proxy.seen) == seen and provider_calls(body) == 0  # nothing reached the wire


# --- (d), (e): payments whose answer is lost --------------------------------------------------------


async def test_a_payment_whose_answer_is_lost_is_pending_and_a_retry_with_its_key_settles_it_once(
        start_app, emulator, proxy, db):
    billed = await make_customer(emulator.api_base, db)
    app = await start_app(proxy.api_base)
    invoice = billed.open_invoices[0]
    pays = iter(["lose_answer"])
    # The provider charges the card; its answer never comes back, and the time box ends the call.
    proxy.policy = lambda r: next(pays, "forward") if r.method == "POST" and r.path.endswith("/pay") else "forward"
    input = {"invoiceId": gid("Invoice", invoice), "idempotencyKey": key()}
    body = await app.gateway.execute(PAY_INVOICE, {"input": input}, token=app.token)
    assert "errors" not in body, body
    pending = body["data"]["payInvoice"]
    assert pending["paymentPending"] is True
    assert [e["code"] for e in pending["userErrors"]] == ["PAYMENT_PENDING"]
    # The payload reads the invoice after the write: the provider's truth, it was paid.
    assert pending["invoice"]["status"] == "PAID"
    assert await charges(emulator.api_base, billed.customer_id) == [20_000]
    # Recorded in PostgreSQL: the attempt is marked pending; nothing is stored under the key itself.
    records = {r["scope"].split(":")[0]: r for r in await db.fetch(
        "SELECT scope, response::text AS response FROM idempotency_records WHERE key = $1", input["idempotencyKey"])}
    assert set(records) == {"billing.pay_invoice.attempt"}
    assert json.loads(records["billing.pay_invoice.attempt"]["response"])["pending"] == [invoice]
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'billing.pay_invoice'") == 0

    # The next read shows the provider's truth.
    read, _ = await app.billing()
    statuses = {n["id"]: n["status"] for n in read["data"]["viewer"]["organization"]["invoices"]["nodes"]}
    assert statuses[gid("Invoice", invoice)] == "PAID"

    # The retry with the same key re-reads the invoice and reports success: no second charge.
    retried = (await app.gateway.execute(PAY_INVOICE, {"input": input}, token=app.token))["data"]["payInvoice"]
    assert retried == {**pending, "paymentPending": False, "userErrors": []}
    assert len(proxy.requests("POST", "/pay")) == 1
    assert await charges(emulator.api_base, billed.customer_id) == [20_000]
    attempt = await db.fetchval("SELECT response::text FROM idempotency_records WHERE key = $1 AND scope LIKE "
                                "'billing.pay_invoice.attempt:%'", input["idempotencyKey"])
    assert "pending" not in json.loads(attempt)
    assert [r["outcome"] for r in await db.fetch(
        "SELECT outcome FROM audit_log WHERE action = 'billing.pay_invoice'")] == ["SUCCESS"]
    # And again: now the stored result, replayed.
    replayed = (await app.gateway.execute(PAY_INVOICE, {"input": input}, token=app.token))["data"]["payInvoice"]
    assert replayed == retried
    assert await charges(emulator.api_base, billed.customer_id) == [20_000]


PAY_BALANCE = """
mutation PayBalance($input: PayOutstandingBalanceInput!) {
  payOutstandingBalance(input: $input) {
    invoices { id status }
    pendingInvoice { id status }
    paymentPending
    userErrors { code }
  }
}
"""


async def test_a_balance_payment_stops_at_a_lost_answer_and_its_retry_reports_each_invoice_once(
        start_app, emulator, proxy, db):
    billed = await make_customer(emulator.api_base, db)
    app = await start_app(proxy.api_base)
    older, newer = billed.open_invoices  # paid oldest first
    pays = iter(["forward", "lose_answer"])
    proxy.policy = lambda r: next(pays, "forward") if r.method == "POST" and r.path.endswith("/pay") else "forward"
    input = {"currency": "USD", "idempotencyKey": key()}
    pending = (await app.gateway.execute(PAY_BALANCE, {"input": input}, token=app.token))["data"]
    assert pending["payOutstandingBalance"] == {
        "invoices": [{"id": gid("Invoice", older), "status": "PAID"}],
        "pendingInvoice": {"id": gid("Invoice", newer), "status": "PAID"}, "paymentPending": True,
        "userErrors": [{"code": "PAYMENT_PENDING"}]}
    retried = (await app.gateway.execute(PAY_BALANCE, {"input": input}, token=app.token))["data"]
    assert retried["payOutstandingBalance"] == {
        "invoices": [{"id": gid("Invoice", i), "status": "PAID"} for i in (older, newer)],
        "pendingInvoice": None, "paymentPending": False, "userErrors": []}
    assert len(proxy.requests("POST", "/pay")) == 2
    assert sorted(await charges(emulator.api_base, billed.customer_id)) == [5_000, 20_000]


async def test_a_pay_request_that_may_not_have_arrived_is_retried_with_the_same_key(start_app, emulator, proxy, db):
    billed = await make_customer(emulator.api_base, db)
    app = await start_app(proxy.api_base)
    pays = iter(["drop_request"])  # the connection breaks after the request left: did it arrive?
    proxy.policy = lambda r: next(pays, "forward") if r.method == "POST" and r.path.endswith("/pay") else "forward"
    payload = await pay(app, billed.open_invoices[0])
    assert payload["paymentPending"] is False and payload["invoice"]["status"] == "PAID"
    posts = [i for i, r in enumerate(proxy.seen) if r.method == "POST" and r.path.endswith("/pay")]
    first, second = (proxy.seen[i] for i in posts)
    assert len(posts) == 2 and first.idempotency_key and first.idempotency_key == second.idempotency_key
    # Between the two, the invoice was read again (still OPEN, so paying again was right).
    between = proxy.seen[posts[0] + 1:posts[1]]
    assert [(r.method, r.path) for r in between] == [("GET", f"/v1/invoices/{billed.open_invoices[0]}")]
    assert await charges(emulator.api_base, billed.customer_id) == [20_000]


async def test_a_pay_answer_cut_off_is_found_paid_before_any_retry(start_app, emulator, proxy, db):
    billed = await make_customer(emulator.api_base, db)
    app = await start_app(proxy.api_base)
    pays = iter(["cut_answer"])  # the provider charged; the connection broke on the way back
    proxy.policy = lambda r: next(pays, "forward") if r.method == "POST" and r.path.endswith("/pay") else "forward"
    payload = await pay(app, billed.open_invoices[1])
    assert payload["paymentPending"] is False and payload["invoice"]["status"] == "PAID"
    assert len(proxy.requests("POST", "/pay")) == 1  # the re-read found it PAID: not sent again
    assert await charges(emulator.api_base, billed.customer_id) == [5_000]


async def pay(app: App, invoice_id: str) -> dict[str, Any]:
    body = await app.gateway.execute(PAY_INVOICE, {"input": {"invoiceId": gid("Invoice", invoice_id),
                                                             "idempotencyKey": key()}}, token=app.token)
    assert "errors" not in body, body
    payload = body["data"]["payInvoice"]
    assert payload["userErrors"] == [], payload
    return payload


# --- the client: which requests are retried, and how long a request may take -----------------------


@pytest.fixture
async def client_for(proxy: Proxy) -> AsyncIterator[Callable[..., PaymentsClient]]:
    made: list[PaymentsClient] = []

    def make(**kwargs: Any) -> PaymentsClient:
        client = PaymentsClient(EMULATOR_API_KEY, api_base=proxy.api_base, **{"retry_backoff_seconds": 0.01, **kwargs})
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def test_reads_are_retried_after_a_server_error(client_for, proxy, emulator, db):
    billed = await make_customer(emulator.api_base, db)
    answers = iter(["unavailable", "unavailable"])
    proxy.policy = lambda r: next(answers, "forward") if r.method == "GET" else "forward"
    found = await client_for(timeout_seconds=5).list_invoices(billed.customer_id)
    assert sorted(i.id for i in found) == sorted(billed.open_invoices)
    assert len(proxy.requests("GET", "/v1/invoices")) == 3


async def test_answers_are_never_retried_and_never_count_against_the_provider(client_for, proxy, emulator, db):
    billed = await make_customer(emulator.api_base, db)
    client = client_for(timeout_seconds=5, breaker_failure_threshold=1)
    assert await client.get_invoice("in_doesnotexist") is None  # a 404
    with pytest.raises(NotFound):
        await client.attach_payment_method(billed.customer_id, "pm_doesnotexist", make_default=False,
                                           idempotency_key=key())
    assert len(proxy.seen) == 2
    assert client.breaker.state is BreakerState.CLOSED and client.breaker.consecutive_failures == 0


async def test_an_unkeyed_write_is_not_retried_once_it_may_have_arrived(client_for, proxy, emulator, db):
    billed = await make_customer(emulator.api_base, db)
    proxy.policy = lambda r: "cut_answer" if r.method == "POST" else "forward"
    client = client_for(timeout_seconds=5)
    with pytest.raises(OutcomeUnknown):
        await client.set_default_payment_method(billed.customer_id, None)  # no key: the SDK would make a new one
    assert len(proxy.requests("POST", "/v1/customers")) == 1
    with pytest.raises(OutcomeUnknown):  # with a key: retried, the same key each time
        await client.set_default_payment_method(billed.customer_id, None, idempotency_key=key())
    keyed = proxy.requests("POST", "/v1/customers")[1:]
    assert len(keyed) == 3 and len({r.idempotency_key for r in keyed}) == 1


async def test_the_time_box_holds_for_the_whole_request_retries_included(client_for, proxy):
    proxy.policy = lambda _request: "hang"
    client = client_for(timeout_seconds=1.0, attempt_timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as raised:
        await client.list_invoices("cus_whoever")
    assert not isinstance(raised.value, OutcomeUnknown)  # a read: nothing was changed
    assert time.monotonic() - started < 1.2
    assert len(proxy.seen) == 3  # three attempts of 0.3 s fit in the box


# --- the breaker on its own (a clock of our own) ----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def fail() -> None:
    raise ProviderUnavailable("down")


async def ok() -> str:
    return "ok"


async def test_the_breaker_opens_after_consecutive_failures_only():
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=10, clock=Clock())
    for outcome in (fail, fail, ok, fail, fail):
        with pytest.raises(ProviderUnavailable) if outcome is fail else contextlib.nullcontext():
            await breaker.call(outcome)
    assert breaker.state is BreakerState.CLOSED  # the success ended the first run
    with pytest.raises(ProviderUnavailable):
        await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize("refusal", [PaymentDeclined("The card was declined.", reason="CARD_DECLINED"),
                                     NotFound("No such object.")])
async def test_refusals_are_answers_not_failures(refusal):
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=10, clock=Clock())

    async def refuse() -> None:
        raise refusal

    for _ in range(5):
        with pytest.raises(ProviderUnavailable):
            await breaker.call(fail)
        with pytest.raises(type(refusal)):
            await breaker.call(refuse)
    assert breaker.state is BreakerState.CLOSED


async def test_open_fails_fast_then_one_trial_decides():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=10, clock=clock)
    with pytest.raises(ProviderUnavailable):
        await breaker.call(fail)
    calls: list[str] = []

    async def counted() -> str:
        calls.append("called")
        return "ok"

    with pytest.raises(ProviderUnavailable):
        await breaker.call(counted)
    assert calls == [] and breaker.retry_after() == 10
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN
    # The trial fails: open again for a whole cool-down.
    with pytest.raises(ProviderUnavailable):
        await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN and breaker.retry_after() == 10
    clock.now += 10
    # One trial at a time: a call arriving while it runs fails fast.
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "ok"

    trial = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    with pytest.raises(ProviderUnavailable):
        await breaker.call(counted)
    release.set()
    assert await trial == "ok"
    assert breaker.state is BreakerState.CLOSED
    assert await breaker.call(counted) == "ok" and calls == ["called"]


async def test_a_cancelled_trial_frees_the_slot():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=1, clock=clock)
    with pytest.raises(ProviderUnavailable):
        await breaker.call(fail)
    clock.now += 1
    trial = asyncio.create_task(breaker.call(lambda: asyncio.sleep(10)))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert await breaker.call(ok) == "ok"
    assert breaker.state is BreakerState.CLOSED
