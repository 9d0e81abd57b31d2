"""Changing how many seats a subscription has: the customer's `changeSeatQuantity`, and staff's
`adjustLicenseQuantity` on a subscription's license, by one path.

The provider decides and the rows follow (`subscription_changes.follow`):
- More seats are there at once and billed now for the rest of the period: one prorated invoice
  charged to the default card. A refused card changes nothing, here or at the provider.
- Fewer seats take effect at the period's end (the provider's schedule holds the change), never
  below the seats allocated when asked; nothing is refunded. Until then allocations are capped at
  the coming count (`seat_changes.seat_limit`), so the license never has more seats allocated
  than it allows, now or after the change.
- The current count cancels a scheduled decrease; with none scheduled it changes nothing.
- A dry run asks the provider's preview what the change would charge now and at renewal, and
  when it takes effect; it writes nothing anywhere.

The subscription and its license stay locked from the check of the allocated seats to the
commit, across the provider call, so neither an allocation nor a second change slips in between;
the client's idempotency key is claimed in that transaction, so a repeated request waits and
replays the first answer instead of charging again, and the provider gets a key derived from it.
If the provider changed but the commit failed, the provider's `customer.subscription.updated`
event makes the row follow anyway (and a retry with the same key is replayed by the provider).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from datasources.errors import NotFound, PaymentDeclined
from datasources.payments.records import Invoice, SeatChangePreview
from datasources.postgres import seat_changes, subscription_changes
from datasources.postgres.entitlements import Subscription
from resolvers import subscription_sync
from resolvers.context import Context
from resolvers.user_errors import Problem
from resolvers.user_errors import Refused as _Refused
from resolvers.writes import (NOT_FOUND, OnBehalf, after_write, audit_refusal, audit_success, claim_key,
                              complete_key, forget_billing, key_problem, provider_key, report, require_change,
                              require_change_in)

OPERATION = "subscription.seats"
MAX_SEATS = 100_000  # the most seats a license (and so a subscription) has
_QUANTITY = ("input", "quantity")
_SUBSCRIPTION = ("input", "subscriptionId")


@dataclass(frozen=True)
class SeatChange:
    subscription_id: UUID | None = None
    preview: SeatChangePreview | None = None  # dry runs only
    invoice: Invoice | None = None  # the prorated invoice of an increase
    invoice_id: str | None = None  # the same, on a replayed request (read again from the provider)
    problems: list[Problem] = field(default_factory=list)


async def change_seat_quantity(ctx: Context, subscription_id: UUID | None, quantity: int,
                               idempotency_key: str | None, dry_run: bool) -> SeatChange:
    """`changeSeatQuantity`: for those who manage the subscription's organization."""
    await require_change(ctx, "changeSeatQuantity")
    found = await ctx.loaders.entitlements.subscription.load(subscription_id) if subscription_id else None
    if found is None:
        raise NotFound(NOT_FOUND)
    await require_change_in(ctx, "changeSeatQuantity", found.organization_id)
    return await change_seats(ctx, found, quantity, idempotency_key=idempotency_key, dry_run=dry_run)


async def change_seats(ctx: Context, found: Subscription, quantity: int, *, idempotency_key: str | None,
                       dry_run: bool, on_behalf: OnBehalf | None = None) -> SeatChange:
    """The change itself, once the caller is known to be allowed it."""
    problems = [p for p in (_quantity_problem(quantity), key_problem(idempotency_key)) if p]
    if not problems:
        problems = _subscription_problems(found, quantity)
    if not problems and ctx.payments is not None:
        found = await subscription_sync.ensure_at_provider(ctx.db, ctx.payments, found)
    if not problems and (ctx.payments is None or found.provider_subscription_id is None):
        problems = [Problem(_SUBSCRIPTION, "This subscription is not billed through the payment provider yet; "
                                           "contact support to change its seats.", "BILLING_NOT_SET_UP")]
    if not problems and quantity < found.seats:
        problems = _allocated_problems(quantity, await seat_changes.allocated_of_subscription(ctx.db, found.id))
    if problems:
        if not dry_run:
            await audit_refusal(ctx, organization_id=found.organization_id, action=OPERATION,
                                target=_target(found.id), problems=problems, on_behalf=on_behalf)
        return SeatChange(found.id, problems=problems)
    if dry_run:
        return SeatChange(found.id, preview=await _preview(ctx, found, quantity))
    try:
        result = await _apply(ctx, found, quantity, idempotency_key, on_behalf)
    except _Refused as refused:
        problems = refused.problems
    except PaymentDeclined as declined:
        problems = [Problem(_QUANTITY, f"{declined.message} The seats were not added; pay with another card "
                                       "(make it the default) and try again.", "PAYMENT_DECLINED")]
    finally:
        # An increase is invoiced and charged at the provider: the invoice list is read there next.
        organization = await ctx.loaders.accounts.organization.load(found.organization_id)
        await forget_billing(ctx, organization.payment_customer_id if organization else None)
    if problems:
        await audit_refusal(ctx, organization_id=found.organization_id, action=OPERATION, target=_target(found.id),
                            problems=problems, on_behalf=on_behalf)
        return SeatChange(found.id, problems=problems)
    after_write(ctx)
    return result


def _quantity_problem(quantity: int) -> Problem | None:
    if not 1 <= quantity <= MAX_SEATS:
        return Problem(_QUANTITY, f"A subscription has 1 to {MAX_SEATS:,} seats.", "INVALID")
    return None


def _subscription_problems(subscription: Subscription, quantity: int) -> list[Problem]:
    if subscription.status in ("EXPIRED", "CANCELED") or subscription.current_period_end <= datetime.now(timezone.utc):
        return [Problem(_SUBSCRIPTION, f"The subscription is {subscription.status}: its seats no longer change.",
                        "NOT_RENEWABLE")]
    if subscription.status == "PAST_DUE" and quantity > subscription.seats:
        return [Problem(_SUBSCRIPTION, "A renewal payment is outstanding: pay the open invoice before adding seats.",
                        "PAST_DUE")]
    return []


def _allocated_problems(quantity: int, allocated: int) -> list[Problem]:
    if quantity >= allocated:
        return []
    return [Problem(_QUANTITY, f"{allocated} seats are allocated: revoke {allocated - quantity} of them before "
                               f"going down to {quantity}.", "SEATS_ALLOCATED")]


async def _preview(ctx: Context, subscription: Subscription, quantity: int) -> SeatChangePreview:
    assert ctx.payments is not None and subscription.provider_subscription_id is not None
    return await ctx.payments.preview_seat_change(subscription.provider_subscription_id, quantity,
                                                  at=datetime.now(timezone.utc))


async def _apply(ctx: Context, found: Subscription, quantity: int, idempotency_key: str | None,
                 on_behalf: OnBehalf | None) -> SeatChange:
    assert ctx.payments is not None
    request = {"subscription": str(found.id), "quantity": quantity}
    # Without the client's key a retry is a new request; the provider still gets one key per call.
    key = idempotency_key or uuid.uuid4().hex
    async with ctx.db.transaction() as conn:
        stored = await claim_key(conn, ctx, OPERATION, idempotency_key, request)
        if isinstance(stored, Problem):
            raise _Refused(stored)
        if stored is not None:
            return SeatChange(found.id, invoice_id=stored.get("invoice"))
        locked = await subscription_changes.lock_subscription(conn, found.id)
        if locked is None or locked.provider_subscription_id is None:
            raise NotFound(NOT_FOUND)
        license_ids = await seat_changes.lock_licenses_of_subscription(conn, locked.id)
        problems = _subscription_problems(locked, quantity)
        if not problems and quantity < locked.seats:
            problems = _allocated_problems(quantity, await seat_changes.allocated_of_subscription(conn, locked.id))
        if problems:
            raise _Refused(*problems)
        invoice = None
        if quantity > locked.seats:
            provider, invoice = await ctx.payments.add_seats(
                locked.provider_subscription_id, quantity, at=datetime.now(timezone.utc),
                idempotency_key=provider_key(ctx, OPERATION, key, str(locked.id), str(quantity)))
        elif quantity < locked.seats or locked.scheduled_seats is not None:
            provider = await ctx.payments.schedule_seat_decrease(
                locked.provider_subscription_id, quantity,
                idempotency_key=provider_key(ctx, OPERATION, key, str(locked.id), str(quantity)))
        else:
            await complete_key(conn, ctx, OPERATION, idempotency_key, {"invoice": None})
            return SeatChange(found.id)
        followed = await subscription_changes.follow(conn, locked.id, provider)
        after = followed[1] if followed else locked
        details: dict[str, Any] = {"from": locked.seats, "to": quantity, "invoice": invoice.id if invoice else None,
                                   "effectiveAt": (datetime.now(timezone.utc) if invoice else after.current_period_end)}
        await audit_success(conn, ctx, organization_id=locked.organization_id, action=OPERATION,
                            target=_target(locked.id), details=details, on_behalf=on_behalf)
        for license_id in license_ids:
            if invoice is not None:
                await report(conn, ctx, "LICENSE_QUANTITY_CHANGED", organization_id=locked.organization_id,
                             data={"license_id": license_id, "old_quantity": locked.seats, "new_quantity": after.seats})
            else:
                await report(conn, ctx, "SEATS_DECREASE_SCHEDULED", organization_id=locked.organization_id,
                             data={"subscription_id": locked.id, "license_id": license_id, "seats": quantity,
                                   "effective_at": after.current_period_end,
                                   "canceled": after.scheduled_seats is None})
        await complete_key(conn, ctx, OPERATION, idempotency_key, {"invoice": invoice.id if invoice else None})
    return SeatChange(found.id, invoice=invoice)


def _target(subscription_id: UUID) -> str:
    return f"Subscription:{subscription_id}"
