"""What the vendor's staff and services read across organizations: search pages and reports,
each for whoever the access table lets reach it everywhere (FORBIDDEN for the others)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from datasources.errors import BadUserInput
from datasources.paging import Page, Slice
from datasources.postgres import reports
from datasources.postgres.accounts import Account, Organization
from datasources.postgres.entitlements import License
from resolvers.context import Context
from resolvers.permissions import require_everywhere

MAX_BALANCE_PAGE = 20
MAX_EXPIRY_DAYS = 366


def _search(raw: str | None) -> str | None:
    return raw.strip() or None if raw else None


async def accounts(ctx: Context, search: str | None, slice: Slice) -> Page[Account]:
    require_everywhere(ctx, "Staff.accounts")
    return await ctx.loaders.staff.accounts.load((_search(search), slice))


async def organizations(ctx: Context, search: str | None, slice: Slice) -> Page[Organization]:
    require_everywhere(ctx, "Staff.organizations")
    return await ctx.loaders.staff.organizations.load((_search(search), slice))


async def organization(ctx: Context, organization_id: UUID | None) -> Organization | None:
    require_everywhere(ctx, "Staff.organization")
    return await ctx.loaders.accounts.organization.load(organization_id) if organization_id else None


async def licenses_expiring(ctx: Context, within_days: int, slice: Slice) -> Page[License]:
    require_everywhere(ctx, "Staff.licensesExpiring")
    if not 1 <= within_days <= MAX_EXPIRY_DAYS:
        raise BadUserInput(f"`withinDays` takes 1 to {MAX_EXPIRY_DAYS}.")
    return await ctx.loaders.staff.licenses_expiring.load((within_days, slice))


async def billed_organizations(ctx: Context, slice: Slice) -> Page[Organization]:
    require_everywhere(ctx, "Staff.organizationsWithOutstandingBalance")
    if slice.limit > MAX_BALANCE_PAGE:
        raise BadUserInput(f"This report takes `first` or `last` of at most {MAX_BALANCE_PAGE}.")
    return await ctx.loaders.staff.billed_organizations.load(slice)


async def seat_utilization(ctx: Context, slice: Slice) -> Page[reports.SeatUtilization]:
    require_everywhere(ctx, "Staff.seatUtilization")
    return await ctx.loaders.staff.seat_utilization.load(slice)


async def credit_usage(ctx: Context, from_: datetime, to: datetime, slice: Slice) -> Page[reports.CreditUsage]:
    require_everywhere(ctx, "Staff.creditUsage")
    if to <= from_:
        raise BadUserInput("`to` must be after `from`.")
    return await ctx.loaders.staff.credit_usage.load((from_, to, slice))
