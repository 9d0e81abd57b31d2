"""Organizations: their people, invitations, licenses, subscriptions, credits, billing and audit log.

Members see the name and their own standing; everything else is for whoever the access table
(`auth.access`) lets read it: the OWNER and ADMINs, and the vendor's staff and services by role
and scope (FORBIDDEN at the field's path for anyone else, which is why those fields are nullable).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry import relay

from datasources.errors import BadUserInput
from datasources.postgres import accounts as account_records
from datasources.postgres import organizations as records
from resolvers import accounts as resolve_accounts
from resolvers import entitlements as resolve_entitlements
from resolvers import organizations as resolve
from auth.access import who
from planning import ids, sources
from planning.declare import Column, Entry, column, from_record, planned, table
from resolvers.permissions import may, require, viewer_membership
from schema import billing, corporate_sign_in, credits, ownership, scim
from schema.billing import BillingInfo, InvoiceConnection, PaymentMethod
from schema.common import Info, by_uuid, node_uuid, resolve_visible
from schema.credits import CloudCreditPool
from schema.ownership import OwnershipTransfer
from schema.corporate_sign_in import CorporateSignIn
from planning.levels import level_resolver
from schema.references import AccountRef, RoleRef, accounts_at, role_enum, visible_account_node
from schema.license import License
from schema.money import Money
from schema.pagination import After, Before, Connection, First, Last, slice_of
from schema.subscription import (Subscription, SubscriptionFilterArg, SubscriptionOrderArg,
                                 subscription_query)

@strawberry.enum(description="Whether a person in the member list has joined.")
class MemberStatus(Enum):
    ACTIVE = strawberry.enum_value("ACTIVE", description="A member with an account.")
    INVITED = strawberry.enum_value("INVITED", description="Invited, invitation not yet accepted.")


def _member_key(row: records.MemberRow) -> str:
    return ids.member_key(row.account_id, row.invitation_id)


# The rows are the member list's (`sources.MEMBERS`): no table of their own.
@table(None, key=("account_id", "invitation_id"), node_id=(_member_key, ids.member_key_sql, 38))
@strawberry.type(description="A person in an organization's member list: a member, or an invitee.")
class Member(relay.Node):
    id: relay.NodeID[str]
    email: str = column("email", description="Email address.")
    status: MemberStatus = column("status", description="ACTIVE, or INVITED while the invitation is pending.")
    joined_at: datetime | None = column("joined_at", description="When they joined; null while invited.")
    invited_at: datetime | None = column("invited_at", description="When they were invited; null for members.")
    role_value: strawberry.Private[str]
    account_id: strawberry.Private[UUID | None]

    @classmethod
    def from_record(cls, row: records.MemberRow) -> "Member":
        return from_record(cls, row, role_value=row.role, account_id=row.account_id)

    @planned(Column("role"), description="Their role, or the role they are invited with.")
    def role(self) -> RoleRef:
        return role_enum(self.role_value)

    @planned(sources.account_at("account_id", Entry("account_id")), description="Their account; null while invited.")
    @level_resolver(accounts_at("account_id"))
    async def account(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.account_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(resolve.visible_member, cls.from_record, info, node_ids)


@strawberry.enum(description="Where an invitation stands.")
class InvitationStatus(Enum):
    PENDING = strawberry.enum_value("PENDING", description="Sent, not yet accepted; valid for 7 days.")
    ACCEPTED = strawberry.enum_value("ACCEPTED", description="Accepted: the invitee is a member.")
    REVOKED = strawberry.enum_value("REVOKED", description="Withdrawn by an admin.")
    EXPIRED = strawberry.enum_value("EXPIRED", description="Not accepted within 7 days.")


def _invitation_status(i: records.Invitation) -> InvitationStatus:
    if i.accepted_at:
        return InvitationStatus.ACCEPTED
    if i.revoked_at:
        return InvitationStatus.REVOKED
    return InvitationStatus.EXPIRED if i.expires_at <= datetime.now(timezone.utc) else InvitationStatus.PENDING


@strawberry.type(description="An invitation to join an organization.")
class Invitation(relay.Node):
    id: relay.NodeID[str]
    email: str = strawberry.field(description="Who is invited.")
    name: str = strawberry.field(description="Their name as the inviter gave it (`importMembers`); empty when none "
                                             "was given.")
    status: InvitationStatus = strawberry.field(description="Where it stands.")
    invited_at: datetime = strawberry.field(description="When it was sent.")
    expires_at: datetime = strawberry.field(description="When it stops being valid.")
    role_value: strawberry.Private[str]
    invited_by_id: strawberry.Private[UUID | None]

    @classmethod
    def from_record(cls, i: records.Invitation) -> "Invitation":
        return cls(id=str(i.id), email=i.email, name=i.name, status=_invitation_status(i), invited_at=i.created_at,
                   expires_at=i.expires_at, role_value=i.role, invited_by_id=i.invited_by)

    @strawberry.field(description="The role the invitee gets on accepting.")
    def role(self) -> RoleRef:
        return role_enum(self.role_value)

    @strawberry.field(description="Who sent it (null if no longer visible).")
    @level_resolver(accounts_at("invited_by_id"))
    async def invited_by(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.invited_by_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_invitation), cls.from_record, info, node_ids)


@strawberry.enum(description="How an audited action ended.")
class AuditOutcome(Enum):
    SUCCESS = strawberry.enum_value("SUCCESS", description="Done as asked.")
    PARTIAL = strawberry.enum_value("PARTIAL", description="Done for some items; the others were refused.")
    REFUSED = strawberry.enum_value("REFUSED", description="Refused with user errors; nothing changed.")


@strawberry.type(description="A change made in the organization: who, what, when, and why.")
class AuditLogEntry(relay.Node):
    id: relay.NodeID[str]
    action: str = strawberry.field(description="What was done, e.g. \"license.allocate\".")
    target: str | None = strawberry.field(description="What it was done to.")
    actor_service: str | None = strawberry.field(
        description="What acted, if not a person: the vendor's service, or the organization's SCIM token (\"SCIM "
                    "token <name>\", for changes its identity provider made).")
    reason: str | None = strawberry.field(description="Why, when the actor gave a reason (staff always do).")
    scope: str | None = strawberry.field(
        description="For a change by the vendor: the staff role (SUPPORT, BILLING, ADMIN_TOOLING) or the service "
                    "token scope (e.g. \"credits:write\") it was made under; \"scim\" for the organization's identity "
                    "provider; null for the organization's own people.")
    outcome: AuditOutcome = strawberry.field(description="How it ended.")
    details: str = strawberry.field(description="Further details as a JSON object.")
    created_at: datetime = strawberry.field(description="When.")
    actor_id: strawberry.Private[UUID | None]

    @classmethod
    def from_record(cls, e: records.AuditEntry) -> "AuditLogEntry":
        return cls(id=str(e.id), action=e.action, target=e.target, actor_service=e.actor_service, reason=e.reason,
                   scope=e.scope, outcome=AuditOutcome(e.outcome), details=e.details, created_at=e.created_at,
                   actor_id=e.actor_account_id)

    @strawberry.field(description="The person who acted (null for a service, or if no longer visible).")
    @level_resolver(accounts_at("actor_id"))
    async def actor(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.actor_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(resolve.visible_audit_entry, cls.from_record, info, node_ids)


@strawberry.type(description="A page of an organization's member list.")
class MemberConnection(Connection[Member]):
    pass


@strawberry.type(description="A page of invitations.")
class InvitationConnection(Connection[Invitation]):
    pass


@strawberry.type(description="A page of the audit log.")
class AuditLogEntryConnection(Connection[AuditLogEntry]):
    pass


def _filter_uuid(raw: strawberry.ID | None, type_name: str) -> UUID | None:
    """A filter argument naming an object by its global ID: a wrong one is bad input."""
    found = node_uuid(raw, type_name)
    if raw is not None and found is None:
        raise BadUserInput(f"Expected the ID of a {type_name}.")
    return found


def _viewer_can_read(coordinate: str, what: str):
    """`viewerCanRead…`: the access table's answer for `coordinate`, so a client asks before it
    selects and a MEMBER's dashboard meets no FORBIDDEN."""
    async def resolve(root: Organization, info: Info) -> bool:
        return await may(info.context, coordinate, root.record.id)

    return strawberry.field(resolver=resolve, description=(
        f"Whether the viewer may read {what} here (when false, selecting them answers null with FORBIDDEN). True for "
        f"{who(coordinate)}."))


def _viewer_can_manage(what: str, mutations: tuple[str, ...]):
    """`viewerCanManage…`: the access table's rows of these mutations, in this organization."""
    async def resolve(root: Organization, info: Info) -> bool:
        return all([await may(info.context, mutation, root.record.id) for mutation in mutations])

    named = ", ".join(f"`{m}`" for m in mutations)
    return strawberry.field(resolver=resolve, description=(
        f"Whether the viewer may change {what} here ({named}; otherwise FORBIDDEN). True for "
        f"{' and '.join(dict.fromkeys(who(m) for m in mutations))}."))


@strawberry.type(description="A customer company: its members share licenses, credits and billing.")
class Organization(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Display name.")
    record: strawberry.Private[account_records.Organization]

    @classmethod
    def from_record(cls, record: account_records.Organization) -> "Organization":
        return cls(id=str(record.id), name=record.name, record=record)

    @strawberry.field(description="The viewer's role here (their own standing).")
    async def viewer_role(self, info: Info) -> RoleRef | None:
        mine = await viewer_membership(info.context)
        return role_enum(mine.role) if mine and mine.organization_id == self.record.id else None

    viewer_can_read_members: bool = _viewer_can_read(
        "Organization.members", "`members` and `invitations`")
    viewer_can_read_audit_log: bool = _viewer_can_read("Organization.auditLog", "`auditLog`")
    viewer_can_read_licenses: bool = _viewer_can_read(
        "Organization.licenses", "`licenses` (with all their seats) and `subscriptions`")
    viewer_can_read_credits: bool = _viewer_can_read("Organization.creditPool", "`creditPool`")
    viewer_can_read_billing: bool = _viewer_can_read(
        "Organization.invoices", "`invoices`, `outstandingBalance`, `paymentMethods` and `billingInfo`")
    viewer_can_manage_members: bool = _viewer_can_manage(
        "members and invitations", ("inviteMembers", "importMembers", "resendInvitation", "revokeInvitation",
                                    "removeMember", "removeMembers", "changeMemberRole", "changeMemberRoles"))
    viewer_can_manage_licenses: bool = _viewer_can_manage(
        "seats and subscriptions", ("allocateLicense", "revokeLicense", "setSubscriptionAutoRenew",
                                    "changeSeatQuantity"))
    viewer_can_manage_credits: bool = _viewer_can_manage(
        "members' credit access and their credit requests",
        ("setCreditAccess", "approveCreditRequest", "declineCreditRequest"))
    viewer_can_manage_billing: bool = _viewer_can_manage(
        "billing", ("payInvoice", "payOutstandingBalance", "addPaymentMethod", "setDefaultPaymentMethod",
                    "removePaymentMethod", "updateBillingInfo"))

    @planned(sources.MEMBERS, description=f"Members and pending invitees, by email. For {who('Organization.members')}.")
    async def members(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        search: Annotated[str | None, strawberry.argument(
            description="Part of an email or name, or a role name.")] = None,
        role: Annotated[RoleRef | None, strawberry.argument(description="Only this role.")] = None,
        product: Annotated[strawberry.ID | None, strawberry.argument(
            description="Only members holding a seat of this product (invitees hold none).")] = None,
    ) -> MemberConnection | None:
        slice = slice_of(first, after, last, before)
        query = records.MemberQuery(self.record.id, search=search or None, role=role.value if role else None,
                                    product_id=_filter_uuid(product, "Product"))
        page = await resolve.members_page(info.context, query, slice)
        return MemberConnection.from_page(page, Member.from_record, slice)

    @strawberry.field(description=f"Invitations, newest first. For {who('Organization.invitations')}.")
    async def invitations(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        pending_only: Annotated[bool, strawberry.argument(description="Only pending invitations.")] = False,
    ) -> InvitationConnection | None:
        slice = slice_of(first, after, last, before)
        page = await resolve.invitations_page(info.context, self.record.id, pending_only, slice)
        return InvitationConnection.from_page(page, Invitation.from_record, slice)

    @planned(sources.ORGANIZATION_LICENSES,
             description=f"Every license of the organization, by product. For {who('Organization.licenses')}.")
    async def licenses(self, info: Info) -> list[License] | None:
        return [License.from_record(lic) for lic in
                await resolve_entitlements.licenses_of_organization(info.context, self.record.id)]

    @strawberry.field(description="Subscriptions, filtered and ordered. For "
                                  f"{who('Organization.subscriptions')}.")
    async def subscriptions(self, info: Info, filter: SubscriptionFilterArg = None,
                            order_by: SubscriptionOrderArg = None) -> list[Subscription] | None:
        query = subscription_query(self.record.id, filter, order_by)
        return [Subscription.from_record(s) for s in await resolve_entitlements.subscriptions(info.context, query)]

    @strawberry.field(description="The hand-over of ownership waiting for the ADMIN named to confirm it; null when "
                                  f"none waits. For {who('Organization.pendingOwnershipTransfer')}.")
    async def pending_ownership_transfer(self, info: Info) -> OwnershipTransfer | None:
        await require(info.context, "Organization.pendingOwnershipTransfer", self.record.id)
        return await ownership.pending_transfer(info, self.record.id)

    @strawberry.field(description="Corporate sign-in: the OpenID provider and the email domains claimed; null "
                                  f"when not set up. For {who('Organization.corporateSignIn')}.")
    async def corporate_sign_in(self, info: Info) -> CorporateSignIn | None:
        await require(info.context, "Organization.corporateSignIn", self.record.id)
        return await corporate_sign_in.corporate_sign_in(info, self.record.id)

    @strawberry.field(description="The SCIM tokens the organization's identity provider provisions its people with "
                                  "(live ones first; never their secrets). For "
                                  f"{who('Organization.scimTokens')}.")
    async def scim_tokens(self, info: Info) -> list[scim.ScimToken] | None:
        return await scim.scim_tokens(info, self.record.id)

    @strawberry.field(description="The cloud-credit pool: balance, grants, usage, members' access, pending "
                                  f"requests. For {who('Organization.creditPool')}.")
    async def credit_pool(self, info: Info) -> CloudCreditPool | None:
        await require(info.context, "Organization.creditPool", self.record.id)
        return await credits.credit_pool(info, self.record.id)

    @strawberry.field(description="Invoices from the payment provider, newest first. For "
                                  f"{who('Organization.invoices')}; null with PROVIDER_UNAVAILABLE when the provider does not answer in time.")
    async def invoices(self, info: Info, first: First = None, after: After = None, last: Last = None,
                       before: Before = None, filter: billing.InvoiceFilterArg = None) -> InvoiceConnection | None:
        slice_of(first, after, last, before)  # BAD_USER_INPUT before anything else
        await require(info.context, "Organization.invoices", self.record.id)
        return await billing.organization_invoices(info, self.record, first, after, last, before, filter)

    @strawberry.field(description="What OPEN invoices still owe, one amount per currency. For "
                                  f"{who('Organization.outstandingBalance')}; null when the provider is unavailable.")
    async def outstanding_balance(self, info: Info) -> list[Money] | None:
        await require(info.context, "Organization.outstandingBalance", self.record.id)
        return await billing.organization_outstanding_balance(info, self.record)

    @strawberry.field(description="Cards on file, the default first. For "
                                  f"{who('Organization.paymentMethods')}; null when the provider is unavailable.")
    async def payment_methods(self, info: Info) -> list[PaymentMethod] | None:
        await require(info.context, "Organization.paymentMethods", self.record.id)
        return await billing.organization_payment_methods(info, self.record)

    @strawberry.field(description="Company, address, VAT ID and billing email, as the provider holds them. "
                                  f"For {who('Organization.billingInfo')}; null when the provider is "
                                  "unavailable.")
    async def billing_info(self, info: Info) -> BillingInfo | None:
        await require(info.context, "Organization.billingInfo", self.record.id)
        return await billing.organization_billing_info(info, self.record)

    @strawberry.field(description=billing.INVOICES_ARCHIVE_URL)
    async def invoices_archive_url(self, info: Info, from_: billing.ArchiveFromArg,
                                   to: billing.ArchiveToArg) -> str | None:
        archive = billing.invoices_archive_range(from_, to)  # BAD_USER_INPUT before anything else
        await require(info.context, "Organization.invoicesArchiveUrl", self.record.id)
        return await billing.organization_invoices_archive_url(info, self.record, archive)

    @strawberry.field(description="Changes made in the organization, newest first. For "
                                  f"{who('Organization.auditLog')}.")
    async def audit_log(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        action: Annotated[str | None, strawberry.argument(
            description="Only this action, e.g. \"license.allocate\".")] = None,
        actor: Annotated[strawberry.ID | None, strawberry.argument(
            description="Only what this account (an Account ID) did.")] = None,
    ) -> AuditLogEntryConnection | None:
        slice = slice_of(first, after, last, before)
        query = records.AuditQuery(self.record.id, action=action, actor_account_id=_filter_uuid(actor, "Account"))
        page = await resolve.audit_log_page(info.context, query, slice)
        return AuditLogEntryConnection.from_page(page, AuditLogEntry.from_record, slice)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve_accounts.visible_organization), cls.from_record,
                                     info, node_ids)


NODE_TYPES = (Organization, Member, Invitation, AuditLogEntry)
