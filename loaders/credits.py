"""Cloud credits: one loader per relation, so a pool and all its members cost one statement each."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from loaders.dataloader import DataLoader

from datasources.postgres import credits as data
from datasources.postgres.database import Database
from loaders.base import each_loader, grouped_loader, loader


@dataclass(frozen=True)
class CreditLoaders:
    grants: DataLoader  # organization id -> [Grant], in the order usage consumes them
    grant: DataLoader  # grant id -> Grant | None
    usage_periods: DataLoader  # organization id -> [UsagePeriod]
    pending_requests: DataLoader  # organization id -> [CreditRequest], oldest first
    request: DataLoader  # request id -> CreditRequest | None
    requests_page: DataLoader  # (account id, organization id, Slice) -> Page[CreditRequest], newest first
    usage: DataLoader  # usage id -> Usage | None
    usage_page: DataLoader  # (organization id, Slice) -> Page[Usage], newest first
    members: DataLoader  # organization id -> [Member]
    pool_alert: DataLoader  # organization id -> PoolAlert | None


def create(db: Database) -> CreditLoaders:
    by_organization = lambda row: row.organization_id  # noqa: E731
    return CreditLoaders(
        grants=grouped_loader(partial(data.grants_of_organizations, db), by_organization),
        grant=loader(partial(data.grants_by_ids, db)),
        usage_periods=grouped_loader(partial(data.usage_periods_of_organizations, db), by_organization),
        pending_requests=grouped_loader(partial(data.pending_requests_of_organizations, db), by_organization),
        request=loader(partial(data.requests_by_ids, db)),
        requests_page=each_loader(lambda key: data.requests_page(db, *key)),
        usage=loader(partial(data.usage_by_ids, db)),
        # A page is one organization's with its own arguments: one statement per distinct key.
        usage_page=each_loader(lambda key: data.usage_page(db, *key)),
        members=grouped_loader(partial(data.members_of_organizations, db), by_organization),
        pool_alert=loader(partial(data.pool_alerts_of_organizations, db)),
    )
