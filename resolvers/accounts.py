"""Reading accounts and organizations, with the visibility rules of the portal."""

from __future__ import annotations

from uuid import UUID

from auth.viewer import NOT_AUTHENTICATED, require_account
from datasources.errors import Unauthenticated
from datasources.postgres.accounts import Account, Membership, Organization
from resolvers.context import Context

MANAGERS = frozenset({"OWNER", "ADMIN"})


async def viewer_account(ctx: Context) -> Account:
    account_id = require_account(ctx.viewer)
    account = await ctx.loaders.account.load(account_id)
    if account is None:  # deleted while the token was alive
        raise Unauthenticated(NOT_AUTHENTICATED)
    return account


async def membership(ctx: Context, account_id: UUID) -> Membership | None:
    return await ctx.loaders.membership.load(account_id)


async def organization_of(ctx: Context, account_id: UUID) -> Organization | None:
    found = await membership(ctx, account_id)
    return await ctx.loaders.organization.load(found.organization_id) if found else None


async def visible_account(ctx: Context, account_id: UUID) -> Account | None:
    """Yourself, or anyone in your organization when you are its OWNER or ADMIN."""
    viewer_id = require_account(ctx.viewer)
    if account_id != viewer_id:
        mine, theirs = await ctx.loaders.membership.load_many([viewer_id, account_id])
        if not (mine and theirs and mine.role in MANAGERS
                and mine.organization_id == theirs.organization_id):
            return None
    return await ctx.loaders.account.load(account_id)


async def visible_organization(ctx: Context, organization_id: UUID) -> Organization | None:
    """Only the organization you belong to."""
    mine = await membership(ctx, require_account(ctx.viewer))
    if mine is None or mine.organization_id != organization_id:
        return None
    return await ctx.loaders.organization.load(organization_id)
