"""The Billing menu, read from the payment provider (a real localstripe): invoices, balance,
payment methods, billing details, who may see them, and what happens when the provider fails.

Most tests call the schema's billing functions with a real per-request Context, built as the
HTTP layer builds it, so they hold whether or not the fields are wired into `Organization`
yet. The GraphQL tests at the end run the same things through the app once they are.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest

from auth.viewer import Viewer
from datasources import instrumentation
from datasources.errors import BadUserInput, ProviderUnavailable
from datasources.instrumentation import IOStats
from datasources.payments.client import PaymentsClient
from datasources.postgres.accounts import Organization as OrganizationRecord
from datasources.postgres.database import Database
from gateway.app import EMULATOR_API_KEY
from gateway.demo import demo_id
from gateway.services import resolver_config
from loaders import create_loaders
from resolvers.context import Context
from schema import billing
from schema.billing import Invoice, InvoiceFilter, InvoiceStatus, PaymentMethod

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
NORTHWIND_ADMIN = "admin@northwind.example"
GLOBEX_ADMIN = "admin@globex.example"

# Seeded by datasources/payments/demo.py: Northwind bills in USD (second currency EUR).
NORTHWIND_OPEN_USD = (5 * 39_900 + 89_700) * 120 // 100 + 4 * 12_500
NORTHWIND_OPEN_EUR = 45_000

Info = SimpleNamespace  # a stand-in for strawberry's Info: the billing functions read only .context
MakeInfo = Callable[..., Awaitable[Info]]


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
async def info_for(resolver_settings, services) -> AsyncIterator[MakeInfo]:
    """A fresh request's Info for a signed-in demo account, as gateway/http.py builds the Context."""
    settings = resolver_settings
    db = await Database.connect(settings.database_url, max_size=2)
    clients: list[PaymentsClient] = []

    async def make(email: str, *, api_base: str = services.stripe_api_base, timeout: float = 5) -> Info:
        payments = PaymentsClient(EMULATOR_API_KEY, api_base=api_base, timeout_seconds=timeout)
        clients.append(payments)
        return Info(context=Context(
            viewer=Viewer(account_id=demo_id("account", email)), loaders=create_loaders(db, payments),
            db=db, payments=payments, config=resolver_config(settings), request_id="test"))

    yield make
    for client in clients:
        await client.close()
    await db.close()


@pytest.fixture
async def silent_provider() -> AsyncIterator[str]:
    """A provider that accepts connections and never answers: the slow case."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def organization(info: Info, key: str) -> OrganizationRecord:
    found = await info.context.loaders.accounts.organization.load(demo_id("organization", key))
    assert found is not None and found.payment_customer_id
    return found


@contextlib.contextmanager
def counting() -> Iterator[IOStats]:
    """Counts the I/O of what runs inside, as the HTTP layer does per request."""
    stats = IOStats()
    token = instrumentation.current.set(stats)
    try:
        yield stats
    finally:
        instrumentation.current.reset(token)


async def invoices(info: Info, org: OrganizationRecord, *, first: int | None = 100, after: str | None = None,
                   last: int | None = None, before: str | None = None, **filter: object):
    return await billing.organization_invoices(info, org, first, after, last, before,
                                               InvoiceFilter(**filter) if filter else None)


async def forget_mirror(info: Info) -> None:
    """Empties the billing mirror, as for customers no screen has shown yet: the next read asks the provider."""
    await info.context.db.execute("DELETE FROM billing_mirror")


def ids(connection) -> list[str]:
    return [edge.node.id for edge in connection.edges]


# --- invoices: paging and filters -----------------------------------------------------------


async def test_paging_forward_covers_every_invoice_once_newest_first(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    seen, sizes, after = [], [], None
    while True:
        page = await invoices(info, org, first=2, after=after)
        assert page.total_count == 5
        seen += page.edges
        sizes.append(len(page.edges))
        if not page.page_info.has_next_page:
            break
        after = page.page_info.end_cursor
    assert sizes == [2, 2, 1]
    assert len({e.node.id for e in seen}) == 5
    issued = [(e.node.issued_at, e.node.id) for e in seen]
    assert issued == sorted(issued, reverse=True)
    # Backward from the end gives the same order.
    backward = await invoices(info, org, first=None, last=3)
    earlier = await invoices(info, org, first=None, last=3, before=backward.page_info.start_cursor)
    assert ids(earlier) + ids(backward) == [e.node.id for e in seen]
    assert not earlier.page_info.has_previous_page and backward.page_info.has_previous_page


async def test_filter_by_status(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    open_ = await invoices(info, org, status=[InvoiceStatus.OPEN])
    assert open_.total_count == 3 and {e.node.status for e in open_.edges} == {InvoiceStatus.OPEN}
    assert all(e.node.amount_due.amount == e.node.total.amount > 0 for e in open_.edges)
    paid = await invoices(info, org, status=[InvoiceStatus.PAID])
    assert paid.total_count == 2 and all(e.node.amount_due.amount == 0 for e in paid.edges)
    assert (await invoices(info, org, status=[InvoiceStatus.PAID, InvoiceStatus.OPEN])).total_count == 5
    assert (await invoices(info, org, status=[])).total_count == 5  # empty: any status
    assert (await invoices(info, org, status=[InvoiceStatus.VOID])).total_count == 0


async def test_filter_by_currency_in_any_case(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    eur = await invoices(info, org, currency="eur")
    assert eur.total_count == 1
    [invoice] = [e.node for e in eur.edges]
    assert (invoice.currency, invoice.status, invoice.total.currency) == ("EUR", InvoiceStatus.OPEN, "EUR")
    usd = await invoices(info, org, currency="USD", status=[InvoiceStatus.OPEN])
    assert usd.total_count == 2 and {e.node.currency for e in usd.edges} == {"USD"}


async def test_filter_by_date_range_from_inclusive_to_exclusive(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    everything = [e.node for e in (await invoices(info, org)).edges]
    pivot = everything[2].issued_at  # the demo's invoices may share a second: expectations follow the data
    since = await invoices(info, org, issued_from=pivot)
    until = await invoices(info, org, issued_to=pivot)
    assert sorted(ids(since)) == sorted(i.id for i in everything if i.issued_at >= pivot)
    assert sorted(ids(until)) == sorted(i.id for i in everything if i.issued_at < pivot)
    assert since.total_count + until.total_count == 5  # consecutive ranges never overlap
    one_second = await invoices(info, org, issued_from=pivot, issued_to=pivot + timedelta(seconds=1))
    assert pivot in {i.issued_at for i in (e.node for e in one_second.edges)}
    naive = await invoices(info, org, issued_from=pivot.replace(tzinfo=None))  # read as UTC
    assert ids(naive) == ids(since)
    future = everything[0].issued_at + timedelta(days=1)
    assert (await invoices(info, org, issued_from=future)).total_count == 0


async def test_invoice_amounts_and_lines(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    connection = await invoices(info, org, status=[InvoiceStatus.OPEN], currency="USD")
    two_lines = next(e.node for e in connection.edges if len(e.node.lines) == 2)
    assert two_lines.number
    assert [(ln.description, ln.quantity, ln.amount.amount) for ln in two_lines.lines] == [
        ("Render Studio annual subscription, per seat", 5, 199_500),
        ("Floating license pool, 3 concurrent users", 1, 89_700)]
    assert (two_lines.subtotal.amount, two_lines.tax.amount, two_lines.total.amount) == (289_200, 57_840, 347_040)
    assert two_lines.amount_due.amount == 347_040


# --- balance, payment methods, billing details ---------------------------------------------


async def test_outstanding_balance_is_the_open_amounts_due_per_currency(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    balance = await billing.organization_outstanding_balance(info, org)
    assert [(m.currency, m.amount) for m in balance] == [("EUR", NORTHWIND_OPEN_EUR), ("USD", NORTHWIND_OPEN_USD)]
    open_ = (await invoices(info, org, status=[InvoiceStatus.OPEN])).edges
    for money in balance:
        assert money.amount == sum(e.node.amount_due.amount for e in open_ if e.node.currency == money.currency)


async def test_payment_methods_show_the_default_card(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    [card] = await billing.organization_payment_methods(info, await organization(info, "northwind"))
    assert (card.brand, card.last4, card.is_default, card.exp_month, card.exp_year) == ("visa", "4242", True, 12, 2030)


async def test_billing_info_matches_the_seeded_customer(info_for):
    info = await info_for(GLOBEX_ADMIN)
    found = await billing.organization_billing_info(info, await organization(info, "globex"))
    assert (found.company, found.vat_id, found.billing_email) == (
        "Globex Visuals", "DE811907980", "billing@globex.example")
    assert (found.address.line1, found.address.city, found.address.postal_code, found.address.country) == (
        "Friedrichstraße 68", "Berlin", "10117", "DE")
    northwind = await billing.organization_billing_info(info, await organization(info, "northwind"))
    assert (northwind.company, northwind.vat_id, northwind.address.state) == ("Northwind Studio", None, "WA")


async def test_organization_without_provider_customer_has_no_billing(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = OrganizationRecord(id=demo_id("organization", "new"), name="New", payment_customer_id=None)
    with counting() as stats:
        connection = await invoices(info, org, first=10)
        assert (connection.total_count, connection.edges, connection.page_info.has_next_page) == (0, [], False)
        assert await billing.organization_outstanding_balance(info, org) == []
        assert await billing.organization_payment_methods(info, org) == []
        assert await billing.organization_billing_info(info, org) is None
    assert stats.provider_calls == 0


# --- one fetch per request ------------------------------------------------------------------


async def test_invoices_balance_and_node_share_one_provider_call(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    earlier_request = await info_for(NORTHWIND_ADMIN)
    first_id = ids(await invoices(earlier_request, org, first=1))[0]
    await forget_mirror(info)
    with counting() as stats:
        connection, balance, [node] = await asyncio.gather(
            invoices(info, org, first=2, status=[InvoiceStatus.OPEN]),
            billing.organization_outstanding_balance(info, org),
            Invoice.resolve_nodes(info=info, node_ids=[first_id]))
        # Asked again later in the same request: still served from the loader.
        await invoices(info, org, first=5)
    assert stats.provider_calls == 1
    assert connection.total_count == 3 and len(balance) == 2 and node.id == first_id
    # The next request reads the invoices from the mirror that call filled: none at all.
    with counting() as stats:
        again = await invoices(await info_for(NORTHWIND_ADMIN), org, first=2, status=[InvoiceStatus.OPEN])
    assert stats.provider_calls == 0 and ids(again) == ids(connection)


# --- arguments are refused before any I/O ---------------------------------------------------


@pytest.mark.parametrize("arguments", [
    {"first": 101}, {"first": -1}, {"first": 2, "last": 2}, {"first": None, "last": 101},
    {"currency": "EURO"}, {"currency": "€"},
])
async def test_bad_arguments_are_refused_before_the_provider_is_asked(info_for, arguments):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    with counting() as stats, pytest.raises(BadUserInput):
        await invoices(info, org, **arguments)
    assert stats.provider_calls == 0


async def test_a_date_range_that_ends_before_it_starts_is_refused(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    org = await organization(info, "northwind")
    later = (await invoices(info, org, first=1)).edges[0].node.issued_at
    with pytest.raises(BadUserInput, match="issuedFrom"):
        await invoices(info, org, issued_from=later, issued_to=later - timedelta(days=1))


async def test_a_cursor_from_elsewhere_is_refused(info_for):
    info = await info_for(NORTHWIND_ADMIN)
    with pytest.raises(BadUserInput, match="cursor"):
        await invoices(info, await organization(info, "northwind"), first=2, after="not-a-cursor")


# --- the provider down or slow --------------------------------------------------------------


def every_billing_field(info: Info, org: OrganizationRecord) -> list[Awaitable[object]]:
    return [invoices(info, org, first=2), billing.organization_outstanding_balance(info, org),
            billing.organization_payment_methods(info, org), billing.organization_billing_info(info, org)]


@pytest.mark.parametrize("provider", ["unreachable", "silent"])
async def test_provider_down_or_slow_is_unavailable_within_the_time_box(info_for, silent_provider, provider):
    api_base = UNREACHABLE if provider == "unreachable" else silent_provider
    info = await info_for(NORTHWIND_ADMIN, api_base=api_base, timeout=1)
    org = await organization(info, "northwind")  # PostgreSQL still answers
    await forget_mirror(info)
    started = time.monotonic()
    results = await asyncio.gather(*every_billing_field(info, org), return_exceptions=True)
    assert time.monotonic() - started < 2.5
    assert [type(r) for r in results] == [ProviderUnavailable] * 4
    assert results[0].message == "The payment provider is unavailable; try again shortly."


async def test_a_failed_fetch_is_not_repeated_within_the_request(info_for, silent_provider):
    info = await info_for(NORTHWIND_ADMIN, api_base=silent_provider, timeout=1)
    org = await organization(info, "northwind")
    await forget_mirror(info)
    with counting() as stats:
        for call in (lambda: invoices(info, org), lambda: billing.organization_outstanding_balance(info, org)):
            with pytest.raises(ProviderUnavailable):
                await call()
    assert stats.provider_calls == 1


async def test_an_outage_shows_what_the_mirror_holds_without_asking_the_provider(info_for):
    healthy = await info_for(NORTHWIND_ADMIN)
    org = await organization(healthy, "northwind")
    before = await asyncio.gather(*every_billing_field(healthy, org))  # fills the mirror (or finds it full)
    down = await info_for(NORTHWIND_ADMIN, api_base=UNREACHABLE, timeout=1)
    with counting() as stats:
        during = await asyncio.gather(*every_billing_field(down, org))
    assert stats.provider_calls == 0
    assert ids(during[0]) == ids(before[0]) and during[1:] == before[1:]


# --- node(id:): only the organization's OWNER and ADMIN ------------------------------------


async def test_invoice_and_payment_method_nodes_only_for_their_organizations_managers(info_for):
    globex = await info_for(GLOBEX_ADMIN)
    globex_org = await organization(globex, "globex")
    globex_invoice = ids(await invoices(globex, globex_org, first=1))[0]
    [globex_card] = await billing.organization_payment_methods(globex, globex_org)
    northwind = await info_for(NORTHWIND_ADMIN)
    northwind_invoice = ids(await invoices(northwind, await organization(northwind, "northwind"), first=1))[0]

    async def visible(email: str, node_type: type, node_id: str) -> bool:
        [found] = await node_type.resolve_nodes(info=await info_for(email), node_ids=[node_id])
        return found is not None

    assert await visible(GLOBEX_ADMIN, Invoice, globex_invoice)
    assert await visible("owner@globex.example", PaymentMethod, globex_card.id)
    assert not await visible(NORTHWIND_ADMIN, Invoice, globex_invoice)
    assert not await visible(NORTHWIND_ADMIN, PaymentMethod, globex_card.id)
    assert not await visible("member1@northwind.example", Invoice, globex_invoice)
    assert not await visible("member1@northwind.example", Invoice, northwind_invoice)  # own org, but a MEMBER
    assert not await visible("member1@globex.example", PaymentMethod, globex_card.id)
    assert not await visible(NORTHWIND_ADMIN, Invoice, "in_doesnotexist")


# --- through GraphQL, once the lead has wired the fields ------------------------------------

BILLING = """
query Billing($filter: InvoiceFilter, $after: String) {
  viewer { organization {
    name
    invoices(first: 2, after: $after, filter: $filter) {
      totalCount
      edges { cursor node { id number status total { amount currency } amountDue { amount } lines { description } } }
      pageInfo { hasNextPage endCursor }
    }
    outstandingBalance { amount currency }
    paymentMethods { brand last4 isDefault }
    billingInfo { company vatId billingEmail address { city country } }
  } }
}
"""
NODE = "query Node($id: ID!) { node(id: $id) { __typename id ... on Invoice { number status } } }"


@pytest.fixture
def wired() -> None:
    from schema import build_schema, node

    organization_type = build_schema()._schema.type_map["Organization"]
    if "invoices" not in organization_type.fields or "Invoice" not in node.NODE_TYPES:
        pytest.skip("Organization billing fields and the Invoice node are not wired into the schema yet")


async def test_admin_reads_billing_over_graphql(gateway, wired):
    token = await gateway.login(GLOBEX_ADMIN)
    body = await gateway.execute(BILLING, {"filter": {"status": ["OPEN"]}}, token=token)
    assert "errors" not in body, body
    org = body["data"]["viewer"]["organization"]
    assert org["invoices"]["totalCount"] == 3 and len(org["invoices"]["edges"]) == 2
    assert {e["node"]["status"] for e in org["invoices"]["edges"]} == {"OPEN"}
    assert org["invoices"]["pageInfo"]["hasNextPage"] is True
    rest = await gateway.execute(BILLING, {"filter": {"status": ["OPEN"]},
                                           "after": org["invoices"]["pageInfo"]["endCursor"]}, token=token)
    assert len(rest["data"]["viewer"]["organization"]["invoices"]["edges"]) == 1
    assert [m["currency"] for m in org["outstandingBalance"]] == ["EUR", "USD"]
    assert org["paymentMethods"] == [{"brand": "visa", "last4": "4242", "isDefault": True}]
    assert org["billingInfo"] == {"company": "Globex Visuals", "vatId": "DE811907980",
                                  "billingEmail": "billing@globex.example",
                                  "address": {"city": "Berlin", "country": "DE"}}


async def test_provider_down_fails_only_the_billing_fields(app_for, settings, wired, info_for):
    await forget_mirror(await info_for(NORTHWIND_ADMIN))
    gateway = await app_for(settings.with_(stripe_api_base=UNREACHABLE, provider_timeout_seconds=1))
    token = await gateway.login(NORTHWIND_ADMIN)
    body = await gateway.execute(BILLING, token=token)
    org = body["data"]["viewer"]["organization"]
    assert org["name"] == "Northwind Studio"
    assert [org[f] for f in ("invoices", "outstandingBalance", "paymentMethods", "billingInfo")] == [None] * 4
    assert {e["extensions"]["code"] for e in body["errors"]} == {"PROVIDER_UNAVAILABLE"}
    assert {tuple(e["path"]) for e in body["errors"]} == {
        ("viewer", "organization", f) for f in ("invoices", "outstandingBalance", "paymentMethods", "billingInfo")}


async def test_invoice_node_is_null_across_tenants_over_graphql(gateway, wired):
    globex = await gateway.login(GLOBEX_ADMIN)
    edge = (await gateway.execute(BILLING, token=globex))["data"]["viewer"]["organization"]["invoices"]["edges"][0]
    invoice_id = edge["node"]["id"]
    assert base64.b64decode(invoice_id).decode().startswith("Invoice:")
    own = await gateway.execute(NODE, {"id": invoice_id}, token=globex)
    assert own["data"]["node"] == {"__typename": "Invoice", "id": invoice_id,
                                   "number": edge["node"]["number"], "status": edge["node"]["status"]}
    for email in (NORTHWIND_ADMIN, "member1@northwind.example", "member1@globex.example"):
        body = await gateway.execute(NODE, {"id": invoice_id}, token=await gateway.login(email))
        assert body["data"]["node"] is None and "errors" not in body, email
