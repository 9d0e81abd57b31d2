"""Reading billing from the payment provider: invoices, balances, payment methods, details.

Everything is read through `ctx.loaders.billing`, keyed by the organization's provider
customer id, so the fields of one request share each provider list. Provider failures
(ProviderUnavailable) are deliberately not caught: they surface at the field that asked.

The caller has already decided the viewer may see the organization's billing (the
access table's billing row), except in `visible_invoice`/`visible_payment_method`, which
decide it themselves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, TypeVar

from datasources.errors import BadUserInput
from datasources.paging import Page, Slice, page_in_memory
from datasources.payments.records import Customer, Invoice, PaymentMethod
from resolvers.context import Context
from resolvers.permissions import may, viewer_membership

# The portal's statuses: the provider's minus DRAFT (see `portal_status`).
PortalStatus = Literal["OPEN", "PAID", "VOID", "UNCOLLECTIBLE"]
T = TypeVar("T")


def portal_status(invoice: Invoice) -> PortalStatus:
    """What the portal shows for an invoice.

    The records already show a draft with an amount due as OPEN (it is owed). A draft
    left with nothing due is PAID: nothing is or will be owed, and the provider itself
    marks a zero-amount invoice paid when it finalizes it, so the portal shows the same
    before and after.
    """
    return "PAID" if invoice.status == "DRAFT" else invoice.status


INVOICE_KEY_TYPES = ("timestamptz", "text")


def invoice_sort_key(invoice: Invoice) -> tuple[str, str]:
    """The keyset of the invoice list (newest first): the id breaks ties within a second."""
    return invoice.created.isoformat(), invoice.id


@dataclass(frozen=True)
class InvoiceCriteria:
    """Which invoices to list: every set criterion must match.

    `issued_from` is inclusive and `issued_to` exclusive, so consecutive ranges
    (a month, then the next) never count an invoice twice.
    """

    statuses: frozenset[PortalStatus] = frozenset()  # empty: any status
    issued_from: datetime | None = None
    issued_to: datetime | None = None
    currency: str | None = None  # ISO 4217, upper case

    @classmethod
    def of(cls, statuses: Sequence[PortalStatus] | None = None, issued_from: datetime | None = None,
           issued_to: datetime | None = None, currency: str | None = None) -> "InvoiceCriteria":
        """Validated (BAD_USER_INPUT) and normalized, before any provider call."""
        issued_from, issued_to = _utc(issued_from), _utc(issued_to)
        if issued_from and issued_to and issued_from > issued_to:
            raise BadUserInput("`issuedFrom` must not be after `issuedTo`.")
        if currency is not None:
            currency = currency.strip().upper()
            if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
                raise BadUserInput("`currency` takes a three-letter ISO 4217 code, e.g. \"EUR\".")
        return cls(frozenset(statuses or ()), issued_from, issued_to, currency)

    def matches(self, invoice: Invoice) -> bool:
        return ((not self.statuses or portal_status(invoice) in self.statuses)
                and (self.issued_from is None or invoice.created >= self.issued_from)
                and (self.issued_to is None or invoice.created < self.issued_to)
                and (self.currency is None or invoice.currency == self.currency))


def _utc(moment: datetime | None) -> datetime | None:
    # A client that sends a time without an offset means UTC, as every time in this API is.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


# --- one organization's billing (customer id: the organization's, None when it has none) ---


async def invoices(ctx: Context, customer_id: str | None) -> list[Invoice]:
    """All of the customer's invoices, newest first."""
    if customer_id is None:
        return []
    found: list[Invoice] = await ctx.loaders.billing.invoices.load(customer_id)
    return sorted(found, key=invoice_sort_key, reverse=True)


async def invoice_page(ctx: Context, customer_id: str | None, slice: Slice,
                       criteria: InvoiceCriteria) -> Page[Invoice]:
    # Filtered and paged in memory: the provider's list filters cannot express ours
    # (portal statuses, currency), and the customer's whole list is loaded anyway.
    matching = [i for i in await invoices(ctx, customer_id) if criteria.matches(i)]
    return page_in_memory(matching, slice, invoice_sort_key, INVOICE_KEY_TYPES)


async def outstanding_balance(ctx: Context, customer_id: str | None) -> list[tuple[str, int]]:
    """(currency, amount still due on OPEN invoices) per currency that has any, by currency."""
    totals: dict[str, int] = defaultdict(int)
    for invoice in await invoices(ctx, customer_id):
        if portal_status(invoice) == "OPEN" and invoice.amount_due > 0:
            totals[invoice.currency] += invoice.amount_due
    return sorted(totals.items())


async def payment_methods(ctx: Context, customer_id: str | None) -> list[PaymentMethod]:
    """The default method first, the others in the provider's order."""
    if customer_id is None:
        return []
    found: list[PaymentMethod] = await ctx.loaders.billing.payment_methods.load(customer_id)
    return sorted(found, key=lambda m: not m.is_default)


async def customer(ctx: Context, customer_id: str | None) -> Customer | None:
    """The customer's billing details; None when the provider no longer knows it."""
    return None if customer_id is None else await ctx.loaders.billing.customer.load(customer_id)


# --- node(id:): decides visibility itself ---------------------------------------------------


async def visible_invoice(ctx: Context, invoice_id: str) -> Invoice | None:
    return await _visible(ctx, "Organization.invoices", invoices, invoice_id, lambda i: i.id)


async def visible_payment_method(ctx: Context, payment_method_id: str) -> PaymentMethod | None:
    return await _visible(ctx, "Organization.paymentMethods", payment_methods, payment_method_id, lambda m: m.id)


async def _visible(ctx: Context, listed_in: str, list_of: Callable[[Context, str | None], Awaitable[list[T]]],
                   wanted: str, id_of: Callable[[T], str]) -> T | None:
    """None unless the object is in the list (`listed_in`) of the viewer's own organization and
    the viewer may read that list: exactly as for an id that does not exist. The vendor's staff
    belong to no organization: they open invoices and cards through `staff.organization`.

    Looked up in the organization's list rather than fetched by id, so the provider is
    never asked about another customer's objects, and `node` shares the list's fetch.
    """
    mine = await viewer_membership(ctx)
    if mine is None or not await may(ctx, listed_in, mine.organization_id):
        return None
    organization = await ctx.loaders.accounts.organization.load(mine.organization_id)
    customer_id = organization.payment_customer_id if organization else None
    if customer_id is None:
        return None
    return next((item for item in await list_of(ctx, customer_id) if id_of(item) == wanted), None)
