"""Staff mutations: changes the vendor's staff and services make in customers' organizations.

Each is for certain staff roles or one service scope (FORBIDDEN otherwise), needs a `reason`
(REQUIRED when empty), and lands in the affected organization's own audit log with the role or
scope used and the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

import strawberry

from resolvers import accounts as resolve_accounts
from resolvers import staff as resolve
from schema.account import Account
from schema.common import Info, UserError, node_uuid, user_errors
from schema.license import License
from schema.organization import Invitation, Organization

REASON = "Why: required, at most 1,000 characters. The customer sees it in their audit log."


@strawberry.input(description="The account and its new email address.")
class ChangeAccountEmailInput:
    account_id: strawberry.ID = strawberry.field(description="An Account ID.")
    email: str = strawberry.field(description="The new email address (case-insensitive).")
    reason: str = strawberry.field(description=REASON)


@strawberry.type(description="The result of `changeAccountEmail`.")
class ChangeAccountEmailPayload:
    account: Account | None = strawberry.field(description="The account with its new email; null when refused.")
    sessions_ended: int = strawberry.field(description="How many of the account's sessions were ended.")
    user_errors: list[UserError] = strawberry.field(
        description="REQUIRED reason; INVALID email (malformed, or another account's).")


async def change_account_email(info: Info, input: Annotated[ChangeAccountEmailInput, strawberry.argument(
        description="Account, email and reason.")]) -> ChangeAccountEmailPayload:
    result = await resolve.change_account_email(info.context, node_uuid(input.account_id, "Account"), input.email,
                                                input.reason)
    return ChangeAccountEmailPayload(account=Account.from_record(result.account) if result.account else None,
                                     sessions_ended=result.sessions_ended, user_errors=user_errors(result.problems))


@strawberry.input(description="Cloud credits to add to an organization's pool.")
class GrantCreditsInput:
    organization_id: strawberry.ID = strawberry.field(description="An Organization ID.")
    amount: int = strawberry.field(description="Credits to grant, 1 to 10,000,000.")
    expires_at: datetime | None = strawberry.field(default=None, description="When they expire; never when left out.")
    reason: str = strawberry.field(description=REASON)
    idempotency_key: str | None = strawberry.field(
        default=None, description="A key of your choosing (1 to 200 characters): a retry with the same key and input "
                                  "grants nothing more; with another input it is refused as IDEMPOTENCY_KEY_REUSED.")


@strawberry.type(description="The result of `grantCredits`.")
class GrantCreditsPayload:
    organization: Organization | None = strawberry.field(
        description="The organization, whose `creditPool` now holds the grant (source VENDOR); null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="REQUIRED reason; INVALID amount or expiry; IDEMPOTENCY_KEY_REUSED.")


async def grant_credits(info: Info, input: Annotated[GrantCreditsInput, strawberry.argument(
        description="Organization, amount, expiry and reason.")]) -> GrantCreditsPayload:
    result = await resolve.grant_credits(info.context, node_uuid(input.organization_id, "Organization"),
                                         input.amount, input.expires_at, input.reason, input.idempotency_key)
    found = (await resolve_accounts.organization(info.context, result.organization_id)
             if result.organization_id else None)
    return GrantCreditsPayload(organization=Organization.from_record(found) if found else None,
                               user_errors=user_errors(result.problems))


@strawberry.input(description="A license and its new expiry.")
class ExtendLicenseInput:
    license_id: strawberry.ID = strawberry.field(description="A License ID.")
    expires_at: datetime = strawberry.field(description="The new expiry: in the future and later than the current one.")
    reason: str = strawberry.field(description=REASON)


@strawberry.input(description="A license and its new seat count.")
class AdjustLicenseQuantityInput:
    license_id: strawberry.ID = strawberry.field(description="A License ID.")
    quantity: int = strawberry.field(description="The new seat count: 1 to 100,000, never below the seats allocated.")
    reason: str = strawberry.field(description=REASON)


@strawberry.type(description="The result of `extendLicense`.")
class ExtendLicensePayload:
    license: License | None = strawberry.field(description="The license as it is now; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="REQUIRED reason; INVALID expiry or quantity; NOT_ALLOWED for a perpetual license's expiry or "
                    "a quantity below the seats allocated.")


@strawberry.type(description="The result of `adjustLicenseQuantity`.")
class AdjustLicenseQuantityPayload(ExtendLicensePayload):
    pass


P = TypeVar("P", bound=ExtendLicensePayload)


def _license_payload(payload: type[P], result: resolve.LicenseChange) -> P:
    return payload(license=License.from_record(result.license) if result.license else None,
                   user_errors=user_errors(result.problems))


async def extend_license(info: Info, input: Annotated[ExtendLicenseInput, strawberry.argument(
        description="License, expiry and reason.")]) -> ExtendLicensePayload:
    return _license_payload(ExtendLicensePayload, await resolve.extend_license(
        info.context, node_uuid(input.license_id, "License"), input.expires_at, input.reason))


async def adjust_license_quantity(info: Info, input: Annotated[AdjustLicenseQuantityInput, strawberry.argument(
        description="License, quantity and reason.")]) -> AdjustLicenseQuantityPayload:
    return _license_payload(AdjustLicenseQuantityPayload, await resolve.adjust_license_quantity(
        info.context, node_uuid(input.license_id, "License"), input.quantity, input.reason))


@strawberry.input(description="The invitation support sends again for its organization.")
class StaffResendInvitationInput:
    invitation_id: strawberry.ID = strawberry.field(description="An Invitation ID.")
    reason: str = strawberry.field(description=REASON)


@strawberry.type(description="The result of `staffResendInvitation`.")
class StaffResendInvitationPayload:
    invitation: Invitation | None = strawberry.field(
        description="The invitation, valid for 7 more days; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="REQUIRED reason, and the errors of `resendInvitation`.")


async def staff_resend_invitation(info: Info, input: Annotated[StaffResendInvitationInput, strawberry.argument(
        description="Invitation and reason.")]) -> StaffResendInvitationPayload:
    result = await resolve.resend_invitation(info.context, node_uuid(input.invitation_id, "Invitation"), input.reason)
    return StaffResendInvitationPayload(
        invitation=Invitation.from_record(result.invitation) if result.invitation else None,
        user_errors=user_errors(result.problems))


@strawberry.type
class StaffMutations:
    change_account_email: ChangeAccountEmailPayload = strawberry.mutation(
        resolver=change_account_email,
        description="Changes an account's email. Both the "
                    "old and the new address are emailed and every session of the account ends.")
    grant_credits: GrantCreditsPayload = strawberry.mutation(
        resolver=grant_credits,
        description="Adds cloud credits to an organization's pool. "
                    "Safe to retry with an idempotency key.")
    extend_license: ExtendLicensePayload = strawberry.mutation(
        resolver=extend_license,
        description="Moves a license's expiry later.")
    adjust_license_quantity: AdjustLicenseQuantityPayload = strawberry.mutation(
        resolver=adjust_license_quantity,
        description="Sets a license's seat count, never below the seats allocated.")
    staff_resend_invitation: StaffResendInvitationPayload = strawberry.mutation(
        resolver=staff_resend_invitation,
        description="Sends an organization's invitation again on its behalf, as its `resendInvitation` would.")


MUTATIONS = StaffMutations
