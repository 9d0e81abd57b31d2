"""SCIM provisioning: the organization's SCIM tokens, and the mutations that make and revoke them.

The endpoints themselves are not GraphQL: an identity provider speaks SCIM 2.0 at /scim/v2/
(gateway/scim.py) with one of these tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry import relay

from datasources.postgres.scim import ScimToken as ScimTokenRecord
from resolvers import scim_tokens as resolve
from schema.common import Info, UserError, node_uuid, user_errors
from schema.references import AccountRef, visible_account_node


@strawberry.type(description="A bearer token an identity provider (Okta, Entra ID...) uses to provision the "
                             "organization's people over SCIM 2.0 at `/scim/v2/`. The secret is shown once, by "
                             "`createScimToken`, and never again.")
class ScimToken:
    id: strawberry.ID = strawberry.field(description="The token's ID, for `revokeScimToken`.")
    name: str = strawberry.field(description="What the OWNER named it, e.g. the identity provider using it.")
    created_at: datetime = strawberry.field(description="When it was created.")
    last_used_at: datetime | None = strawberry.field(
        description="When a SCIM request last presented it (to the minute); null if never.")
    revoked_at: datetime | None = strawberry.field(
        description="When it was revoked; null while it works. A revoked token gets 401 on every request.")
    created_by_id: strawberry.Private[UUID | None]

    @classmethod
    def from_record(cls, token: ScimTokenRecord) -> "ScimToken":
        return cls(id=strawberry.ID(relay.to_base64("ScimToken", str(token.id))), name=token.name,
                   created_at=token.created_at, last_used_at=token.last_used_at, revoked_at=token.revoked_at,
                   created_by_id=token.created_by)

    @strawberry.field(description="The OWNER who created it; null once that account is gone or not visible.")
    async def created_by(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.created_by_id)


async def scim_tokens(info: Info, organization_id: UUID) -> list[ScimToken]:
    """For `Organization.scimTokens`; FORBIDDEN unless the access table allows it."""
    return [ScimToken.from_record(t) for t in await resolve.scim_tokens(info.context, organization_id)]


@strawberry.input(description="A new SCIM token for the viewer's organization.")
class CreateScimTokenInput:
    name: str = strawberry.field(description="A name for it, e.g. \"Okta\": 1 to 100 characters, on one line.")


@strawberry.type(description="The result of `createScimToken`.")
class CreateScimTokenPayload:
    scim_token: ScimToken | None = strawberry.field(description="The token made; null when refused.")
    secret: str | None = strawberry.field(
        description="The bearer token itself (`scim_…`), shown this once: give it to the identity provider with "
                    "the base URL `/scim/v2/`. Only a hash of it is kept.")
    user_errors: list[UserError] = strawberry.field(
        description="NOT_ALLOWED (only the OWNER makes SCIM tokens; at most 20 live ones), REQUIRED or INVALID "
                    "name.")


async def create_scim_token(info: Info, input: Annotated[CreateScimTokenInput, strawberry.argument(
        description="The token's name.")]) -> CreateScimTokenPayload:
    result = await resolve.create_scim_token(info.context, input.name)
    return CreateScimTokenPayload(scim_token=ScimToken.from_record(result.token) if result.token else None,
                                  secret=result.secret, user_errors=user_errors(result.problems))


@strawberry.input(description="The SCIM token to revoke.")
class RevokeScimTokenInput:
    token_id: strawberry.ID = strawberry.field(description="A ScimToken's `id`.")


@strawberry.type(description="The result of `revokeScimToken`: the token gets 401 from the next request on.")
class RevokeScimTokenPayload:
    scim_token: ScimToken | None = strawberry.field(description="The token, revoked; null when refused.")
    user_errors: list[UserError] = strawberry.field(description="NOT_ALLOWED: only the OWNER revokes SCIM tokens.")


async def revoke_scim_token(info: Info, input: Annotated[RevokeScimTokenInput, strawberry.argument(
        description="Which token.")]) -> RevokeScimTokenPayload:
    result = await resolve.revoke_scim_token(info.context, node_uuid(input.token_id, "ScimToken"))
    return RevokeScimTokenPayload(scim_token=ScimToken.from_record(result.token) if result.token else None,
                                  user_errors=user_errors(result.problems))


@strawberry.type
class ScimMutations:
    create_scim_token: CreateScimTokenPayload = strawberry.mutation(
        resolver=create_scim_token,
        description="Makes a SCIM token for the viewer's organization and shows its secret once. Only the OWNER "
                    "may; the change is in the audit log.")
    revoke_scim_token: RevokeScimTokenPayload = strawberry.mutation(
        resolver=revoke_scim_token,
        description="Revokes one of the organization's SCIM tokens (revoking a revoked one changes nothing). Only "
                    "the OWNER may; the change is in the audit log.")


MUTATIONS = ScimMutations
