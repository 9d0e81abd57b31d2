"""Accounts and roles (the Account menu), with what the viewer holds: seats, downloads, credits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry
from strawberry import relay

from datasources.postgres import accounts as records
from planning import sources
from planning.declare import column, from_record, planned, table
from resolvers import accounts as resolve
from resolvers import entitlements as resolve_entitlements
from schema import credits
from schema.common import Info, by_uuid, resolve_visible
from schema.credits import CloudCreditAccess, CloudCreditRequestConnection
from schema.pagination import After, Before, First, Last, slice_of
from planning.levels import level_resolver, one
from schema.license import License
from schema.product import Product

if TYPE_CHECKING:
    from schema.organization import Organization

OrganizationRef = Annotated["Organization", strawberry.lazy("schema.organization")]


@strawberry.enum(description="An account's role in its organization.")
class OrganizationRole(Enum):
    OWNER = strawberry.enum_value("OWNER", description="Owns the organization; exactly one per organization.")
    ADMIN = strawberry.enum_value("ADMIN", description="Manages members, seats, credits and billing.")
    MEMBER = strawberry.enum_value("MEMBER", description="Uses the seats and credits given to them.")


async def _roles(accounts: Sequence[Account], info: Info) -> list[OrganizationRole | None]:
    found = await resolve.memberships(info.context, [a.uuid for a in accounts])
    return [OrganizationRole(m.role) if m else None for m in found]


async def _licenses(accounts: Sequence[Account], info: Info) -> list[list[License]]:
    held = await resolve_entitlements.licenses_held(info.context, [a.uuid for a in accounts])
    return [[License.from_record(lic) for lic in licenses] for licenses in held]


async def _credit_accesses(accounts: Sequence[Account], info: Info) -> list[CloudCreditAccess]:
    return await credits.credit_accesses(info, [a.uuid for a in accounts])


@table("accounts")
@strawberry.type(description="A person who signs in to the portal.")
class Account(relay.Node):
    id: relay.NodeID[str]
    customer_number: str = column(
        "customer_number", description="Human-readable customer number, unique and never changed; quote it to support.")
    email: str = column("email", description="Sign-in and contact address. Changed only by support (see `support`).")
    name: str = column("name", description="Full name.")
    country: str | None = column("country", description="ISO 3166-1 alpha-2 country code, e.g. \"DE\".")

    @classmethod
    def from_record(cls, record: records.Account) -> "Account":
        return from_record(cls, record)

    @property
    def uuid(self) -> UUID:
        return UUID(self.id)

    @strawberry.field(description="Role in the organization; null when the account belongs to none.")
    @level_resolver(_roles)
    async def role(self, info: Info) -> OrganizationRole | None:
        return await one(_roles, self, info)

    @strawberry.field(description="The organization this account belongs to, if any.")
    async def organization(self, info: Info) -> OrganizationRef | None:
        from schema.organization import Organization

        found = await resolve.organization_of(info.context, self.uuid)
        return Organization.from_record(found) if found else None

    @planned(sources.LICENSES_HELD, description="The licenses this account holds a seat of, by product.")
    @level_resolver(_licenses)
    async def licenses(self, info: Info) -> list[License]:
        return await one(_licenses, self, info)

    @strawberry.field(description="The products this account may download: it holds a seat of an unexpired "
                                  "license, or its organization has an unexpired floating license.")
    async def downloadable_products(self, info: Info) -> list[Product]:
        return [Product.from_record(p) for p in
                await resolve_entitlements.downloadable_products(info.context, self.uuid)]

    @planned(sources.CREDIT_ACCESS, description="Cloud-credit access: DISABLED, UNLIMITED, or a QUOTA, with what "
                                               "was used and what is left to spend now.")
    @level_resolver(_credit_accesses)
    async def credit_access(self, info: Info) -> CloudCreditAccess:
        return await one(_credit_accesses, self, info)

    @strawberry.field(description="The requests for more cloud credits this account made in its organization, "
                                  "newest first, with their status and answer (the viewer's own: "
                                  "`viewer { creditRequests }`).")
    async def credit_requests(self, info: Info, first: First = None, after: After = None, last: Last = None,
                              before: Before = None) -> CloudCreditRequestConnection:
        return await credits.credit_requests(info, self.uuid, slice_of(first, after, last, before))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_account), cls.from_record, info, node_ids)


NODE_TYPES = (Account,)
