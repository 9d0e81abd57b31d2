"""Licenses, seats, subscriptions, products and downloads: rules and visibility."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from auth.viewer import NOT_AUTHENTICATED, require_account
from datasources.errors import Unauthenticated
from datasources.paging import Page, Slice
from datasources.postgres import entitlements as data
from resolvers.context import Context
from planning import reads, rights, sources
from planning.declare import checked
from resolvers.permissions import may, require

# Auto-renew may be switched off until this long before renewal, and back on until a day before.
SWITCH_OFF_NOTICE = {"MONTH": timedelta(days=14), "YEAR": timedelta(days=30), "THREE_YEARS": timedelta(days=30)}
SWITCH_ON_NOTICE = timedelta(days=1)


def auto_renew_changeable_until(subscription: data.Subscription) -> datetime | None:
    """The last moment auto-renew may still be switched from its current setting; None when
    the subscription does not renew at all (expired or canceled)."""
    if subscription.status not in ("ACTIVE", "TRIALING", "PAST_DUE"):
        return None
    notice = SWITCH_OFF_NOTICE[subscription.plan_interval] if subscription.auto_renew else SWITCH_ON_NOTICE
    return subscription.current_period_end - notice


async def visible_license(ctx: Context, license_id: UUID) -> data.License | None:
    """Whoever the table lets see the organization's licenses; anyone the licenses they hold a seat of."""
    found = await ctx.loaders.entitlements.license.load(license_id)
    if found is None:
        return None
    if await may(ctx, "License", found.organization_id):
        return found
    held = await ctx.loaders.entitlements.licenses_held.load(require_account(ctx.viewer))
    return found if any(h.id == license_id for h in held) else None


async def visible_allocation(ctx: Context, license_id: UUID, account_id: UUID) -> data.Allocation | None:
    found = await ctx.loaders.entitlements.allocation.load((license_id, account_id))
    if found is None:
        return None
    license = await ctx.loaders.entitlements.license.load(license_id)
    if license and await may(ctx, "LicenseAllocation", license.organization_id):
        return found
    return found if account_id == require_account(ctx.viewer) else None


async def allocations_page(ctx: Context, license: data.License, slice: Slice) -> Page[data.Allocation]:
    """Whoever the table lets page through every seat does; anyone else sees only their own seat
    (`planning.sources.SEATS`, whose condition the page applies)."""
    scope = await rights.scope(ctx)
    if scope is None:
        raise Unauthenticated(NOT_AUTHENTICATED)
    return await ctx.loaders.entitlements.allocations.load(
        (license.id, slice, sources.SEAT_OF_LICENSE_VISIBLE.sql, sources.SEAT_OF_LICENSE_VISIBLE.pick(scope)))


async def visible_subscription(ctx: Context, subscription_id: UUID) -> data.Subscription | None:
    found = await ctx.loaders.entitlements.subscription.load(subscription_id)
    return found if found and await may(ctx, "Subscription", found.organization_id) else None


async def visible_product(ctx: Context, product_id: UUID) -> data.Product | None:
    """The catalog is the vendor's, the same for every signed-in account."""
    require_account(ctx.viewer)
    return await ctx.loaders.entitlements.product.load(product_id)


async def may_download(ctx: Context, product_id: UUID) -> bool:
    allowed = await ctx.loaders.entitlements.downloadable_product_ids.load(require_account(ctx.viewer))
    return product_id in allowed


async def visible_download(ctx: Context, download_id: UUID) -> data.Download | None:
    found = await ctx.loaders.entitlements.download.load(download_id)
    return found if found and await may_download(ctx, found.product_id) else None


async def visible_learning_resource(ctx: Context, resource_id: UUID) -> data.LearningResource | None:
    require_account(ctx.viewer)
    return await ctx.loaders.entitlements.learning_resource.load(resource_id)


async def downloadable_products(ctx: Context, account_id: UUID) -> list[data.Product]:
    ids = await ctx.loaders.entitlements.downloadable_product_ids.load(account_id)
    products = await ctx.loaders.entitlements.product.load_many(ids)
    return sorted((p for p in products if p), key=lambda p: (p.family, p.name))


async def products(ctx: Context, product_ids: Sequence[UUID]) -> list[data.Product | None]:
    return await ctx.loaders.entitlements.product.load_all(list(product_ids))


async def catalog(ctx: Context) -> list[data.Product]:
    return await ctx.loaders.entitlements.catalog.load("all")


async def downloads(ctx: Context, product_id: UUID) -> list[data.Download]:
    """Empty unless the viewer may download the product."""
    if not await may_download(ctx, product_id):
        return []
    return await ctx.loaders.entitlements.downloads.load(product_id)


async def learning_resources(ctx: Context, product_id: UUID) -> list[data.LearningResource]:
    return await ctx.loaders.entitlements.learning.load(product_id)


async def licenses_held(ctx: Context, account_ids: Sequence[UUID]) -> list[list[data.License]]:
    """The licenses each account holds a seat of (`planning.sources.LICENSES_HELD`, in its order);
    the caller has checked that the viewer may see the accounts."""
    return await reads.relation_records(ctx, sources.LICENSES_HELD, data.License, account_ids)


async def licenses_of_organization(ctx: Context, organization_id: UUID) -> list[data.License]:
    """FORBIDDEN unless the viewer may read the organization's licenses."""
    await require(ctx, checked(sources.ORGANIZATION_LICENSES), organization_id)
    [found] = await reads.relation_records(ctx, sources.ORGANIZATION_LICENSES, data.License, [organization_id])
    return found


async def subscriptions(ctx: Context, query: data.SubscriptionQuery) -> list[data.Subscription]:
    """FORBIDDEN unless the viewer may read the organization's subscriptions."""
    await require(ctx, "Organization.subscriptions", query.organization_id)
    return await ctx.loaders.entitlements.subscriptions.load(query)


async def license(ctx: Context, license_id: UUID) -> data.License | None:
    """For a mutation's payload: the license it changed, which the viewer was allowed to change."""
    return await ctx.loaders.entitlements.license.load(license_id)


async def subscription(ctx: Context, subscription_id: UUID) -> data.Subscription | None:
    """For a mutation's payload: the subscription it changed, which the viewer was allowed to change."""
    return await ctx.loaders.entitlements.subscription.load(subscription_id)
