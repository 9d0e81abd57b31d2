"""Invoice PDFs and archives: the signed links that open them, and what they hold.

Two halves:
- Links (GraphQL): `pdf_url` and `archive_url` are handed out to whoever the access table
  lets read the organization's billing (the caller of `archive_url` checks), and signed (`auth.signed_links`) for `LINK_SECONDS`.
- Downloads (gateway/invoice_files.py): `read_pdf_link` / `read_archive_link` check a
  link and tell what it opens; its `download` reads that and makes the file. There is
  no viewer on that side: a genuine, unexpired link is the authorization, and it names
  the organization, so what it opens is looked up in that organization's own invoices
  and nowhere else.
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from urllib.parse import quote, urlencode
from uuid import UUID

from auth.signed_links import InvalidLink, signed_params, verified_params
from datasources.errors import BadUserInput, Forbidden
from datasources.payments.invoice_pdfs import provider_invoice_pdf
from datasources.payments.records import Invoice
from datasources.postgres.accounts import Organization
from resolvers import billing
from resolvers.context import Context
from resolvers.invoice_pdf import InvoiceDocument, render_invoice_pdf
from resolvers.permissions import may, refusal, viewer_membership

# Printed as the issuer on the invoices the gateway renders itself.
VENDOR = "Account Gateway"
# Long enough to click and download, short enough that a leaked link is soon worthless.
LINK_SECONDS = 10 * 60
PDF_LINK = "invoice-pdf"
ARCHIVE_LINK = "invoice-archive"
MAX_ARCHIVE_DAYS = 366
MAX_ARCHIVE_INVOICES = 100
# Provider PDFs fetched at once for an archive: enough to overlap latency, few enough
# not to look like a burst to the provider.
ARCHIVE_FETCHES = 4


@dataclass(frozen=True)
class ArchiveRange:
    """Issue dates from `first` to `last`, both inclusive, as UTC calendar days."""

    first: date
    last: date

    @classmethod
    def of(cls, first: date, last: date) -> "ArchiveRange":
        """Validated (BAD_USER_INPUT) before anything is read."""
        if last < first:
            raise BadUserInput("`to` must not be before `from`.")
        days = (last - first).days + 1
        if days > MAX_ARCHIVE_DAYS:
            raise BadUserInput(f"An invoice archive covers at most {MAX_ARCHIVE_DAYS} days. "
                               "Ask for one year or less at a time.")
        return cls(first, last)

    def criteria(self) -> billing.InvoiceCriteria:
        start = datetime.combine(self.first, time.min, timezone.utc)
        end = datetime.combine(self.last + timedelta(days=1), time.min, timezone.utc)
        return billing.InvoiceCriteria.of(issued_from=start, issued_to=end)

    def file_name(self) -> str:
        return f"invoices-{self.first.isoformat()}-to-{self.last.isoformat()}.zip"


# --- links, for the viewer (GraphQL) -------------------------------------------------------


async def pdf_url(ctx: Context, invoice_id: str, customer_id: str, organization_id: UUID | None, *,
                  now: float) -> str:
    """The invoice's signed PDF link; FORBIDDEN unless the access table lets the viewer read the
    billing of the organization it was issued to: `organization_id`, or when the invoice was
    reached without one (a payment's payload), the viewer's own organization."""
    if organization_id is None:
        mine = await viewer_membership(ctx)
        organization_id = mine.organization_id if mine else None
    if organization_id is None or not await may(ctx, "Invoice.pdfUrl", organization_id):
        raise Forbidden(refusal("Invoice.pdfUrl"))
    organization = await ctx.loaders.accounts.organization.load(organization_id)
    if organization is None or organization.payment_customer_id != customer_id:
        raise Forbidden(refusal("Invoice.pdfUrl"))
    query = signed_params(ctx.config.secret_key, PDF_LINK,
                          {"invoice": invoice_id, "organization": str(organization.id)},
                          expires_at=int(now) + LINK_SECONDS)
    del query["invoice"]  # signed, but travels in the path
    return f"/invoices/{quote(invoice_id, safe='')}.pdf?{urlencode(query)}"


async def archive_url(ctx: Context, organization: Organization, archive: ArchiveRange, *, now: float) -> str:
    """The signed archive link; the caller has checked that the viewer may read its billing.

    BAD_USER_INPUT when the range holds more invoices than an archive may: said now, rather
    than by a download that fails later.
    """
    in_range(await billing.invoices(ctx, organization.payment_customer_id), archive)
    query = signed_params(ctx.config.secret_key, ARCHIVE_LINK,
                          {"organization": str(organization.id), "from": archive.first.isoformat(),
                           "to": archive.last.isoformat()},
                          expires_at=int(now) + LINK_SECONDS)
    return f"/invoices.zip?{urlencode(query)}"


# --- links, checked (gateway endpoints) ----------------------------------------------------


@dataclass(frozen=True)
class File:
    content: bytes
    media_type: str
    name: str


@dataclass(frozen=True)
class PdfLink:
    """A checked link to one invoice's PDF."""

    organization_id: UUID
    invoice_id: str

    async def download(self, ctx: Context, *, timeout_seconds: float) -> File | None:
        """None when the organization has no such invoice."""
        document = await invoice_document(ctx, self.organization_id, self.invoice_id)
        if document is None:
            return None
        return File(await pdf_bytes(ctx, document, timeout_seconds=timeout_seconds), "application/pdf",
                    pdf_file_name(document.invoice))


@dataclass(frozen=True)
class ArchiveLink:
    """A checked link to the zip of an organization's invoices of a date range."""

    organization_id: UUID
    archive: ArchiveRange

    async def download(self, ctx: Context, *, timeout_seconds: float) -> File | None:
        """Never None: a range without invoices is an empty archive."""
        found = await archive_documents(ctx, self.organization_id, self.archive)
        return File(await archive_bytes(ctx, found, timeout_seconds=timeout_seconds), "application/zip",
                    self.archive.file_name())


def read_pdf_link(secret: str, invoice_id: str, query: Mapping[str, str], *, now: float) -> PdfLink:
    """What a genuine, unexpired PDF link opens (InvalidLink otherwise)."""
    params = verified_params(secret, PDF_LINK, {**query, "invoice": invoice_id}, now=now)
    return PdfLink(_organization_id(params), invoice_id)


def read_archive_link(secret: str, query: Mapping[str, str], *, now: float) -> ArchiveLink:
    params = verified_params(secret, ARCHIVE_LINK, query, now=now)
    try:
        archive = ArchiveRange(date.fromisoformat(params["from"]), date.fromisoformat(params["to"]))
    except (KeyError, ValueError):
        raise InvalidLink("no range") from None  # cannot be one of ours
    return ArchiveLink(_organization_id(params), archive)


def _organization_id(params: Mapping[str, str]) -> UUID:
    try:
        return UUID(params["organization"])
    except (KeyError, ValueError):
        raise InvalidLink("no organization") from None


# --- documents, for a checked link ---------------------------------------------------------


async def invoice_document(ctx: Context, organization_id: UUID, invoice_id: str) -> InvoiceDocument | None:
    """None when the organization has no such invoice (or no longer exists)."""
    found = await _documents(ctx, organization_id, lambda invoices: [i for i in invoices if i.id == invoice_id])
    return found[0] if found else None


async def archive_documents(ctx: Context, organization_id: UUID, archive: ArchiveRange) -> list[InvoiceDocument]:
    """The organization's invoices issued in the range, oldest first.

    BAD_USER_INPUT when more were issued since the link was made than an archive may hold.
    """
    return await _documents(ctx, organization_id, lambda invoices: in_range(invoices, archive))


def in_range(invoices: list[Invoice], archive: ArchiveRange) -> list[Invoice]:
    """Those issued in the range, oldest first; BAD_USER_INPUT past MAX_ARCHIVE_INVOICES."""
    criteria = archive.criteria()
    found = [i for i in invoices if criteria.matches(i)]
    if len(found) > MAX_ARCHIVE_INVOICES:
        raise BadUserInput(f"{len(found)} invoices were issued in this range; an archive holds at most "
                           f"{MAX_ARCHIVE_INVOICES}. Ask for a shorter range.")
    return sorted(found, key=billing.invoice_sort_key)


async def _documents(ctx: Context, organization_id: UUID,
                     select: Callable[[list[Invoice]], list[Invoice]]) -> list[InvoiceDocument]:
    organization = await ctx.loaders.accounts.organization.load(organization_id)
    customer_id = organization.payment_customer_id if organization else None
    if organization is None or customer_id is None:
        return []
    invoices, customer = await asyncio.gather(billing.invoices(ctx, customer_id), billing.customer(ctx, customer_id))
    return [InvoiceDocument(vendor=VENDOR, invoice=invoice, status=billing.portal_status(invoice),
                            customer=customer, organization_name=organization.name)
            for invoice in select(invoices)]


async def pdf_bytes(ctx: Context, document: InvoiceDocument, *, timeout_seconds: float) -> bytes:
    """The provider's own PDF when it has one, else one rendered from the invoice."""
    provided = None
    if ctx.payments is not None:
        provided = await provider_invoice_pdf(ctx.payments, document.invoice, timeout_seconds=timeout_seconds)
    if provided is not None:
        return provided
    # Rendering is CPU work: off the event loop, so other requests keep being served.
    return await asyncio.to_thread(render_invoice_pdf, document)


async def archive_bytes(ctx: Context, documents: list[InvoiceDocument], *, timeout_seconds: float) -> bytes:
    """A zip of one PDF per document, each named after its invoice number."""
    limit = asyncio.Semaphore(ARCHIVE_FETCHES)

    async def one(document: InvoiceDocument) -> bytes:
        async with limit:
            return await pdf_bytes(ctx, document, timeout_seconds=timeout_seconds)

    pdfs = await asyncio.gather(*(one(d) for d in documents))
    buffer = io.BytesIO()
    taken: set[str] = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for document, pdf in zip(documents, pdfs):
            name = pdf_file_name(document.invoice)
            stem, n = name.removesuffix(".pdf"), 1
            while name in taken:  # two invoices without a number, or a number reused
                n += 1
                name = f"{stem}-{n}.pdf"
            taken.add(name)
            archive.writestr(zipfile.ZipInfo(name, date_time=document.invoice.created.timetuple()[:6]), pdf,
                             compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def pdf_file_name(invoice: Invoice) -> str:
    """The invoice number (the provider id for an unnumbered draft), safe as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", invoice.number or invoice.id) + ".pdf"
