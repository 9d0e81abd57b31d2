"""Billing changes: payInvoice, payOutstandingBalance, addPaymentMethod, setDefaultPaymentMethod,
removePaymentMethod and updateBillingInfo.

All of them are for the OWNER and ADMINs of the viewer's organization. Payloads read what
changed from the payment provider after the write; a provider that does not answer then
leaves those fields null with PROVIDER_UNAVAILABLE, while the write itself stands.
"""

from __future__ import annotations

from collections.abc import Iterable

from enum import Enum
from typing import Annotated

import strawberry

from planning import ids
from resolvers import billing as read
from resolvers import payments as resolve
from schema.billing import BillingInfo, Invoice, PaymentMethod, TaxIdType
from resolvers.tax_ids import TaxIdChange
from resolvers.user_errors import Problem
from schema.common import Info, UserError, node_id_of, user_errors
from schema.money import Money

IDEMPOTENCY_KEY = ("Any unique string up to 200 characters, chosen by the client for this payment. A retry "
                   "with the same key and input (after a timeout, say) gets the first result again and never "
                   "pays twice, also when both requests arrive at once; the same key with another input is "
                   "IDEMPOTENCY_KEY_REUSED. A request refused before anything was paid (INVALID, NOT_FOUND, "
                   "REQUIRED) stores nothing under its key.")
PAYMENT_PENDING = ("True when the payment provider did not answer in time, after the request had (or may have) "
                   "reached it: the payment may or may not have gone through, and is recorded as pending. "
                   "Nothing is charged twice: retry with the same `idempotencyKey` to settle it (it counts an "
                   "invoice the provider now shows PAID as paid), or read the invoice later, whose `status` is "
                   "the provider's. `userErrors` is then empty.")
PAYMENT_METHOD_TO_USE = ("The card to pay with: the ID of one of the organization's payment methods. Null: the "
                         "default payment method.")


DRY_RUN = ("true: charge nothing, store nothing under the key and audit nothing; `preview` says what would be "
           "charged, for which invoices, to which card. The same checks (and user errors) as the payment.")


@strawberry.type(description="What a payment would charge: a dry run's answer.")
class PaymentPreview:
    amount: Money = strawberry.field(description="The total that would be charged.")
    payment_method: PaymentMethod | None = strawberry.field(
        description="The card it would be charged to (the default, or the one chosen).")
    customer_id: strawberry.Private[str | None]
    invoice_ids: strawberry.Private[tuple[str, ...]]

    @strawberry.field(description="The invoices it would pay, in the order it would pay them.")
    async def invoices(self, info: Info) -> list[Invoice]:
        found = await resolve.invoices_by_id(info.context, self.customer_id, self.invoice_ids)
        return [Invoice.from_record(i) for i in found]

    @classmethod
    def of(cls, result: resolve.PaymentResult) -> "PaymentPreview | None":
        p = result.preview
        if p is None:
            return None
        return cls(amount=Money(amount=p.amount, currency=p.currency),
                   payment_method=PaymentMethod.from_record(p.payment_method) if p.payment_method else None,
                   customer_id=result.customer_id, invoice_ids=p.invoice_ids)


def payment_method_global_id(payment_method_id: str) -> strawberry.ID:
    return strawberry.ID(ids.global_id("PaymentMethod", payment_method_id))


@strawberry.enum(description="Why the payment provider declined a payment or a card. The gateway's own "
                             "categories: the provider's wording is never passed on.")
class PaymentDeclineReason(Enum):
    CARD_DECLINED = strawberry.enum_value(
        "CARD_DECLINED", description="The card issuer declined without saying more; try another card.")
    INSUFFICIENT_FUNDS = strawberry.enum_value(
        "INSUFFICIENT_FUNDS", description="The card has insufficient funds or credit.")
    EXPIRED_CARD = strawberry.enum_value("EXPIRED_CARD", description="The card has expired.")
    INCORRECT_CVC = strawberry.enum_value("INCORRECT_CVC", description="The card's security code is incorrect.")
    PROCESSING_ERROR = strawberry.enum_value(
        "PROCESSING_ERROR", description="The card could not be processed; trying again may succeed.")
    OTHER = strawberry.enum_value("OTHER", description="Declined for another reason.")


def _reason(value: str | None) -> PaymentDeclineReason | None:
    return PaymentDeclineReason(value) if value else None


# --- payInvoice --------------------------------------------------------------------------------


@strawberry.input(description="One invoice to pay, and how.")
class PayInvoiceInput:
    invoice_id: strawberry.ID = strawberry.field(description="The OPEN invoice to pay (an `Invoice` ID).")
    payment_method_id: strawberry.ID | None = strawberry.field(default=None, description=PAYMENT_METHOD_TO_USE)
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    dry_run: bool = strawberry.field(default=False, description=DRY_RUN)


@strawberry.type(description="The result of `payInvoice`.")
class PayInvoicePayload:
    decline_reason: PaymentDeclineReason | None = strawberry.field(
        description="Why the card was declined, with a PAYMENT_DECLINED user error; null otherwise.")
    user_errors: list[UserError] = strawberry.field(
        description="PAYMENT_DECLINED (the invoice stays OPEN), NOT_PAYABLE (not OPEN, or nothing due), "
                    "NOT_FOUND or REQUIRED (`paymentMethodId`: not the organization's, or no default to use), "
                    "INVALID, IDEMPOTENCY_KEY_REUSED.")
    payment_pending: bool = strawberry.field(description=PAYMENT_PENDING)
    preview: PaymentPreview | None = strawberry.field(description="A dry run's answer; null otherwise.")
    customer_id: strawberry.Private[str | None]
    invoice_id: strawberry.Private[str | None]

    @strawberry.field(description="The invoice as the provider has it now: PAID after a payment; null when the "
                                  "request was refused before naming one.")
    async def invoice(self, info: Info) -> Invoice | None:
        if self.invoice_id is None:
            return None
        found = await resolve.invoices_by_id(info.context, self.customer_id, (self.invoice_id,))
        return Invoice.from_record(found[0]) if found else None


async def pay_invoice(info: Info, input: Annotated[PayInvoiceInput, strawberry.argument(
        description="The invoice, the card and the idempotency key.")]) -> PayInvoicePayload:
    invoice_id = node_id_of(input.invoice_id, "Invoice")
    result = await resolve.pay_invoice(
        info.context, invoice_id, node_id_of(input.payment_method_id, "PaymentMethod"),
        input.payment_method_id is not None, input.idempotency_key, input.dry_run)
    return PayInvoicePayload(decline_reason=_reason(result.decline_reason),
                             user_errors=user_errors(_with_pending(result.problems, result.pending)),
                             payment_pending=result.pending, preview=PaymentPreview.of(result),
                             customer_id=result.customer_id, invoice_id=invoice_id)


def _with_pending(problems: Iterable[Problem], pending: bool) -> list[Problem]:
    """A pending payment is also a user error, so that a client checking only `userErrors`
    does not take it for a completed one."""
    found = list(problems)
    if pending:
        found.append(Problem(("input", "idempotencyKey"), "The payment provider did not confirm the payment in "
                             "time. Retry with the same idempotency key to learn the outcome: you will not be "
                             "charged twice.", "PAYMENT_PENDING"))
    return found


# --- payOutstandingBalance ---------------------------------------------------------------------


@strawberry.input(description="The outstanding balance in one currency to pay, and how.")
class PayOutstandingBalanceInput:
    currency: str = strawberry.field(description="ISO 4217 code of the invoices to pay, e.g. \"EUR\"; "
                                                 "invoices in other currencies are left as they are.")
    payment_method_id: strawberry.ID | None = strawberry.field(default=None, description=PAYMENT_METHOD_TO_USE)
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    dry_run: bool = strawberry.field(default=False, description=DRY_RUN)


@strawberry.type(description="The result of `payOutstandingBalance`. Invoices are paid oldest first; the first "
                             "decline stops the run, and the invoices paid before it stay paid.")
class PayOutstandingBalancePayload:
    decline_reason: PaymentDeclineReason | None = strawberry.field(
        description="Why the card was declined, with a PAYMENT_DECLINED user error; null otherwise.")
    user_errors: list[UserError] = strawberry.field(
        description="PAYMENT_DECLINED (see `declinedInvoice`), NOT_PAYABLE (nothing due in the currency), "
                    "NOT_FOUND or REQUIRED (`paymentMethodId`), INVALID, IDEMPOTENCY_KEY_REUSED.")
    payment_pending: bool = strawberry.field(
        description=PAYMENT_PENDING + " The run stopped at `pendingInvoice`; `invoices` lists those paid before it.")
    preview: PaymentPreview | None = strawberry.field(description="A dry run's answer; null otherwise.")
    customer_id: strawberry.Private[str | None]
    invoice_ids: strawberry.Private[tuple[str, ...]]
    declined_invoice_id: strawberry.Private[str | None]
    pending_invoice_ids: strawberry.Private[tuple[str, ...]] = ()

    @strawberry.field(description="The invoices this request paid, oldest first, as the provider has them now.")
    async def invoices(self, info: Info) -> list[Invoice]:
        found = await resolve.invoices_by_id(info.context, self.customer_id, self.invoice_ids)
        return [Invoice.from_record(i) for i in found]

    @strawberry.field(description="The invoice whose payment was declined (still OPEN); null without a decline.")
    async def declined_invoice(self, info: Info) -> Invoice | None:
        if self.declined_invoice_id is None:
            return None
        found = await resolve.invoices_by_id(info.context, self.customer_id, (self.declined_invoice_id,))
        return Invoice.from_record(found[0]) if found else None

    @strawberry.field(description="The invoice whose payment is pending (see `paymentPending`), as the provider "
                                  "has it now; null when no payment is pending.")
    async def pending_invoice(self, info: Info) -> Invoice | None:
        if not self.pending_invoice_ids:
            return None
        found = await resolve.invoices_by_id(info.context, self.customer_id, self.pending_invoice_ids[:1])
        return Invoice.from_record(found[0]) if found else None


async def pay_outstanding_balance(info: Info, input: Annotated[PayOutstandingBalanceInput, strawberry.argument(
        description="The currency, the card and the idempotency key.")]) -> PayOutstandingBalancePayload:
    result = await resolve.pay_outstanding_balance(
        info.context, input.currency, node_id_of(input.payment_method_id, "PaymentMethod"),
        input.payment_method_id is not None, input.idempotency_key, input.dry_run)
    return PayOutstandingBalancePayload(decline_reason=_reason(result.decline_reason),
                                        user_errors=user_errors(_with_pending(result.problems, result.pending)),
                                        payment_pending=result.pending, preview=PaymentPreview.of(result),
                                        customer_id=result.customer_id, invoice_ids=result.invoice_ids,
                                        declined_invoice_id=result.declined_invoice_id,
                                        pending_invoice_ids=result.pending_invoice_ids)


# --- payment methods ---------------------------------------------------------------------------


@strawberry.input(description="A card to add, tokenized in the client with the payment provider's library.")
class AddPaymentMethodInput:
    payment_method_token: str = strawberry.field(
        description="The payment method id (`pm_...`) the provider's client library (e.g. Stripe.js) created "
                    "for the card. Card numbers never pass through this API.")
    make_default: bool = strawberry.field(
        default=False, description="Also make it the default payment method. The organization's first payment "
                                   "method always becomes the default.")


@strawberry.type(description="The result of `addPaymentMethod`.")
class AddPaymentMethodPayload:
    decline_reason: PaymentDeclineReason | None = strawberry.field(
        description="Why the card was declined when it was checked, with a PAYMENT_DECLINED user error; "
                    "null otherwise.")
    user_errors: list[UserError] = strawberry.field(
        description="PAYMENT_DECLINED, NOT_FOUND (the provider has no such payment method for you), INVALID.")
    customer_id: strawberry.Private[str | None]
    payment_method_id: strawberry.Private[str | None]

    @strawberry.field(description="The card added; null when it was refused.")
    async def payment_method(self, info: Info) -> PaymentMethod | None:
        return await _payment_method(info, self.customer_id, self.payment_method_id)


@strawberry.input(description="The payment method to pay with by default.")
class SetDefaultPaymentMethodInput:
    payment_method_id: strawberry.ID = strawberry.field(
        description="One of the organization's payment methods (a `PaymentMethod` ID).")


@strawberry.type(description="The result of `setDefaultPaymentMethod`.")
class SetDefaultPaymentMethodPayload:
    user_errors: list[UserError] = strawberry.field(description="Always empty; kept for the mutation contract.")
    customer_id: strawberry.Private[str | None]
    payment_method_id: strawberry.Private[str | None]

    @strawberry.field(description="The new default payment method.")
    async def payment_method(self, info: Info) -> PaymentMethod | None:
        return await _payment_method(info, self.customer_id, self.payment_method_id)


@strawberry.input(description="The payment method to remove.")
class RemovePaymentMethodInput:
    payment_method_id: strawberry.ID = strawberry.field(
        description="One of the organization's payment methods (a `PaymentMethod` ID).")


@strawberry.type(description="The result of `removePaymentMethod`.")
class RemovePaymentMethodPayload:
    removed_payment_method_id: strawberry.ID | None = strawberry.field(
        description="The ID of the payment method removed; null when it was not removed.")
    user_errors: list[UserError] = strawberry.field(
        description="LAST_PAYMENT_METHOD: the only payment method stays while a subscription is ACTIVE, "
                    "TRIALING or PAST_DUE.")
    customer_id: strawberry.Private[str | None]

    @strawberry.field(description="The organization's payment methods after the change, the default first.")
    async def payment_methods(self, info: Info) -> list[PaymentMethod] | None:
        found = await read.payment_methods(info.context, self.customer_id)
        return [PaymentMethod.from_record(m) for m in found]


async def _payment_method(info: Info, customer_id: str | None, payment_method_id: str | None) -> PaymentMethod | None:
    if payment_method_id is None:
        return None
    found = await resolve.payment_method_by_id(info.context, customer_id, payment_method_id)
    return PaymentMethod.from_record(found) if found else None


async def add_payment_method(info: Info, input: Annotated[AddPaymentMethodInput, strawberry.argument(
        description="The tokenized card.")]) -> AddPaymentMethodPayload:
    result = await resolve.add_payment_method(info.context, input.payment_method_token, input.make_default)
    return AddPaymentMethodPayload(decline_reason=_reason(result.decline_reason),
                                   user_errors=user_errors(result.problems), customer_id=result.customer_id,
                                   payment_method_id=result.payment_method_id)


async def set_default_payment_method(info: Info, input: Annotated[SetDefaultPaymentMethodInput, strawberry.argument(
        description="The payment method.")]) -> SetDefaultPaymentMethodPayload:
    result = await resolve.set_default_payment_method(
        info.context, node_id_of(input.payment_method_id, "PaymentMethod"))
    return SetDefaultPaymentMethodPayload(user_errors=user_errors(result.problems), customer_id=result.customer_id,
                                          payment_method_id=result.payment_method_id)


async def remove_payment_method(info: Info, input: Annotated[RemovePaymentMethodInput, strawberry.argument(
        description="The payment method.")]) -> RemovePaymentMethodPayload:
    result = await resolve.remove_payment_method(
        info.context, node_id_of(input.payment_method_id, "PaymentMethod"))
    removed = payment_method_global_id(result.payment_method_id) if result.payment_method_id else None
    return RemovePaymentMethodPayload(removed_payment_method_id=removed, user_errors=user_errors(result.problems),
                                      customer_id=result.customer_id)


# --- updateBillingInfo -------------------------------------------------------------------------


@strawberry.input(description="A postal address for invoices; it replaces the whole current address.")
class BillingAddressInput:
    line1: str = strawberry.field(description="Street and number.")
    line2: str | None = strawberry.field(default=None, description="Apartment, suite, floor, etc.; null: none.")
    city: str = strawberry.field(description="City or town.")
    postal_code: str | None = strawberry.field(default=None, description="Postal or ZIP code; null: none.")
    state: str | None = strawberry.field(default=None, description="State, county or region; null: none.")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code, e.g. \"DE\".")

    def change(self) -> resolve.AddressChange:
        return resolve.AddressChange(line1=self.line1, line2=self.line2, city=self.city, postal_code=self.postal_code,
                                     state=self.state, country=self.country)


@strawberry.input(description="A tax ID and its kind.")
class TaxIdInput:
    type: TaxIdType = strawberry.field(description="Its kind.")  # type: ignore[valid-type]
    value: str = strawberry.field(
        description="The number as printed, e.g. \"GB123456789\" or \"CHE-123.456.789 MWST\"; checked against "
                    "the kind's format (spaces, dots, dashes, slashes and commas aside). Empty: remove the tax ID.")

    def change(self) -> TaxIdChange:
        return TaxIdChange(type=self.type.value, value=self.value)


@strawberry.input(description="Billing details to change. A field left out (or null) stays as it is.")
class UpdateBillingInfoInput:
    company: str | None = strawberry.field(
        default=None, description="Company name printed on invoices; an empty string removes it.")
    billing_email: str | None = strawberry.field(
        default=None, description="Where invoices and receipts are sent.")
    vat_id: str | None = strawberry.field(
        default=None, description="EU VAT number with its country prefix, e.g. \"DE123456789\" (spaces, dots and "
                                  "dashes are ignored); an empty string removes it. The same as `taxId` with type "
                                  "EU_VAT; give one of the two.")
    tax_id: TaxIdInput | None = strawberry.field(
        default=None, description="The tax ID printed on invoices, of any type the provider knows; it replaces the "
                                  "one set. An empty value removes it.")
    address: BillingAddressInput | None = strawberry.field(
        default=None, description="Billing address, replacing the current one.")


@strawberry.type(description="The result of `updateBillingInfo`.")
class UpdateBillingInfoPayload:
    user_errors: list[UserError] = strawberry.field(
        description="INVALID, at the field at fault (e.g. [\"input\", \"address\", \"country\"]); nothing is "
                    "changed then.")
    customer_id: strawberry.Private[str | None]

    @strawberry.field(description="The billing details as the provider has them now.")
    async def billing_info(self, info: Info) -> BillingInfo | None:
        found = await read.customer(info.context, self.customer_id)
        return BillingInfo.from_record(found) if found else None


async def update_billing_info(info: Info, input: Annotated[UpdateBillingInfoInput, strawberry.argument(
        description="The details to change.")]) -> UpdateBillingInfoPayload:
    change = resolve.BillingInfoChange(company=input.company, billing_email=input.billing_email,
                                       vat_id=input.vat_id, tax_id=input.tax_id.change() if input.tax_id else None,
                                       address=input.address.change() if input.address else None)
    result = await resolve.update_billing_info(info.context, change)
    return UpdateBillingInfoPayload(user_errors=user_errors(result.problems), customer_id=result.customer_id)


@strawberry.type
class BillingMutations:
    pay_invoice: PayInvoicePayload = strawberry.mutation(
        resolver=pay_invoice,
        description="Pays one OPEN invoice of the viewer's organization with the default or a chosen payment "
                    "method, at most once per idempotency key.")
    pay_outstanding_balance: PayOutstandingBalancePayload = strawberry.mutation(
        resolver=pay_outstanding_balance,
        description="Pays every OPEN invoice in one currency, oldest first, stopping at the first decline; at "
                    "most once per idempotency key.")
    add_payment_method: AddPaymentMethodPayload = strawberry.mutation(
        resolver=add_payment_method,
        description="Adds a card tokenized in the client with the payment provider.")
    set_default_payment_method: SetDefaultPaymentMethodPayload = strawberry.mutation(
        resolver=set_default_payment_method,
        description="Makes a payment method the one invoices are paid with unless another is chosen.")
    remove_payment_method: RemovePaymentMethodPayload = strawberry.mutation(
        resolver=remove_payment_method,
        description="Removes a payment method; not the only one while a subscription is billed. When the "
                    "default goes, the next card becomes the default.")
    update_billing_info: UpdateBillingInfoPayload = strawberry.mutation(
        resolver=update_billing_info,
        description="Changes the company, billing email, tax ID and address on the organization's invoices, "
                    "at the payment provider.")


MUTATIONS = BillingMutations
