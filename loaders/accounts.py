"""Accounts, organizations and memberships."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from uuid import UUID

from loaders.dataloader import DataLoader

from datasources.postgres import accounts, notifications
from datasources.postgres.database import Database
from loaders.base import grouped_loader, loader


@dataclass(frozen=True)
class AccountLoaders:
    account: DataLoader  # account id -> Account | None
    organization: DataLoader  # organization id -> Organization | None
    membership: DataLoader  # account id -> Membership | None
    organization_of: DataLoader  # account id -> the Organization it belongs to | None
    notification_preferences: DataLoader  # account id -> [Preference] (the choices that differ from the default)


def create(db: Database) -> AccountLoaders:
    return AccountLoaders(
        account=loader(partial(accounts.accounts_by_ids, db)),
        organization=loader(partial(accounts.organizations_by_ids, db)),
        membership=loader(partial(accounts.memberships_by_account_ids, db)),
        organization_of=loader(partial(accounts.organizations_of_accounts, db)),
        notification_preferences=grouped_loader(partial(notifications.preferences_of_accounts, db),
                                                lambda row: row.account_id),
    )


def prime_viewer(loaders: AccountLoaders, account_id: UUID, account: accounts.Account | None,
                 membership: accounts.Membership | None, organization: accounts.Organization | None) -> None:
    """What the session check already read of the viewer: their first reads cost no round."""
    loaders.account.prime(account_id, account)
    loaders.membership.prime(account_id, membership)
    loaders.organization_of.prime(account_id, organization)
    if organization is not None:
        loaders.organization.prime(organization.id, organization)
