"""Accounts, organizations and memberships."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from aiodataloader import DataLoader

from datasources.postgres import accounts
from datasources.postgres.database import Database
from loaders.base import loader


@dataclass(frozen=True)
class AccountLoaders:
    account: DataLoader  # account id -> Account | None
    organization: DataLoader  # organization id -> Organization | None
    membership: DataLoader  # account id -> Membership | None
    organization_of: DataLoader  # account id -> the Organization it belongs to | None


def create(db: Database) -> AccountLoaders:
    return AccountLoaders(
        account=loader(partial(accounts.accounts_by_ids, db)),
        organization=loader(partial(accounts.organizations_by_ids, db)),
        membership=loader(partial(accounts.memberships_by_account_ids, db)),
        organization_of=loader(partial(accounts.organizations_of_accounts, db)),
    )
