"""Reading accounts and organizations, with the visibility rules of the portal."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from auth.viewer import NOT_AUTHENTICATED, require_account
from datasources.errors import Unauthenticated
from datasources.postgres.accounts import Account, Membership, Organization
from resolvers.context import Context
from planning import reads
from resolvers.permissions import is_member_of


async def viewer_account(ctx: Context) -> Account:
    viewer_id = require_account(ctx.viewer)
    # Nearly every question about the viewer needs their membership and organization next:
    # read them in the same round as the account rather than in two more.
    loaders = ctx.loaders.accounts
    for prefetch in (loaders.membership, loaders.organization_of):
        prefetch.load(viewer_id).add_done_callback(_unused)
    account = await loaders.account.load(viewer_id)
    if account is None:  # deleted while the token was alive
        raise Unauthenticated(NOT_AUTHENTICATED)
    return account


def _unused(future: "asyncio.Future[object]") -> None:
    """A prefetch nobody awaited keeps its failure to itself: asyncio would log it as lost."""
    if not future.cancelled():
        future.exception()


async def membership(ctx: Context, account_id: UUID) -> Membership | None:
    return await ctx.loaders.accounts.membership.load(account_id)


async def organization_of(ctx: Context, account_id: UUID) -> Organization | None:
    return await ctx.loaders.accounts.organization_of.load(account_id)


async def visible_account(ctx: Context, account_id: UUID) -> Account | None:
    """None for an account the viewer may not see, exactly as for one that does not exist."""
    [found] = await visible_accounts(ctx, [account_id])
    return found


async def visible_accounts(ctx: Context, account_ids: Sequence[UUID | None]) -> list[Account | None]:
    """`visible_account` for each id (None for a None id), asking the loaders once for all."""
    wanted = list(dict.fromkeys(a for a in account_ids if a is not None))
    if not wanted:
        return [None] * len(account_ids)
    found = dict(zip(wanted, await reads.visible_accounts(ctx, wanted)))
    return [found.get(a) if a is not None else None for a in account_ids]


async def visible_organization(ctx: Context, organization_id: UUID) -> Organization | None:
    """Only the organization you belong to."""
    if not await is_member_of(ctx, organization_id):
        return None
    return await ctx.loaders.accounts.organization.load(organization_id)


async def memberships(ctx: Context, account_ids: Sequence[UUID]) -> list[Membership | None]:
    """Each account's membership; the caller has checked that the viewer may see the accounts."""
    return await ctx.loaders.accounts.membership.load_all(list(account_ids))


async def accounts(ctx: Context, account_ids: Sequence[UUID]) -> list[Account | None]:
    """For a mutation's payload: the accounts it changed, which the viewer was allowed to change."""
    return await ctx.loaders.accounts.account.load_all(list(account_ids))


async def organization(ctx: Context, organization_id: UUID) -> Organization | None:
    """For a mutation's payload or a staff report: an organization the viewer was allowed to reach."""
    return await ctx.loaders.accounts.organization.load(organization_id)
