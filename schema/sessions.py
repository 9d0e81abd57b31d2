"""Signing in and out: login, refreshToken and logout."""

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
    refresh_token: str | None = strawberry.field(
        description="Trade it with `refreshToken` for a new `token` before or after this one expires; it lasts "
                    "much longer, works once, and `logout` revokes it. Keep it secret and off URLs.")
    account: Account | None = strawberry.field(description="The account signed in.")
    user_errors: list[UserError] = strawberry.field(description="Malformed input, e.g. an empty email.")


@strawberry.input(description="The refresh token to trade in.")
class RefreshTokenInput:
    refresh_token: str = strawberry.field(
        description="The latest refresh token from `login` or `refreshToken`; each one works only once.")


@strawberry.type(description="The result of `refreshToken`: a new bearer token and the refresh token to use next. "
                             "A refresh token that is unknown, expired, revoked (by `logout`) or already used is an "
                             "UNAUTHENTICATED error, the same whatever the reason: sign in again.")
class RefreshTokenPayload:
    token: str | None = strawberry.field(
        description="A new bearer token for the same session. Earlier bearer tokens of the session keep working "
                    "until they expire.")
    refresh_token: str | None = strawberry.field(
        description="The refresh token to present next time; the one sent is used up.")
    user_errors: list[UserError] = strawberry.field(description="Malformed input: an empty or oversized token.")


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
    return LoginPayload(token=result.token, refresh_token=result.refresh_token,
                        account=Account.from_record(result.account) if result.account else None,
                        user_errors=user_errors(result.problems))


async def refresh_token(info: Info, input: Annotated[RefreshTokenInput, strawberry.argument(
        description="The refresh token to trade in.")]) -> RefreshTokenPayload:
    result = await resolve.refresh(info.context, input.refresh_token)
    return RefreshTokenPayload(token=result.token, refresh_token=result.refresh_token,
                               user_errors=user_errors(result.problems))


async def logout(info: Info, input: Annotated[LogoutInput, strawberry.argument(description="Which sessions to end.")]) -> LogoutPayload:
    revoked = await resolve.logout(info.context, all_sessions=input.all_sessions)
    return LogoutPayload(revoked=revoked, user_errors=[])


@strawberry.type
class SessionMutations:
    login: LoginPayload = strawberry.mutation(
        resolver=login, description="Signs in with email and password and returns a bearer token.")
    refresh_token: RefreshTokenPayload = strawberry.mutation(
        resolver=refresh_token,
        description="Trades a refresh token for a new bearer token and a new refresh token (rotation). Each "
                    "refresh token works once: presenting a used one again is taken as theft, and ends the "
                    "session it belongs to, so every refresh token and bearer token of that sign-in stops "
                    "working, and the request is an UNAUTHENTICATED error. Send one refresh at a time: two "
                    "at once with the same token are a reuse too. Needs no `Authorization` header.")
    logout: LogoutPayload = strawberry.mutation(
        resolver=logout, description="Ends the session of the token used (or all of the account's), with "
                                     "its refresh tokens.")


MUTATIONS = SessionMutations
