"""What the provider says about a subscription after the fact: its changes, a failed renewal, a payment.

- `customer.subscription.updated` / `.deleted`: the row follows the subscription as the provider
  has it now (read again: events come late, twice and out of order; only when the provider
  cannot be read is the event's own copy used, and then never over a newer one). What changed is
  reported: seats (LICENSE_QUANTITY_CHANGED, e.g. a scheduled decrease applied at renewal), a new
  period (SUBSCRIPTION_RENEWED), auto-renew, and leaving PAST_DUE (SUBSCRIPTION_RESTORED).
- `invoice.payment_failed` of a renewal (`subscription_cycle`): PAST_DUE, and the licenses keep
  working until the grace ends (`payment_grace_days` after the event: GRACE, then SUSPENDED, see
  planning/sources.LICENSE_STATUS); reported once (SUBSCRIPTION_PAST_DUE, mailed to managers). A
  failure of an invoice the provider shows paid by now changes nothing, and a retry's failure
  does not extend the grace. A refused seat increase's invoice is not a renewal: it changes nothing.
- `invoice.paid` of a PAST_DUE subscription, and the gateway's own payments (`restore_paid`):
  the row follows the provider, which shows it active again once the invoice is paid.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from datasources.errors import GatewayError
from datasources.payments.client import PaymentsClient
from datasources.payments.records import ProviderSubscription
from datasources.payments.subscriptions import subscription_from_payload
from datasources.payments.webhooks import ProviderEvent
from datasources.postgres import subscription_changes
from datasources.postgres.database import Database
from datasources.postgres.entitlements import Subscription
from resolvers.events import publish

SUBSCRIPTION_EVENTS = ("customer.subscription.updated", "customer.subscription.deleted")
RENEWAL = "subscription_cycle"

log = logging.getLogger("gateway.webhooks")


def concerns(event: ProviderEvent) -> bool:
    """Whether the event may change a subscription's row."""
    return event.subscription_id is not None and (
        event.type in SUBSCRIPTION_EVENTS or event.type in ("invoice.paid", "invoice.payment_failed"))


async def provider_state(payments: PaymentsClient | None, event: ProviderEvent) -> tuple[ProviderSubscription | None, bool]:
    """Read before the event's transaction: the subscription as the provider has it now, and
    whether the event's invoice is paid by now. (None, False) when the provider cannot say."""
    if payments is None or not concerns(event):
        return None, False
    assert event.subscription_id is not None
    try:
        current = await payments.get_subscription(event.subscription_id)
        paid = False
        if event.type == "invoice.payment_failed" and event.invoice_id:
            invoice = await payments.get_invoice(event.invoice_id)
            paid = invoice is not None and invoice.status == "PAID"
        return current, paid
    except GatewayError as exc:
        log.warning("provider event %s: the provider could not be read (%s); using the event's copy", event.id,
                    exc.message)
        return None, False


async def apply(conn: asyncpg.Connection, event: ProviderEvent, current: ProviderSubscription | None,
                invoice_paid_now: bool, grace_days: int) -> bool:
    """Applies a subscription's event in the transaction that records it; whether it changed anything."""
    assert event.subscription_id is not None
    row = await subscription_changes.by_provider_id(conn, event.subscription_id)
    if row is None:
        return False
    if event.type in SUBSCRIPTION_EVENTS:
        provider, created = current, None
        if provider is None:
            provider, created = _from_payload(event), event.created
        if provider is None:
            return False
        return await report_followed(conn, await subscription_changes.follow(conn, row.id, provider,
                                                                             event_created=created))
    if event.type == "invoice.payment_failed":
        if event.billing_reason != RENEWAL or invoice_paid_now:
            return False
        grace_until = event.created + timedelta(days=grace_days)
        started = await subscription_changes.mark_past_due(conn, row.id, grace_until)
        if started:
            await publish(conn, "SUBSCRIPTION_PAST_DUE", organization_id=row.organization_id,
                          data={"subscription_id": row.id, "license_id": started[0], "invoice_id": event.invoice_id,
                                "grace_until": grace_until}, dedupe_key=f"SUBSCRIPTION_PAST_DUE:{event.invoice_id}")
        return bool(started) or row.status != "PAST_DUE"
    # invoice.paid
    if row.status != "PAST_DUE" or current is None:
        return False
    return await report_followed(conn, await subscription_changes.follow(conn, row.id, current),
                                 invoice_id=event.invoice_id)


def _from_payload(event: ProviderEvent) -> ProviderSubscription | None:
    try:
        return subscription_from_payload(event.payload["data"]["object"])
    except (KeyError, TypeError, ValueError):
        return None


async def report_followed(conn: asyncpg.Connection, followed: tuple[Subscription, Subscription] | None, *,
                          actor_account_id: UUID | None = None, invoice_id: str | None = None) -> bool:
    """The events of what following the provider changed; whether anything did."""
    if followed is None:
        return False
    before, after = followed
    organization = after.organization_id
    licenses = await subscription_changes.license_ids(conn, after.id)

    async def say(kind: str, data: dict[str, Any], dedupe_key: str | None = None) -> None:
        await publish(conn, kind, organization_id=organization, actor_account_id=actor_account_id, data=data,
                      dedupe_key=dedupe_key)

    if after.seats != before.seats:
        for license_id in licenses:
            await say("LICENSE_QUANTITY_CHANGED", {"license_id": license_id, "old_quantity": before.seats,
                                                   "new_quantity": after.seats})
    if after.status != "EXPIRED" and after.current_period_end > before.current_period_end:
        await say("SUBSCRIPTION_RENEWED", {"subscription_id": after.id, "renews_at": after.current_period_end,
                                           **({"license_id": licenses[0]} if licenses else {})})
    elif after.auto_renew != before.auto_renew:
        kind, key = ("SUBSCRIPTION_RENEWED", "renews_at") if after.auto_renew else ("SUBSCRIPTION_ENDING", "ends_at")
        await say(kind, {"subscription_id": after.id, key: after.current_period_end})
    if before.status == "PAST_DUE" and after.status in ("ACTIVE", "TRIALING"):
        await say("SUBSCRIPTION_RESTORED", {"subscription_id": after.id,
                                            "license_id": licenses[0] if licenses else None, "invoice_id": invoice_id})
    return before != after


async def restore_paid(db: Database, payments: PaymentsClient, organization_id: UUID,
                       actor_account_id: UUID | None) -> int:
    """After the gateway paid invoices of the organization: each PAST_DUE subscription follows the
    provider, which shows it active again if its open invoice was among them. How many were restored."""
    restored = 0
    for subscription in await subscription_changes.past_due_of_organization(db, organization_id):
        assert subscription.provider_subscription_id is not None
        try:
            current = await payments.get_subscription(subscription.provider_subscription_id)
        except GatewayError:
            continue  # its invoice.paid event restores it later
        if current is None or current.status == "PAST_DUE":
            continue
        async with db.transaction() as conn:
            followed = await subscription_changes.follow(conn, subscription.id, current)
            await report_followed(conn, followed, actor_account_id=actor_account_id)
        restored += 1
    return restored
