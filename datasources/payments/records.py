"""What the payments datasource hands to callers: plain frozen values, never SDK objects.

Amounts are integers in minor units (cents); currencies are upper-case ISO 4217 codes;
datetimes are timezone-aware UTC. Provider ids are kept as opaque strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

InvoiceStatus = Literal["DRAFT", "OPEN", "PAID", "VOID", "UNCOLLECTIBLE"]
DeclineReason = Literal[
    "CARD_DECLINED", "INSUFFICIENT_FUNDS", "EXPIRED_CARD", "INCORRECT_CVC",
    "PROCESSING_ERROR", "OTHER",
]


@dataclass(frozen=True, slots=True)
class Address:
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    state: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str | None
    email: str | None
    address: Address | None
    vat_id: str | None  # the tax ID's value, whatever its type (the name predates other types)
    default_payment_method_id: str | None
    metadata: dict[str, str]
    tax_id_type: str | None = None  # the provider's type of `vat_id`: "eu_vat", "gb_vat", "us_ein", ...


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    id: str
    brand: str  # lower-case as the provider spells it: "visa", "mastercard", ...
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    description: str
    quantity: int
    amount: int  # line total (quantity × unit price), before tax
    currency: str


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    number: str | None  # assigned by the provider at finalization; drafts have none
    customer_id: str
    status: InvoiceStatus
    created: datetime
    due_date: datetime | None
    currency: str
    subtotal: int
    tax: int
    total: int
    amount_due: int  # what is still to pay; 0 once PAID
    lines: tuple[InvoiceLine, ...]
    pdf_url: str | None

    @property
    def is_outstanding(self) -> bool:
        return self.status == "OPEN" and self.amount_due > 0


SubscriptionStatus = Literal["ACTIVE", "CANCELED", "PAST_DUE", "EXPIRED", "TRIALING"]


@dataclass(frozen=True, slots=True)
class ProviderSubscription:
    """A subscription as the provider holds it, in the gateway's words (`subscriptions.py`)."""

    id: str
    customer_id: str
    item_id: str  # the one subscription item, whose quantity is the seat count
    status: SubscriptionStatus
    quantity: int  # seats now
    price_id: str  # the per-seat price (plan)
    unit_amount: int  # per seat per period
    currency: str
    interval: str  # MONTH, YEAR, THREE_YEARS
    cancel_at_period_end: bool  # the gateway's autoRenew is its negation
    current_period_start: datetime
    current_period_end: datetime
    scheduled_quantity: int | None  # a decrease the provider applies at `scheduled_at` (the period's end)
    scheduled_at: datetime | None
    schedule_id: str | None
    latest_invoice_id: str | None
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class SeatChangePreview:
    """What a seat change would cost, as the provider's own preview invoices say."""

    quantity: int  # seats after the change
    amount_due_now: int  # charged at once for the rest of the period (0 for a decrease)
    next_invoice_total: int  # the renewal invoice after the change
    next_invoice_at: datetime
    effective_at: datetime  # now for an increase, the period's end for a decrease
    currency: str
