"""The Account menu's changes: profile and password."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import accounts as resolve_accounts
from resolvers import profile as resolve
from schema.account import Account
from schema.common import Info, UserError, user_errors


@strawberry.input(description="Profile fields to change; omitted fields stay as they are.")
class UpdateProfileInput:
    name: str | None = strawberry.field(default=None, description="Full name, 1 to 200 characters.")
    country: str | None = strawberry.field(
        default=None, description="ISO 3166-1 alpha-2 code, e.g. \"DE\"; an empty string clears it.")
    email: str | None = strawberry.field(
        default=None, description="Not changeable here: always the user error EMAIL_NOT_CHANGEABLE, with the "
                                  "support URL. Support changes emails.")


@strawberry.type(description="The result of `updateProfile`.")
class UpdateProfilePayload:
    account: Account | None = strawberry.field(description="The account as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Invalid values; nothing changes then.")


@strawberry.input(description="The current password and the new one.")
class ChangePasswordInput:
    current_password: str = strawberry.field(description="The password in use now.")
    new_password: str = strawberry.field(description="At least 10 characters, not the email.")


@strawberry.type(description="The result of `changePassword`.")
class ChangePasswordPayload:
    account: Account | None = strawberry.field(description="The account.")
    other_sessions_ended: int = strawberry.field(
        description="How many other sessions were signed out; this token stays valid.")
    user_errors: list[UserError] = strawberry.field(description="Wrong current password or a weak new one.")


async def _viewer(info: Info) -> Account:
    return Account.from_record(await resolve_accounts.viewer_account(info.context))


async def update_profile(info: Info, input: Annotated[UpdateProfileInput, strawberry.argument(
        description="What to change.")]) -> UpdateProfilePayload:
    country = input.country.strip() if input.country is not None else None
    problems = await resolve.update_profile(info.context, resolve.ProfileChange(
        name=input.name, country=country or None, clear_country=country == "", email=input.email))
    return UpdateProfilePayload(account=await _viewer(info), user_errors=user_errors(problems))


async def change_password(info: Info, input: Annotated[ChangePasswordInput, strawberry.argument(
        description="Current and new password.")]) -> ChangePasswordPayload:
    result = await resolve.change_password(info.context, input.current_password, input.new_password)
    return ChangePasswordPayload(account=await _viewer(info), other_sessions_ended=result.sessions_ended,
                                 user_errors=user_errors(result.problems))


@strawberry.type
class ProfileMutations:
    update_profile: UpdateProfilePayload = strawberry.mutation(
        resolver=update_profile, description="Changes the viewer's name or country.")
    change_password: ChangePasswordPayload = strawberry.mutation(
        resolver=change_password, description="Changes the viewer's password and signs out their other sessions.")


MUTATIONS = ProfileMutations
