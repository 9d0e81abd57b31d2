"""Who may see what: the viewer's kinds, decided from their membership, staff role or service
scopes (never from the input), looked up in the one table `auth.access`.

Customers reach their own organization; the vendor's staff and services reach every
organization, each only the rows of the table given to its role or scopes. Everyone reads
their own account, seats and credit access; the callers say where that applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from auth import access
from auth.viewer import require_account
from datasources.errors import Forbidden
from datasources.postgres.accounts import Membership
from resolvers.context import Context

MANAGERS = frozenset({"OWNER", "ADMIN"})


def refusal(coordinate: str) -> str:
    return f"Not allowed: {access.ROW_OF[coordinate].name} is for {access.who(coordinate)} only."


def kinds_everywhere(ctx: Context) -> frozenset[str]:
    """The viewer's kinds that hold in every organization: a staff role, or a service's scopes."""
    viewer = ctx.viewer
    if viewer.service is not None:
        return viewer.service.scopes
    if viewer.account_id is None:
        return frozenset({access.ANONYMOUS})
    return frozenset({viewer.staff_role}) if viewer.staff_role else frozenset()


def kinds_with(everywhere: frozenset[str], mine: Membership | None, organization_id: UUID | None) -> frozenset[str]:
    """`everywhere`, and MEMBER or OWNER/ADMIN when `organization_id` is the viewer's own (`mine`)."""
    if mine is None or organization_id is None or mine.organization_id != organization_id:
        return everywhere
    return everywhere | {access.MANAGER if mine.role in MANAGERS else access.MEMBER}


async def kinds_in(ctx: Context, organization_id: UUID | None) -> frozenset[str]:
    """The viewer's kinds in this organization."""
    everywhere = kinds_everywhere(ctx)
    if ctx.viewer.account_id is None:
        return everywhere
    return kinds_with(everywhere, await viewer_membership(ctx), organization_id)


async def may(ctx: Context, coordinate: str, organization_id: UUID | None) -> bool:
    return access.allows(await kinds_in(ctx, organization_id), coordinate)


async def require(ctx: Context, coordinate: str, organization_id: UUID | None) -> None:
    """FORBIDDEN unless the table lets the viewer reach `coordinate` in this organization."""
    if not await may(ctx, coordinate, organization_id):
        raise Forbidden(refusal(coordinate))


def may_everywhere(ctx: Context, coordinate: str) -> bool:
    return access.allows(kinds_everywhere(ctx), coordinate)


def require_everywhere(ctx: Context, coordinate: str) -> None:
    """FORBIDDEN unless the viewer reaches `coordinate` in every organization (staff, services)."""
    if not may_everywhere(ctx, coordinate):
        raise Forbidden(refusal(coordinate))


@dataclass(frozen=True)
class Reach:
    """Where the viewer reaches a coordinate: every organization, or `organization` (their own) only."""

    everywhere: bool
    organization: UUID | None


async def reach(ctx: Context, coordinate: str) -> Reach:
    """For the compiled SQL, which applies the table's rows to many organizations at once."""
    everywhere = kinds_everywhere(ctx)
    mine = await viewer_membership(ctx) if ctx.viewer.account_id is not None else None
    own = mine.organization_id if mine else None
    return Reach(access.allows(everywhere, coordinate),
                 own if access.allows(kinds_with(everywhere, mine, own), coordinate) else None)


@dataclass(frozen=True)
class StaffAuthority:
    """What allowed a staff action: the staff role or service scope, recorded in the audit log."""

    scope: str


def require_staff(ctx: Context, mutation: str) -> StaffAuthority:
    """FORBIDDEN unless the viewer's staff role or a service scope it holds may run `mutation`."""
    used = access.allowing(kinds_everywhere(ctx), mutation)
    if used is None:
        raise Forbidden(refusal(mutation))
    return StaffAuthority(used)


async def viewer_membership(ctx: Context) -> Membership | None:
    if ctx.viewer.service is not None:
        return None  # a service is no one's member
    return await ctx.loaders.accounts.membership.load(require_account(ctx.viewer))


async def manages(ctx: Context, organization_id: UUID) -> bool:
    """Whether the viewer is an OWNER or ADMIN of this organization: the one rule for the
    customers' own changes (`resolvers.writes.require_manager_of`) and `viewerCanManage…`.
    Staff and services change organizations only through the staff mutations of the table."""
    if ctx.viewer.account_id is None or ctx.viewer.service is not None:
        return False
    mine = await viewer_membership(ctx)
    return mine is not None and mine.organization_id == organization_id and mine.role in MANAGERS


async def is_member_of(ctx: Context, organization_id: UUID) -> bool:
    mine = await viewer_membership(ctx)
    return mine is not None and mine.organization_id == organization_id


async def can_see_accounts(ctx: Context, account_ids: Sequence[UUID]) -> list[bool]:
    """Yourself, and whoever the table lets you see in their organization ("Account"). One
    answer per id, in order."""
    if may_everywhere(ctx, "Account"):
        return [True] * len(account_ids)
    viewer_id = require_account(ctx.viewer)
    # Loaded even for the viewer: every account then resolves at the same depth, in one batch.
    theirs = await ctx.loaders.accounts.membership.load_all(account_ids)
    mine = None
    if any(m is not None and a != viewer_id for a, m in zip(account_ids, theirs)):
        mine = await viewer_membership(ctx)
    everywhere = kinds_everywhere(ctx)
    return [a == viewer_id or (m is not None and access.allows(kinds_with(everywhere, mine, m.organization_id),
                                                                 "Account"))
            for a, m in zip(account_ids, theirs)]
