"""The Billing menu: invoices, outstanding balance, payment methods and billing details.

All of it lives at the payment provider. Every field that reads it must be nullable: a
provider that is down or slow becomes a PROVIDER_UNAVAILABLE error at that field while
the rest of the query (PostgreSQL) still answers. The `organization_*` functions back
`Organization` fields, whose resolver has already made sure the access table lets the
viewer read the organization's billing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import date, datetime
from enum import Enum
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry import relay

from auth.access import who
from datasources.payments import records as payments
from datasources.payments.tax_ids import PROVIDER_TYPES, country_of
from datasources.postgres.accounts import Organization as OrganizationRecord
from resolvers import billing as resolve
from resolvers import invoice_documents as documents
from resolvers.tax_ids import SHAPES
from schema.common import Info, resolve_visible
from schema.money import Money
from schema.pagination import Connection, slice_of


@strawberry.enum(description="Where an invoice stands.")
class InvoiceStatus(Enum):
    OPEN = strawberry.enum_value("OPEN", description="Issued and not fully paid: `amountDue` is owed.")
    PAID = strawberry.enum_value("PAID", description="Paid in full, or nothing was ever due.")
    VOID = strawberry.enum_value("VOID", description="Cancelled by the vendor; nothing is owed.")
    UNCOLLECTIBLE = strawberry.enum_value(
        "UNCOLLECTIBLE", description="Written off by the vendor as not collectible; may still be paid.")


@strawberry.type(description="One line of an invoice.")
class InvoiceLine:
    description: str = strawberry.field(description="What was billed.")
    quantity: int = strawberry.field(description="How many units.")
    amount: Money = strawberry.field(description="The line's total (quantity × unit price), before tax.")

    @classmethod
    def from_record(cls, record: payments.InvoiceLine) -> "InvoiceLine":
        return cls(description=record.description, quantity=record.quantity,
                   amount=Money(amount=record.amount, currency=record.currency))


@strawberry.type(description="An invoice the vendor issued to the organization.")
class Invoice(relay.Node):
    id: relay.NodeID[str]
    number: str | None = strawberry.field(
        description="The invoice number to quote to the vendor; null until the invoice is issued.")
    status: InvoiceStatus = strawberry.field(description="Whether it is still owed.")
    issued_at: datetime = strawberry.field(description="When the invoice was created.")
    due_at: datetime | None = strawberry.field(description="When payment is due; null when no date is set.")
    subtotal: Money = strawberry.field(description="The sum of the lines, before tax.")
    tax: Money = strawberry.field(description="Tax on the subtotal.")
    total: Money = strawberry.field(description="Subtotal plus tax.")
    amount_due: Money = strawberry.field(description="What is still to pay: zero once PAID or VOID.")
    currency: str = strawberry.field(description="ISO 4217 code of every amount on the invoice, e.g. \"EUR\".")
    lines: list[InvoiceLine] = strawberry.field(description="What was billed, line by line.")
    customer_id: strawberry.Private[str]
    # The organization it was listed for; None when reached from the viewer's own (node, payments).
    organization_id: strawberry.Private[UUID | None]

    @strawberry.field(description=(
        "A link to the invoice as a PDF (the provider's own, or one rendered from the invoice), valid for "
        f"{documents.LINK_SECONDS // 60} minutes: a path on this gateway, `/invoices/{{id}}.pdf?…`, to resolve "
        "against the GraphQL endpoint's URL. The signed link itself is the authorization, no bearer token "
        f"needed, so share it only with whoever may read the invoice. For {who('Invoice.pdfUrl')}, exactly as "
        "`Organization.invoicesArchiveUrl`; FORBIDDEN for anyone else."))
    async def pdf_url(self, info: Info) -> str | None:
        return await documents.pdf_url(info.context, self.id, self.customer_id, self.organization_id,
                                       now=time.time())

    @classmethod
    def from_record(cls, record: payments.Invoice, organization_id: UUID | None = None) -> "Invoice":
        def money(amount: int) -> Money:
            return Money(amount=amount, currency=record.currency)

        return cls(id=record.id, number=record.number, status=InvoiceStatus(resolve.portal_status(record)),
                   issued_at=record.created, due_at=record.due_date, subtotal=money(record.subtotal),
                   tax=money(record.tax), total=money(record.total), amount_due=money(record.amount_due),
                   currency=record.currency, lines=[InvoiceLine.from_record(ln) for ln in record.lines],
                   customer_id=record.customer_id, organization_id=organization_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(resolve.visible_invoice, cls.from_record, info, node_ids)


@strawberry.type(description="A card the organization pays with.")
class PaymentMethod(relay.Node):
    id: relay.NodeID[str]
    brand: str = strawberry.field(description="Card network, lower case as the provider names it, e.g. \"visa\".")
    last4: str = strawberry.field(description="The last four digits of the card number.")
    exp_month: int = strawberry.field(description="Expiry month, 1 to 12.")
    exp_year: int = strawberry.field(description="Expiry year, four digits.")
    is_default: bool = strawberry.field(description="Whether invoices are paid with this method unless "
                                                    "another is chosen.")

    @classmethod
    def from_record(cls, record: payments.PaymentMethod) -> "PaymentMethod":
        return cls(id=record.id, brand=record.brand, last4=record.last4, exp_month=record.exp_month,
                   exp_year=record.exp_year, is_default=record.is_default)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(resolve.visible_payment_method, cls.from_record, info, node_ids)


@strawberry.type(description="A postal address printed on invoices.")
class BillingAddress:
    line1: str | None = strawberry.field(description="Street and number.")
    line2: str | None = strawberry.field(description="Apartment, suite, floor, etc.")
    city: str | None = strawberry.field(description="City or town.")
    postal_code: str | None = strawberry.field(description="Postal or ZIP code.")
    state: str | None = strawberry.field(description="State, county or region.")
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 country code, e.g. \"DE\".")

    @classmethod
    def from_record(cls, record: payments.Address) -> "BillingAddress":
        return cls(line1=record.line1, line2=record.line2, city=record.city, postal_code=record.postal_code,
                   state=record.state, country=record.country)


TaxIdType = strawberry.enum(
    Enum("TaxIdType", {t.upper(): t for t in PROVIDER_TYPES}),  # type: ignore[misc]
    description="The payment provider's kinds of tax ID, by country and kind (`EU_VAT`, `GB_VAT`, `CH_VAT`, "
                "`NO_VAT`, `US_EIN`, `AU_ABN`, ...): the list of the provider's API version the gateway speaks.")
for _value in TaxIdType.__strawberry_definition__.values:  # type: ignore[attr-defined]
    _shape = SHAPES.get(_value.value)
    _value.description = (f"The provider's `{_value.value}`" + (f", e.g. \"{_shape[1]}\"." if _shape else "."))


@strawberry.type(description="A tax ID printed on invoices, as the payment provider holds it.")
class TaxId:
    type: TaxIdType = strawberry.field(description="Its kind.")  # type: ignore[valid-type]
    value: str = strawberry.field(description="The number as entered (EU VAT numbers without spaces or dots).")
    country: str | None = strawberry.field(
        description="ISO 3166-1 alpha-2 code of the country it belongs to; null for the EU's one-stop-shop number.")


@strawberry.type(description="The details printed on the organization's invoices.")
class BillingInfo:
    company: str | None = strawberry.field(description="Company name.")
    billing_email: str | None = strawberry.field(description="Where invoices and receipts are sent.")
    vat_id: str | None = strawberry.field(
        description="The tax ID's value, e.g. \"DE123456789\", whatever its type; `taxId` says the type and the "
                    "country too.")
    tax_id: TaxId | None = strawberry.field(description="The tax ID printed on invoices; null when none is set.")
    address: BillingAddress | None = strawberry.field(description="Billing address.")

    @classmethod
    def from_record(cls, record: payments.Customer) -> "BillingInfo":
        tax_id = None
        if record.vat_id and record.tax_id_type in PROVIDER_TYPES:
            tax_id = TaxId(type=TaxIdType(record.tax_id_type), value=record.vat_id,
                           country=country_of(record.tax_id_type, record.vat_id))
        return cls(company=record.name, billing_email=record.email, vat_id=record.vat_id, tax_id=tax_id,
                   address=BillingAddress.from_record(record.address) if record.address else None)


@strawberry.input(description="Which invoices to list; every criterion given must match.")
class InvoiceFilter:
    status: list[InvoiceStatus] | None = strawberry.field(
        default=None, description="Only invoices in one of these statuses; null or empty: any status.")
    issued_from: datetime | None = strawberry.field(
        default=None, description="Only invoices issued at or after this time (inclusive).")
    issued_to: datetime | None = strawberry.field(
        default=None, description="Only invoices issued before this time (exclusive), so that "
                                  "consecutive ranges never overlap.")
    currency: str | None = strawberry.field(
        default=None, description="Only invoices in this currency (ISO 4217 code, any case).")

    def criteria(self) -> resolve.InvoiceCriteria:
        return resolve.InvoiceCriteria.of([s.value for s in self.status or ()], self.issued_from,
                                          self.issued_to, self.currency)


@strawberry.type(description="A page of an organization's invoices, newest first.")
class InvoiceConnection(Connection[Invoice]):
    pass


# For the `filter` argument of the field the lead wires on Organization.
InvoiceFilterArg = Annotated[InvoiceFilter | None, strawberry.argument(description="Which invoices to list.")]

# For `Organization.invoicesArchiveUrl`.
ArchiveFromArg = Annotated[date, strawberry.argument(
    name="from", description="The first issue date to include (a UTC calendar day).")]
ArchiveToArg = Annotated[date, strawberry.argument(
    description="The last issue date to include (a UTC calendar day); from `from` to `to` is at most "
                f"{documents.MAX_ARCHIVE_DAYS} days.")]
INVOICES_ARCHIVE_URL = (
    "A link to a zip of the PDFs of the invoices issued from `from` to `to` (both included), one file per "
    f"invoice named by its number; valid for {documents.LINK_SECONDS // 60} minutes. A path on this gateway, "
    "`/invoices.zip?…`, to resolve against the GraphQL endpoint's URL. BAD_USER_INPUT for a range that is "
    f"reversed, longer than {documents.MAX_ARCHIVE_DAYS} days or holds more than "
    f"{documents.MAX_ARCHIVE_INVOICES} invoices. For {who('Organization.invoicesArchiveUrl')} (as `Invoice.pdfUrl`); "
    "null when the provider is unavailable.")

NODE_TYPES = (Invoice, PaymentMethod)


# --- Organization fields (the caller has checked the access table) -----------------------------


async def organization_invoices(info: Info, organization: OrganizationRecord, first: int | None,
                                after: str | None, last: int | None, before: str | None,
                                filter: InvoiceFilter | None) -> InvoiceConnection | None:
    """Newest first. Arguments are validated before the provider is asked."""
    slice = slice_of(first, after, last, before)
    criteria = filter.criteria() if filter else resolve.InvoiceCriteria()
    page = await resolve.invoice_page(info.context, organization.payment_customer_id, slice, criteria)
    return InvoiceConnection.from_page(page, lambda i: Invoice.from_record(i, organization.id), slice)


async def organization_outstanding_balance(info: Info, organization: OrganizationRecord) -> list[Money] | None:
    """What OPEN invoices still owe, one amount per currency, by currency; [] when nothing."""
    totals = await resolve.outstanding_balance(info.context, organization.payment_customer_id)
    return [Money(amount=amount, currency=currency) for currency, amount in totals]


async def organization_payment_methods(info: Info, organization: OrganizationRecord) -> list[PaymentMethod] | None:
    """The default method first."""
    found = await resolve.payment_methods(info.context, organization.payment_customer_id)
    return [PaymentMethod.from_record(m) for m in found]


async def organization_billing_info(info: Info, organization: OrganizationRecord) -> BillingInfo | None:
    """Null when the organization has no customer at the provider (yet)."""
    found = await resolve.customer(info.context, organization.payment_customer_id)
    return BillingInfo.from_record(found) if found else None


def invoices_archive_range(first: date, last: date) -> documents.ArchiveRange:
    """Validated (BAD_USER_INPUT) before the viewer's role or the provider is asked."""
    return documents.ArchiveRange.of(first, last)


async def organization_invoices_archive_url(info: Info, organization: OrganizationRecord,
                                            archive: documents.ArchiveRange) -> str | None:
    return await documents.archive_url(info.context, organization, archive, now=time.time())
