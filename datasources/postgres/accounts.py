"""Accounts, organizations and memberships: reads in batches, keyed for loaders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from datasources.postgres.database import Executor, in_key_order


@dataclass(frozen=True)
class Account:
    id: UUID
    customer_number: str
    email: str
    name: str
    country: str | None


@dataclass(frozen=True)
class Credentials:
    account_id: UUID
    password_hash: str | None


@dataclass(frozen=True)
class Organization:
    id: UUID
    name: str
    payment_customer_id: str | None


@dataclass(frozen=True)
class Membership:
    account_id: UUID
    organization_id: UUID
    role: str
    joined_at: datetime


def account_columns(alias: str = "", prefix: str = "") -> str:
    """The columns of `Account`, from the record's fields: every statement reading accounts
    selects them, so a column added to the record is read everywhere."""
    return ", ".join((f"{alias}." if alias else "") + f.name + (f" AS {prefix}{f.name}" if prefix else "")
                     for f in fields(Account))


def account_from(row: Any, prefix: str = "") -> Account:
    return Account(**{f.name: row[f"{prefix}{f.name}"] for f in fields(Account)})


async def accounts_by_ids(db: Executor, ids: Sequence[UUID]) -> list[Account | None]:
    rows = await db.fetch(f"SELECT {account_columns()} FROM accounts WHERE id = ANY($1::uuid[])", list(ids))
    return in_key_order(ids, {r["id"]: Account(**r) for r in rows})


async def credentials_by_email(db: Executor, email: str) -> Credentials | None:
    row = await db.fetchrow(
        "SELECT id AS account_id, password_hash FROM accounts WHERE email = $1", email.lower()
    )
    return Credentials(**row) if row else None


async def organizations_by_ids(db: Executor, ids: Sequence[UUID]) -> list[Organization | None]:
    rows = await db.fetch(
        "SELECT id, name, payment_customer_id FROM organizations WHERE id = ANY($1::uuid[])",
        list(ids),
    )
    return in_key_order(ids, {r["id"]: Organization(**r) for r in rows})


async def organizations_of_accounts(db: Executor, account_ids: Sequence[UUID]) -> list[Organization | None]:
    """The organization each account belongs to, if any."""
    rows = await db.fetch(
        "SELECT m.account_id, o.id, o.name, o.payment_customer_id FROM memberships m"
        " JOIN organizations o ON o.id = m.organization_id WHERE m.account_id = ANY($1::uuid[])",
        list(account_ids),
    )
    return in_key_order(account_ids, {r["account_id"]: Organization(r["id"], r["name"], r["payment_customer_id"])
                                      for r in rows})


async def memberships_by_account_ids(db: Executor, ids: Sequence[UUID]) -> list[Membership | None]:
    rows = await db.fetch(
        "SELECT account_id, organization_id, role::text AS role, joined_at FROM memberships"
        " WHERE account_id = ANY($1::uuid[])",
        list(ids),
    )
    return in_key_order(ids, {r["account_id"]: Membership(**r) for r in rows})


async def organization_count(db: Executor) -> int:
    return await db.fetchval("SELECT count(*) FROM organizations")
