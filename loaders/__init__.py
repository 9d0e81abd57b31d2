"""Per-request DataLoaders: how resolvers read.

Every loader comes from `create_loaders`, called once per request, because a loader
caches what it has loaded and binds to the running event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from aiodataloader import DataLoader

from datasources.postgres import accounts
from datasources.postgres.database import Database

K = TypeVar("K")
V = TypeVar("V")


def _loader(db: Database, batch: Callable[[Database, Sequence[K]], Awaitable[list[V]]]) -> DataLoader:
    return DataLoader(partial(batch, db))


@dataclass(frozen=True)
class Loaders:
    account: DataLoader  # account id -> Account | None
    organization: DataLoader  # organization id -> Organization | None
    membership: DataLoader  # account id -> Membership | None


def create_loaders(db: Database) -> Loaders:
    return Loaders(
        account=_loader(db, accounts.accounts_by_ids),
        organization=_loader(db, accounts.organizations_by_ids),
        membership=_loader(db, accounts.memberships_by_account_ids),
    )


__all__ = ["Loaders", "create_loaders"]
