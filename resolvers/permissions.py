"""Who may see what: decided from the viewer's membership, never from the input.

Customers read their own organization (its OWNER and ADMINs everything, members their own
standing). The vendor's staff, and service tokens with a read scope, read every organization
through the same fields; what they may change is decided per mutation (`require_staff`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from uuid import UUID

from auth.principals import READ_SCOPES
from auth.viewer import require_account
from datasources.errors import Forbidden
from datasources.postgres.accounts import Membership
from resolvers.context import Context

MANAGERS = frozenset({"OWNER", "ADMIN"})
MANAGERS_ONLY = "Only the organization's OWNER or ADMIN can see this."
STAFF_ONLY = "Only the vendor's staff, or a service token with the scope needed, can do this."


def staff_reader(ctx: Context, scopes: Collection[str] = READ_SCOPES) -> bool:
    """Any staff member, or a service token holding one of `scopes`."""
    viewer = ctx.viewer
    if viewer.staff_role is not None:
        return True
    return viewer.service is not None and not viewer.service.scopes.isdisjoint(scopes)


@dataclass(frozen=True)
class StaffAuthority:
    """What allowed a staff action: the staff role or service scope, recorded in the audit log."""

    scope: str


def require_staff(ctx: Context, *, roles: Collection[str], scope: str) -> StaffAuthority:
    """FORBIDDEN unless the viewer is staff in one of `roles` or a service holding `scope`."""
    viewer = ctx.viewer
    if viewer.staff_role is not None and viewer.staff_role in roles:
        return StaffAuthority(viewer.staff_role)
    if viewer.service is not None and scope in viewer.service.scopes:
        return StaffAuthority(scope)
    raise Forbidden(STAFF_ONLY)


async def viewer_membership(ctx: Context) -> Membership | None:
    if ctx.viewer.service is not None:
        return None  # a service is no one's member
    return await ctx.loaders.accounts.membership.load(require_account(ctx.viewer))


async def is_member_of(ctx: Context, organization_id: UUID) -> bool:
    mine = await viewer_membership(ctx)
    return mine is not None and mine.organization_id == organization_id


async def is_manager_of(ctx: Context, organization_id: UUID) -> bool:
    """Whether the viewer reads the organization as its managers do (staff readers included)."""
    if staff_reader(ctx):
        return True
    mine = await viewer_membership(ctx)
    return mine is not None and mine.organization_id == organization_id and mine.role in MANAGERS


async def require_manager(ctx: Context, organization_id: UUID) -> None:
    """FORBIDDEN for members; the caller has already made sure the organization is the viewer's
    (or the viewer is a staff reader, who passes here)."""
    if not await is_manager_of(ctx, organization_id):
        raise Forbidden(MANAGERS_ONLY)


async def can_see_accounts(ctx: Context, account_ids: Sequence[UUID]) -> list[bool]:
    """Yourself, or anyone in your organization when you are its OWNER or ADMIN; staff readers
    see every account. One answer per id, in order."""
    if staff_reader(ctx):
        return [True] * len(account_ids)
    viewer_id = require_account(ctx.viewer)
    # Loaded even for the viewer: every account then resolves at the same depth, in one batch.
    theirs = await ctx.loaders.accounts.membership.load_all(account_ids)
    managed = None
    if any(m is not None and a != viewer_id for a, m in zip(account_ids, theirs)):
        mine = await viewer_membership(ctx)
        managed = mine.organization_id if mine is not None and mine.role in MANAGERS else None
    return [a == viewer_id or (m is not None and m.organization_id == managed) for a, m in zip(account_ids, theirs)]

