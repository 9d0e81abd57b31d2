"""Products, downloads, learning resources, licenses, seats and subscriptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

from loaders.dataloader import DataLoader

from datasources.paging import Page, Slice
from datasources.postgres import entitlements as data
from datasources.postgres.database import Database
from loaders.base import each_loader, grouped_loader, loader


@dataclass(frozen=True)
class EntitlementLoaders:
    product: DataLoader  # product id -> Product | None
    catalog: DataLoader  # "all" -> [Product] (one key: the whole catalog)
    downloads: DataLoader  # product id -> [Download]
    learning: DataLoader  # product id -> [LearningResource]
    download: DataLoader  # download id -> Download | None
    learning_resource: DataLoader  # learning resource id -> LearningResource | None
    license: DataLoader  # license id -> License | None
    licenses_held: DataLoader  # account id -> [License]
    # (license id, Slice, condition, its parameters) -> Page[Allocation] of the seats passing the condition
    allocations: DataLoader
    allocation: DataLoader  # (license id, account id) -> Allocation | None
    downloadable_product_ids: DataLoader  # account id -> [product id]
    subscription: DataLoader  # subscription id -> Subscription | None
    subscriptions: DataLoader  # SubscriptionQuery -> [Subscription]


def create(db: Database) -> EntitlementLoaders:
    product = loader(partial(data.products_by_ids, db))
    return EntitlementLoaders(
        product=product,
        catalog=loader(partial(_catalog, db)),
        downloads=grouped_loader(partial(data.downloads_of_products, db), lambda d: d.product_id),
        learning=grouped_loader(partial(data.learning_of_products, db), lambda r: r.product_id),
        download=loader(partial(data.downloads_by_ids, db)),
        learning_resource=loader(partial(data.learning_by_ids, db)),
        license=loader(partial(data.licenses_by_ids, db)),
        licenses_held=grouped_loader(partial(data.licenses_held_by_accounts, db), _first, _second),
        allocations=loader(partial(_allocation_pages, db)),
        allocation=loader(partial(data.allocations_by_keys, db)),
        downloadable_product_ids=grouped_loader(partial(data.downloadable_products, db), _first, _second),
        subscription=loader(partial(data.subscriptions_by_ids, db)),
        subscriptions=each_loader(partial(_subscriptions, db, product)),
    )


async def _subscriptions(db: Database, product: DataLoader, query: data.SubscriptionQuery) -> list[data.Subscription]:
    """The subscriptions read their products in the same statement: the product loader gets
    them too, so a screen showing each subscription's product asks for nothing more."""
    found = await data.subscriptions_matching(db, query)
    for _, each in found:
        product.prime(each.id, each)
    return [subscription for subscription, _ in found]


def _first(pair: tuple[UUID, object]) -> UUID:
    return pair[0]


def _second(pair: tuple[UUID, object]) -> object:
    return pair[1]


async def _catalog(db: Database, keys: Sequence[str]) -> list[list[data.Product]]:
    products = await data.catalog(db)
    return [products for _ in keys]


async def _allocation_pages(db: Database, keys: Sequence[tuple[UUID, Slice, str, tuple[Any, ...]]]
                            ) -> list[Page[data.Allocation]]:
    """Keys asking for the same slice and condition share one statement; usually every key does."""
    groups: dict[tuple[Slice, str, tuple[Any, ...]], list[UUID]] = {}
    for license_id, *rest in keys:
        groups.setdefault(tuple(rest), []).append(license_id)  # type: ignore[arg-type]
    pages: dict[tuple[Any, ...], Page[data.Allocation]] = {}
    for (slice, condition, parameters), license_ids in groups.items():
        found = await data.allocation_pages(db, license_ids, slice, condition, parameters)
        for license_id, page in zip(license_ids, found):
            pages[(license_id, slice, condition, parameters)] = page
    return [pages[key] for key in keys]
