"""Seats: allocateLicense and revokeLicense."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import strawberry

from planning import ids
from resolvers import entitlements as resolve_entitlements
from resolvers import seats as resolve
from schema.common import Info, UserError, node_uuid, user_errors
from schema.license import License, LicenseAllocation


def account_id(uuid: UUID) -> strawberry.ID:
    return strawberry.ID(ids.global_id("Account", uuid))


async def license_node(info: Info, license_id: UUID) -> License | None:
    found = await resolve_entitlements.license(info.context, license_id)
    return License.from_record(found) if found else None


@strawberry.input(description="Seats of one NAMED license to allocate to members of its organization.")
class AllocateLicenseInput:
    license_id: strawberry.ID = strawberry.field(description="The license to allocate seats of.")
    account_ids: list[strawberry.ID] = strawberry.field(
        description="The members who get a seat, 1 to 100; when seats run out, the first ones listed get them.")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Any unique string up to 200 characters. A retry with the same key and input gets the "
                    "first result again instead of allocating twice; the same key with another input is "
                    "IDEMPOTENCY_KEY_REUSED. A request refused as a whole stores nothing under its key.")


@strawberry.type(description="The result of `allocateLicense`. Members who could get a seat got one; each "
                             "one who could not has a user error at their index in `accountIds`.")
class AllocateLicensePayload:
    license: License | None = strawberry.field(description="The license, with its counts after the change.")
    allocations: list[LicenseAllocation] = strawberry.field(
        description="The seats this request allocated, in the order of `accountIds`.")
    user_errors: list[UserError] = strawberry.field(
        description="Per account (field [\"input\", \"accountIds\", \"<index>\"]): NOT_IN_ORGANIZATION, "
                    "ALREADY_ALLOCATED, NO_SEATS_AVAILABLE. For the whole request: LICENSE_EXPIRED, "
                    "FLOATING_LICENSE, INVALID, IDEMPOTENCY_KEY_REUSED.")


@strawberry.input(description="Seats of one NAMED license to take back from members.")
class RevokeLicenseInput:
    license_id: strawberry.ID = strawberry.field(description="The license to revoke seats of.")
    account_ids: list[strawberry.ID] = strawberry.field(description="The members whose seat to revoke, 1 to 100.")


@strawberry.type(description="The result of `revokeLicense`. Seats held were revoked; each account holding "
                             "none has a user error at its index in `accountIds`.")
class RevokeLicensePayload:
    license: License | None = strawberry.field(description="The license, with its counts after the change.")
    revoked_account_ids: list[strawberry.ID] = strawberry.field(
        description="The accounts whose seat this request revoked.")
    user_errors: list[UserError] = strawberry.field(
        description="Per account (field [\"input\", \"accountIds\", \"<index>\"]): NOT_ALLOCATED. For the whole "
                    "request: SEAT_LOCKED (TRIAL and BETA seats), FLOATING_LICENSE, INVALID.")


async def allocate_license(
    info: Info, input: Annotated[AllocateLicenseInput, strawberry.argument(description="The license and members.")]
) -> AllocateLicensePayload:
    result = await resolve.allocate_license(
        info.context, node_uuid(input.license_id, "License"),
        [node_uuid(a, "Account") for a in input.account_ids], input.idempotency_key)
    return AllocateLicensePayload(license=await license_node(info, result.license_id),
                                  allocations=[LicenseAllocation.from_record(a) for a in result.allocations],
                                  user_errors=user_errors(result.problems))


async def revoke_license(
    info: Info, input: Annotated[RevokeLicenseInput, strawberry.argument(description="The license and members.")]
) -> RevokeLicensePayload:
    result = await resolve.revoke_license(info.context, node_uuid(input.license_id, "License"),
                                          [node_uuid(a, "Account") for a in input.account_ids])
    return RevokeLicensePayload(license=await license_node(info, result.license_id),
                                revoked_account_ids=[account_id(a) for a in result.revoked],
                                user_errors=user_errors(result.problems))


@strawberry.type
class SeatMutations:
    allocate_license: AllocateLicensePayload = strawberry.mutation(
        resolver=allocate_license,
        description="Allocates seats of a NAMED license to members of its organization: never more than the "
                    "license's quantity, also under concurrent requests. OWNER/ADMIN of that organization only. "
                    "A free seat of a TRIAL or BETA license may be allocated, but it cannot be revoked after.")
    revoke_license: RevokeLicensePayload = strawberry.mutation(
        resolver=revoke_license,
        description="Takes seats of a NAMED license back from members. TRIAL and BETA seats cannot be revoked. "
                    "OWNER/ADMIN of the license's organization only.")


MUTATIONS = SeatMutations
