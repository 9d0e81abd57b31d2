"""Accounts, organizations and roles."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from uuid import UUID

import strawberry
from strawberry import relay

from datasources.postgres import accounts as records
from resolvers import accounts as resolve
from schema.common import Info, by_uuid, resolve_visible


@strawberry.enum(description="An account's role in its organization.")
class OrganizationRole(Enum):
    OWNER = strawberry.enum_value("OWNER", description="Owns the organization; exactly one per organization.")
    ADMIN = strawberry.enum_value("ADMIN", description="Manages members, seats, credits and billing.")
    MEMBER = strawberry.enum_value("MEMBER", description="Uses the seats and credits given to them.")


@strawberry.type(description="A person who signs in to the portal.")
class Account(relay.Node):
    id: relay.NodeID[str]
    customer_number: str = strawberry.field(
        description="Human-readable customer number, unique and never changed; quote it to support.")
    email: str = strawberry.field(
        description="Sign-in and contact address. Changed only by support (see `support`).")
    name: str = strawberry.field(description="Full name.")
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 country code, e.g. \"DE\".")

    @classmethod
    def from_record(cls, record: records.Account) -> "Account":
        return cls(id=str(record.id), customer_number=record.customer_number, email=record.email,
                   name=record.name, country=record.country)

    @strawberry.field(description="Role in the organization; null when the account belongs to none.")
    async def role(self, info: Info) -> OrganizationRole | None:
        found = await resolve.membership(info.context, UUID(self.id))
        return OrganizationRole(found.role) if found else None

    @strawberry.field(description="The organization this account belongs to, if any.")
    async def organization(self, info: Info) -> Organization | None:
        found = await resolve.organization_of(info.context, UUID(self.id))
        return Organization.from_record(found) if found else None

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_account), cls.from_record, info, node_ids)


@strawberry.type(description="A customer company: its members share licenses, credits and billing.")
class Organization(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Display name.")

    @classmethod
    def from_record(cls, record: records.Organization) -> "Organization":
        return cls(id=str(record.id), name=record.name)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_organization), cls.from_record, info, node_ids)
