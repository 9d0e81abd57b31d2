"""Subscriptions: setSubscriptionAutoRenew, changeSeatQuantity."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from datasources.payments import records
from resolvers import auto_renew as resolve
from resolvers import entitlements as resolve_entitlements
from resolvers import seat_quantity
from schema.billing import Invoice
from schema.common import Info, UserError, node_uuid, user_errors
from schema.money import Money
from schema.subscription import Subscription


@strawberry.input(description="Whether a subscription renews at the end of its period.")
class SetSubscriptionAutoRenewInput:
    subscription_id: strawberry.ID = strawberry.field(description="The subscription.")
    auto_renew: bool = strawberry.field(description="true: renew; false: end with the current period.")


@strawberry.type(description="The result of `setSubscriptionAutoRenew`. Asking for the setting it already has "
                             "succeeds and changes nothing.")
class SetSubscriptionAutoRenewPayload:
    subscription: Subscription | None = strawberry.field(description="The subscription, as it is now.")
    user_errors: list[UserError] = strawberry.field(
        description="CUTOFF_PASSED (too close to renewal; the message names the cut-off), NOT_RENEWABLE "
                    "(EXPIRED or CANCELED).")


async def set_subscription_auto_renew(
    info: Info,
    input: Annotated[SetSubscriptionAutoRenewInput, strawberry.argument(description="Subscription and setting.")],
) -> SetSubscriptionAutoRenewPayload:
    result = await resolve.set_auto_renew(info.context, node_uuid(input.subscription_id, "Subscription"),
                                          input.auto_renew)
    found = await resolve_entitlements.subscription(info.context, result.subscription_id)
    return SetSubscriptionAutoRenewPayload(subscription=Subscription.from_record(found) if found else None,
                                           user_errors=user_errors(result.problems))


@strawberry.input(description="A new number of seats for a subscription.")
class ChangeSeatQuantityInput:
    subscription_id: strawberry.ID = strawberry.field(description="The subscription.")
    quantity: int = strawberry.field(description="Seats wanted, 1 to 100,000. More: added now and billed now for "
                                                 "the rest of the period. Fewer: from the end of the period, never "
                                                 "below the seats allocated. The current count cancels a scheduled "
                                                 "decrease.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="1 to 200 characters: the same key with the same input returns the first answer "
                                  "and never charges twice.")
    dry_run: bool = strawberry.field(default=False, description="true: change and charge nothing; return `preview`.")


@strawberry.type(description="What a seat change costs, computed by the payment provider's own preview.")
class SeatChangePreview:
    seats: int = strawberry.field(description="Seats after the change.")
    amount_due_now: Money = strawberry.field(
        description="Charged at once to the default card for the rest of the current period (zero for a decrease: "
                    "nothing is refunded).")
    next_invoice_total: Money = strawberry.field(description="The renewal invoice after the change.")
    next_invoice_at: datetime = strawberry.field(description="When the renewal invoice is due.")
    effective_at: datetime = strawberry.field(description="When the new count applies: now for more seats, the end "
                                                          "of the period for fewer.")

    @classmethod
    def from_record(cls, p: records.SeatChangePreview) -> "SeatChangePreview":
        return cls(seats=p.quantity, amount_due_now=Money(amount=p.amount_due_now, currency=p.currency),
                   next_invoice_total=Money(amount=p.next_invoice_total, currency=p.currency),
                   next_invoice_at=p.next_invoice_at, effective_at=p.effective_at)


@strawberry.type(description="The result of `changeSeatQuantity`.")
class ChangeSeatQuantityPayload:
    subscription: Subscription | None = strawberry.field(
        description="The subscription as it is now: `seats` raised at once after an increase, "
                    "`scheduledSeats` set after a decrease.")
    preview: SeatChangePreview | None = strawberry.field(description="A dry run's answer; null otherwise.")
    user_errors: list[UserError] = strawberry.field(
        description="INVALID (quantity or key), SEATS_ALLOCATED (fewer seats than allocated: the message says how "
                    "many to revoke first), PAYMENT_DECLINED (nothing changed), PAST_DUE (pay the open invoice "
                    "before adding seats), NOT_RENEWABLE (ended or canceled), BILLING_NOT_SET_UP, "
                    "IDEMPOTENCY_KEY_REUSED.")
    invoice_record: strawberry.Private[records.Invoice | None]
    invoice_id: strawberry.Private[str | None]

    @strawberry.field(description="The prorated invoice an increase was charged with, as the provider has it now; "
                                  "null otherwise.")
    async def invoice(self, info: Info) -> Invoice | None:
        if self.invoice_record is not None:
            return Invoice.from_record(self.invoice_record)
        payments = info.context.payments
        found = await payments.get_invoice(self.invoice_id) if self.invoice_id and payments else None
        return Invoice.from_record(found) if found else None


async def change_seat_quantity(
    info: Info,
    input: Annotated[ChangeSeatQuantityInput, strawberry.argument(description="Subscription and seats.")],
) -> ChangeSeatQuantityPayload:
    result = await seat_quantity.change_seat_quantity(
        info.context, node_uuid(input.subscription_id, "Subscription"), input.quantity, input.idempotency_key,
        input.dry_run)
    found = await resolve_entitlements.subscription(info.context, result.subscription_id)
    return ChangeSeatQuantityPayload(
        subscription=Subscription.from_record(found) if found else None,
        preview=SeatChangePreview.from_record(result.preview) if result.preview else None,
        user_errors=user_errors(result.problems), invoice_record=result.invoice, invoice_id=result.invoice_id)


@strawberry.type
class SubscriptionMutations:
    set_subscription_auto_renew: SetSubscriptionAutoRenewPayload = strawberry.mutation(
        resolver=set_subscription_auto_renew,
        description="Switches auto-renew on or off: off until 30 days before renewal (14 for monthly plans), "
                    "back on until 1 day before (see `Subscription.autoRenewChangeableUntil`). OWNER/ADMIN of "
                    "the subscription's organization only.")
    change_seat_quantity: ChangeSeatQuantityPayload = strawberry.mutation(
        resolver=change_seat_quantity,
        description="Buys seats or gives them back, as the payment provider bills them. Run it with `dryRun: true` "
                    "first: it returns what would be charged now, the next invoice and when the change applies, "
                    "and changes nothing. More seats are available at once and charged now (one prorated invoice, "
                    "default card; a refused card changes nothing); fewer seats apply at the end of the period, "
                    "never below the seats allocated, with no refund. OWNER/ADMIN of the subscription's "
                    "organization only.")


MUTATIONS = SubscriptionMutations
