"""Who may see what: decided from the viewer's membership, never from the input."""

from __future__ import annotations

from uuid import UUID

from auth.viewer import require_account
from datasources.errors import Forbidden
from datasources.postgres.accounts import Membership
from resolvers.context import Context

MANAGERS = frozenset({"OWNER", "ADMIN"})
MANAGERS_ONLY = "Only the organization's OWNER or ADMIN can see this."


async def viewer_membership(ctx: Context) -> Membership | None:
    return await ctx.loaders.accounts.membership.load(require_account(ctx.viewer))


async def is_member_of(ctx: Context, organization_id: UUID) -> bool:
    mine = await viewer_membership(ctx)
    return mine is not None and mine.organization_id == organization_id


async def is_manager_of(ctx: Context, organization_id: UUID) -> bool:
    mine = await viewer_membership(ctx)
    return mine is not None and mine.organization_id == organization_id and mine.role in MANAGERS


async def require_manager(ctx: Context, organization_id: UUID) -> None:
    """FORBIDDEN for members; the caller has already made sure the organization is the viewer's."""
    if not await is_manager_of(ctx, organization_id):
        raise Forbidden(MANAGERS_ONLY)


async def can_see_account(ctx: Context, account_id: UUID) -> bool:
    """Yourself, or anyone in your organization when you are its OWNER or ADMIN."""
    viewer_id = require_account(ctx.viewer)
    # Loaded even for the viewer: every account then resolves at the same depth, in one batch.
    theirs = await ctx.loaders.accounts.membership.load(account_id)
    if account_id == viewer_id:
        return True
    return theirs is not None and await is_manager_of(ctx, theirs.organization_id)
