"""Demo billing data at the payment provider for one organization (used by `seed`).

Deterministic content: the same org spec always yields the same customer, card and
invoices (ids and dates are the provider's). Every provider write carries an
idempotency key derived from the org key and the step, so a retried seed is replayed
by a provider that honours keys (Stripe); for one that does not (localstripe), an
existing demo customer is found by email + metadata and reused instead.
Kept to about 20 provider writes per org: localstripe pickles its whole store per write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasources.payments.client import PaymentsClient
from datasources.payments.records import Address

DEMO_KEY_METADATA = "demo_org_key"
DEMO_CARD = "4242424242424242"


@dataclass(frozen=True, slots=True)
class DemoInvoice:
    lines: tuple[tuple[str, int, int], ...]  # (description, quantity, unit amount in minor units)
    paid: bool
    in_second_currency: bool = False
    tax_percent: float | None = None


DEFAULT_INVOICES: tuple[DemoInvoice, ...] = (
    DemoInvoice((("Render Studio annual subscription, per seat", 5, 39_900),), paid=True, tax_percent=20.0),
    DemoInvoice((("Cloud rendering credits, 1,000-credit pack", 2, 12_500),), paid=True),
    DemoInvoice(
        (("Render Studio annual subscription, per seat", 5, 39_900),
         ("Floating license pool, 3 concurrent users", 1, 89_700)),
        paid=False, tax_percent=20.0,
    ),
    DemoInvoice((("Cloud rendering credits, 1,000-credit pack", 4, 12_500),), paid=False),
    DemoInvoice((("Priority support, quarterly", 1, 45_000),), paid=False, in_second_currency=True),
)


@dataclass(frozen=True, slots=True)
class DemoBillingOrg:
    key: str  # stable seed key of the organization, e.g. "acme"
    name: str
    billing_email: str
    currency: str = "USD"
    second_currency: str = "EUR"
    address: Address = field(default_factory=lambda: Address(
        line1="1 Demo Street", city="Berlin", postal_code="10115", country="DE"))
    vat_id: str | None = "DE123456789"
    invoices: tuple[DemoInvoice, ...] = DEFAULT_INVOICES


async def ensure_demo_billing(client: PaymentsClient, org: DemoBillingOrg) -> str:
    """Create (or find) the org's demo customer with card and invoices; return its id."""
    for existing in await client.find_customers(email=org.billing_email):
        if existing.metadata.get(DEMO_KEY_METADATA) == org.key:
            return existing.id

    base = f"demo-billing:{org.key}"
    customer = await client.create_customer(
        name=org.name,
        email=org.billing_email,
        # The VAT id also goes in metadata: a provider that rejects the tax id's format
        # in `tax_id_data` would fail the call, so the caller may pass vat_id=None and
        # still keep it visible.
        metadata={DEMO_KEY_METADATA: org.key, **({"vat_id": org.vat_id} if org.vat_id else {})},
        address=org.address,
        vat_id=org.vat_id,
        idempotency_key=f"{base}:customer",
    )
    await client.add_card(
        customer.id, card_number=DEMO_CARD, exp_month=12, exp_year=2030, cvc="123",
        make_default=True, idempotency_key=f"{base}:card",
    )
    # Sequentially: an invoice sweeps in all of the customer's pending items.
    for i, spec in enumerate(org.invoices):
        await client.create_invoice(
            customer.id,
            currency=org.second_currency if spec.in_second_currency else org.currency,
            lines=list(spec.lines),
            tax_percent=spec.tax_percent,
            pay=spec.paid,
            idempotency_key=f"{base}:invoice{i}",
        )
    return customer.id
