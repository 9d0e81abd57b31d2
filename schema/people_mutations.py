"""Managing an organization's people: invitations, members' removal and roles.

Every mutation except `acceptInvitation` is for the OWNER and ADMINs of the organization that
owns its target: a MEMBER is told FORBIDDEN; anyone else, and any ID that is malformed, of the
wrong type or unknown, is told NOT_FOUND, the same for all so that nothing's existence leaks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from planning import ids
from resolvers import accounts as resolve_accounts
from resolvers import people as resolve
from schema.account import Account, OrganizationRole
from schema.common import Info, UserError, node_uuid, user_errors
from schema.organization import Invitation, Member, Organization
from schema.sessions import EXPIRES_AT, REFRESH_TOKEN_EXPIRES_AT, signed_in


# --- inviteMembers -----------------------------------------------------------------------------

@strawberry.input(description="One person to invite.")
class MemberInvitationInput:
    email: str = strawberry.field(description="Their email address (case-insensitive); the invitation goes there.")
    role: OrganizationRole = strawberry.field(
        default=OrganizationRole.MEMBER,
        description="The role they get on accepting: MEMBER or ADMIN (OWNER is refused as INVALID).")
    name: str = strawberry.field(
        default="", description="Their name, at most 200 characters: the mail greets them by it, and it names their "
                                "account if they accept without giving one (`Invitation.name`).")


@strawberry.input(description="Whom to invite into an organization.")
class InviteMembersInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="The organization to invite into (an Organization ID); by default the "
                                  "viewer's own. You must be its OWNER or an ADMIN.")
    invitations: list[MemberInvitationInput] = strawberry.field(
        description="The people to invite, at most 50. Each one succeeds or fails on its own.")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A key of your choosing (1 to 200 characters) that makes retries safe: the same key with "
                    "the same input returns the first call's results and invites no one again; with a "
                    "different input it is refused as IDEMPOTENCY_KEY_REUSED.")


@strawberry.type(description="What became of one email of an `inviteMembers` call.")
class InvitationResult:
    email: str = strawberry.field(description="The email as it was given in the input.")
    invitation: Invitation | None = strawberry.field(
        description="The invitation sent; null when this email was refused (see `userErrors`).")
    user_errors: list[UserError] = strawberry.field(
        description="Why this email was not invited: ALREADY_MEMBER, ALREADY_INVITED, IN_ANOTHER_ORGANIZATION, "
                    "or INVALID (malformed email, or role OWNER).")


@strawberry.type(description="The result of `inviteMembers`.")
class InviteMembersPayload:
    results: list[InvitationResult] = strawberry.field(
        description="One result per invitation of the input, in the same order; empty when the whole request "
                    "was refused.")
    user_errors: list[UserError] = strawberry.field(
        description="Problems with the request as a whole (no invitations, more than 50, a malformed or "
                    "reused idempotency key); then no one was invited. Per-email problems are in `results`.")


async def invite_members(info: Info, input: Annotated[InviteMembersInput, strawberry.argument(
        description="The organization, the people and their roles.")]) -> InviteMembersPayload:
    organization_id = (node_uuid(input.organization_id, "Organization") if input.organization_id is not None
                       else await resolve.viewer_organization_id(info.context))
    result = await resolve.invite_members(
        info.context, organization_id,
        [(i.email, i.role.value, i.name) for i in input.invitations], input.idempotency_key)
    return InviteMembersPayload(
        results=[InvitationResult(email=o.email, invitation=Invitation.from_record(o.invitation) if o.invitation
                                  else None, user_errors=user_errors(o.problems)) for o in result.outcomes],
        user_errors=user_errors(result.problems))


# --- resendInvitation, revokeInvitation ---------------------------------------------------------

@strawberry.input(description="The invitation to send again.")
class ResendInvitationInput:
    invitation_id: strawberry.ID = strawberry.field(description="An Invitation ID.")


@strawberry.type(description="The result of `resendInvitation`.")
class ResendInvitationPayload:
    invitation: Invitation | None = strawberry.field(
        description="The invitation, valid for 7 more days; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="INVITATION_NOT_PENDING when it was accepted or revoked; ALREADY_MEMBER, "
                    "IN_ANOTHER_ORGANIZATION or ALREADY_INVITED when an expired one could not be sent again.")


async def resend_invitation(info: Info, input: Annotated[ResendInvitationInput, strawberry.argument(
        description="Which invitation.")]) -> ResendInvitationPayload:
    result = await resolve.resend_invitation(info.context, node_uuid(input.invitation_id, "Invitation"))
    return ResendInvitationPayload(invitation=Invitation.from_record(result.invitation) if result.invitation else None,
                                   user_errors=user_errors(result.problems))


@strawberry.input(description="The invitation to withdraw.")
class RevokeInvitationInput:
    invitation_id: strawberry.ID = strawberry.field(description="An Invitation ID.")


@strawberry.type(description="The result of `revokeInvitation`.")
class RevokeInvitationPayload:
    invitation: Invitation | None = strawberry.field(description="The invitation, now REVOKED; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="INVITATION_NOT_PENDING when it was already accepted or revoked.")


async def revoke_invitation(info: Info, input: Annotated[RevokeInvitationInput, strawberry.argument(
        description="Which invitation.")]) -> RevokeInvitationPayload:
    result = await resolve.revoke_invitation(info.context, node_uuid(input.invitation_id, "Invitation"))
    return RevokeInvitationPayload(invitation=Invitation.from_record(result.invitation) if result.invitation else None,
                                   user_errors=user_errors(result.problems))


# --- acceptInvitation ---------------------------------------------------------------------------

@strawberry.input(description="The invitation link's token, and the account to join with.")
class AcceptInvitationInput:
    token: str = strawberry.field(description="The `token` parameter of the link in the invitation mail.")
    name: str | None = strawberry.field(
        default=None,
        description="Your full name, required when the invited email has no account yet (one is created) and "
                    "the invitation carries none (`Invitation.name`); ignored otherwise.")
    password: str = strawberry.field(
        description="For a new account, its password (at least 10 characters); when the email already has an "
                    "account, that account's password.")


@strawberry.type(description="The result of `acceptInvitation`.")
class AcceptInvitationPayload:
    account: Account | None = strawberry.field(
        description="The account that joined the organization; null when refused.")
    token: str | None = strawberry.field(
        description="A bearer token for the account, so that it is signed in at once (as `login` returns).")
    refresh_token: str | None = strawberry.field(
        description="The refresh token that goes with `token`, as `login` returns it: trade it with `refreshToken` "
                    "for a new pair; it works once, and `logout` revokes it.")
    user_errors: list[UserError] = strawberry.field(
        description="INVITATION_NOT_PENDING for an unknown, used, revoked or expired token; "
                    "IN_ANOTHER_ORGANIZATION; WRONG_PASSWORD for an existing account; REQUIRED name and "
                    "WEAK_PASSWORD for a new one.")
    expires_at: datetime | None = strawberry.field(description=EXPIRES_AT)
    refresh_token_expires_at: datetime | None = strawberry.field(description=REFRESH_TOKEN_EXPIRES_AT)


async def accept_invitation(info: Info, input: Annotated[AcceptInvitationInput, strawberry.argument(
        description="Token, name and password.")]) -> AcceptInvitationPayload:
    result = await resolve.accept_invitation(info.context, input.token, input.name, input.password)
    return AcceptInvitationPayload(account=Account.from_record(result.account) if result.account else None,
                                   **signed_in(result.tokens), user_errors=user_errors(result.problems))


# --- removeMember, changeMemberRole -------------------------------------------------------------

@strawberry.input(description="The member to remove from their organization.")
class RemoveMemberInput:
    account_id: strawberry.ID = strawberry.field(description="The member's Account ID.")
    revoke_seats: bool = strawberry.field(
        default=False,
        description="Revoke the member's seats of the organization's licenses in the same change. Without it, a "
                    "member holding such seats is refused with HOLDS_SEATS. Their TRIAL and BETA seats are theirs, "
                    "not the pool's: those are released with the removal either way.")


@strawberry.type(description="The result of `removeMember`.")
class RemoveMemberPayload:
    removed_member_id: strawberry.ID | None = strawberry.field(
        description="The Member ID of the removed member (to drop it from a cached member list); null when "
                    "refused.")
    removed_account_id: strawberry.ID | None = strawberry.field(
        description="The Account ID of the removed member; the account itself lives on outside the "
                    "organization. Null when refused.")
    revoked_seat_count: int = strawberry.field(
        description="How many license seats were revoked or released with the removal (TRIAL and BETA ones "
                    "included).")
    organization: Organization | None = strawberry.field(
        description="The organization, as it is now; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="HOLDS_SEATS (naming the seats), OWNER_PROTECTED, or NOT_ALLOWED when the OWNER tries to "
                    "leave.")


async def remove_member(info: Info, input: Annotated[RemoveMemberInput, strawberry.argument(
        description="The member, and whether to revoke their seats.")]) -> RemoveMemberPayload:
    result = await resolve.remove_member(info.context, node_uuid(input.account_id, "Account"),
                                         revoke_seats=input.revoke_seats)
    removed = result.removed_account_id
    organization = None
    if result.organization_id is not None:
        found = await resolve_accounts.organization(info.context, result.organization_id)
        organization = Organization.from_record(found) if found else None
    return RemoveMemberPayload(
        removed_member_id=strawberry.ID(ids.global_id("Member", ids.member_key(removed, None))) if removed else None,
        removed_account_id=strawberry.ID(ids.global_id("Account", removed)) if removed else None,
        revoked_seat_count=result.revoked_seats, organization=organization, user_errors=user_errors(result.problems))


@strawberry.input(description="A member and their new role.")
class ChangeMemberRoleInput:
    account_id: strawberry.ID = strawberry.field(description="The member's Account ID.")
    role: OrganizationRole = strawberry.field(
        description="ADMIN or MEMBER. OWNER is refused as INVALID: ownership transfer is not available through "
                    "this API.")


@strawberry.type(description="The result of `changeMemberRole`.")
class ChangeMemberRolePayload:
    member: Member | None = strawberry.field(description="The member with their new role; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="OWNER_PROTECTED for the OWNER, OWN_ROLE for yourself, INVALID for role OWNER.")


async def change_member_role(info: Info, input: Annotated[ChangeMemberRoleInput, strawberry.argument(
        description="The member and the role.")]) -> ChangeMemberRolePayload:
    result = await resolve.change_member_role(info.context, node_uuid(input.account_id, "Account"), input.role.value)
    return ChangeMemberRolePayload(member=Member.from_record(result.member) if result.member else None,
                                   user_errors=user_errors(result.problems))


@strawberry.type
class PeopleMutations:
    invite_members: InviteMembersPayload = strawberry.mutation(
        resolver=invite_members,
        description="Invites people by email with a role. Each gets a mail with a link valid "
                    "for 7 days; each email succeeds or fails on its own. Safe to retry with an idempotency key.")
    resend_invitation: ResendInvitationPayload = strawberry.mutation(
        resolver=resend_invitation,
        description="Sends a pending or expired invitation again with a new link, valid for 7 days from now; the "
                    "previous link stops working.")
    revoke_invitation: RevokeInvitationPayload = strawberry.mutation(
        resolver=revoke_invitation,
        description="Withdraws a pending or expired invitation; its link stops working.")
    accept_invitation: AcceptInvitationPayload = strawberry.mutation(
        resolver=accept_invitation,
        description="Joins the organization with the token of an invitation link, creating the account when "
                    "the email has none, and signs it in. Needs no bearer token: the invitation token is the "
                    "credential, and it works once.")
    remove_member: RemoveMemberPayload = strawberry.mutation(
        resolver=remove_member,
        description="Removes a member from the organization, with their credit access, optionally revoking "
                    "their seats at the same time. The OWNER cannot be removed. The account "
                    "itself and its sessions stay; it just no longer belongs to the organization.")
    change_member_role: ChangeMemberRolePayload = strawberry.mutation(
        resolver=change_member_role,
        description="Makes a member an ADMIN or a MEMBER. The OWNER cannot be demoted and no "
                    "one changes their own role. OWNER is not granted here: the OWNER hands over with "
                    "`transferOwnership`.")


MUTATIONS = PeopleMutations
