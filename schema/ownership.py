"""Handing an organization's ownership over: the transfer waiting, and its mutations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry

from datasources.postgres.ownership import Transfer
from resolvers import accounts as resolve_accounts
from resolvers import ownership as resolve
from resolvers import people as resolve_people
from schema.common import Info, UserError, node_uuid, user_errors
from schema.references import AccountRef, visible_account_node

if TYPE_CHECKING:
    from schema.organization import Organization

OrganizationRef = Annotated["Organization", strawberry.lazy("schema.organization")]


@strawberry.type(description="A hand-over of the organization's ownership, waiting for the ADMIN named to confirm "
                             "it (`acceptOwnership`) with the token mailed to them.")
class OwnershipTransfer:
    requested_at: datetime = strawberry.field(description="When the OWNER asked.")
    expires_at: datetime = strawberry.field(description="When the mailed token stops working (7 days after).")
    from_account_id: strawberry.Private[UUID | None]
    to_account_id: strawberry.Private[UUID]

    @classmethod
    def from_record(cls, transfer: Transfer) -> "OwnershipTransfer":
        return cls(requested_at=transfer.created_at, expires_at=transfer.expires_at,
                   from_account_id=transfer.from_account_id, to_account_id=transfer.to_account_id)

    @strawberry.field(description="The OWNER who asked; null once that account is deleted.")
    async def requested_by(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.from_account_id)

    @strawberry.field(description="The ADMIN who is to become the OWNER.")
    async def to(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.to_account_id)


async def pending_transfer(info: Info, organization_id: UUID) -> OwnershipTransfer | None:
    """For `Organization.pendingOwnershipTransfer`; the caller has checked the access table."""
    found = await info.context.loaders.organizations.pending_transfer.load(organization_id)
    return OwnershipTransfer.from_record(found) if found else None


async def _organization(info: Info, organization_id: UUID | None) -> "Organization | None":
    from schema.organization import Organization

    found = await resolve_accounts.organization(info.context, organization_id) if organization_id else None
    return Organization.from_record(found) if found else None


@strawberry.input(description="The ADMIN to hand the organization over to.")
class TransferOwnershipInput:
    account_id: strawberry.ID = strawberry.field(description="An ADMIN's Account ID.")


@strawberry.type(description="The result of `transferOwnership`. The ADMIN named is mailed a link to confirm; "
                             "nothing changes until they do.")
class TransferOwnershipPayload:
    transfer: OwnershipTransfer | None = strawberry.field(description="The hand-over waiting; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="NOT_ALLOWED (you are not the OWNER, or they are not an ADMIN: make them one first), INVALID "
                    "(yourself).")


async def transfer_ownership(info: Info, input: Annotated[TransferOwnershipInput, strawberry.argument(
        description="Who takes over.")]) -> TransferOwnershipPayload:
    result = await resolve.transfer_ownership(info.context, node_uuid(input.account_id, "Account"))
    return TransferOwnershipPayload(transfer=OwnershipTransfer.from_record(result.transfer) if result.transfer
                                    else None, user_errors=user_errors(result.problems))


@strawberry.input(description="The organization whose waiting hand-over to take back.")
class CancelOwnershipTransferInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="An Organization ID; by default the viewer's own.")


@strawberry.type(description="The result of `cancelOwnershipTransfer`: the mailed token stops working.")
class CancelOwnershipTransferPayload:
    transfer: OwnershipTransfer | None = strawberry.field(
        description="The hand-over taken back; null when none was waiting (nothing changed).")
    user_errors: list[UserError] = strawberry.field(description="NOT_ALLOWED: you are not the OWNER.")


async def cancel_ownership_transfer(info: Info, input: Annotated[CancelOwnershipTransferInput, strawberry.argument(
        description="The organization.")]) -> CancelOwnershipTransferPayload:
    organization_id = (node_uuid(input.organization_id, "Organization") if input.organization_id is not None
                       else await resolve_people.viewer_organization_id(info.context))
    result = await resolve.cancel_ownership_transfer(info.context, organization_id)
    return CancelOwnershipTransferPayload(
        transfer=OwnershipTransfer.from_record(result.transfer) if result.transfer else None,
        user_errors=user_errors(result.problems))


@strawberry.input(description="The token from the hand-over mail.")
class AcceptOwnershipInput:
    token: str = strawberry.field(description="The token, as in the mail's link.")


@strawberry.type(description="The result of `acceptOwnership`: the viewer is the OWNER, the OWNER before an ADMIN.")
class AcceptOwnershipPayload:
    organization: OrganizationRef | None = strawberry.field(
        description="The organization, as it is now; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="TRANSFER_NOT_PENDING (unknown, used, canceled, replaced, expired, or for someone else: the "
                    "same answer for each), NOT_ALLOWED (roles changed since it was asked: it is void), REQUIRED.")


async def accept_ownership(info: Info, input: Annotated[AcceptOwnershipInput, strawberry.argument(
        description="The token.")]) -> AcceptOwnershipPayload:
    result = await resolve.accept_ownership(info.context, input.token)
    return AcceptOwnershipPayload(organization=await _organization(info, result.organization_id),
                                  user_errors=user_errors(result.problems))


@strawberry.input(description="An organization, the member who is to own it, and why.")
class StaffTransferOwnershipInput:
    organization_id: strawberry.ID = strawberry.field(description="An Organization ID.")
    account_id: strawberry.ID = strawberry.field(description="The Account ID of a member of it.")
    reason: str = strawberry.field(
        description="Why: required, at most 1,000 characters. The customer sees it in their audit log.")


@strawberry.type(description="The result of `staffTransferOwnership`.")
class StaffTransferOwnershipPayload:
    organization: OrganizationRef | None = strawberry.field(
        description="The organization, as it is now; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="REQUIRED or INVALID reason; NOT_IN_ORGANIZATION: the account is not a member of it.")


async def staff_transfer_ownership(info: Info, input: Annotated[StaffTransferOwnershipInput, strawberry.argument(
        description="Organization, member and reason.")]) -> StaffTransferOwnershipPayload:
    result = await resolve.staff_transfer_ownership(
        info.context, node_uuid(input.organization_id, "Organization"), node_uuid(input.account_id, "Account"),
        input.reason)
    return StaffTransferOwnershipPayload(organization=await _organization(info, result.organization_id),
                                         user_errors=user_errors(result.problems))


@strawberry.type
class OwnershipMutations:
    transfer_ownership: TransferOwnershipPayload = strawberry.mutation(
        resolver=transfer_ownership,
        description="Asks an ADMIN to take the organization over; they confirm with `acceptOwnership`, and then "
                    "the OWNER becomes an ADMIN. A new request replaces the one waiting.")
    cancel_ownership_transfer: CancelOwnershipTransferPayload = strawberry.mutation(
        resolver=cancel_ownership_transfer,
        description="Takes back the hand-over waiting, if any.")
    accept_ownership: AcceptOwnershipPayload = strawberry.mutation(
        resolver=accept_ownership,
        description="Confirms a hand-over, signed in as the ADMIN it names: they become the OWNER and the OWNER "
                    "before an ADMIN, in one change (never two OWNERs, never none).")
    staff_transfer_ownership: StaffTransferOwnershipPayload = strawberry.mutation(
        resolver=staff_transfer_ownership,
        description="Makes a member the OWNER at once, when the OWNER has left and cannot hand over; the OWNER "
                    "before, if any, stays on as an ADMIN. Both are mailed.")


MUTATIONS = OwnershipMutations
