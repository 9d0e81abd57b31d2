"""Switching a subscription's auto-renew on or off.

The cut-off rule lives in `resolvers.entitlements.auto_renew_changeable_until`: off until 30
days before renewal (14 for monthly plans), back on until 1 day before; the change is allowed
up to and including that moment. Asking for the setting the subscription already has is a
success that changes nothing and is not audited (the audit log records changes and refusals),
whatever the status or the date: a client retrying a switch that went through gets a success.
Otherwise an EXPIRED or CANCELED subscription is NOT_RENEWABLE. A subscription the provider holds
is switched there (its `cancel_at_period_end`) and the row follows the provider's answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from uuid import UUID

from datasources.errors import NotFound
from datasources.postgres import subscription_changes
from datasources.postgres.entitlements import Subscription
from resolvers import subscription_sync
from resolvers.context import Context
from resolvers.entitlements import SWITCH_OFF_NOTICE, SWITCH_ON_NOTICE, auto_renew_changeable_until
from resolvers.user_errors import Problem
from resolvers.writes import (NOT_FOUND, after_write, audit_refusal, audit_success, report, require_change,
                              require_change_in)

ACTION = "subscription.auto_renew"


@dataclass(frozen=True)
class AutoRenewResult:
    subscription_id: UUID
    changed: bool = False
    problems: list[Problem] = field(default_factory=list)


def target(subscription_id: UUID) -> str:
    return f"Subscription:{subscription_id}"


def change_problem(subscription: Subscription, auto_renew: bool, now: datetime) -> Problem | None:
    """Why the subscription's auto-renew cannot be switched to `auto_renew` now, if it cannot."""
    until = auto_renew_changeable_until(subscription)
    field_ = ("input", "autoRenew")
    if until is None:
        return Problem(field_, f"The subscription is {subscription.status}: it does not renew.", "NOT_RENEWABLE")
    if now > until:
        if auto_renew:
            rule = f"back on until {SWITCH_ON_NOTICE.days} day before renewal"
        else:
            rule = f"off until {SWITCH_OFF_NOTICE[subscription.plan_interval].days} days before renewal"
        return Problem(field_, f"Auto-renew can only be switched {rule}; for this subscription that was "
                               f"{until:%Y-%m-%d %H:%M} UTC.", "CUTOFF_PASSED")
    return None


async def set_auto_renew(ctx: Context, subscription_id: UUID | None, auto_renew: bool) -> AutoRenewResult:
    await require_change(ctx, "setSubscriptionAutoRenew")
    found = await ctx.loaders.entitlements.subscription.load(subscription_id) if subscription_id else None
    if found is None:
        raise NotFound(NOT_FOUND)
    await require_change_in(ctx, "setSubscriptionAutoRenew", found.organization_id)
    if ctx.payments is not None:
        found = await subscription_sync.ensure_at_provider(ctx.db, ctx.payments, found)
    async with ctx.db.transaction() as conn:
        locked = await subscription_changes.lock_subscription(conn, found.id)
        if locked is None:
            raise NotFound(NOT_FOUND)
        if locked.auto_renew == auto_renew:
            return AutoRenewResult(locked.id)
        problem = change_problem(locked, auto_renew, datetime.now(timezone.utc))
        if problem is None:
            if locked.provider_subscription_id is not None and ctx.payments is not None:
                # The provider's cancel_at_period_end is the setting; the row follows what it answers.
                provider = await ctx.payments.set_cancel_at_period_end(
                    locked.provider_subscription_id, not auto_renew,
                    idempotency_key=f"auto-renew:{locked.id}:{uuid.uuid4().hex}")
                await subscription_changes.follow(conn, locked.id, provider)
            else:
                await subscription_changes.set_auto_renew(conn, locked.id, auto_renew)
            await audit_success(conn, ctx, organization_id=locked.organization_id, action=ACTION,
                                target=target(locked.id), details={"autoRenew": auto_renew})
            # Off: it ends at the period's end; back on: it renews then.
            if auto_renew:
                await report(conn, ctx, "SUBSCRIPTION_RENEWED", organization_id=locked.organization_id,
                             data={"subscription_id": locked.id, "renews_at": locked.current_period_end})
            else:
                await report(conn, ctx, "SUBSCRIPTION_ENDING", organization_id=locked.organization_id,
                             data={"subscription_id": locked.id, "ends_at": locked.current_period_end})
    if problem is not None:
        await audit_refusal(ctx, organization_id=found.organization_id, action=ACTION, target=target(found.id),
                            problems=[problem])
        return AutoRenewResult(found.id, problems=[problem])
    after_write(ctx)
    return AutoRenewResult(found.id, changed=True)
