"""Signing in and out: login, refreshToken and logout."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from resolvers import sessions as resolve
from resolvers.sessions import SessionTokens
from schema.account import Account
from schema.common import Info, UserError, user_errors

# The two expiry fields of every payload that signs in, so that a client knows when to refresh
# without decoding the token.
EXPIRES_AT = ("When `token` expires: refresh before then (or on the first UNAUTHENTICATED error) with "
              "`refreshToken`. Null when nothing was issued.")
REFRESH_TOKEN_EXPIRES_AT = ("When `refreshToken` expires if it is not traded in before: then sign in again. "
                            "Null when nothing was issued.")


def signed_in(tokens: SessionTokens | None) -> dict[str, Any]:
    """The token fields of a payload that signs in: all null when nothing was issued."""
    if tokens is None:
        return {"token": None, "refresh_token": None, "expires_at": None, "refresh_token_expires_at": None}
    return {"token": tokens.token, "refresh_token": tokens.refresh_token, "expires_at": tokens.expires_at,
            "refresh_token_expires_at": tokens.refresh_token_expires_at}


@strawberry.input(description="Credentials of an account.")
class LoginInput:
    email: str = strawberry.field(description="The account's email address (case-insensitive).")
    password: str = strawberry.field(description="The account's password.")


@strawberry.type(description="The result of `login`. Wrong credentials are the user error INVALID_CREDENTIALS, "
                             "the same whichever part was wrong; too many attempts are a RATE_LIMITED error (HTTP "
                             "429, with Retry-After).")
class LoginPayload:
    token: str | None = strawberry.field(
        description="Bearer token for the `Authorization: Bearer …` header; expires, and `logout` revokes it.")
    refresh_token: str | None = strawberry.field(
        description="Trade it with `refreshToken` for a new `token` before or after this one expires; it lasts "
                    "much longer, works once, and `logout` revokes it. Keep it secret and off URLs.")
    account: Account | None = strawberry.field(description="The account signed in.")
    user_errors: list[UserError] = strawberry.field(
        description="INVALID_CREDENTIALS for a wrong email or password; INVALID for malformed input, e.g. an "
                    "empty email.")
    expires_at: datetime | None = strawberry.field(description=EXPIRES_AT)
    refresh_token_expires_at: datetime | None = strawberry.field(description=REFRESH_TOKEN_EXPIRES_AT)


@strawberry.input(description="The refresh token to trade in.")
class RefreshTokenInput:
    refresh_token: str = strawberry.field(
        description="The latest refresh token from `login` or `refreshToken`; each one works only once.")


@strawberry.type(description="The result of `refreshToken`: a new bearer token and the refresh token to use next. "
                             "A refresh token that is unknown, expired, revoked (by `logout`) or already used is the "
                             "user error INVALID_REFRESH_TOKEN, the same whatever the reason: sign in again.")
class RefreshTokenPayload:
    token: str | None = strawberry.field(
        description="A new bearer token for the same session. Earlier bearer tokens of the session keep working "
                    "until they expire.")
    refresh_token: str | None = strawberry.field(
        description="The refresh token to present next time; the one sent is used up. Sent again within "
                    "the reuse grace, the one sent gets this same refresh token again.")
    user_errors: list[UserError] = strawberry.field(
        description="INVALID_REFRESH_TOKEN for a token that cannot be traded in; REQUIRED or INVALID for an "
                    "empty or oversized one.")
    expires_at: datetime | None = strawberry.field(description=EXPIRES_AT)
    refresh_token_expires_at: datetime | None = strawberry.field(description=REFRESH_TOKEN_EXPIRES_AT)


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
    return LoginPayload(**signed_in(result.tokens),
                        account=Account.from_record(result.account) if result.account else None,
                        user_errors=user_errors(result.problems))


async def refresh_token(info: Info, input: Annotated[RefreshTokenInput, strawberry.argument(
        description="The refresh token to trade in.")]) -> RefreshTokenPayload:
    result = await resolve.refresh(info.context, input.refresh_token)
    return RefreshTokenPayload(**signed_in(result.tokens), user_errors=user_errors(result.problems))


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
                    "working, and the answer is the user error INVALID_REFRESH_TOKEN. Within a few seconds of "
                    "its use (the reuse grace), a token presented again while its successor is unused gets "
                    "that same successor back, so two tabs refreshing at once or a retry after a lost answer "
                    "stay signed in. Needs no `Authorization` header.")
    logout: LogoutPayload = strawberry.mutation(
        resolver=logout, description="Ends the session of the token used (or all of the account's), with "
                                     "its refresh tokens.")


MUTATIONS = SessionMutations
