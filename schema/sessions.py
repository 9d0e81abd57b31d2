"""Signing in and out: login and logout."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import sessions as resolve
from schema.account import Account
from schema.common import Info, UserError, user_errors


@strawberry.input(description="Credentials of an account.")
class LoginInput:
    email: str = strawberry.field(description="The account's email address (case-insensitive).")
    password: str = strawberry.field(description="The account's password.")


@strawberry.type(description="The result of `login`. Wrong credentials are an UNAUTHENTICATED error, "
                             "the same whichever part was wrong.")
class LoginPayload:
    token: str | None = strawberry.field(
        description="Bearer token for the `Authorization: Bearer …` header; expires, and `logout` revokes it.")
    account: Account | None = strawberry.field(description="The account signed in.")
    user_errors: list[UserError] = strawberry.field(description="Malformed input, e.g. an empty email.")


@strawberry.input(description="Which sessions to end.")
class LogoutInput:
    all_sessions: bool = strawberry.field(
        default=False, description="End every session of the account, not only this token's.")


@strawberry.type(description="The result of `logout`.")
class LogoutPayload:
    revoked: int = strawberry.field(description="How many sessions were ended.")
    user_errors: list[UserError] = strawberry.field(description="Always empty; kept for the mutation contract.")


async def login(info: Info, input: Annotated[LoginInput, strawberry.argument(description="Email and password.")]) -> LoginPayload:
    result = await resolve.login(info.context, input.email, input.password)
    return LoginPayload(token=result.token,
                        account=Account.from_record(result.account) if result.account else None,
                        user_errors=user_errors(result.problems))


async def logout(info: Info, input: Annotated[LogoutInput, strawberry.argument(description="Which sessions to end.")]) -> LogoutPayload:
    revoked = await resolve.logout(info.context, all_sessions=input.all_sessions)
    return LogoutPayload(revoked=revoked, user_errors=[])


@strawberry.type
class SessionMutations:
    login: LoginPayload = strawberry.mutation(
        resolver=login, description="Signs in with email and password and returns a bearer token.")
    logout: LogoutPayload = strawberry.mutation(
        resolver=logout, description="Ends the session of the token used (or all of the account's).")


MUTATIONS = SessionMutations
