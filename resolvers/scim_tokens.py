"""The organization's SCIM tokens: the OWNER makes and revokes them; the identity provider
presents one as `Authorization: Bearer <token>` on /scim/v2/ (resolvers/scim.py).

The secret is shown once, in the payload of `createScimToken`; only its SHA-256 is kept. A
token names its organization and nothing else: it is no one's account, and reaches /scim/v2/
only.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass, field
from uuid import UUID

from datasources.errors import NotFound
from datasources.postgres import ownership as roles
from datasources.postgres import scim as data
from datasources.postgres.scim import ScimToken
from resolvers.context import Context
from resolvers.people import viewer_organization_id
from resolvers.permissions import require
from resolvers.user_errors import Problem
from resolvers.user_errors import Refused as _Refused
from resolvers.writes import (NOT_FOUND, after_write, audit_refusal, audit_success, require_change,
                              require_change_in)

TOKEN_PREFIX = "scim_"
MAX_NAME_LENGTH = 100
MAX_LIVE_TOKENS = 20
CREATE = "scim.token_create"
REVOKE = "scim.token_revoke"
OWNER_ONLY = "Only the OWNER can create and revoke SCIM tokens."


@dataclass(frozen=True)
class TokenResult:
    token: ScimToken | None = None
    secret: str | None = None  # only when created, shown once
    problems: list[Problem] = field(default_factory=list)


def new_secret() -> str:
    # 32 random bytes; the prefix tells a SCIM token from the other bearer tokens at a glance.
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    """Only this is stored; 256 random bits need no slow hash (nothing to guess from it)."""
    return hashlib.sha256(secret.encode()).digest()


def is_scim_secret(secret: str) -> bool:
    return secret.startswith(TOKEN_PREFIX) and len(secret) <= 200


def _problem(field_name: str, message: str, code: str) -> Problem:
    return Problem(("input", field_name), message, code)


async def scim_tokens(ctx: Context, organization_id: UUID) -> list[ScimToken]:
    """For `Organization.scimTokens`: FORBIDDEN unless the access table lets the viewer read them."""
    await require(ctx, "Organization.scimTokens", organization_id)
    return await data.tokens_of(ctx.db, organization_id)


async def create_scim_token(ctx: Context, name: str) -> TokenResult:
    """A new token of the viewer's organization, for its OWNER only (an ADMIN gets NOT_ALLOWED)."""
    await require_change(ctx, "createScimToken")
    organization_id = await viewer_organization_id(ctx)
    if organization_id is None:
        raise NotFound(NOT_FOUND)
    actor = await require_change_in(ctx, "createScimToken", organization_id)
    name = name.strip()
    try:
        if not name:
            raise _Refused(_problem("name", "Name the token after the identity provider that will use it.",
                                    "REQUIRED"))
        if len(name) > MAX_NAME_LENGTH or any(unicodedata.category(c)[0] == "C" for c in name):
            raise _Refused(_problem("name", f"A token name has at most {MAX_NAME_LENGTH} characters, on one line.",
                                    "INVALID"))
        async with ctx.db.transaction() as conn:
            held = await roles.lock_roles(conn, organization_id, [actor])
            if held.get(actor) != "OWNER":
                raise _Refused(_problem("name", OWNER_ONLY, "NOT_ALLOWED"))
            live = [t for t in await data.tokens_of(conn, organization_id) if t.revoked_at is None]
            if len(live) >= MAX_LIVE_TOKENS:
                raise _Refused(_problem("name", f"An organization has at most {MAX_LIVE_TOKENS} live SCIM tokens; "
                                                "revoke one first.", "NOT_ALLOWED"))
            secret = new_secret()
            token = await data.create_token(conn, organization_id=organization_id, name=name,
                                            token_hash=hash_secret(secret), created_by=actor)
            await audit_success(conn, ctx, organization_id=organization_id, action=CREATE, target=f"ScimToken:{token.id}",
                                details={"tokenId": token.id, "name": name})
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=organization_id, action=CREATE, target=None,
                            problems=refused.problems)
        return TokenResult(problems=refused.problems)
    after_write(ctx)
    return TokenResult(token=token, secret=secret)


async def revoke_scim_token(ctx: Context, token_id: UUID | None) -> TokenResult:
    """Revokes a token of the viewer's organization: the next SCIM request with it gets 401.
    Revoking a revoked token changes nothing. Another organization's token is NOT_FOUND."""
    await require_change(ctx, "revokeScimToken")
    organization_id = await viewer_organization_id(ctx)
    if organization_id is None:
        raise NotFound(NOT_FOUND)
    actor = await require_change_in(ctx, "revokeScimToken", organization_id)
    target = f"ScimToken:{token_id}"
    try:
        async with ctx.db.transaction() as conn:
            held = await roles.lock_roles(conn, organization_id, [actor])
            found = await data.token_for_update(conn, token_id) if token_id else None
            if found is None or found.organization_id != organization_id:
                raise NotFound(NOT_FOUND)
            if held.get(actor) != "OWNER":
                raise _Refused(_problem("tokenId", OWNER_ONLY, "NOT_ALLOWED"))
            token = await data.revoke_token(conn, found.id)
            if found.revoked_at is None:
                await audit_success(conn, ctx, organization_id=organization_id, action=REVOKE, target=target,
                                    details={"tokenId": token.id, "name": token.name})
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=organization_id, action=REVOKE, target=target,
                            problems=refused.problems)
        return TokenResult(problems=refused.problems)
    after_write(ctx)
    return TokenResult(token=token)
