"""What the vendor's staff and services read across organizations: search pages and reports."""

from __future__ import annotations

from dataclasses import dataclass

from loaders.dataloader import DataLoader

from datasources.postgres import reports, staff
from datasources.postgres.database import Database
from loaders.base import each_loader


@dataclass(frozen=True)
class StaffLoaders:
    accounts: DataLoader  # (search, Slice) -> Page[Account]
    organizations: DataLoader  # (search, Slice) -> Page[Organization]
    licenses_expiring: DataLoader  # (days, Slice) -> Page[License]
    billed_organizations: DataLoader  # Slice -> Page[Organization]
    seat_utilization: DataLoader  # Slice -> Page[SeatUtilization]
    credit_usage: DataLoader  # (from, to, Slice) -> Page[CreditUsage]


def create(db: Database) -> StaffLoaders:
    return StaffLoaders(
        accounts=each_loader(lambda key: staff.search_accounts(db, *key)),
        organizations=each_loader(lambda key: staff.search_organizations(db, *key)),
        licenses_expiring=each_loader(lambda key: reports.licenses_expiring(db, *key)),
        billed_organizations=each_loader(lambda key: reports.billed_organizations(db, key)),
        seat_utilization=each_loader(lambda key: reports.seat_utilization(db, key)),
        credit_usage=each_loader(lambda key: reports.credit_usage(db, *key)),
    )
