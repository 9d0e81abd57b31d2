"""Subscriptions: what an organization pays for, per product and period."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry import relay

from datasources.postgres import entitlements as records
from resolvers import entitlements as resolve
from schema.common import Info, by_uuid, resolve_visible
from schema.money import Money
from schema.product import Product, product


@strawberry.enum(description="How long one billing period of a subscription lasts.")
class PlanInterval(Enum):
    MONTH = strawberry.enum_value("MONTH", description="Monthly.")
    YEAR = strawberry.enum_value("YEAR", description="Annual.")
    THREE_YEARS = strawberry.enum_value("THREE_YEARS", description="Every three years.")


@strawberry.enum(description="Where a subscription stands.")
class SubscriptionStatus(Enum):
    ACTIVE = strawberry.enum_value("ACTIVE", description="Paid and running.")
    CANCELED = strawberry.enum_value("CANCELED", description="Canceled; runs to the end of the period.")
    PAST_DUE = strawberry.enum_value("PAST_DUE", description="Renewal payment outstanding.")
    EXPIRED = strawberry.enum_value("EXPIRED", description="Ended (\"expired products\").")
    TRIALING = strawberry.enum_value("TRIALING", description="In a free trial.")


@strawberry.enum(description="What to order subscriptions by.")
class SubscriptionOrderField(Enum):
    EXPIRES_AT = strawberry.enum_value("EXPIRES_AT", description="End of the current period.")
    PRODUCT_NAME = strawberry.enum_value("PRODUCT_NAME", description="Product name.")


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value("ASC", description="Ascending.")
    DESC = strawberry.enum_value("DESC", description="Descending.")


@strawberry.input(description="Order of a subscription list.")
class SubscriptionOrder:
    field: SubscriptionOrderField = strawberry.field(description="What to order by.")
    direction: OrderDirection = strawberry.field(default=OrderDirection.ASC, description="Ascending or descending.")


@strawberry.input(description="Which subscriptions to list; every condition given must hold.")
class SubscriptionFilter:
    product_family: str | None = strawberry.field(default=None, description="Only this product family.")
    status: list[SubscriptionStatus] | None = strawberry.field(
        default=None, description="Only these statuses; [EXPIRED] lists the expired products.")
    expires_after: datetime | None = strawberry.field(
        default=None, description="Current period ends at or after this moment.")
    expires_before: datetime | None = strawberry.field(
        default=None, description="Current period ends before this moment.")
    currency: str | None = strawberry.field(default=None, description="Only prices in this ISO 4217 currency.")


@strawberry.type(description="A subscription to a product for a number of seats.")
class Subscription(relay.Node):
    id: relay.NodeID[str]
    plan_interval: PlanInterval = strawberry.field(description="Billing period length.")
    seats: int = strawberry.field(description="Seats paid for.")
    scheduled_seats: int | None = strawberry.field(
        description="Seats from `scheduledSeatsAt` on: a decrease (`changeSeatQuantity`) waiting for the end of the "
                    "period. Until then no more seats than this can be allocated. Null when none is scheduled.")
    scheduled_seats_at: datetime | None = strawberry.field(
        description="When `scheduledSeats` applies (the end of the current period); null when none is scheduled.")
    status: SubscriptionStatus = strawberry.field(description="Where it stands.")
    auto_renew: bool = strawberry.field(description="Whether it renews at the end of the period.")
    current_period_start: datetime = strawberry.field(description="Start of the current period.")
    current_period_end: datetime = strawberry.field(description="End of the current period (expiry or renewal).")
    unit_price: Money = strawberry.field(description="Price per seat per period.")
    currency: str = strawberry.field(description="ISO 4217 currency of the price.")
    auto_renew_changeable_until: datetime | None = strawberry.field(
        description="Last moment `autoRenew` may still be switched: off until 30 days before renewal "
                    "(14 for monthly plans), back on until 1 day before. Null when it does not renew.")
    product_id: strawberry.Private[UUID]

    @classmethod
    def from_record(cls, s: records.Subscription) -> "Subscription":
        return cls(id=str(s.id), plan_interval=PlanInterval(s.plan_interval), seats=s.seats,
                   scheduled_seats=s.scheduled_seats, scheduled_seats_at=s.scheduled_seats_at,
                   status=SubscriptionStatus(s.status), auto_renew=s.auto_renew,
                   current_period_start=s.current_period_start, current_period_end=s.current_period_end,
                   unit_price=Money(amount=s.unit_price, currency=s.currency), currency=s.currency,
                   auto_renew_changeable_until=resolve.auto_renew_changeable_until(s), product_id=s.product_id)

    @strawberry.field(description="The product subscribed to.")
    async def product(self, info: Info) -> Product:
        return await product(info, self.product_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_subscription), cls.from_record, info, node_ids)


def subscription_query(organization_id: UUID, filter: SubscriptionFilter | None,
                       order_by: SubscriptionOrder | None) -> records.SubscriptionQuery:
    f = filter or SubscriptionFilter()
    return records.SubscriptionQuery(
        organization_id=organization_id, product_family=f.product_family,
        statuses=tuple(s.value for s in f.status) if f.status is not None else None,
        expires_after=f.expires_after, expires_before=f.expires_before,
        currency=f.currency.upper() if f.currency else None,
        order_by=order_by.field.value if order_by else "EXPIRES_AT",
        descending=bool(order_by and order_by.direction is OrderDirection.DESC))


SubscriptionFilterArg = Annotated[SubscriptionFilter | None, strawberry.argument(description="Which ones to list.")]
SubscriptionOrderArg = Annotated[SubscriptionOrder | None,
                                 strawberry.argument(description="Order; by default soonest expiry first.")]
NODE_TYPES = (Subscription,)
