"""Subscriptions: setSubscriptionAutoRenew."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import auto_renew as resolve
from resolvers import entitlements as resolve_entitlements
from schema.common import Info, UserError, node_uuid, user_errors
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


@strawberry.type
class SubscriptionMutations:
    set_subscription_auto_renew: SetSubscriptionAutoRenewPayload = strawberry.mutation(
        resolver=set_subscription_auto_renew,
        description="Switches auto-renew on or off: off until 30 days before renewal (14 for monthly plans), "
                    "back on until 1 day before (see `Subscription.autoRenewChangeableUntil`). OWNER/ADMIN of "
                    "the subscription's organization only.")


MUTATIONS = SubscriptionMutations
