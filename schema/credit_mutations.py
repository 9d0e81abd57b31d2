"""Cloud credits: setCreditAccess, requestCredits and setCreditPoolAlert."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import accounts as resolve_accounts
from resolvers import credit_changes as resolve
from schema.common import Info, UserError, node_uuid, user_errors
from resolvers import people as resolve_people
from schema.credits import CloudCreditAccessMode, CloudCreditMember, CloudCreditPool, CloudCreditRequest


@strawberry.input(description="New credit access for members of the viewer's organization.")
class SetCreditAccessInput:
    account_ids: list[strawberry.ID] = strawberry.field(description="The members to change, 1 to 100.")
    mode: CloudCreditAccessMode = strawberry.field(description="Their new access.")
    quota: int | None = strawberry.field(
        default=None, description="For QUOTA: the ceiling in credits, 0 or more. Leave it out for DISABLED and "
                                  "UNLIMITED.")


@strawberry.type(description="The result of `setCreditAccess`. Each member named got the new access and, when it "
                             "changed, an email saying so.")
class SetCreditAccessPayload:
    members: list[CloudCreditMember] = strawberry.field(
        description="The members named that belong to the organization, with their access now, in input order.")
    user_errors: list[UserError] = strawberry.field(
        description="Per account (field [\"input\", \"accountIds\", \"<index>\"]): NOT_IN_ORGANIZATION. For the "
                    "whole request: INVALID (a quota missing, negative, or given for another mode).")


@strawberry.input(description="A member's request for more cloud credits.")
class RequestCreditsInput:
    amount: int = strawberry.field(description="Credits asked for, 1 to 1,000,000.")
    note: str = strawberry.field(default="", description="Why, for the admins; at most 1,000 characters.")


@strawberry.type(description="The result of `requestCredits`. The organization's OWNER and ADMINs were emailed.")
class RequestCreditsPayload:
    request: CloudCreditRequest | None = strawberry.field(description="The request, pending until an admin answers it.")
    user_errors: list[UserError] = strawberry.field(description="INVALID amount or note.")


async def set_credit_access(
    info: Info, input: Annotated[SetCreditAccessInput, strawberry.argument(description="Members and access.")]
) -> SetCreditAccessPayload:
    result = await resolve.set_credit_access(info.context, [node_uuid(a, "Account") for a in input.account_ids],
                                             input.mode.value, input.quota)
    accounts = await resolve_accounts.accounts(info.context, result.account_ids)
    return SetCreditAccessPayload(
        members=CloudCreditMember.list_of([a for a in accounts if a is not None], result.organization_id),
        user_errors=user_errors(result.problems))


async def request_credits(
    info: Info, input: Annotated[RequestCreditsInput, strawberry.argument(description="Amount and note.")]
) -> RequestCreditsPayload:
    result = await resolve.request_credits(info.context, input.amount, input.note)
    return RequestCreditsPayload(request=CloudCreditRequest.from_record(result.request) if result.request else None,
                                 user_errors=user_errors(result.problems))


@strawberry.input(description="The credit access an approval gives the member who asked.")
class CreditAccessInput:
    mode: CloudCreditAccessMode = strawberry.field(description="Their new access.")
    quota: int | None = strawberry.field(
        default=None, description="For QUOTA: the ceiling in credits in total (used credits count), 0 or more; "
                                  "to let them spend the amount asked for, their `used` plus that amount. Leave "
                                  "it out for DISABLED and UNLIMITED.")


@strawberry.input(description="An approval of a pending credit request.")
class ApproveCreditRequestInput:
    request_id: strawberry.ID = strawberry.field(description="The request (a CloudCreditRequest ID).")
    access: CreditAccessInput = strawberry.field(description="The access the member who asked gets.")
    note: str = strawberry.field(default="", description="For the member who asked; at most 1,000 characters.")


@strawberry.input(description="A refusal of a pending credit request.")
class DeclineCreditRequestInput:
    request_id: strawberry.ID = strawberry.field(description="The request (a CloudCreditRequest ID).")
    note: str = strawberry.field(default="", description="Why, for the member who asked; at most 1,000 "
                                                         "characters.")


@strawberry.type(description="An answer to a credit request (never in the schema on its own).")
class _AnswerPayload:
    request: CloudCreditRequest | None = strawberry.field(
        description="The request as it stands now (also when the answer was refused).")
    user_errors: list[UserError] = strawberry.field(
        description="ALREADY_ANSWERED (someone answered first; nothing changed), NOT_IN_ORGANIZATION (approving "
                    "for someone who has left: decline instead), INVALID access or note.")


@strawberry.type(description="The result of `approveCreditRequest`. The member who asked gets the "
                             "CREDIT_REQUEST_RESOLVED event and, unless they turned it off, a mail.")
class ApproveCreditRequestPayload(_AnswerPayload):
    pass


@strawberry.type(description="The result of `declineCreditRequest`. The member who asked gets the "
                             "CREDIT_REQUEST_RESOLVED event and, unless they turned it off, a mail.")
class DeclineCreditRequestPayload(_AnswerPayload):
    pass


async def approve_credit_request(
    info: Info, input: Annotated[ApproveCreditRequestInput, strawberry.argument(description="Request and access.")]
) -> ApproveCreditRequestPayload:
    result = await resolve.approve_credit_request(info.context, node_uuid(input.request_id, "CloudCreditRequest"),
                                                  input.access.mode.value, input.access.quota, input.note)
    return ApproveCreditRequestPayload(request=_request(result), user_errors=user_errors(result.problems))


async def decline_credit_request(
    info: Info, input: Annotated[DeclineCreditRequestInput, strawberry.argument(description="Request and note.")]
) -> DeclineCreditRequestPayload:
    result = await resolve.decline_credit_request(info.context, node_uuid(input.request_id, "CloudCreditRequest"),
                                                  input.note)
    return DeclineCreditRequestPayload(request=_request(result), user_errors=user_errors(result.problems))


def _request(result: resolve.AnswerResult) -> CloudCreditRequest | None:
    return CloudCreditRequest.from_record(result.request) if result.request else None


@strawberry.input(description="When to warn the organization's OWNER and ADMINs that the credit pool runs low.")
class SetCreditPoolAlertInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="The organization whose pool it is (an Organization ID); by default the viewer's "
                                  "own. You must be its OWNER or an ADMIN.")
    threshold: int | None = strawberry.field(
        description="Warn when the balance is at or under this many credits: 0 to 1,000,000,000 whole credits. "
                    "null turns the alert off.")


@strawberry.type(description="The result of `setCreditPoolAlert`.")
class SetCreditPoolAlertPayload:
    pool: CloudCreditPool | None = strawberry.field(
        description="The pool with its `lowBalanceThreshold` now (also when the input was refused).")
    user_errors: list[UserError] = strawberry.field(
        description="INVALID threshold (negative or over 1,000,000,000); then nothing changed.")


async def set_credit_pool_alert(
    info: Info, input: Annotated[SetCreditPoolAlertInput, strawberry.argument(description="Pool and threshold.")]
) -> SetCreditPoolAlertPayload:
    organization_id = (node_uuid(input.organization_id, "Organization") if input.organization_id is not None
                       else await resolve_people.viewer_organization_id(info.context))
    result = await resolve.set_credit_pool_alert(info.context, organization_id, input.threshold)
    return SetCreditPoolAlertPayload(
        pool=CloudCreditPool(organization_id=result.organization_id) if result.organization_id else None,
        user_errors=user_errors(result.problems))


@strawberry.type
class CreditMutations:
    set_credit_access: SetCreditAccessPayload = strawberry.mutation(
        resolver=set_credit_access,
        description="Sets members' cloud-credit access: DISABLED, UNLIMITED, or a QUOTA. Each member whose access "
                    "changes is emailed. OWNER/ADMIN of the viewer's organization only.")
    request_credits: RequestCreditsPayload = strawberry.mutation(
        resolver=request_credits,
        description="Asks the organization's OWNER and ADMINs for more cloud credits; they are emailed. Any "
                    "member may ask.")
    approve_credit_request: ApproveCreditRequestPayload = strawberry.mutation(
        resolver=approve_credit_request,
        description="Approves a pending credit request: the member who asked gets the access named (a quota, "
                    "say) and is told. A request is answered once.")
    decline_credit_request: DeclineCreditRequestPayload = strawberry.mutation(
        resolver=decline_credit_request,
        description="Declines a pending credit request with a note for the member who asked, who is told. A "
                    "request is answered once.")
    set_credit_pool_alert: SetCreditPoolAlertPayload = strawberry.mutation(
        resolver=set_credit_pool_alert,
        description="Sets the credit pool balance at or under which the OWNER and ADMINs are warned (once per "
                    "crossing: again only after the balance was back above it), or turns the alert off.")


MUTATIONS = CreditMutations
