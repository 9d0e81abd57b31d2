"""Per-request DataLoaders: how resolvers read.

Every loader comes from `create_loaders`, called once per request, because a loader
caches what it has loaded and binds to the running event loop. One module per domain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from datasources.payments.client import PaymentsClient
from datasources.postgres.database import Database
from datasources.postgres.merging import MergingReader
from loaders import accounts, billing, credits, entitlements, organizations, staff, statements
from loaders.batcher import Batcher
from loaders.dataloader import DataLoader

# How each group is made, from the request's merging reader and payments client.
_GROUPS: dict[str, Callable[[MergingReader, PaymentsClient | None], Any]] = {
    "accounts": lambda reader, _payments: accounts.create(reader),
    "organizations": lambda reader, _payments: organizations.create(reader),
    "entitlements": lambda reader, _payments: entitlements.create(reader),
    "credits": lambda reader, _payments: credits.create(reader),
    "billing": lambda reader, payments: billing.create(reader, payments),
    "staff": lambda reader, _payments: staff.create(reader),
    "statements": lambda reader, _payments: statements.create(reader),
}
# The groups whose loaders call the payment provider (on a miss of its mirror).
_PROVIDER_GROUPS = frozenset({"billing"})
_DATABASE_GROUPS = frozenset(_GROUPS) - _PROVIDER_GROUPS
Mark = dict[DataLoader, frozenset[Any]]


class Loaders:
    """The request's loader groups, each made on first use: a request reads through a few
    groups at most, and making the loaders of all of them costs more CPU than a small
    query's whole execution."""

    accounts: accounts.AccountLoaders
    organizations: organizations.OrganizationLoaders
    entitlements: entitlements.EntitlementLoaders
    credits: credits.CreditLoaders
    billing: billing.BillingLoaders
    staff: staff.StaffLoaders
    statements: statements.StatementLoaders

    def __init__(self, reader: MergingReader, payments: PaymentsClient | None, batcher: Batcher) -> None:
        self.__dict__.update(_reader=reader, _payments=payments, _batcher=batcher)

    @property
    def reader(self) -> MergingReader:
        """The request's merging reader (gateway/http.py has the session check ride in it)."""
        return self._reader

    def __getattr__(self, name: str) -> Any:
        # Reached only while `name` is not in the instance's dict: a group's first use.
        make = _GROUPS.get(name)
        if make is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        group = make(self._reader, self._payments)
        for found in vars(group).values():
            if isinstance(found, DataLoader):
                found.batcher = self._batcher
        self.__dict__[name] = group
        return group

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__!r} object is read-only")

    def clear_all(self) -> None:
        """Forgets everything loaded so far: after a write, the next read sees the new state."""
        for loader in self._loaders(_GROUPS):
            loader.clear_all()

    def database_mark(self) -> Mark:
        """What the PostgreSQL loaders hold now (the session's primed rows, say), for
        `forget_database_reads_since`."""
        return {loader: loader.cached_keys() for loader in self._loaders(_DATABASE_GROUPS)}

    def forget_database_reads_since(self, mark: Mark) -> None:
        """Forgets what was read from PostgreSQL since `mark`, keeping the payment provider's
        answers: a second execution of the same query then reads the database as a first one
        would, and waits for a slow provider only once."""
        for loader in self._loaders(_DATABASE_GROUPS):
            loader.keep_only(mark.get(loader, frozenset()))

    def _loaders(self, names: Any) -> list[DataLoader]:
        return [found for name, group in vars(self).items() if name in names
                for found in vars(group).values() if isinstance(found, DataLoader)]


def create_loaders(db: Database, payments: PaymentsClient | None) -> Loaders:
    # Loaders read through one merging reader: a round's reads go out as one statement.
    return Loaders(MergingReader(db), payments, Batcher(asyncio.get_running_loop()))
