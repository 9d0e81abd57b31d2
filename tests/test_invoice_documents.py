"""Invoice PDFs and archives: signed links from GraphQL, opened by the gateway's download endpoints.

Against the real app (localstripe has no PDFs of its own, so the gateway renders them), plus
the provider-PDF fetch against a local stand-in for the provider's file host.
"""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from pypdf import PdfReader

from auth.signed_links import signed_params
from auth.viewer import Viewer
from datasources.errors import BadUserInput, Forbidden, ProviderUnavailable
from datasources.payments.client import PaymentsClient
from datasources.payments.invoice_pdfs import provider_invoice_pdf
from datasources.postgres.database import Database
from gateway.app import EMULATOR_API_KEY
from gateway.demo import demo_id
from gateway.services import resolver_config
from loaders import create_loaders
from resolvers import billing, invoice_documents
from resolvers.context import Context
from resolvers.invoice_documents import PDF_LINK, ArchiveRange, in_range
from resolvers.invoice_pdf import InvoiceDocument

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

NORTHWIND_ADMIN = "admin@northwind.example"
GLOBEX_ADMIN = "admin@globex.example"
NORTHWIND_MEMBER = "member1@northwind.example"

INVOICES = """
query Invoices {
  viewer { organization {
    billingInfo { company vatId billingEmail address { line1 city postalCode country } }
    invoices(first: 100) { nodes {
      number status issuedAt total { amount currency decimal } amountDue { decimal } pdfUrl
    } }
  } }
}
"""
ARCHIVE = """
query Archive($from: Date!, $to: Date!) {
  viewer { organization { invoicesArchiveUrl(from: $from, to: $to) } }
}
"""
MEMBER_BILLING = """
query MemberBilling {
  viewer { organization { name invoices(first: 5) { nodes { pdfUrl } }
                          invoicesArchiveUrl(from: "2026-01-01", to: "2026-01-31") } }
}
"""


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def with_query(url: str, **changes: str | None) -> str:
    """`url` with query parameters replaced (None: removed)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return f"{parts.path}?{urlencode(query)}"


def invoice_id_of(pdf_url: str) -> str:
    return urlsplit(pdf_url).path.removeprefix("/invoices/").removesuffix(".pdf")


def pdf_link(secret: str, invoice_id: str, organization_key: str, expires_at: int) -> str:
    """A link signed as the gateway signs them, for what the gateway would never hand out."""
    query = signed_params(secret, PDF_LINK, {"invoice": invoice_id,
                                             "organization": str(demo_id("organization", organization_key))},
                          expires_at=expires_at)
    del query["invoice"]
    return f"/invoices/{invoice_id}.pdf?{urlencode(query)}"


async def admin_billing(gateway, email: str = NORTHWIND_ADMIN) -> dict:
    body = await gateway.execute(INVOICES, token=await gateway.login(email))
    assert "errors" not in body, body
    return body["data"]["viewer"]["organization"]


async def admin_invoices(gateway, email: str = NORTHWIND_ADMIN) -> list[dict]:
    return (await admin_billing(gateway, email))["invoices"]["nodes"]


def assert_refused(response, message: str) -> None:
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/json")
    assert b"%PDF" not in response.content and "content-disposition" not in response.headers
    assert response.json() == {"errors": [{"message": message, "extensions": {"code": "FORBIDDEN"}}]}


# --- a PDF per invoice ------------------------------------------------------------------------


async def test_pdf_link_opens_the_invoice_with_its_number_total_and_billing_details(gateway):
    organization = await admin_billing(gateway)
    invoices, details = organization["invoices"]["nodes"], organization["billingInfo"]
    address = details["address"]
    assert len(invoices) == 5
    for invoice in invoices:
        response = await gateway.http.get(invoice["pdfUrl"])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-disposition"] == f'attachment; filename="{invoice["number"]}.pdf"'
        assert "no-store" in response.headers["cache-control"]
        text = pdf_text(response.content)
        total = f'{invoice["total"]["decimal"]} {invoice["total"]["currency"]}'
        assert invoice["number"] in text and f"Total {total}" in text
        assert f'Amount due {invoice["amountDue"]["decimal"]} {invoice["total"]["currency"]}' in text
        assert f'Status: {invoice["status"]}' in text
        # The billing details, as GraphQL shows them.
        for detail in (details["company"], address["line1"], f'{address["postalCode"]} {address["city"]}',
                       address["country"], details["billingEmail"], invoice_documents.VENDOR,
                       f'Issued: {invoice["issuedAt"][:10]}', *([f'VAT ID: {details["vatId"]}'] if details["vatId"] else [])):
            assert detail in text, (detail, text)
    taxed = next(i for i in invoices if i["total"]["amount"] == (5 * 39_900 + 89_700) * 120 // 100)
    text = pdf_text((await gateway.http.get(taxed["pdfUrl"])).content)
    assert "Floating license pool, 3 concurrent users" in text and "Tax 578.40 USD" in text


async def test_a_changed_link_is_refused_without_a_pdf(gateway):
    first, second, *_ = await admin_invoices(gateway)
    link = first["pdfUrl"]
    query = dict(parse_qsl(urlsplit(link).query))
    signature = query["signature"]
    changed = [
        with_query(link, signature=("A" if signature[0] != "A" else "B") + signature[1:]),
        with_query(link, signature=None),
        with_query(link, expires=str(int(query["expires"]) + 3600)),
        with_query(link, organization=str(demo_id("organization", "globex"))),
        with_query(link, note="x"),
        link.replace(invoice_id_of(link), invoice_id_of(second["pdfUrl"])),
        # A PDF link's signature does not open the archive.
        "/invoices.zip?" + urlsplit(link).query,
    ]
    for url in changed:
        assert_refused(await gateway.http.get(url), "This link is not valid.")
    assert (await gateway.http.get(link)).status_code == 200  # the genuine one still works


async def test_an_expired_link_is_refused(gateway, settings):
    [invoice, *_] = await admin_invoices(gateway)
    invoice_id = invoice_id_of(invoice["pdfUrl"])
    expired = pdf_link(settings.secret_key, invoice_id, "northwind", int(time.time()) - 1)
    assert_refused(await gateway.http.get(expired), "This link has expired; request a new one.")
    # Made the same way, an unexpired link opens: what refused the other was its expiry alone.
    unexpired = pdf_link(settings.secret_key, invoice_id, "northwind", int(time.time()) + 60)
    assert (await gateway.http.get(unexpired)).status_code == 200


async def test_a_genuine_link_never_opens_another_organizations_invoice(gateway, settings):
    globex_invoice = invoice_id_of((await admin_invoices(gateway, GLOBEX_ADMIN))[0]["pdfUrl"])
    link = pdf_link(settings.secret_key, globex_invoice, "northwind", int(time.time()) + 60)
    response = await gateway.http.get(link)
    assert response.status_code == 404 and b"%PDF" not in response.content
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_member_gets_no_pdf_or_archive_link(gateway):
    body = await gateway.execute(MEMBER_BILLING, token=await gateway.login(NORTHWIND_MEMBER))
    organization = body["data"]["viewer"]["organization"]
    assert organization == {"name": "Northwind Studio", "invoices": None, "invoicesArchiveUrl": None}
    assert {(tuple(e["path"]), e["extensions"]["code"]) for e in body["errors"]} == {
        (("viewer", "organization", "invoices"), "FORBIDDEN"),
        (("viewer", "organization", "invoicesArchiveUrl"), "FORBIDDEN"),
    }


@pytest.fixture
async def context_for(resolver_settings, services) -> AsyncIterator[Callable[[str], Awaitable[Context]]]:
    """A request's Context for a signed-in demo account, built as gateway/http.py builds it."""
    settings = resolver_settings
    db = await Database.connect(settings.database_url, max_size=2)
    payments = PaymentsClient(EMULATOR_API_KEY, api_base=services.stripe_api_base, timeout_seconds=5)

    async def make(email: str) -> Context:
        return Context(viewer=Viewer(account_id=demo_id("account", email)), loaders=create_loaders(db, payments),
                       db=db, payments=payments, config=resolver_config(settings), request_id="test")

    yield make
    await payments.close()
    await db.close()


async def test_pdf_url_is_only_for_managers_of_the_invoices_organization(context_for):
    """The rule behind `Invoice.pdfUrl`, for every way an Invoice might reach a viewer."""
    admin = await context_for(NORTHWIND_ADMIN)
    organization = await admin.loaders.accounts.organization.load(demo_id("organization", "northwind"))
    [invoice, *_] = await billing.invoices(admin, organization.payment_customer_id)
    now = time.time()
    # Listed for its organization, or reached without one (a payment's payload: the viewer's own).
    for listed_for in (organization.id, None):
        assert (await invoice_documents.pdf_url(admin, invoice.id, invoice.customer_id, listed_for,
                                                now=now)).startswith(f"/invoices/{invoice.id}.pdf?")
        for email in (NORTHWIND_MEMBER, GLOBEX_ADMIN, "owner@globex.example"):
            with pytest.raises(Forbidden):
                await invoice_documents.pdf_url(await context_for(email), invoice.id, invoice.customer_id,
                                                listed_for, now=now)
    # Said to be listed for an organization the invoice was not issued to: never signed, even for
    # that organization's own admin.
    globex_admin = await context_for(GLOBEX_ADMIN)
    with pytest.raises(Forbidden):
        await invoice_documents.pdf_url(globex_admin, invoice.id, invoice.customer_id, demo_id("organization", "globex"),
                                        now=now)


# --- archives --------------------------------------------------------------------------------


async def test_archive_holds_one_pdf_per_invoice_in_the_range_named_by_number(gateway):
    invoices = await admin_invoices(gateway)
    days = sorted(datetime.fromisoformat(i["issuedAt"]).date() for i in invoices)
    token = await gateway.login(NORTHWIND_ADMIN)
    body = await gateway.execute(ARCHIVE, {"from": days[0].isoformat(), "to": days[-1].isoformat()}, token=token)
    assert "errors" not in body, body
    url = body["data"]["viewer"]["organization"]["invoicesArchiveUrl"]
    response = await gateway.http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="invoices-{days[0]}-to-{days[-1]}.zip"')
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == sorted(f'{i["number"]}.pdf' for i in invoices)
        for invoice in invoices:
            text = pdf_text(archive.read(f'{invoice["number"]}.pdf'))
            assert invoice["number"] in text and f'Total {invoice["total"]["decimal"]}' in text
        # Another organization's invoices are never in it.
        globex_numbers = {i["number"] for i in await admin_invoices(gateway, GLOBEX_ADMIN)}
        assert not globex_numbers & {name.removesuffix(".pdf") for name in archive.namelist()}

    # A range before any invoice: a valid, empty archive.
    earlier = days[0] - timedelta(days=300)
    body = await gateway.execute(ARCHIVE, {"from": earlier.isoformat(), "to": (days[0] - timedelta(days=1)).isoformat()},
                                 token=token)
    response = await gateway.http.get(body["data"]["viewer"]["organization"]["invoicesArchiveUrl"])
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == []


@pytest.mark.parametrize(("first", "last", "message"), [
    ("2026-03-01", "2026-02-28", "`to` must not be before `from`."),
    ("2024-01-01", "2025-01-01", "An invoice archive covers at most 366 days."),
])
async def test_a_bad_archive_range_is_a_clear_error(gateway, first, last, message):
    body = await gateway.execute(ARCHIVE, {"from": first, "to": last}, token=await gateway.login(NORTHWIND_ADMIN))
    assert body["data"]["viewer"]["organization"]["invoicesArchiveUrl"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["message"].startswith(message)
    assert error["path"] == ["viewer", "organization", "invoicesArchiveUrl"]


def test_a_whole_leap_year_is_one_archive():
    assert ArchiveRange.of(date(2024, 1, 1), date(2024, 12, 31)).last == date(2024, 12, 31)


async def test_an_archive_holds_at_most_100_invoices(context_for):
    admin = await context_for(NORTHWIND_ADMIN)
    organization = await admin.loaders.accounts.organization.load(demo_id("organization", "northwind"))
    [invoice, *_] = await billing.invoices(admin, organization.payment_customer_id)
    day = invoice.created.date()
    many = [replace(invoice, id=f"in_{n}", number=f"N-{n:04d}") for n in range(101)]
    with pytest.raises(BadUserInput, match="101 invoices were issued in this range; an archive holds at most 100"):
        in_range(many, ArchiveRange.of(day, day))
    assert len(in_range(many[:100], ArchiveRange.of(day, day))) == 100


# --- the provider's own PDF ----------------------------------------------------------------------

PROVIDER_PDF = b"%PDF-1.7\n% the provider's own invoice\n%%EOF\n"


@pytest.fixture
async def file_host() -> AsyncIterator[str]:
    """A stand-in for the provider's file host: Stripe's `invoice_pdf` URL redirects to the file."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        path = request_line.split()[1]
        if path == "/invoice/acct_1/in_1/pdf":
            head, body = "302 Found\r\nLocation: /files/in_1.pdf", b""
        elif path == "/files/in_1.pdf":
            head, body = "200 OK\r\nContent-Type: application/pdf", PROVIDER_PDF
        elif path == "/not-a-pdf":
            head, body = "200 OK\r\nContent-Type: text/html", b"<html>sign in</html>"
        else:
            head, body = "404 Not Found", b""
        writer.write(f"HTTP/1.1 {head}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def test_the_providers_pdf_is_served_when_it_has_one(context_for, file_host):
    admin = await context_for(NORTHWIND_ADMIN)
    organization = await admin.loaders.accounts.organization.load(demo_id("organization", "northwind"))
    [invoice, *_] = await billing.invoices(admin, organization.payment_customer_id)
    assert invoice.pdf_url is None  # localstripe never has one
    document = InvoiceDocument(vendor=invoice_documents.VENDOR, invoice=invoice, status="OPEN", customer=None,
                               organization_name=organization.name)
    rendered = await invoice_documents.pdf_bytes(admin, document, timeout_seconds=5)
    assert invoice.number in pdf_text(rendered)

    with_pdf = replace(document, invoice=replace(invoice, pdf_url=f"{file_host}/invoice/acct_1/in_1/pdf"))
    assert await invoice_documents.pdf_bytes(admin, with_pdf, timeout_seconds=5) == PROVIDER_PDF
    for broken in ("/not-a-pdf", "/gone"):
        with pytest.raises(ProviderUnavailable):
            await provider_invoice_pdf(admin.payments, replace(invoice, pdf_url=file_host + broken), timeout_seconds=5)
