"""Billing changes: paying invoices and the outstanding balance, payment methods, billing details.

Only the OWNER or an ADMIN of the organization changes its billing; the objects named in the
input must be its own (another organization's, unknown and malformed IDs are all NOT_FOUND).
Every change to one provider customer runs in a PostgreSQL transaction holding that
customer's lock (`payment_records.lock_customer`), so what was checked under the lock (the
invoice is still OPEN, this is not the last card) still holds when the provider is asked.

Paying is never done twice for one request:
- The client's idempotency key is claimed in the transaction that pays, which stays open
  across the provider call: a concurrent request with the same key waits, then replays the
  stored result. Once claimed, every result (paid, declined, not payable, partly paid) is
  stored and replayed. A provider failure (PROVIDER_UNAVAILABLE) rolls the claim back, so the
  client retries with the same key.
- Each provider call carries a key derived from the client's (`provider_key`), so a provider
  that honours keys (Stripe) replays rather than charges again.
- Before the transaction, an attempt record is committed under the key with the invoices the
  request means to pay (its plan). A retry after a failure finds it: an invoice of the plan
  that the provider now shows PAID was paid by the earlier attempt (its answer was lost), and
  counts as paid without a second charge, where any other PAID invoice is NOT_PAYABLE. The
  emulator has no idempotency keys: this is what holds there.
- A payment whose outcome is unknown (the provider got the request, or may have, and no answer
  came in time: `OutcomeUnknown`) is PENDING: the claim is rolled back (nothing is stored under
  the key, so a retry with it runs again), the attempt record is marked with the pending
  invoices, and the payload says `paymentPending`. It is resolved by the provider's truth: the
  next read shows the invoice PAID or still OPEN, and a retry with the same key re-reads it
  under the lock, counts it as paid when it is (no second charge), pays it otherwise, and
  clears the mark. The provider's invoice state also refuses to pay one invoice twice.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

import asyncpg

from datasources.errors import BadUserInput, NotFound, PaymentDeclined, ProviderUnavailable
from datasources.payments.client import UNAVAILABLE, OutcomeUnknown, PaymentsClient
from datasources.payments.records import Address, Customer, Invoice, PaymentMethod
from datasources.postgres import payment_records
from datasources.postgres.entitlements import SubscriptionQuery
from resolvers import billing as read
from resolvers import subscription_standing
from resolvers import tax_ids
from resolvers.context import Context
from resolvers.countries import CODES
from resolvers.permissions import viewer_membership
from resolvers.user_errors import Problem
from resolvers.writes import (NOT_FOUND, after_write, audit_refusal, audit_success, claim_key, complete_key,
                              forget_billing, key_problem, provider_key, report, require_change, require_change_in)

PAY_INVOICE = "billing.pay_invoice"
PAY_BALANCE = "billing.pay_balance"
ADD_METHOD = "billing.add_payment_method"
SET_DEFAULT = "billing.set_default_payment_method"
REMOVE_METHOD = "billing.remove_payment_method"
UPDATE_INFO = "billing.update_info"
ATTEMPT = ".attempt"  # the attempt record's operation: the payment's plus this
P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("gateway.payments")

# Subscriptions that will be charged again: while one exists, the last card stays.
BILLED_STATUSES = ("ACTIVE", "TRIALING", "PAST_DUE")

MAX_TEXT = 200
MAX_EMAIL = 254
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
TOKEN = re.compile(r"pm_[A-Za-z0-9_]{1,250}")


@dataclass(frozen=True)
class Billing:
    """The organization whose billing the viewer manages, and its provider customer."""

    organization_id: UUID
    customer_id: str
    payments: PaymentsClient


async def managed_billing(ctx: Context, mutation: str) -> Billing:
    """The viewer's organization, when the table lets the viewer run `mutation` there:
    UNAUTHENTICATED for no viewer, NOT_FOUND for an account in no organization, FORBIDDEN for a
    MEMBER, staff and services."""
    await require_change(ctx, mutation)
    mine = await viewer_membership(ctx)
    if mine is None:
        raise NotFound(NOT_FOUND)
    await require_change_in(ctx, mutation, mine.organization_id)
    organization = await ctx.loaders.accounts.organization.load(mine.organization_id)
    if organization is None or organization.payment_customer_id is None:
        raise NotFound(NOT_FOUND)  # no billing account: nothing of it can be named
    if ctx.payments is None:
        raise ProviderUnavailable(UNAVAILABLE)
    return Billing(organization.id, organization.payment_customer_id, ctx.payments)


def billing_mutation(mutation: str) -> Callable[[Callable[Concatenate[Context, Billing, P], Awaitable[R]]],
                                                Callable[Concatenate[Context, P], Awaitable[R]]]:
    """The frame of each billing mutation: `managed_billing`, and the provider as the truth it
    works on. The customer's mirror is dropped before the mutation reads (its reads ask the
    provider, not a copy a missed webhook left behind) and again after it, whatever it came to
    (done, declined, no answer: the provider may have changed), so its payload and every screen
    after it read the provider's new state."""
    def frame(run: Callable[Concatenate[Context, Billing, P], Awaitable[R]]) -> Callable[Concatenate[Context, P],
                                                                                          Awaitable[R]]:
        @functools.wraps(run)
        async def framed(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> R:
            billing = await managed_billing(ctx, mutation)
            await forget_billing(ctx, billing.customer_id)
            try:
                return await run(ctx, billing, *args, **kwargs)
            finally:
                await forget_billing(ctx, billing.customer_id)
        return framed
    return frame


def _loggable(raw: str) -> str:
    """Client text for an audit target before it is validated: PostgreSQL text cannot hold NUL."""
    return raw.replace("\x00", "\ufffd")[:MAX_TEXT]


def _problems_detail(problems: list[Problem]) -> list[dict[str, Any]]:
    # The shape audit_refusal writes, for refusals recorded inside a transaction.
    return [{"field": list(p.field), "code": p.code} for p in problems]


def _problem_dict(problem: Problem) -> dict[str, Any]:
    return {"field": list(problem.field), "message": problem.message, "code": problem.code}


def _problem_of(stored: dict[str, Any]) -> Problem:
    return Problem(tuple(stored["field"]), stored["message"], stored["code"])


# --- paying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentResult:
    """What a payment request did. Stored under its idempotency key and replayed as it is."""

    customer_id: str | None = None
    invoice_ids: tuple[str, ...] = ()  # payInvoice: the invoice; payOutstandingBalance: those paid
    declined_invoice_id: str | None = None
    decline_reason: str | None = None  # a PaymentDeclineReason value
    problems: tuple[Problem, ...] = ()
    # Sent to the provider without an answer: maybe paid. Such a result is never stored
    # under the key (a retry settles it), so it is never replayed either.
    pending_invoice_ids: tuple[str, ...] = ()
    preview: "PaymentPreview | None" = None  # a dry run's answer: nothing was paid

    @property
    def pending(self) -> bool:
        return bool(self.pending_invoice_ids)

    @property
    def paid_invoice_ids(self) -> tuple[str, ...]:
        """The invoices this request paid (or an earlier attempt of it did)."""
        if any(p.code == "NOT_PAYABLE" for p in self.problems):
            return ()
        return tuple(i for i in self.invoice_ids if i != self.declined_invoice_id)

    def stored(self) -> dict[str, Any]:
        return {"invoiceIds": list(self.invoice_ids), "declinedInvoiceId": self.declined_invoice_id,
                "declineReason": self.decline_reason, "problems": [_problem_dict(p) for p in self.problems]}

    @classmethod
    def replayed(cls, customer_id: str, stored: dict[str, Any]) -> "PaymentResult":
        return cls(customer_id=customer_id, invoice_ids=tuple(stored["invoiceIds"]),
                   declined_invoice_id=stored["declinedInvoiceId"], decline_reason=stored["declineReason"],
                   problems=tuple(_problem_of(p) for p in stored["problems"]))


@dataclass(frozen=True)
class PaymentPreview:
    """What a payment would charge, to which card: a dry run's answer."""

    amount: int
    currency: str
    invoice_ids: tuple[str, ...]
    payment_method: PaymentMethod | None


async def _dry_run(ctx: Context, billing: Billing, method: str | None, invoices: list[Invoice],
                   currency: str) -> PaymentResult:
    """The same checks as the payment, then nothing: no claim, no charge, no audit entry."""
    methods = await read.payment_methods(ctx, billing.customer_id)
    card = next((m for m in methods if (m.id == method if method else m.is_default)), None)
    return PaymentResult(billing.customer_id, preview=PaymentPreview(
        amount=sum(i.amount_due for i in invoices), currency=currency, invoice_ids=tuple(i.id for i in invoices),
        payment_method=card))


@dataclass(frozen=True)
class _Settled:
    """One invoice after its turn: paid (now or by an earlier attempt), not payable, declined,
    or pending (the provider did not say whether it paid)."""

    paid: bool
    declined: PaymentDeclined | None = None
    pending: bool = False


@billing_mutation("payInvoice")
async def pay_invoice(ctx: Context, billing: Billing, invoice_id: str | None, payment_method_id: str | None,
                      raw_payment_method_id: bool, key: str, dry_run: bool = False) -> PaymentResult:
    """Pays one OPEN invoice of the viewer's organization, with the default method or a chosen one.

    `invoice_id`/`payment_method_id` are provider ids decoded from global IDs (None for one
    that did not decode); `raw_payment_method_id` tells whether the client named a method.
    """
    target = f"Invoice:{invoice_id}"
    known = {i.id: i for i in await read.invoices(ctx, billing.customer_id)}
    invoice = known.get(invoice_id) if invoice_id is not None else None
    if invoice is None:
        raise NotFound(NOT_FOUND)
    problems = [p for p in (key_problem(key),) if p]
    method, method_problem = await _payment_method_to_use(ctx, billing, payment_method_id, raw_payment_method_id)
    problems += [method_problem] if method_problem else []
    if not problems and dry_run and not invoice.is_outstanding:
        problems.append(_not_payable())
    if problems:
        return await _refused(ctx, billing, PAY_INVOICE, target, problems, audited=not dry_run)
    if dry_run:
        return await _dry_run(ctx, billing, method, [invoice], invoice.currency)
    request = {"invoiceId": invoice.id, "paymentMethodId": method}
    plan = [invoice.id] if invoice.is_outstanding else []

    async def settle(earlier: frozenset[str], _plan: list[str]) -> PaymentResult:
        settled = await _settle(ctx, billing, PAY_INVOICE, key, invoice.id, method, earlier)
        if settled.pending:
            return PaymentResult(billing.customer_id, (invoice.id,), pending_invoice_ids=(invoice.id,))
        if settled.declined is not None:
            return _declined(billing, (invoice.id,), invoice.id, settled.declined, raw_payment_method_id)
        if not settled.paid:
            return PaymentResult(billing.customer_id, (invoice.id,), problems=(_not_payable(),))
        return PaymentResult(billing.customer_id, (invoice.id,))

    def audit(result: PaymentResult) -> tuple[str, dict[str, Any]]:
        details: dict[str, Any] = {"invoice": invoice.id, "amount": invoice.amount_due, "currency": invoice.currency,
                                   "paymentMethod": method or "default"}
        if result.problems:
            return "REFUSED", {**details, "problems": _problems_detail(list(result.problems)),
                               "declineReason": result.decline_reason}
        return "SUCCESS", details

    return await _pay(ctx, billing, PAY_INVOICE, target, key, request, plan, settle, audit, known)


@billing_mutation("payOutstandingBalance")
async def pay_outstanding_balance(ctx: Context, billing: Billing, currency: str, payment_method_id: str | None,
                                  raw_payment_method_id: bool, key: str, dry_run: bool = False) -> PaymentResult:
    """Pays every OPEN invoice in `currency`, oldest first, until one is declined.

    The ones paid before a decline stay paid, and are reported (outcome PARTIAL).
    """
    currency = currency.strip().upper()
    target = f"OutstandingBalance:{_loggable(currency)}"
    problems = [p for p in (key_problem(key),) if p]
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        problems.append(Problem(("input", "currency"), "Use a three-letter ISO 4217 code, such as \"EUR\".",
                                "INVALID"))
    method, method_problem = await _payment_method_to_use(ctx, billing, payment_method_id, raw_payment_method_id)
    problems += [method_problem] if method_problem else []
    if problems:
        return await _refused(ctx, billing, PAY_BALANCE, target, problems, audited=not dry_run)
    request = {"currency": currency, "paymentMethodId": method}
    known = {i.id: i for i in await read.invoices(ctx, billing.customer_id)}
    due = sorted((i for i in known.values() if i.currency == currency and i.is_outstanding), key=_issue_order)
    plan = [i.id for i in due]
    if dry_run:
        if not due:
            return PaymentResult(billing.customer_id, problems=(_nothing_due(currency),))
        return await _dry_run(ctx, billing, method, due, currency)

    async def settle(earlier: frozenset[str], plan: list[str]) -> PaymentResult:
        paid: list[str] = []
        for invoice_id in plan:
            settled = await _settle(ctx, billing, PAY_BALANCE, key, invoice_id, method, earlier)
            if settled.pending:  # stop: the next one waits until this one's outcome is known
                return PaymentResult(billing.customer_id, tuple(paid), pending_invoice_ids=(invoice_id,))
            if settled.declined is not None:
                return _declined(billing, tuple(paid), invoice_id, settled.declined, raw_payment_method_id)
            if settled.paid:
                paid.append(invoice_id)
        if not paid:
            return PaymentResult(billing.customer_id, problems=(_nothing_due(currency),))
        return PaymentResult(billing.customer_id, tuple(paid))

    def audit(result: PaymentResult) -> tuple[str, dict[str, Any]]:
        details: dict[str, Any] = {"currency": currency, "paid": list(result.invoice_ids),
                                   "paymentMethod": method or "default"}
        if not result.problems:
            return "SUCCESS", details
        details.update(declinedInvoice=result.declined_invoice_id, declineReason=result.decline_reason,
                       problems=_problems_detail(list(result.problems)))
        return ("PARTIAL" if result.invoice_ids else "REFUSED"), details

    return await _pay(ctx, billing, PAY_BALANCE, target, key, request, plan, settle, audit, known)


def _not_payable() -> Problem:
    return Problem(("input", "invoiceId"), "This invoice is not open, or nothing is due on it.", "NOT_PAYABLE")


def _nothing_due(currency: str) -> Problem:
    return Problem(("input", "currency"), f"Nothing is due in {currency}.", "NOT_PAYABLE")


def _issue_order(invoice: Invoice) -> tuple[str, str, str]:
    # Oldest first; within one second, by number (the provider numbers invoices in sequence).
    return invoice.created.isoformat(), invoice.number or "", invoice.id


# Pays the plan's invoices under the lock, given those an earlier attempt may have paid.
Settle = Callable[[frozenset[str], list[str]], Awaitable[PaymentResult]]
# The audit outcome and details of a result.
Audit = Callable[[PaymentResult], tuple[str, dict[str, Any]]]


async def _pay(ctx: Context, billing: Billing, operation: str, target: str, key: str, request: dict[str, Any],
               plan: list[str], settle: Settle, audit: Audit, known: dict[str, Invoice]) -> PaymentResult:
    """The idempotent frame around a payment: attempt record, claim, lock, settle, store, audit,
    events (`known`: the organization's invoices as read before, for the events' amounts)."""
    async with ctx.db.transaction() as conn:
        attempt = await claim_key(conn, ctx, operation + ATTEMPT, key, request)
        if attempt is None:
            await complete_key(conn, ctx, operation + ATTEMPT, key, {"plan": plan})
    if isinstance(attempt, Problem):
        return await _refused(ctx, billing, operation, target, [attempt])
    # A retry follows the first attempt's plan; what that attempt may have paid counts as paid.
    earlier = frozenset(attempt["plan"]) if attempt else frozenset()
    plan = list(attempt["plan"]) if attempt else plan

    try:
        async with ctx.db.transaction() as conn:
            claimed = await claim_key(conn, ctx, operation, key, request)
            if isinstance(claimed, Problem):
                reused = claimed
            elif claimed is not None:
                after_write(ctx)
                return PaymentResult.replayed(billing.customer_id, claimed)
            else:
                reused = None
                await payment_records.lock_customer(conn, billing.customer_id)
                result = await settle(earlier, plan)
                if result.pending:
                    raise _Unsettled(result)  # roll the claim back: a retry with the key settles it
                await complete_key(conn, ctx, operation, key, result.stored())
                if attempt and attempt.get("pending"):
                    await complete_key(conn, ctx, operation + ATTEMPT, key, {"plan": plan})  # resolved
                outcome, details = audit(result)
                await audit_success(conn, ctx, organization_id=billing.organization_id, action=operation,
                                    target=target, outcome=outcome, details=details)
                await _report_payment(conn, ctx, billing, result, known)
    except _Unsettled as unsettled:
        result = unsettled.result
        await _record_pending(ctx, operation, key, request, plan, result)
        after_write(ctx)
        return result
    if reused is not None:
        return await _refused(ctx, billing, operation, target, [reused])
    if result.paid_invoice_ids:
        # A PAST_DUE subscription whose open invoice this paid is active again at the provider.
        await subscription_standing.restore_paid(ctx.db, billing.payments, billing.organization_id,
                                                 ctx.viewer.account_id)
    after_write(ctx)
    return result


def invoice_paid_key(invoice_id: str) -> str:
    """An invoice is paid once: the payment's own request and the provider's events about it
    (resolvers/provider_events.py) report it under this key, so only the first is kept."""
    return f"INVOICE_PAID:{invoice_id}"


async def _report_payment(conn: asyncpg.Connection, ctx: Context, billing: Billing, result: PaymentResult,
                          known: dict[str, Invoice]) -> None:
    """INVOICE_PAID for each invoice the request paid, INVOICE_PAYMENT_FAILED for the one declined."""
    for invoice_id in result.paid_invoice_ids:
        invoice = known.get(invoice_id)
        # An invoice an earlier attempt paid already reads 0 due: what it came to is its total.
        amount = (invoice.amount_due or invoice.total) if invoice else None
        await report(conn, ctx, "INVOICE_PAID", organization_id=billing.organization_id,
                     data={"invoice_id": invoice_id, "amount_paid": amount,
                           "currency": invoice.currency if invoice else None},
                     dedupe_key=invoice_paid_key(invoice_id))
    if result.declined_invoice_id is not None:
        invoice = known.get(result.declined_invoice_id)
        await report(conn, ctx, "INVOICE_PAYMENT_FAILED", organization_id=billing.organization_id,
                     data={"invoice_id": result.declined_invoice_id,
                           "amount_due": invoice.amount_due if invoice else None,
                           "currency": invoice.currency if invoice else None, "reason": result.decline_reason})


class _Unsettled(Exception):
    """Leaves the paying transaction (rolling its claim back) with a pending result."""

    def __init__(self, result: PaymentResult) -> None:
        super().__init__("payment outcome unknown")
        self.result = result


async def _record_pending(ctx: Context, operation: str, key: str, request: dict[str, Any], plan: list[str],
                          result: PaymentResult) -> None:
    """Marks the attempt record (PostgreSQL) with the invoices whose payment is pending.

    No audit entry yet: the retry that settles the payment writes it, with what was paid.
    """
    log.warning("%s: no answer from the payment provider for invoice(s) %s; recorded as pending",
                operation, ", ".join(result.pending_invoice_ids))
    async with ctx.db.transaction() as conn:
        attempt = await claim_key(conn, ctx, operation + ATTEMPT, key, request)
        if isinstance(attempt, dict):
            await complete_key(conn, ctx, operation + ATTEMPT, key, {
                "plan": plan, "pending": list(result.pending_invoice_ids), "paidBefore": [
                    i for i in result.invoice_ids if i not in result.pending_invoice_ids],
                "pendingSince": datetime.now(timezone.utc).isoformat()})


async def _settle(ctx: Context, billing: Billing, operation: str, key: str, invoice_id: str,
                  payment_method_id: str | None, earlier: frozenset[str]) -> _Settled:
    """Under the customer's lock: reads the invoice fresh from the provider, then pays it if due."""
    invoice = await billing.payments.get_invoice(invoice_id)
    if invoice is None or invoice.customer_id != billing.customer_id:
        return _Settled(paid=False)
    if invoice.status == "PAID" and invoice_id in earlier:
        return _Settled(paid=True)  # an earlier attempt of this request paid it; its answer was lost
    if not invoice.is_outstanding:
        return _Settled(paid=False)
    try:
        await billing.payments.pay_invoice(invoice_id, payment_method_id=payment_method_id,
                                           idempotency_key=provider_key(ctx, operation, key, invoice_id))
    except PaymentDeclined as declined:
        return _Settled(paid=False, declined=declined)
    except OutcomeUnknown:
        return _Settled(paid=False, pending=True)
    return _Settled(paid=True)


def _declined(billing: Billing, paid: tuple[str, ...], invoice_id: str, declined: PaymentDeclined,
              chosen_method: bool) -> PaymentResult:
    reason = str(declined.extensions.get("reason") or "OTHER")
    field = ("input", "paymentMethodId") if chosen_method else ()
    # The message is the gateway's own wording for the reason, never the provider's text.
    return PaymentResult(billing.customer_id, paid, declined_invoice_id=invoice_id, decline_reason=reason,
                         problems=(Problem(field, declined.message, "PAYMENT_DECLINED"),))


async def _payment_method_to_use(ctx: Context, billing: Billing, payment_method_id: str | None,
                                 named: bool) -> tuple[str | None, Problem | None]:
    """The chosen method's provider id (None: the default), or why it cannot be used."""
    methods = await read.payment_methods(ctx, billing.customer_id)
    if named:
        if any(m.id == payment_method_id for m in methods):
            return payment_method_id, None
        return None, Problem(("input", "paymentMethodId"), "No such payment method, or it is not visible to you.",
                             "NOT_FOUND")
    if not any(m.is_default for m in methods):
        return None, Problem(("input", "paymentMethodId"), "The organization has no default payment method: "
                             "choose one, or add a card first.", "REQUIRED")
    return None, None


async def _refused(ctx: Context, billing: Billing, action: str, target: str,
                   problems: list[Problem], audited: bool = True) -> PaymentResult:
    """`audited`: false for a dry run, which writes nothing, its refusals included."""
    if audited:
        await audit_refusal(ctx, organization_id=billing.organization_id, action=action, target=target,
                            problems=problems)
    return PaymentResult(billing.customer_id, problems=tuple(problems))


# --- payment methods --------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodResult:
    customer_id: str | None = None
    payment_method_id: str | None = None  # the method added, made default, or removed
    decline_reason: str | None = None
    problems: list[Problem] = field(default_factory=list)


@billing_mutation("addPaymentMethod")
async def add_payment_method(ctx: Context, billing: Billing, token: str, make_default: bool) -> MethodResult:
    """Attaches a card tokenized client-side with the provider (a `pm_...` id).

    The organization's first method always becomes its default.
    """
    token = token.strip()
    target = f"PaymentMethod:{_loggable(token)}"
    if not TOKEN.fullmatch(token):
        problem = Problem(("input", "paymentMethodToken"), "Use the `pm_...` id the provider's client library "
                          "created for the card.", "INVALID")
        return await _method_refused(ctx, billing, ADD_METHOD, target, [problem])
    problem: Problem | None = None
    reason: str | None = None
    async with ctx.db.transaction() as conn:
        await payment_records.lock_customer(conn, billing.customer_id)
        methods = await billing.payments.list_payment_methods(billing.customer_id)
        make_default = make_default or not any(m.is_default for m in methods)
        try:
            added = await billing.payments.attach_payment_method(
                billing.customer_id, token, make_default=make_default,
                idempotency_key=provider_key(ctx, ADD_METHOD, token))
        except PaymentDeclined as declined:
            reason = str(declined.extensions.get("reason") or "OTHER")
            problem = Problem(("input", "paymentMethodToken"), declined.message, "PAYMENT_DECLINED")
        except NotFound:
            problem = Problem(("input", "paymentMethodToken"), "The payment provider has no such payment method "
                              "for you; create it with the provider's client library first.", "NOT_FOUND")
        except BadUserInput:  # e.g. Stripe: a method once detached can never be attached again
            problem = Problem(("input", "paymentMethodToken"), "The payment provider cannot add this payment "
                              "method; create a new one for the card.", "INVALID")
        else:
            await audit_success(conn, ctx, organization_id=billing.organization_id, action=ADD_METHOD,
                                target=f"PaymentMethod:{added.id}",
                                details={"brand": added.brand, "last4": added.last4, "default": added.is_default})
    if problem is not None:
        result = await _method_refused(ctx, billing, ADD_METHOD, target, [problem])
        return MethodResult(billing.customer_id, decline_reason=reason, problems=result.problems)
    after_write(ctx)
    return MethodResult(billing.customer_id, added.id)


@billing_mutation("setDefaultPaymentMethod")
async def set_default_payment_method(ctx: Context, billing: Billing, payment_method_id: str | None) -> MethodResult:
    async with ctx.db.transaction() as conn:
        await payment_records.lock_customer(conn, billing.customer_id)
        chosen = await _own_method(billing, payment_method_id)
        if not chosen.is_default:
            await billing.payments.set_default_payment_method(billing.customer_id, chosen.id)
        await audit_success(conn, ctx, organization_id=billing.organization_id, action=SET_DEFAULT,
                            target=f"PaymentMethod:{chosen.id}", details={"last4": chosen.last4})
    after_write(ctx)
    return MethodResult(billing.customer_id, chosen.id)


@billing_mutation("removePaymentMethod")
async def remove_payment_method(ctx: Context, billing: Billing, payment_method_id: str | None) -> MethodResult:
    """Detaches a card. Never the last one while a subscription will be charged again
    (LAST_PAYMENT_METHOD). When the default goes, the next card becomes the default."""
    problem: Problem | None = None
    async with ctx.db.transaction() as conn:
        await payment_records.lock_customer(conn, billing.customer_id)
        methods = await billing.payments.list_payment_methods(billing.customer_id)
        removed = await _own_method(billing, payment_method_id, methods)
        others = [m for m in methods if m.id != removed.id]
        billed = await ctx.loaders.entitlements.subscriptions.load(
            SubscriptionQuery(organization_id=billing.organization_id, statuses=BILLED_STATUSES))
        if not others and billed:
            problem = Problem(("input", "paymentMethodId"), "This is the only payment method and a subscription "
                              "is still billed: add another card first.", "LAST_PAYMENT_METHOD")
        else:
            new_default = None
            if removed.is_default:
                # Replace (or clear) the default first: the emulator keeps charging a detached default.
                new_default = others[0].id if others else None
                await billing.payments.set_default_payment_method(billing.customer_id, new_default)
            await billing.payments.detach_payment_method(removed.id)
            await audit_success(conn, ctx, organization_id=billing.organization_id, action=REMOVE_METHOD,
                                target=f"PaymentMethod:{removed.id}",
                                details={"last4": removed.last4, "newDefault": new_default})
    if problem is not None:
        return await _method_refused(ctx, billing, REMOVE_METHOD, f"PaymentMethod:{removed.id}", [problem])
    after_write(ctx)
    return MethodResult(billing.customer_id, removed.id)


async def _own_method(billing: Billing, payment_method_id: str | None,
                      methods: list[PaymentMethod] | None = None) -> PaymentMethod:
    """One of the organization's methods, read fresh under the lock; NOT_FOUND otherwise."""
    if methods is None:
        methods = await billing.payments.list_payment_methods(billing.customer_id)
    found = next((m for m in methods if payment_method_id is not None and m.id == payment_method_id), None)
    if found is None:
        raise NotFound(NOT_FOUND)
    return found


async def _method_refused(ctx: Context, billing: Billing, action: str, target: str,
                          problems: list[Problem]) -> MethodResult:
    await audit_refusal(ctx, organization_id=billing.organization_id, action=action, target=target,
                        problems=problems)
    return MethodResult(billing.customer_id, problems=problems)


# --- billing details --------------------------------------------------------------------------


@dataclass(frozen=True)
class AddressChange:
    line1: str
    city: str
    country: str
    line2: str | None = None
    postal_code: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class BillingInfoChange:
    """None: leave as it is. An empty string clears `company`; an empty tax ID value removes
    the tax ID. An address replaces the whole address. `vat_id` is the older input for an EU
    VAT number (`tax_id` of type eu_vat); a change gives at most one of the two."""

    company: str | None = None
    billing_email: str | None = None
    vat_id: str | None = None
    address: AddressChange | None = None
    tax_id: tax_ids.TaxIdChange | None = None

    def tax_id_change(self) -> tuple[tuple[str, ...], tax_ids.TaxIdChange] | None:
        """The tax ID to set, with the input field it came from."""
        if self.tax_id is not None:
            return ("input", "taxId"), self.tax_id
        if self.vat_id is not None:
            return ("input", "vatId"), tax_ids.TaxIdChange("eu_vat", self.vat_id)
        return None


@dataclass(frozen=True)
class InfoResult:
    customer_id: str | None = None
    problems: list[Problem] = field(default_factory=list)


def billing_info_problems(change: BillingInfoChange) -> list[Problem]:
    problems = []
    if change.company is not None and len(change.company.strip()) > MAX_TEXT:
        problems.append(Problem(("input", "company"), f"A company name has at most {MAX_TEXT} characters.",
                                "INVALID"))
    if change.billing_email is not None:
        email = change.billing_email.strip()
        if len(email) > MAX_EMAIL or not EMAIL.fullmatch(email):
            problems.append(Problem(("input", "billingEmail"), "Enter a valid email address, such as "
                                    "\"billing@example.com\".", "INVALID"))
    if change.tax_id is not None and change.vat_id is not None:
        problems.append(Problem(("input", "vatId"), "Give taxId or vatId, not both.", "INVALID"))
    elif (found := change.tax_id_change()) is not None:
        field_path, tax_id = found
        problem = tax_ids.problem(tax_id, field_path if field_path[-1] == "taxId" else ("input",))
        if problem is not None and field_path[-1] == "vatId":  # the older input: its own field, its own words
            problem = Problem(field_path, "Enter an EU VAT number: the country prefix and 8 to 12 letters or "
                                          "digits, such as \"DE123456789\".", "INVALID")
        if problem is not None:
            problems.append(problem)
    address = change.address
    if address is not None:
        for name, value, required in (("line1", address.line1, True), ("line2", address.line2, False),
                                      ("city", address.city, True), ("postalCode", address.postal_code, False),
                                      ("state", address.state, False)):
            text = (value or "").strip()
            if (required and not text) or len(text) > MAX_TEXT:
                problems.append(Problem(("input", "address", name), f"Enter 1 to {MAX_TEXT} characters."
                                        if required else f"Enter at most {MAX_TEXT} characters.", "INVALID"))
        if address.country.strip().upper() not in CODES:
            problems.append(Problem(("input", "address", "country"), "Use an ISO 3166-1 alpha-2 country code, "
                                    "such as \"DE\".", "INVALID"))
    return problems


@billing_mutation("updateBillingInfo")
async def update_billing_info(ctx: Context, billing: Billing, change: BillingInfoChange) -> InfoResult:
    """Validates, then writes the details to the provider customer; the provider is their only home."""
    target = f"Organization:{billing.organization_id}"
    problems = billing_info_problems(change)
    if problems:
        await audit_refusal(ctx, organization_id=billing.organization_id, action=UPDATE_INFO, target=target,
                            problems=problems)
        return InfoResult(billing.customer_id, problems)
    refused: list[Problem] = []
    async with ctx.db.transaction() as conn:
        await payment_records.lock_customer(conn, billing.customer_id)
        current = await billing.payments.get_customer(billing.customer_id)
        if current is None:
            raise NotFound(NOT_FOUND)
        updated = _apply(current, change)
        try:
            if (updated.tax_id_type, updated.vat_id) != (current.tax_id_type, current.vat_id):
                await billing.payments.set_tax_id(billing.customer_id, updated.tax_id_type or "eu_vat",
                                                  updated.vat_id)
        except BadUserInput:
            found = change.tax_id_change()
            refused = [Problem(found[0] if found else ("input", "taxId"),
                               "The payment provider did not accept this tax ID.", "INVALID")]
        else:
            await billing.payments.update_billing_details(
                billing.customer_id, name=updated.name, email=updated.email, address=updated.address,
                vat_id=updated.vat_id if updated.tax_id_type == "eu_vat" else None)
            changed = [name for name, value in (("company", change.company), ("billingEmail", change.billing_email),
                                                ("vatId", change.vat_id), ("taxId", change.tax_id),
                                                ("address", change.address))
                       if value is not None]
            await audit_success(conn, ctx, organization_id=billing.organization_id, action=UPDATE_INFO,
                                target=target, details={"changed": changed})
    if refused:
        await audit_refusal(ctx, organization_id=billing.organization_id, action=UPDATE_INFO, target=target,
                            problems=refused)
        return InfoResult(billing.customer_id, refused)
    after_write(ctx)
    return InfoResult(billing.customer_id)


def _apply(current: Customer, change: BillingInfoChange) -> Customer:
    def text(new: str | None, old: str | None) -> str | None:
        return old if new is None else (new.strip() or None)

    address = current.address
    if change.address is not None:
        a = change.address
        address = Address(line1=a.line1.strip(), line2=text(a.line2, None), city=a.city.strip(),
                          postal_code=text(a.postal_code, None), state=text(a.state, None),
                          country=a.country.strip().upper())
    tax_type, tax_value = current.tax_id_type, current.vat_id
    found = change.tax_id_change()
    if found is not None:
        tax_value = tax_ids.stored_value(found[1])
        tax_type = found[1].type if tax_value else None
    return Customer(id=current.id, name=text(change.company, current.name),
                    email=text(change.billing_email, current.email), address=address, vat_id=tax_value,
                    default_payment_method_id=current.default_payment_method_id, metadata=current.metadata,
                    tax_id_type=tax_type)


# --- payloads: read after the write, through the request's (cleared) loaders -------------------


async def invoices_by_id(ctx: Context, customer_id: str | None, invoice_ids: tuple[str, ...]) -> list[Invoice]:
    found = {i.id: i for i in await read.invoices(ctx, customer_id)}
    return [found[i] for i in invoice_ids if i in found]


async def payment_method_by_id(ctx: Context, customer_id: str | None, payment_method_id: str | None
                               ) -> PaymentMethod | None:
    return next((m for m in await read.payment_methods(ctx, customer_id) if m.id == payment_method_id), None)
