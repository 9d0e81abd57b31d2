"""Who may see what: the viewer's kinds, decided from their membership, staff role or service
scopes (never from the input), looked up in the one table `auth.access`.

Customers reach their own organization; the vendor's staff and services reach every
organization, each only the rows of the table given to its role or scopes. Everyone reads
their own account, seats and credit access; the callers say where that applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from auth import access
from datasources.errors import Forbidden
# The viewer's kinds and reach are the rights library's (`planning.rights`), which the
# compiled statements apply too.
from planning.rights import MANAGERS, kinds_everywhere, kinds_in, kinds_with, may, viewer_membership
from resolvers.context import Context

__all__ = ["MANAGERS", "kinds_everywhere", "kinds_in", "kinds_with", "may", "viewer_membership"]


def refusal(coordinate: str) -> str:
    return f"Not allowed: {access.ROW_OF[coordinate].name} is for {access.who(coordinate)} only."


async def kinds_of_own(ctx: Context) -> frozenset[str]:
    """The viewer's kinds in its own organization, or everywhere (a staff role, scopes): what it
    is for the changes to its own account. A customer account in no organization (a member
    who was removed) is still a MEMBER there."""
    everywhere = kinds_everywhere(ctx)
    if ctx.viewer.account_id is None:
        return everywhere
    mine = await viewer_membership(ctx)
    if mine is None:
        return everywhere or frozenset({access.MEMBER})
    return kinds_with(everywhere, mine, mine.organization_id)


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
class StaffAuthority:
    """What allowed a staff action: the staff role or service scope, recorded in the audit log."""

    scope: str


def require_staff(ctx: Context, mutation: str) -> StaffAuthority:
    """FORBIDDEN unless the viewer's staff role or a service scope it holds may run `mutation`."""
    used = access.allowing(kinds_everywhere(ctx), mutation)
    if used is None:
        raise Forbidden(refusal(mutation))
    return StaffAuthority(used)


async def is_member_of(ctx: Context, organization_id: UUID) -> bool:
    mine = await viewer_membership(ctx)
    return mine is not None and mine.organization_id == organization_id
