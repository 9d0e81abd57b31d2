"""What a payment provider event changes in the gateway (`POST /webhooks/payments`).

Each event is recorded once by its id, and applied in the transaction that records it, so
a redelivery (the provider sends an event until it gets a 2xx) changes nothing and is
answered 200 again. An event is applied when its type is one below and its customer is an
organization's; any other event is recorded and ignored.

- `invoice.paid`, `payment_intent.succeeded`: a payment the gateway holds as pending on
  that invoice (a `payInvoice`/`payOutstandingBalance` attempt whose answer was lost, see
  `resolvers/payments.py`) is settled: the invoice leaves the attempt's `pending` mark
  and is noted under `settledByProvider`. The audit log gets `billing.invoice_paid` or
  `billing.payment_succeeded`, by the service `payment-provider`.
- `payment_intent.payment_failed`: the same for a failure, with the decline reason in the
  gateway's terms; audited as `billing.payment_failed`, outcome REFUSED.
- `invoice.created`: nothing to settle or audit (the gateway changed nothing); it is applied
  only to report the event below.
- `customer.subscription.updated`/`.deleted`, a renewal's `invoice.payment_failed`, and
  `invoice.paid` of a PAST_DUE subscription: the subscription's row follows the provider
  (resolvers/subscription_standing.py), audited as `billing.subscription_changed` when it changed.

Each applied event about an invoice also reports a live event (resolvers/events.py), in the
same transaction: INVOICE_CREATED, INVOICE_PAID (`invoice.paid`, `payment_intent.succeeded`)
or INVOICE_PAYMENT_FAILED. INVOICE_CREATED and INVOICE_PAID happen once per invoice, so they
carry a dedupe key: the provider's two events about one payment, and the gateway's own
`payInvoice` that made it, report it once.

Every verified event about an organization's customer (of any type, applied or not) drops its
lists from the billing mirror in the transaction that records it (loaders/billing.py), and
the webhook's answer is followed by fetching them again (`gateway/webhooks.py`), so the next
screen reads the provider's new state from PostgreSQL. The event's own fields are never
copied into the mirror: events arrive late, twice and out of order (`payment_failed` after
`paid`), so the mirror only ever holds what a read of the provider answered, and the event is
what tells it to read again. An invoice paid elsewhere (the provider's hosted page, a bank
transfer marked paid) so shows PAID as soon as its event arrives; the audit entry records
what a read of the provider does not show: when the provider reported it paid; beside the
gateway's own `billing.pay_invoice` entries, it tells payments made elsewhere apart.

A pending mark is a note, never what decides a payment: the retry with the client's key
re-reads the invoice at the provider before paying, with or without the mark. The event
settles the record (and tells the organization, in its audit log) without waiting for a
retry that may never come; an event that arrives before its attempt is marked pending
leaves the mark to the retry, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from datasources.payments.client import PaymentsClient
from datasources.payments.webhooks import ProviderEvent
from datasources.postgres import audit, billing_mirror, idempotency, provider_events
from datasources.postgres.database import Database
from datasources.postgres.provider_events import PendingAttempt
from resolvers import subscription_standing
from resolvers.events import publish
from resolvers.payments import ATTEMPT, PAY_BALANCE, PAY_INVOICE, invoice_paid_key

ACTOR = "payment-provider"  # the audit log's actor_service for what events change
INVOICE_PAID = "billing.invoice_paid"
PAYMENT_SUCCEEDED = "billing.payment_succeeded"
PAYMENT_FAILED = "billing.payment_failed"
SUBSCRIPTION_CHANGED = "billing.subscription_changed"  # the row followed the provider (subscription_standing)
ACTIONS = {"invoice.paid": INVOICE_PAID, "payment_intent.succeeded": PAYMENT_SUCCEEDED,
           "payment_intent.payment_failed": PAYMENT_FAILED}
# The live event each provider event about an invoice reports.
EVENT_KINDS = {"invoice.created": "INVOICE_CREATED", "invoice.paid": "INVOICE_PAID",
               "payment_intent.succeeded": "INVOICE_PAID", "payment_intent.payment_failed": "INVOICE_PAYMENT_FAILED"}
# The attempt records that can hold a payment as pending.
ATTEMPTS = (PAY_INVOICE + ATTEMPT, PAY_BALANCE + ATTEMPT)

log = logging.getLogger("gateway.webhooks")


@dataclass(frozen=True)
class Receipt:
    """What one delivery did."""

    event_id: str
    duplicate: bool  # recorded before: this delivery changed nothing
    applied: bool  # this delivery changed what the gateway keeps
    settled: int = 0  # pending payment attempts it settled
    dropped: str | None = None  # the customer whose lists it dropped from the billing mirror


async def receive(db: Database, event: ProviderEvent, payments: PaymentsClient | None = None,
                  grace_days: int = 14) -> Receipt:
    # Read before the transaction: no provider call while rows are locked.
    current, invoice_paid_now = await subscription_standing.provider_state(payments, event)
    async with db.transaction() as conn:
        organization_id = (await provider_events.organization_of_customer(conn, event.customer_id)
                           if event.customer_id else None)
        action = ACTIONS.get(event.type)
        about_subscription = subscription_standing.concerns(event)
        applies = (event.type in EVENT_KINDS or about_subscription) and organization_id is not None
        first = await provider_events.record(
            conn, event_id=event.id, event_type=event.type, object_id=event.object_id,
            customer_id=event.customer_id, organization_id=organization_id,
            outcome="APPLIED" if applies else "IGNORED", created_at=event.created, payload=event.payload)
        if not first:
            return Receipt(event.id, duplicate=True, applied=False)
        # Only an organization's customer has lists to drop: events about others (another
        # application on the same provider account) leave no rows behind.
        dropped = event.customer_id if organization_id is not None else None
        if dropped:
            await billing_mirror.drop(conn, [dropped])
        if not applies:
            return Receipt(event.id, duplicate=False, applied=False, dropped=dropped)
        assert organization_id is not None
        settled = await _apply(conn, event, organization_id, action) if action else []
        if event.type in EVENT_KINDS:
            await _report(conn, event, organization_id)
        if about_subscription and await subscription_standing.apply(conn, event, current, invoice_paid_now,
                                                                     grace_days):
            await audit.record(conn, organization_id=organization_id, actor_account_id=None, actor_service=ACTOR,
                               action=SUBSCRIPTION_CHANGED, target=f"Subscription:{event.subscription_id}",
                               outcome="SUCCESS", details={"event": event.id, "type": event.type,
                                                           "invoice": event.invoice_id})
    if settled:
        log.info("provider event %s (%s) settled pending payment(s) on invoice %s", event.id, event.type,
                 event.invoice_id)
    return Receipt(event.id, duplicate=False, applied=True, settled=len(settled), dropped=event.customer_id)


async def _apply(conn: asyncpg.Connection, event: ProviderEvent, organization_id: UUID,
                 action: str) -> list[PendingAttempt]:
    """Settles the payments pending on the event's invoice and audits the event."""
    failed = action == PAYMENT_FAILED
    settled = await _settle_pending(conn, event, failed) if event.invoice_id else []
    details: dict[str, Any] = {"event": event.id, "invoice": event.invoice_id, "amount": event.amount,
                               "currency": event.currency, "settledPendingPayments": len(settled)}
    if event.object_type == "payment_intent":
        details["paymentIntent"] = event.object_id
    if failed:
        details["declineReason"] = event.decline_reason
    target = f"Invoice:{event.invoice_id}" if event.invoice_id else f"PaymentIntent:{event.object_id}"
    await audit.record(conn, organization_id=organization_id, actor_account_id=None, actor_service=ACTOR,
                       action=action, target=target, outcome="REFUSED" if failed else "SUCCESS",
                       details=details)
    return settled


async def _report(conn: asyncpg.Connection, event: ProviderEvent, organization_id: UUID) -> None:
    """The invoice's live event; none for a payment of no invoice."""
    if event.invoice_id is None:
        return
    kind = EVENT_KINDS[event.type]
    common = {"invoice_id": event.invoice_id, "currency": event.currency}
    if kind == "INVOICE_CREATED":
        await publish(conn, kind, organization_id=organization_id, data={**common, "amount_due": event.amount_due},
                      dedupe_key=f"INVOICE_CREATED:{event.invoice_id}")
    elif kind == "INVOICE_PAID":
        await publish(conn, kind, organization_id=organization_id, data={**common, "amount_paid": event.amount},
                      dedupe_key=invoice_paid_key(event.invoice_id))
    else:
        await publish(conn, kind, organization_id=organization_id,
                      data={**common, "amount_due": event.amount, "reason": event.decline_reason})


async def _settle_pending(conn: asyncpg.Connection, event: ProviderEvent, failed: bool) -> list[PendingAttempt]:
    """Takes the invoice off the pending mark of every attempt waiting on it."""
    assert event.invoice_id is not None
    found = await provider_events.pending_attempts(conn, event.invoice_id, ATTEMPTS)
    for attempt in found:
        response = dict(attempt.response)
        pending = [i for i in response["pending"] if i != event.invoice_id]
        if pending:
            response["pending"] = pending
        else:
            del response["pending"]
        settled = {"event": event.id, "outcome": "FAILED" if failed else "PAID"}
        if failed:
            settled["declineReason"] = event.decline_reason
        response["settledByProvider"] = {**response.get("settledByProvider", {}), event.invoice_id: settled}
        await idempotency.complete(conn, attempt.scope, attempt.key, response)
    return found
