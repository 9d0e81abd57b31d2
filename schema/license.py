"""Licenses and the seats allocated from them (the Licensing menu)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum
from uuid import UUID

import strawberry
from strawberry import relay

from datasources.postgres import entitlements as records
from planning import sources
from planning.declare import column, expression, from_record, planned, table
from planning.levels import level_resolver, one
from resolvers import entitlements as resolve
from schema.common import Info, by_uuid, resolve_visible
from schema.pagination import After, Before, Connection, First, Last, slice_of
from schema.product import Product, products
from schema.references import AccountRef, accounts_at, visible_account_node
from schema.subscription import Subscription


@strawberry.enum(description="How a license was obtained.")
class LicenseKind(Enum):
    SUBSCRIPTION = strawberry.enum_value("SUBSCRIPTION", description="Comes with a subscription.")
    PERPETUAL = strawberry.enum_value("PERPETUAL", description="Bought outright; never expires.")
    TRIAL = strawberry.enum_value("TRIAL", description="A free trial; seats cannot be revoked or reassigned.")
    BETA = strawberry.enum_value("BETA", description="A beta program; seats cannot be revoked or reassigned.")
    EDUCATIONAL = strawberry.enum_value("EDUCATIONAL", description="For teaching and learning.")


@strawberry.enum(description="How seats are used.")
class SeatModel(Enum):
    NAMED = strawberry.enum_value("NAMED", description="Each seat is allocated to a person.")
    FLOATING = strawberry.enum_value("FLOATING", description="A shared pool anyone in the organization draws from.")


@strawberry.enum(description="Whether a license can be used.")
class LicenseStatus(Enum):
    ACTIVE = strawberry.enum_value("ACTIVE", description="Usable, and not expiring within 30 days.")
    EXPIRING = strawberry.enum_value("EXPIRING", description="Usable, but expires within 30 days.")
    EXPIRED = strawberry.enum_value("EXPIRED", description="Past its expiry; no new allocations.")
    GRACE = strawberry.enum_value(
        "GRACE", description="Its subscription's renewal payment failed: still usable until `graceUntil`, then "
                             "SUSPENDED unless an invoice is paid.")
    SUSPENDED = strawberry.enum_value(
        "SUSPENDED", description="The payment grace ended unpaid: its seats do not work (no downloads, no new "
                                 "allocations) until the open invoice is paid.")


@table("allocations", key=("license_id", "account_id"))
@strawberry.type(description="A seat of a NAMED license allocated to a person.")
class LicenseAllocation(relay.Node):
    id: relay.NodeID[str]
    allocated_at: datetime = column("allocated_at", description="When the seat was allocated.")
    license_id: strawberry.Private[UUID]
    account_id: strawberry.Private[UUID]
    allocated_by_id: strawberry.Private[UUID | None]

    @classmethod
    def from_record(cls, a: records.Allocation) -> "LicenseAllocation":
        return from_record(cls, a, license_id=a.license_id, account_id=a.account_id, allocated_by_id=a.allocated_by)

    @planned(sources.account_at("account_id"), description="Who holds the seat (null if you may not see them).")
    @level_resolver(accounts_at("account_id"))
    async def account(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.account_id)

    @planned(sources.account_at("allocated_by"),
             description="Who allocated it (null if unknown or no longer visible).")
    @level_resolver(accounts_at("allocated_by_id"))
    async def allocated_by(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.allocated_by_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        async def find(ctx, raw: str) -> records.Allocation | None:
            license_id, _, account_id = raw.partition(":")
            try:
                return await resolve.visible_allocation(ctx, UUID(license_id), UUID(account_id))
            except ValueError:
                return None

        return await resolve_visible(find, cls.from_record, info, node_ids)


@strawberry.type(description="A page of seat allocations.")
class LicenseAllocationConnection(Connection[LicenseAllocation]):
    pass


async def _products(licenses: Sequence[License], info: Info) -> list[Product]:
    return await products(info, [lic.record.product_id for lic in licenses])


@level_resolver(_products)
async def _product(self: License, info: Info) -> Product:
    return await one(_products, self, info)


@table("licenses", lets=sources.LICENSE_LETS)
@strawberry.type(description="The right to use a product: a number of seats, until an expiry.")
class License(relay.Node):
    id: relay.NodeID[str]
    kind: LicenseKind = column("kind", description="How it was obtained.")
    seat_model: SeatModel = column("seat_model", description="Named seats or a floating pool.")
    quantity: int = column("quantity", description="Seats in the license.")
    expires_at: datetime | None = column("expires_at", description="Expiry; null for perpetual licenses.")
    grace_until: datetime | None = column(
        "grace_until", description="After a failed renewal payment: until when the seats keep working (GRACE), "
                                   "SUSPENDED after it until an invoice is paid. Null otherwise.")
    status: LicenseStatus = expression(sources.LICENSE_STATUS,
                                       description="ACTIVE, EXPIRING within 30 days, EXPIRED, or GRACE and then "
                                                   "SUSPENDED after a failed renewal payment.")
    # Declared among the data fields, to keep the schema's field order.
    product: Product = planned(sources.one("products", "product_id", "p"), description="The product licensed.")(
        _product)
    allocated_count: int = expression("{allocated}", description="Seats allocated to people (always 0 for a "
                                                                 "floating pool).")
    available_count: int = expression(sources.AVAILABLE_SEATS,
                                      description="Seats still free to allocate (the whole pool for FLOATING).")
    record: strawberry.Private[records.License]

    @classmethod
    def from_record(cls, lic: records.License) -> "License":
        return from_record(cls, lic, record=lic)

    @planned(sources.SEATS, description="Who holds its seats, oldest allocation first. Managers see every seat; "
                                        "others only their own.")
    async def allocations(self, info: Info, first: First = None, after: After = None, last: Last = None,
                          before: Before = None) -> LicenseAllocationConnection:
        slice = slice_of(first, after, last, before)
        page = await resolve.allocations_page(info.context, self.record, slice)
        return LicenseAllocationConnection.from_page(page, LicenseAllocation.from_record, slice)

    @strawberry.field(description="The subscription it comes from, if any (visible to managers).")
    async def subscription(self, info: Info) -> Subscription | None:
        if self.record.subscription_id is None:
            return None
        found = await resolve.visible_subscription(info.context, self.record.subscription_id)
        return Subscription.from_record(found) if found else None

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_license), cls.from_record, info, node_ids)


NODE_TYPES = (License, LicenseAllocation)
