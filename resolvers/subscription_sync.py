"""Putting subscriptions at the provider: the rows made before the provider held subscriptions.

A row still running with no provider subscription gets one for the period already paid (the
provider charges nothing now and bills from the period's end), then follows it. This runs for
every such row in each scheduler pass (gateway/scheduler.py: the first right after `serve`
starts, then every interval, so a row the provider could not take is tried again) and after the
demo seed, and for one row before its first change (`ensure_at_provider`), so that a row missed
by both still works. Not before `serve` listens: a provider that does not answer would hold the
start back by its time-out per row, and health checks fail meanwhile.

The row stays locked while the provider creates its side, so two processes starting at once
create it once; the request key is derived from the row's id, so a retry after a lost answer is
replayed by the provider rather than made twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from datasources.errors import GatewayError, ProviderUnavailable
from datasources.payments.client import PaymentsClient
from datasources.postgres import accounts, entitlements, subscription_changes
from datasources.postgres.database import Database
from datasources.postgres.entitlements import Subscription

log = logging.getLogger("gateway.subscriptions")


async def ensure_at_provider(db: Database, payments: PaymentsClient, subscription: Subscription) -> Subscription:
    """The subscription as it follows its provider subscription, created there if it had none.
    Unchanged when its organization has no provider customer (nothing can be billed)."""
    if subscription.provider_subscription_id is not None or not running(subscription):
        return subscription
    [organization] = await accounts.organizations_by_ids(db, [subscription.organization_id])
    [product] = await entitlements.products_by_ids(db, [subscription.product_id])
    if organization is None or organization.payment_customer_id is None or product is None:
        return subscription
    async with db.transaction() as conn:
        current = await subscription_changes.lock_subscription(conn, subscription.id)
        if current is None or current.provider_subscription_id is not None or not running(current):
            return current or subscription
        price_id = await payments.ensure_price(
            product_key=product.sku, product_name=product.name, interval=current.plan_interval,
            currency=current.currency, unit_amount=current.unit_price)
        provider = await payments.create_subscription(
            organization.payment_customer_id, price_id=price_id, quantity=current.seats,
            period_start=current.current_period_start, period_end=current.current_period_end,
            cancel_at_period_end=not current.auto_renew,
            metadata={"gateway_subscription_id": str(current.id)},
            idempotency_key=f"subscription:{current.id}:create")
        followed = await subscription_changes.follow(conn, current.id, provider)
    return followed[1] if followed else subscription


def running(subscription: Subscription) -> bool:
    """Still to be billed: an ended or canceled one (it runs out, nothing more is charged) stays
    here only, as the provider never held it."""
    return (subscription.status not in ("EXPIRED", "CANCELED")
            and subscription.current_period_end > datetime.now(timezone.utc))


async def sync_all(db: Database, payments: PaymentsClient) -> int:
    """Creates the provider side of every running row that lacks one; how many it created.
    A failure is logged and left to the next pass or the row's first change; an unavailable
    provider ends the pass at once (one line, not one per row)."""
    created = 0
    for subscription_id in await subscription_changes.running_without_provider(db):
        [subscription] = await entitlements.subscriptions_by_ids(db, [subscription_id])
        if subscription is None:
            continue
        try:
            followed = await ensure_at_provider(db, payments, subscription)
        except ProviderUnavailable as exc:
            log.warning("subscriptions not yet at the payment provider are left to the next pass (%s)", exc.message)
            break
        except GatewayError as exc:
            log.warning("subscription %s: not created at the payment provider yet (%s)", subscription_id,
                        exc.message)
            continue
        created += followed.provider_subscription_id is not None
    if created:
        log.info("created %d subscription(s) at the payment provider", created)
    return created

