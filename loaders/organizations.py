"""An organization's member list, invitations and audit log: pages, one statement each."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from loaders.dataloader import DataLoader

from datasources.postgres import organizations as data
from datasources.postgres import ownership, sign_in
from datasources.postgres.database import Database
from loaders.base import each_loader, loader


@dataclass(frozen=True)
class OrganizationLoaders:
    members: DataLoader  # (MemberQuery, Slice) -> Page[MemberRow]
    invitations: DataLoader  # (organization id, pending only, Slice) -> Page[Invitation]
    invitation: DataLoader  # invitation id -> Invitation | None
    audit_log: DataLoader  # (AuditQuery, Slice) -> Page[AuditEntry]
    audit_entry: DataLoader  # entry id -> AuditEntry | None
    pending_transfer: DataLoader  # organization id -> ownership Transfer | None
    sign_in: DataLoader  # organization id -> SignInConfig | None


def create(db: Database) -> OrganizationLoaders:
    return OrganizationLoaders(
        members=each_loader(lambda key: data.members_page(db, *key)),
        invitations=each_loader(lambda key: data.invitations_page(db, *key)),
        invitation=loader(partial(data.invitations_by_ids, db)),
        audit_log=each_loader(lambda key: data.audit_page(db, *key)),
        audit_entry=loader(partial(data.audit_entries_by_ids, db)),
        pending_transfer=loader(partial(ownership.pending_of_organizations, db)),
        sign_in=loader(partial(sign_in.configs_of_organizations, db)),
    )
