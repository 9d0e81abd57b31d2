"""Per-request DataLoaders: how resolvers read.

Every loader comes from `create_loaders`, called once per request, because a loader
caches what it has loaded and binds to the running event loop. One module per domain.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from datasources.payments.client import PaymentsClient
from datasources.postgres.database import Database
from datasources.postgres.merging import MergingReader
from loaders import accounts, billing, credits, entitlements, organizations, staff
from aiodataloader import DataLoader

from loaders.batcher import Batcher, BatchLoader


@dataclass(frozen=True)
class Loaders:
    accounts: accounts.AccountLoaders
    organizations: organizations.OrganizationLoaders
    entitlements: entitlements.EntitlementLoaders
    credits: credits.CreditLoaders
    billing: billing.BillingLoaders
    staff: staff.StaffLoaders

    def clear_all(self) -> None:
        """Forgets everything loaded so far: after a write, the next read sees the new state."""
        for group in vars(self).values():
            for found in vars(group).values():
                if isinstance(found, DataLoader):
                    found.clear_all()


def create_loaders(db: Database, payments: PaymentsClient | None) -> Loaders:
    # Loaders read through one merging reader: a round's reads go out as one statement.
    reader = MergingReader(db)
    created = Loaders(
        accounts=accounts.create(reader),
        organizations=organizations.create(reader),
        entitlements=entitlements.create(reader),
        credits=credits.create(reader),
        billing=billing.create(payments),
        staff=staff.create(reader),
    )
    batcher = Batcher(asyncio.get_running_loop())
    for group in vars(created).values():
        for found in vars(group).values():
            if isinstance(found, BatchLoader):
                found.batcher = batcher
    return created
