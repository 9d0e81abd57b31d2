"""Types shared by every domain: user errors and the info type resolvers receive."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum
from typing import TypeAlias, TypeVar
from uuid import UUID

import strawberry
from strawberry import relay
from strawberry.types import Info as _Info

from resolvers.context import Context
from resolvers.user_errors import Problem

Info: TypeAlias = _Info[Context, None]


@strawberry.enum(description="Why a mutation refused its input; stable, for clients to branch on.")
class UserErrorCode(Enum):
    INVALID = strawberry.enum_value("INVALID", description="A value is malformed or out of range.")
    REQUIRED = strawberry.enum_value("REQUIRED", description="A value is missing.")
    NOT_FOUND = strawberry.enum_value("NOT_FOUND", description="The object named in the input does not exist or is not visible to you.")
    NOT_ALLOWED = strawberry.enum_value("NOT_ALLOWED", description="The domain rules do not allow this change.")
    IDEMPOTENCY_KEY_REUSED = strawberry.enum_value("IDEMPOTENCY_KEY_REUSED", description="The idempotency key was already used with a different input.")
    ALREADY_MEMBER = strawberry.enum_value("ALREADY_MEMBER", description="The email already belongs to a member of the organization.")
    ALREADY_INVITED = strawberry.enum_value("ALREADY_INVITED", description="The email already has a pending invitation.")
    IN_ANOTHER_ORGANIZATION = strawberry.enum_value("IN_ANOTHER_ORGANIZATION", description="The account already belongs to another organization.")
    INVITATION_NOT_PENDING = strawberry.enum_value("INVITATION_NOT_PENDING", description="The invitation was accepted, revoked or has expired.")
    TRANSFER_NOT_PENDING = strawberry.enum_value(
        "TRANSFER_NOT_PENDING", description="The ownership hand-over was confirmed, canceled or replaced, has "
                                            "expired, or is not for you.")
    SIGN_IN_WITH_PROVIDER = strawberry.enum_value(
        "SIGN_IN_WITH_PROVIDER", description="The organization of this email signs in through its identity provider "
                                             "only: start at `/sso/start?email=…`.")
    INVALID_SIGN_IN_CODE = strawberry.enum_value(
        "INVALID_SIGN_IN_CODE", description="The corporate sign-in's one-time code was used already, has expired or "
                                            "is not one: sign in again.")
    PROVIDER_UNREACHABLE = strawberry.enum_value(
        "PROVIDER_UNREACHABLE", description="The OpenID provider named could not be read (its discovery document "
                                            "or key set), or does not name the issuer given.")
    DOMAIN_TAKEN = strawberry.enum_value(
        "DOMAIN_TAKEN", description="The email domain is confirmed for another organization.")
    NOT_CLAIMED = strawberry.enum_value("NOT_CLAIMED", description="The organization has not claimed this email domain.")
    HOLDS_SEATS = strawberry.enum_value(
        "HOLDS_SEATS", description="The member holds seats of the organization's licenses: revoke them first, or "
                                   "with the removal (`revokeSeats`).")
    OWNER_PROTECTED = strawberry.enum_value("OWNER_PROTECTED", description="The OWNER cannot be removed or demoted.")
    OWN_ROLE = strawberry.enum_value("OWN_ROLE", description="No one can change their own role.")
    NO_SEATS_AVAILABLE = strawberry.enum_value("NO_SEATS_AVAILABLE", description="The license has no free seat left for this member.")
    LICENSE_EXPIRED = strawberry.enum_value("LICENSE_EXPIRED", description="The license has expired.")
    LICENSE_SUSPENDED = strawberry.enum_value(
        "LICENSE_SUSPENDED", description="The license is suspended: its subscription's renewal is unpaid.")
    SEATS_ALLOCATED = strawberry.enum_value(
        "SEATS_ALLOCATED", description="Fewer seats than are allocated: the message says how many to revoke first.")
    PAST_DUE = strawberry.enum_value(
        "PAST_DUE", description="A renewal payment is outstanding: pay the open invoice first.")
    BILLING_NOT_SET_UP = strawberry.enum_value(
        "BILLING_NOT_SET_UP", description="The subscription is not billed through the payment provider; ask support.")
    NOT_IN_ORGANIZATION = strawberry.enum_value(
        "NOT_IN_ORGANIZATION", description="The account is not a member of the organization the change is in (the "
                                           "license's, the credit request's).")
    ALREADY_ANSWERED = strawberry.enum_value(
        "ALREADY_ANSWERED", description="The request was already approved or declined; the message says which.")
    ALREADY_ALLOCATED = strawberry.enum_value("ALREADY_ALLOCATED", description="The member already holds a seat of this license.")
    NOT_ALLOCATED = strawberry.enum_value("NOT_ALLOCATED", description="The member holds no seat of this license.")
    SEAT_LOCKED = strawberry.enum_value("SEAT_LOCKED", description="TRIAL and BETA seats cannot be revoked or reassigned.")
    FLOATING_LICENSE = strawberry.enum_value("FLOATING_LICENSE", description="A floating license has no seats to allocate or revoke.")
    CUTOFF_PASSED = strawberry.enum_value("CUTOFF_PASSED", description="Too close to the renewal date to change auto-renew.")
    NOT_RENEWABLE = strawberry.enum_value("NOT_RENEWABLE", description="The subscription does not renew (expired or canceled).")
    PAYMENT_DECLINED = strawberry.enum_value("PAYMENT_DECLINED", description="The payment provider declined the payment; see the decline reason.")
    PAYMENT_PENDING = strawberry.enum_value("PAYMENT_PENDING", description="The provider did not confirm the payment in time; retry with the same idempotency key.")
    NOT_PAYABLE = strawberry.enum_value("NOT_PAYABLE", description="The invoice is not open, or nothing is due.")
    LAST_PAYMENT_METHOD = strawberry.enum_value("LAST_PAYMENT_METHOD", description="The only payment method cannot be removed while a subscription is active.")
    EMAIL_NOT_CHANGEABLE = strawberry.enum_value("EMAIL_NOT_CHANGEABLE", description="The email can only be changed by support.")
    WRONG_PASSWORD = strawberry.enum_value("WRONG_PASSWORD", description="The current password is not correct.")
    WEAK_PASSWORD = strawberry.enum_value("WEAK_PASSWORD", description="The new password is too short or too easy to guess.")
    INVALID_CREDENTIALS = strawberry.enum_value(
        "INVALID_CREDENTIALS",
        description="`login`: the email or the password is not correct (the same answer for both, and for an "
                    "email without an account).")
    INVALID_REFRESH_TOKEN = strawberry.enum_value(
        "INVALID_REFRESH_TOKEN",
        description="`refreshToken`: the refresh token is unknown, expired, ended by `logout`, or was used before "
                    "(the same answer for each); sign in again.")


@strawberry.type(description="An expected failure of a mutation, tied to the input field that caused it.")
class UserError:
    field: list[str] | None = strawberry.field(
        description="Path to the input field at fault, e.g. [\"input\", \"email\"]; null when no single field is.")
    message: str = strawberry.field(description="A sentence to show to the person using the client.")
    code: UserErrorCode = strawberry.field(description="Machine-readable reason.")

    @classmethod
    def from_problem(cls, problem: Problem) -> "UserError":
        return cls(field=list(problem.field) or None, message=problem.message,
                   code=UserErrorCode(problem.code))


def user_errors(problems: list[Problem]) -> list[UserError]:
    return [UserError.from_problem(p) for p in problems]


R = TypeVar("R")
N = TypeVar("N")


async def resolve_visible(find: Callable[[Context, str], Awaitable[R | None]], convert: Callable[[R], N],
                          info: Info, node_ids: Iterable[str]) -> list[N | None]:
    """For `resolve_nodes`: one visibility check per id, run together so the loaders batch them.

    `find` returns None for an id the viewer may not see, exactly as for one that does not exist.
    """
    found = await asyncio.gather(*(find(info.context, raw) for raw in node_ids))
    return [convert(r) if r is not None else None for r in found]


def parse_uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


def by_uuid(find: Callable[[Context, UUID], Awaitable[R | None]]) -> Callable[[Context, str], Awaitable[R | None]]:
    """Adapts a finder by UUID to raw node ids, where a malformed id finds nothing."""

    async def by_raw(ctx: Context, raw: str) -> R | None:
        uuid = parse_uuid(raw)
        return await find(ctx, uuid) if uuid else None

    return by_raw


# Types renamed after clients could store their IDs (the README's changelog): an ID naming the
# former type finds the same object, wherever an ID is read.
FORMER_TYPE_NAMES = {"CreditGrant": "CloudCredit", "CreditUsage": "CloudCreditUsage",
                     "CreditRequest": "CloudCreditRequest"}


def global_id_of(raw: str) -> relay.GlobalID | None:
    """The type and object id inside a global ID, a former type name read as today's; None for
    a malformed ID."""
    try:
        global_id = relay.GlobalID.from_id(raw)
    except ValueError:  # strawberry's GlobalIDValueError included
        return None
    renamed = FORMER_TYPE_NAMES.get(global_id.type_name)
    return relay.GlobalID(renamed, global_id.node_id) if renamed else global_id


def node_id_of(raw: str | None, type_name: str) -> str | None:
    """The object id inside a global ID of `type_name`; None for a malformed ID or another type's,
    which callers answer exactly as for an unknown object."""
    global_id = global_id_of(raw) if raw is not None else None
    return global_id.node_id if global_id is not None and global_id.type_name == type_name else None


def node_uuid(raw: str | None, type_name: str) -> UUID | None:
    found = node_id_of(raw, type_name)
    return parse_uuid(found) if found is not None else None
